// NEON dot-product tile (contract: DotNtTile in gemm/gemm_kernels.hpp): C[m x n] += A . B^T,
//   C[i][j] += sum_p A[i][p] * B[j][p],  i < m <= 4, j < n <= 6,
// with rows of A and B contiguous along k (the weight gradient's dY rows and patch rows).
// Each k step of 4 loads 4 A vectors once and 6 B vectors, feeding 24 independent FMLA chains;
// each accumulator is reduced (FADDP) once per call, the k tail (k % 4) in scalar code.
#include <arm_neon.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

template <int M, int N>
void tile(std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  float32x4_t acc[M][N];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) acc[i][j] = vdupq_n_f32(0.0f);
  }
  std::int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    float32x4_t av[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) av[i] = vld1q_f32(a + i * lda + p);
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
      const float32x4_t bv = vld1q_f32(b + j * ldb + p);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[i][j] = vfmaq_f32(acc[i][j], av[i], bv);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
      float s = vaddvq_f32(acc[i][j]);
      for (std::int64_t q = p; q < k; ++q) s += a[i * lda + q] * b[j * ldb + q];
      c[i * ldc + j] += s;
    }
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

void dot_nt_tile_neon(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
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

}  // namespace neon
}  // namespace cnnkit
