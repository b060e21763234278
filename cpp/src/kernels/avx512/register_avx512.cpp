// Fills the AVX-512 entries of the kernel table.
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512 {

float fma_chains_avx512(std::int64_t iters);
void pack_patch_panel_avx512(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);

void register_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMr;
  t.sgemm_nr = kSgemmNr;
  t.sgemm_ukr = sgemm_ukr_14x32_avx512;
  t.pack_patch_panel = pack_patch_panel_avx512;
  t.dot_mr = kDotMr;
  t.dot_nr = kDotNr;
  t.dot_nt_tile = dot_nt_tile_avx512;
  t.fma_chains = fma_chains_avx512;
  t.fma_chain_flops = 24.0 * 16 * 2;
}

}  // namespace avx512
}  // namespace cnnkit
