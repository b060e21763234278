// Fills the loss family's sub-table for one ISA: reference first, then ISA overrides.
#include "loss/loss_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_loss_kernels(LossKernels& k, Isa isa) {
  k.exp_shift_sum = exp_shift_sum_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) k.exp_shift_sum = avx2::exp_shift_sum_avx2;
  if (isa >= Isa::avx512) k.exp_shift_sum = avx512::exp_shift_sum_avx512;
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
