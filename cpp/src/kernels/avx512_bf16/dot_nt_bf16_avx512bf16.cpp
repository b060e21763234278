// bf16 dot-product tile with AVX512-BF16 (contract: Bf16DotNtTile in gemm/gemm_kernels.hpp):
// C[m x n] += A . bf16(B)^T, A already rounded (bf16 rows), B fp32 rows rounded as they are read.
// Per k step of 32: two fp32 loads of each of the 6 B rows, one VCVTNE2PS2BF16 (nearest even,
// denormal inputs as zero, as the reference rounds) per row, one load of each of the 4 A rows,
// and 24 VDPBF16PS (each adds two products per fp32 lane). The 24 accumulators are reduced
// horizontally once per call. Used by the linear layer's streaming path in bf16 (small
// batches): W is read once, in place, with no packed copy.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx512/reduce16_avx512.hpp"

namespace cnnkit {
namespace avx512_bf16 {
namespace {

inline __mmask16 lane_mask(std::int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

template <int M, int N>
void tile(std::int64_t k, const bf16_t* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  __m512 acc[M * N];
#pragma GCC unroll 24
  for (int t = 0; t < M * N; ++t) acc[t] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < k; p += 32) {
    const bool full = p + 32 <= k;
    const __mmask16 lo = full ? __mmask16(0xFFFF) : lane_mask(k - p);
    const __mmask16 hi = full ? __mmask16(0xFFFF) : lane_mask(k - p - 16);
    __m512bh av[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) av[i] = (__m512bh)_mm512_loadu_si512(a + i * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
      const float* bj = b + j * ldb + p;
      const __m512bh bv =
          _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, bj + 16), _mm512_maskz_loadu_ps(lo, bj));
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[i * N + j] = _mm512_dpbf16_ps(acc[i * N + j], av[i], bv);
    }
  }
  avx512::add_lane_sums<M, N>(acc, c, ldc);
}

template <int M>
void rows(int n, std::int64_t k, const bf16_t* a, std::int64_t lda, const float* b,
          std::int64_t ldb, float* c, std::int64_t ldc) {
  switch (n) {
    case 6:
      return tile<M, 6>(k, a, lda, b, ldb, c, ldc);
    case 5:
      return tile<M, 5>(k, a, lda, b, ldb, c, ldc);
    case 4:
      return tile<M, 4>(k, a, lda, b, ldb, c, ldc);
    case 3:
      return tile<M, 3>(k, a, lda, b, ldb, c, ldc);
    case 2:
      return tile<M, 2>(k, a, lda, b, ldb, c, ldc);
    case 1:
      return tile<M, 1>(k, a, lda, b, ldb, c, ldc);
    default:
      return;
  }
}

}  // namespace

void bf16_dot_nt_tile(int m, int n, std::int64_t k, const bf16_t* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  switch (m) {
    case 4:
      return rows<4>(n, k, a, lda, b, ldb, c, ldc);
    case 3:
      return rows<3>(n, k, a, lda, b, ldb, c, ldc);
    case 2:
      return rows<2>(n, k, a, lda, b, ldb, c, ldc);
    case 1:
      return rows<1>(n, k, a, lda, b, ldb, c, ldc);
    default:
      return;
  }
}

}  // namespace avx512_bf16
}  // namespace cnnkit
