// AVX-512 packing transpose (contract: TransposeF32 in gemm/gemm_kernels.hpp): 16 x 16 blocks
// transposed in registers (unpack, shuffle within 128-bit lanes, then two rounds of 128-bit
// lane shuffles), with masked loads/stores at the edges. Used to pack A panels from row-major
// A, B panels from transposed B, and patch panels for the weight gradient.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

inline __mmask16 lanes(std::int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// In: r[i] = row i. Out: r[c] = column c.
inline void transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // r[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k.
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], _MM_SHUFFLE(2, 0, 2, 0));
    t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], _MM_SHUFFLE(3, 1, 3, 1));
    t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], _MM_SHUFFLE(2, 0, 2, 0));
    t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], _MM_SHUFFLE(3, 1, 3, 1));
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], _MM_SHUFFLE(3, 1, 3, 1));
  }
}

}  // namespace

void transpose_f32_avx512(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                          float* dst, std::int64_t ldd, std::int64_t rows_out) {
  __m512 r[16];
  for (std::int64_t r0 = 0; r0 < rows_out; r0 += 16) {
    const __mmask16 out_lanes = lanes(rows_out - r0);
    for (std::int64_t c0 = 0; c0 < cols; c0 += 16) {
      const __mmask16 in_lanes = lanes(cols - c0);
      for (int i = 0; i < 16; ++i) {
        r[i] = r0 + i < rows ? _mm512_maskz_loadu_ps(in_lanes, src + (r0 + i) * lds + c0)
                             : _mm512_setzero_ps();
      }
      transpose16(r);
      const std::int64_t nc = cols - c0 < 16 ? cols - c0 : 16;
      for (std::int64_t c = 0; c < nc; ++c) {
        _mm512_mask_storeu_ps(dst + (c0 + c) * ldd + r0, out_lanes, r[c]);
      }
    }
  }
}

}  // namespace avx512
}  // namespace cnnkit
