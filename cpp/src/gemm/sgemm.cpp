// SGEMM on row-major matrices: C = alpha * op(A) @ op(B) + beta * C.
//
// The plain-matrix operand sources of the GEMM engine (driver.cpp): they pack micro-panels
// from a strided (optionally transposed) matrix. Convolution supplies other sources that pack
// straight from images; the engine and micro-kernels are the same.
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "runtime/kernel_table.hpp"

namespace cnnkit {

void MatrixOperandA::pack(index_t i0, int m, index_t p0, int kc, float* dst) const {
  if (trans_) {
    // op(A)[i][p] = A[p][i]: each k row of the panel is m contiguous floats.
    for (int p = 0; p < kc; ++p) {
      std::memcpy(dst + index_t(p) * m, a_ + (p0 + p) * lda_ + i0, sizeof(float) * m);
    }
    return;
  }
  // Interleave m rows of A: dst[p * m + i] = A[i0 + i][p0 + p], a transpose.
  kernels().gemm.transpose(a_ + i0 * lda_ + p0, lda_, m, kc, dst, m, m);
}

void MatrixOperandB::pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const {
  const index_t panel = index_t(kc) * nr;
  if (!trans_) {
    // Row by row across all panels: each source row segment is read once, contiguously
    // (reading one panel at a time would touch every row's page once per panel).
    const int full = n / nr * nr;
    for (int p = 0; p < kc; ++p) {
      const float* s = b_ + (p0 + p) * ldb_ + j0;
      float* d = dst + index_t(p) * nr;
      if (nr == 32) {
        for (int j = 0; j < full; j += 32, d += panel) {
          for (int t = 0; t < 32; ++t) d[t] = s[j + t];  // fixed size: unrolled, vectorised
        }
      } else {
        for (int j = 0; j < full; j += nr, d += panel) std::memcpy(d, s + j, sizeof(float) * nr);
      }
      if (full < n) {
        for (int t = 0; t < n - full; ++t) d[t] = s[full + t];
        for (int t = n - full; t < nr; ++t) d[t] = 0.0f;
      }
    }
    return;
  }
  // op(B)[p][j] = B[j][p]: each panel is a transpose of nr rows of B (zeros past column n).
  const TransposeF32 transpose = kernels().gemm.transpose;
  for (int q = 0; q * nr < n; ++q) {
    const int nq = std::min(nr, n - q * nr);
    transpose(b_ + (j0 + index_t(q) * nr) * ldb_ + p0, ldb_, nq, kc, dst + q * panel, nr, nr);
  }
}

const float* MatrixOperandB::direct(index_t p0, index_t j0, index_t* ld) const {
  if (trans_) return nullptr;
  *ld = ldb_;
  return b_ + p0 * ldb_ + j0;
}

void sgemm_validate(index_t M, index_t N, index_t K, bool trans_a, index_t lda, bool trans_b,
                    index_t ldb, index_t ldc) {
  if (M < 0 || N < 0 || K < 0) {
    throw_invalid("sgemm: dimensions must be >= 0, got M=", M, ", N=", N, ", K=", K);
  }
  const index_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda < std::max<index_t>(1, a_cols)) {
    throw_invalid("sgemm: lda must be >= ", std::max<index_t>(1, a_cols), " for A of shape ",
                  shape_str({trans_a ? K : M, a_cols}), ", got ", lda);
  }
  if (ldb < std::max<index_t>(1, b_cols)) {
    throw_invalid("sgemm: ldb must be >= ", std::max<index_t>(1, b_cols), " for B of shape ",
                  shape_str({trans_b ? N : K, b_cols}), ", got ", ldb);
  }
  if (ldc < std::max<index_t>(1, N)) {
    throw_invalid("sgemm: ldc must be >= ", std::max<index_t>(1, N), " for C of shape ",
                  shape_str({M, N}), ", got ", ldc);
  }
}

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc,
           Precision precision) {
  sgemm_validate(M, N, K, trans_a, lda, trans_b, ldb, ldc);
  GemmOutput out;
  out.c = C;
  out.ldc = ldc;
  out.alpha = alpha;
  out.beta = beta;
  if (alpha == 0.0f) K = 0;  // BLAS convention: A and B are not referenced
  gemm(M, N, K, MatrixOperandA(A, lda, trans_a), MatrixOperandB(B, ldb, trans_b), out, 0, nullptr,
       precision);
}

}  // namespace cnnkit
