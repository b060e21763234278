// Fills the pooling family's sub-table for one ISA: reference first, then ISA overrides.
#include "pool/pool_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_pool_kernels(PoolKernels& k, Isa isa) {
  k.max_pool2d_fwd = maxpool2d_fwd_f32_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) k.max_pool2d_fwd = avx2::maxpool2d_fwd_f32_avx2;
  if (isa >= Isa::avx512) k.max_pool2d_fwd = avx512::maxpool2d_fwd_f32_avx512;
#elif CNNKIT_NEON  // kernels/neon/: built on aarch64 only
  if (isa == Isa::neon) k.max_pool2d_fwd = neon::maxpool2d_fwd_f32_neon;
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
