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

void transpose_f32_ref(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                       float* dst, std::int64_t ldd, std::int64_t rows_out) {
  // Blocks of 16 columns keep the source rows' cache lines in use while the block is written.
  for (std::int64_t c0 = 0; c0 < cols; c0 += 16) {
    const std::int64_t c1 = std::min<std::int64_t>(cols, c0 + 16);
    for (std::int64_t r = 0; r < rows_out; ++r) {
      if (r < rows) {
        const float* s = src + r * lds;
        for (std::int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = s[c];
      } else {
        for (std::int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = 0.0f;
      }
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
