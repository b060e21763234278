// AVX-512 dot-product tile (contract: DotNtTile in gemm/gemm_kernels.hpp): C[m x n] += A . B^T.
// Each k step of 16 loads 4 A vectors once and 6 B vectors, feeding 24 independent FMA chains;
// the 24 accumulators are reduced horizontally once per call, so calls should cover long k
// (the weight gradient passes whole images' pixel ranges). The k tail is a masked step.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

// r[l] = sum of the 16 lanes of v[l], l < 16: a transpose-and-add tree (45 operations instead
// of 16 separate horizontal sums of ~10 each).
inline __m512 reduce16(const __m512* v) {
  __m512 w[8], u[4], z[2];
  for (int i = 0; i < 8; ++i) {
    w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 2; ++i) {
    z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

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
  // Reduce all M*N accumulators in groups of 16 (zero-padded), then add into C.
  constexpr int kCount = M * N, kGroups = (kCount + 15) / 16;
  __m512 flat[kGroups * 16];
#pragma GCC unroll 24
  for (int t = 0; t < kGroups * 16; ++t) {
    flat[t] = t < kCount ? acc[t / N][t % N] : _mm512_setzero_ps();
  }
  float sums[kGroups * 16];
  for (int gi = 0; gi < kGroups; ++gi) _mm512_storeu_ps(sums + 16 * gi, reduce16(flat + 16 * gi));
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) c[i * ldc + j] += sums[i * N + j];
  }
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
