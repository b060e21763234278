// AVX-512 row-streaming kernel for GEMMs with few rows (contract: SgemmRowsUkr in
// gemm/gemm_kernels.hpp): C[m x n] = (or +=) A panel @ B rows, k <= 8 rows of B read in place
// along their length. Per 32 columns the k rows of B (2 x k zmm) stay in registers while
// the rows of C take their k FMAs per vector, four rows at a time (8 independent chains), so
// B is read once, row after row (long sequential runs: the whole row of a large weight
// matrix), where a packed GEMM would gather 128-byte pieces of many rows. Used for dX = dY W
// of a linear layer at batch <= 4 and vector-matrix products (gemm_rows in gemm/driver.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx512/ukr_finish_avx512.hpp"  // lane_mask

namespace cnnkit {
namespace avx512 {
namespace {

// R rows of C (8 independent FMA chains for R = 4) over the K rows of B held in b0, b1.
template <int K, int R>
__attribute__((always_inline)) inline void row_group(const __m512* b0, const __m512* b1,
                                                     const float* a, int m, float* c,
                                                     std::int64_t ldc, __mmask16 m0, __mmask16 m1,
                                                     bool accumulate) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int p = 0; p < K; ++p) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 ai = _mm512_set1_ps(a[p * m + r]);
      acc0[r] = _mm512_fmadd_ps(ai, b0[p], acc0[r]);
      acc1[r] = _mm512_fmadd_ps(ai, b1[p], acc1[r]);
    }
  }
  // the block's sum, then C added to it (the order of sgemm_ukr's beta = 1 epilogue)
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* cp = c + r * ldc;
    if (accumulate) {
      acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, cp));
      acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, cp + 16));
    }
    _mm512_mask_storeu_ps(cp, m0, acc0[r]);
    if (m1) _mm512_mask_storeu_ps(cp + 16, m1, acc1[r]);
  }
}

template <int K>
void rows(int m, std::int64_t n, const float* a, const float* b, std::int64_t ldb, float* c,
          std::int64_t ldc, bool accumulate) {
  for (std::int64_t j = 0; j < n; j += 32) {
    const __mmask16 m0 = lane_mask(n - j), m1 = lane_mask(n - j - 16);
    __m512 b0[K], b1[K];
#pragma GCC unroll 8
    for (int p = 0; p < K; ++p) {
      b0[p] = _mm512_maskz_loadu_ps(m0, b + p * ldb + j);
      b1[p] = _mm512_maskz_loadu_ps(m1, b + p * ldb + j + 16);
    }
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      row_group<K, 4>(b0, b1, a + i, m, c + i * ldc + j, ldc, m0, m1, accumulate);
    }
    float* ci = c + i * ldc + j;
    switch (m - i) {
      case 3:
        row_group<K, 3>(b0, b1, a + i, m, ci, ldc, m0, m1, accumulate);
        break;
      case 2:
        row_group<K, 2>(b0, b1, a + i, m, ci, ldc, m0, m1, accumulate);
        break;
      case 1:
        row_group<K, 1>(b0, b1, a + i, m, ci, ldc, m0, m1, accumulate);
        break;
      default:
        break;
    }
  }
}

}  // namespace

void sgemm_rows_avx512(int m, int k, std::int64_t n, const float* a, const float* b,
                       std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  switch (k) {
    case 8:
      return rows<8>(m, n, a, b, ldb, c, ldc, accumulate);
    case 7:
      return rows<7>(m, n, a, b, ldb, c, ldc, accumulate);
    case 6:
      return rows<6>(m, n, a, b, ldb, c, ldc, accumulate);
    case 5:
      return rows<5>(m, n, a, b, ldb, c, ldc, accumulate);
    case 4:
      return rows<4>(m, n, a, b, ldb, c, ldc, accumulate);
    case 3:
      return rows<3>(m, n, a, b, ldb, c, ldc, accumulate);
    case 2:
      return rows<2>(m, n, a, b, ldb, c, ldc, accumulate);
    case 1:
      return rows<1>(m, n, a, b, ldb, c, ldc, accumulate);
    default:
      return;
  }
}

}  // namespace avx512
}  // namespace cnnkit
