// AVX2 dot-product tile (contract: DotNtTile in gemm/gemm_kernels.hpp): C[m x n] += A . B^T,
// 3 x 4 tile: 12 ymm accumulators + 3 A vectors + 1 B vector of the 16 registers.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <int M, int N>
void tile(std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  __m256 acc[M][N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) acc[i][j] = _mm256_setzero_ps();
  std::int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 av[M];
    for (int i = 0; i < M; ++i) av[i] = _mm256_loadu_ps(a + i * lda + p);
    for (int j = 0; j < N; ++j) {
      const __m256 bv = _mm256_loadu_ps(b + j * ldb + p);
      for (int i = 0; i < M; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  if (p < k) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(k - p)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 av[M];
    for (int i = 0; i < M; ++i) av[i] = _mm256_maskload_ps(a + i * lda + p, mask);
    for (int j = 0; j < N; ++j) {
      const __m256 bv = _mm256_maskload_ps(b + j * ldb + p, mask);
      for (int i = 0; i < M; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) c[i * ldc + j] += hsum(acc[i][j]);
}

template <int M>
void rows(int n, std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  switch (n) {
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

void dot_nt_tile_avx2(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  switch (m) {
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

}  // namespace avx2
}  // namespace cnnkit
