// Fills the kernel table with the portable reference kernels (the base every ISA overrides).
#include <cstdint>

#include "conv/image_operands.hpp"
#include "conv/winograd.hpp"
#include "activation/activation_kernels.hpp"
#include "dropout/dropout_kernels.hpp"
#include "gemm/gemm_kernels.hpp"
#include "loss/loss_kernels.hpp"
#include "norm/norm_kernels.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace {

float fma_chains_ref(std::int64_t iters) {
  constexpr int kChains = 8;
  float acc[kChains];
  volatile float seed = 1e-7f;
  const float x = seed, y = 1.0f - seed;
  for (int i = 0; i < kChains; ++i) acc[i] = float(i);
  for (std::int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * y + x;
  }
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

}  // namespace

void register_ref_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMrRef;
  t.sgemm_nr = kSgemmNrRef;
  t.sgemm_ukr = sgemm_ukr_4x16_ref;
  t.transpose = transpose_f32_ref;
  t.pack_patch_panel = pack_patch_panel_ref;
  t.add_f32 = add_f32_ref;
  t.dot_mr = 4;
  t.dot_nr = 4;
  t.dot_nt_tile = dot_nt_tile_ref;
  t.fma_chains = fma_chains_ref;
  t.fma_chain_flops = 8.0 * 2;
  t.relu_fwd = ref::relu_fwd_f32_ref;
  t.leaky_relu_fwd = ref::leaky_relu_fwd_f32_ref;
  t.elu_fwd = ref::elu_fwd_f32_ref;
  t.sigmoid_fwd = ref::sigmoid_fwd_f32_ref;
  t.tanh_fwd = ref::tanh_fwd_f32_ref;
  t.relu_bwd = ref::relu_bwd_f32_ref;
  t.leaky_relu_bwd = ref::leaky_relu_bwd_f32_ref;
  t.elu_bwd = ref::elu_bwd_f32_ref;
  t.sigmoid_bwd = ref::sigmoid_bwd_f32_ref;
  t.tanh_bwd = ref::tanh_bwd_f32_ref;
  t.max_pool2d_fwd = maxpool2d_fwd_f32_ref;
  t.bn_stats = ref::bn_stats_f32_ref;
  t.bn_apply = ref::bn_apply_f32_ref;
  t.bn_bwd_reduce = ref::bn_bwd_reduce_f32_ref;
  t.bn_bwd_apply = ref::bn_bwd_apply_f32_ref;
  t.lrn_fwd = ref::lrn_fwd_f32_ref;
  t.lrn_bwd = ref::lrn_bwd_f32_ref;
  t.dropout_fwd = ref::dropout_fwd_f32_ref;
  t.exp_shift_sum = exp_shift_sum_ref;
  t.wino_input = wino_input_ref;
  t.wino_output = wino_output_ref;
  t.wino_grad_output = wino_grad_output_ref;
  t.wino_fast = false;
}

}  // namespace cnnkit
