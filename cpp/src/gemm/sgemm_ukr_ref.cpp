// Reference GEMM micro-kernel: plain C++ loops, built for baseline x86-64 (or any CPU).
// Same contract as the SIMD kernels, so the engine and its edge handling are shared.
#include <algorithm>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {

void sgemm_ukr_4x16_ref(int m, int n, std::int64_t k, const float* a, const float* b,
                        std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep) {
  constexpr int MR = kSgemmMrRef, NR = kSgemmNrRef;
  float acc[MR][NR] = {};
  for (std::int64_t p = 0; p < k; ++p) {
    const float* ap = a + p * m;
    const float* bp = b + p * ldb;
    for (int i = 0; i < m; ++i) {
      const float ai = ap[i];
      for (int j = 0; j < n; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < m; ++i) {
    float* cr = c + i * ldc;
    for (int j = 0; j < n; ++j) {
      float v = ep.alpha * acc[i][j];
      if (ep.beta != 0.0f) v += ep.beta * cr[j];
      if (ep.bias_row) v += ep.bias_row[i];
      if (ep.bias_col) v += ep.bias_col[j];
      if (ep.relu) v = std::max(v, 0.0f);
      cr[j] = v;
    }
  }
}

void dot_nt_tile_ref(int m, int n, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                     std::int64_t ldb, float* c, std::int64_t ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      const float* ai = a + i * lda;
      const float* bj = b + j * ldb;
      float s = 0.0f;
      for (std::int64_t p = 0; p < k; ++p) s += ai[p] * bj[p];
      c[i * ldc + j] += s;
    }
  }
}

}  // namespace cnnkit
