// Fills the AVX2/FMA entries of the kernel table.
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {

float fma_chains_avx2(std::int64_t iters);
void pack_patch_panel_avx2(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void wino_input_avx2(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                     const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c);
void wino_output_avx2(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                      const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                      const float* bias, bool relu);
void wino_grad_output_avx2(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k);

void register_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMr;
  t.sgemm_nr = kSgemmNr;
  t.sgemm_ukr = sgemm_ukr_6x16_avx2;
  t.transpose = transpose_f32_avx2;
  t.pack_patch_panel = pack_patch_panel_avx2;
  t.dot_mr = kDotMr;
  t.dot_nr = kDotNr;
  t.dot_nt_tile = dot_nt_tile_avx2;
  t.fma_chains = fma_chains_avx2;
  t.fma_chain_flops = 12.0 * 8 * 2;
  t.wino_input = wino_input_avx2;
  t.wino_output = wino_output_avx2;
  t.wino_grad_output = wino_grad_output_avx2;
  t.wino_fast = true;
}

}  // namespace avx2
}  // namespace cnnkit
