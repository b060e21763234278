// Fills the loss family's sub-table for one ISA: reference first, then ISA overrides.
#include "loss/loss_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_loss_kernels(LossKernels& k, Isa isa) {
  k.exp_shift_sum = exp_shift_sum_ref;
  if (isa >= Isa::avx512) k.exp_shift_sum = avx512::exp_shift_sum_avx512;
}

}  // namespace cnnkit
