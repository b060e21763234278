// Fills the AVX2/FMA entries of the kernel table.
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {

float fma_chains_avx2(std::int64_t iters);

void register_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMr;
  t.sgemm_nr = kSgemmNr;
  t.sgemm_ukr = sgemm_ukr_6x16_avx2;
  t.fma_chains = fma_chains_avx2;
  t.fma_chain_flops = 12.0 * 8 * 2;
}

}  // namespace avx2
}  // namespace cnnkit
