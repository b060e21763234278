// Fills the dropout family's sub-table for one ISA: reference first, then ISA overrides.
#include "dropout/dropout_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_dropout_kernels(DropoutKernels& k, Isa isa) {
  k.dropout_fwd = ref::dropout_fwd_f32_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) k.dropout_fwd = avx2::dropout_fwd_f32_avx2;
  if (isa >= Isa::avx512) k.dropout_fwd = avx512::dropout_fwd_f32_avx512;
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
