// Fills the AVX2/FMA entries of the kernel table.
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {

float fma_chains_avx2(std::int64_t iters);
void pack_patch_panel_avx2(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);

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
}

}  // namespace avx2
}  // namespace cnnkit
