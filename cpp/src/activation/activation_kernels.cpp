// Fills the activation family's sub-table for one ISA: reference first, then ISA overrides.
#include "activation/activation_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_activation_kernels(ActivationKernels& k, Isa isa) {
  k.relu_fwd = ref::relu_fwd_f32_ref;
  k.leaky_relu_fwd = ref::leaky_relu_fwd_f32_ref;
  k.elu_fwd = ref::elu_fwd_f32_ref;
  k.sigmoid_fwd = ref::sigmoid_fwd_f32_ref;
  k.tanh_fwd = ref::tanh_fwd_f32_ref;
  k.relu_bwd = ref::relu_bwd_f32_ref;
  k.leaky_relu_bwd = ref::leaky_relu_bwd_f32_ref;
  k.elu_bwd = ref::elu_bwd_f32_ref;
  k.sigmoid_bwd = ref::sigmoid_bwd_f32_ref;
  k.tanh_bwd = ref::tanh_bwd_f32_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) {
    k.relu_fwd = avx2::relu_fwd_f32_avx2;
    k.leaky_relu_fwd = avx2::leaky_relu_fwd_f32_avx2;
    k.elu_fwd = avx2::elu_fwd_f32_avx2;
    k.sigmoid_fwd = avx2::sigmoid_fwd_f32_avx2;
    k.tanh_fwd = avx2::tanh_fwd_f32_avx2;
    k.relu_bwd = avx2::relu_bwd_f32_avx2;
    k.leaky_relu_bwd = avx2::leaky_relu_bwd_f32_avx2;
    k.elu_bwd = avx2::elu_bwd_f32_avx2;
    k.sigmoid_bwd = avx2::sigmoid_bwd_f32_avx2;
    k.tanh_bwd = avx2::tanh_bwd_f32_avx2;
  }
  if (isa >= Isa::avx512) {
    k.relu_fwd = avx512::relu_fwd_f32_avx512;
    k.leaky_relu_fwd = avx512::leaky_relu_fwd_f32_avx512;
    k.elu_fwd = avx512::elu_fwd_f32_avx512;
    k.sigmoid_fwd = avx512::sigmoid_fwd_f32_avx512;
    k.tanh_fwd = avx512::tanh_fwd_f32_avx512;
    k.relu_bwd = avx512::relu_bwd_f32_avx512;
    k.leaky_relu_bwd = avx512::leaky_relu_bwd_f32_avx512;
    k.elu_bwd = avx512::elu_bwd_f32_avx512;
    k.sigmoid_bwd = avx512::sigmoid_bwd_f32_avx512;
    k.tanh_bwd = avx512::tanh_bwd_f32_avx512;
  }
#elif CNNKIT_NEON  // kernels/neon/: built on aarch64 only
  if (isa == Isa::neon) {
    k.relu_fwd = neon::relu_fwd_f32_neon;
    k.leaky_relu_fwd = neon::leaky_relu_fwd_f32_neon;
    k.elu_fwd = neon::elu_fwd_f32_neon;
    k.sigmoid_fwd = neon::sigmoid_fwd_f32_neon;
    k.tanh_fwd = neon::tanh_fwd_f32_neon;
    k.relu_bwd = neon::relu_bwd_f32_neon;
    k.leaky_relu_bwd = neon::leaky_relu_bwd_f32_neon;
    k.elu_bwd = neon::elu_bwd_f32_neon;
    k.sigmoid_bwd = neon::sigmoid_bwd_f32_neon;
    k.tanh_bwd = neon::tanh_bwd_f32_neon;
  }
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
