// Fills the AVX-512 entries of the kernel table.
#include "activation/activation_kernels.hpp"
#include "dropout/dropout_kernels.hpp"
#include "gemm/gemm_kernels.hpp"
#include "loss/loss_kernels.hpp"
#include "norm/norm_kernels.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace avx512 {

float fma_chains_avx512(std::int64_t iters);
void pack_patch_panel_avx512(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void add_f32_avx512(const float* src, float* dst, std::int64_t n);
void wino_input_avx512(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                       const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c);
void wino_output_avx512(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                        const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                        const float* bias, bool relu);
void wino_grad_output_avx512(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                             const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k);

void register_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMr;
  t.sgemm_nr = kSgemmNr;
  t.sgemm_ukr = sgemm_ukr_14x32_avx512;
  t.exp_shift_sum = exp_shift_sum_avx512;
  t.transpose = transpose_f32_avx512;
  t.pack_patch_panel = pack_patch_panel_avx512;
  t.add_f32 = add_f32_avx512;
  t.dot_mr = kDotMr;
  t.dot_nr = kDotNr;
  t.dot_nt_tile = dot_nt_tile_avx512;
  t.fma_chains = fma_chains_avx512;
  t.fma_chain_flops = 24.0 * 16 * 2;
  t.relu_fwd = relu_fwd_f32_avx512;
  t.leaky_relu_fwd = leaky_relu_fwd_f32_avx512;
  t.elu_fwd = elu_fwd_f32_avx512;
  t.sigmoid_fwd = sigmoid_fwd_f32_avx512;
  t.tanh_fwd = tanh_fwd_f32_avx512;
  t.relu_bwd = relu_bwd_f32_avx512;
  t.leaky_relu_bwd = leaky_relu_bwd_f32_avx512;
  t.elu_bwd = elu_bwd_f32_avx512;
  t.sigmoid_bwd = sigmoid_bwd_f32_avx512;
  t.tanh_bwd = tanh_bwd_f32_avx512;
  t.max_pool2d_fwd = maxpool2d_fwd_f32_avx512;
  t.bn_stats = bn_stats_f32_avx512;
  t.bn_apply = bn_apply_f32_avx512;
  t.bn_bwd_reduce = bn_bwd_reduce_f32_avx512;
  t.bn_bwd_apply = bn_bwd_apply_f32_avx512;
  t.lrn_fwd = lrn_fwd_f32_avx512;
  t.lrn_bwd = lrn_bwd_f32_avx512;
  t.dropout_fwd = dropout_fwd_f32_avx512;
  t.wino_input = wino_input_avx512;
  t.wino_output = wino_output_avx512;
  t.wino_grad_output = wino_grad_output_avx512;
  t.wino_fast = true;
}

}  // namespace avx512
}  // namespace cnnkit
