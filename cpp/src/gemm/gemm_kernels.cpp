// Fills the GEMM family's sub-table for one ISA: the reference kernels first, then each ISA's
// overrides on top of the level below it (as BLIS registers reference kernels, then per-CPU
// ones). Baseline code: it only takes the ISA kernels' addresses; the dispatcher calls them
// after CPUID/XGETBV said the CPU can run them.
#include "gemm/gemm_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_gemm_kernels(GemmKernels& k, Isa isa) {
  k.sgemm_mr = kSgemmMrRef;
  k.sgemm_nr = kSgemmNrRef;
  k.sgemm_ukr = sgemm_ukr_4x16_ref;
  k.transpose = transpose_f32_ref;
  k.dot_mr = kDotMrRef;
  k.dot_nr = kDotNrRef;
  k.dot_nt_tile = dot_nt_tile_ref;
  if (isa >= Isa::avx2) {
    k.sgemm_mr = avx2::kSgemmMr;
    k.sgemm_nr = avx2::kSgemmNr;
    k.sgemm_ukr = avx2::sgemm_ukr_6x16_avx2;
    k.transpose = avx2::transpose_f32_avx2;
    k.dot_mr = avx2::kDotMr;
    k.dot_nr = avx2::kDotNr;
    k.dot_nt_tile = avx2::dot_nt_tile_avx2;
  }
  if (isa >= Isa::avx512) {
    k.sgemm_mr = avx512::kSgemmMr;
    k.sgemm_nr = avx512::kSgemmNr;
    k.sgemm_ukr = avx512::sgemm_ukr_14x32_avx512;
    k.transpose = avx512::transpose_f32_avx512;
    k.dot_mr = avx512::kDotMr;
    k.dot_nr = avx512::kDotNr;
    k.dot_nt_tile = avx512::dot_nt_tile_avx512;
  }
}

}  // namespace cnnkit
