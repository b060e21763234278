// AVX-512 dot-product tile (contract: DotNtTile in gemm/gemm_kernels.hpp): C[m x n] += A . B^T.
// Each k step of 16 loads 4 A vectors once and 6 B vectors, feeding 24 independent FMA chains;
// the 24 accumulators are reduced horizontally once per call, so calls should cover long k
// (the weight gradient passes whole images' pixel ranges). The k tail is a masked step.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx512/reduce16_avx512.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

template <int M, int N>
void tile(std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  __m512 acc[M][N];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  std::int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 av[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) av[i] = _mm512_loadu_ps(a + i * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
      const __m512 bv = _mm512_loadu_ps(b + j * ldb + p);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  if (p < k) {
    const __mmask16 mask = __mmask16((1u << (k - p)) - 1);
    __m512 av[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) av[i] = _mm512_maskz_loadu_ps(mask, a + i * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
      const __m512 bv = _mm512_maskz_loadu_ps(mask, b + j * ldb + p);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  add_lane_sums<M, N>(&acc[0][0], c, ldc);
}

template <int M>
void rows(int n, std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
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

void dot_nt_tile_avx512(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
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

}  // namespace avx512
}  // namespace cnnkit
