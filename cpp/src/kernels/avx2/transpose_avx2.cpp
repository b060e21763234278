// AVX2 packing transpose (contract: TransposeF32 in gemm/gemm_kernels.hpp): 8 x 8 blocks in
// registers (unpack, shuffle, 128-bit permute); edges go through a small zero-padded buffer.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline void transpose8(__m256* r) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // u[4i + k], 128-bit half h: rows 4i..4i+3 of column 4h + k.
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
    r[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
  }
}

}  // namespace

void transpose_f32_avx2(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                        float* dst, std::int64_t ldd, std::int64_t rows_out) {
  __m256 r[8];
  float edge[8 * 8];
  for (std::int64_t r0 = 0; r0 < rows_out; r0 += 8) {
    const std::int64_t nr_out = rows_out - r0 < 8 ? rows_out - r0 : 8;
    for (std::int64_t c0 = 0; c0 < cols; c0 += 8) {
      const std::int64_t nc = cols - c0 < 8 ? cols - c0 : 8;
      for (int i = 0; i < 8; ++i) {
        const std::int64_t row = r0 + i;
        if (row >= rows) {
          r[i] = _mm256_setzero_ps();
        } else if (nc == 8) {
          r[i] = _mm256_loadu_ps(src + row * lds + c0);
        } else {
          for (int c = 0; c < 8; ++c) edge[c] = c < nc ? src[row * lds + c0 + c] : 0.0f;
          r[i] = _mm256_loadu_ps(edge);
        }
      }
      transpose8(r);
      for (std::int64_t c = 0; c < nc; ++c) {
        float* d = dst + (c0 + c) * ldd + r0;
        if (nr_out == 8) {
          _mm256_storeu_ps(d, r[c]);
        } else {
          _mm256_storeu_ps(edge, r[c]);
          for (std::int64_t i = 0; i < nr_out; ++i) d[i] = edge[i];
        }
      }
    }
  }
}

}  // namespace avx2
}  // namespace cnnkit
