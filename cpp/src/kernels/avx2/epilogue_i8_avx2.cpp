// The int8 row engine's epilogues with AVX2 (contracts: I8Requantize / I8DequantizeCols in
// gemm/gemm_kernels.hpp), 8 channels per step, their constants loaded once for all rows:
//   v = fma(float(sum + comp), mult, add)
//   uint8: clamp to [lo, 255] in fp32 (VMAXPS gives its second operand, lo, for a NaN),
//          VCVTPS2DQ (round to nearest even, the MXCSR mode), then two saturating packs (the
//          values are already in range) and the two 128-bit halves' first 4 bytes;
//   fp32:  ReLU as max(v, 0), stored contiguously or one element per channel plane (NCHW).
// And the activations' quantization, NCHW fp32 planes -> NHWC uint8 (QuantizeU8Nhwc): 8 pixels
// a step, the reference's rule (x * inv_scale clamped to +-1024, VCVTPS2DQ: nearest even, plus
// the zero point, clamped to [0, 255]; NaN -> the clamped zero point).
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

// 8 channels' constants; lanes past the last channel are masked off.
struct Cols8 {
  int count;
  __m256i mk, comp;
  __m256 mult, add;
  Cols8(const std::int32_t* c, const float* m, const float* a, int left)
      : count(left < 8 ? left : 8),
        mk(_mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))),
        comp(_mm256_maskload_epi32(c, mk)),
        mult(_mm256_maskload_ps(m, mk)),
        add(_mm256_maskload_ps(a, mk)) {}
  __m256 value(const std::int32_t* sums) const {
    const __m256i s = count == 8 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums))
                                 : _mm256_maskload_epi32(sums, mk);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s, comp)), mult, add);
  }
};

// 8 fp32 -> 8 int32 lanes in [0, 255] (quantize_u8_ref's rule).
inline __m256i quantize8(__m256 x, __m256 inv_scale, __m256i zero_point, __m256i nan_value) {
  const __m256 r = _mm256_mul_ps(x, inv_scale);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(r, r, _CMP_UNORD_Q));
  const __m256 clamped =
      _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-1024.0f)), _mm256_set1_ps(1024.0f));
  __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(clamped), zero_point);
  q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(255));
  return _mm256_blendv_epi8(q, nan_value, nan);
}

}  // namespace

void quantize_u8_nhwc_avx2(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                           float inv_scale, int zero_point, std::uint8_t* dst) {
  const __m256 inv = _mm256_set1_ps(inv_scale);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  const __m256i nan_value = _mm256_set1_epi32(zero_point < 0     ? 0
                                              : zero_point > 255 ? 255
                                                                 : zero_point);
  alignas(32) std::int32_t lanes[8];
  for (std::int64_t i0 = 0; i0 < n; i0 += 8) {
    const int m = int(n - i0 < 8 ? n - i0 : 8);
    const __m256i mk =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    std::uint8_t* d = dst + i0 * C;
    for (std::int64_t c = 0; c < C; ++c) {
      const __m256 x = _mm256_maskload_ps(src + c * ld + i0, mk);
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), quantize8(x, inv, zp, nan_value));
      for (int i = 0; i < m; ++i) d[i * C + c] = std::uint8_t(lanes[i]);
    }
  }
}

void i8_requantize_avx2(const std::int32_t* sums, std::int64_t lds, int m, int n,
                        const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                        bool relu, std::uint8_t* yq, std::int64_t ldy) {
  const __m256 lo = _mm256_set1_ps(relu ? float(y_zp) : 0.0f), hi = _mm256_set1_ps(255.0f);
  for (int j = 0; j < n; j += 8) {
    const Cols8 cols(comp + j, mult + j, add + j, n - j);
    for (int i = 0; i < m; ++i) {
      const __m256 v = _mm256_min_ps(_mm256_max_ps(cols.value(sums + i * lds + j), lo), hi);
      const __m256i q = _mm256_cvtps_epi32(v);
      const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(q, q), _mm256_setzero_si256());
      const __m128i bytes =
          _mm_unpacklo_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
      std::uint8_t* dst = yq + i * ldy + j;
      if (cols.count == 8) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), bytes);
      } else {
        alignas(16) std::uint8_t tmp[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
        for (int c = 0; c < cols.count; ++c) dst[c] = tmp[c];
      }
    }
  }
}

void i8_dequantize_cols_avx2(const std::int32_t* sums, std::int64_t lds, int m, int n,
                             const std::int32_t* comp, const float* mult, const float* add,
                             bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride) {
  const __m256 zero = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) {
    const Cols8 cols(comp + j, mult + j, add + j, n - j);
    for (int i = 0; i < m; ++i) {
      __m256 v = cols.value(sums + i * lds + j);
      if (relu) v = _mm256_max_ps(v, zero);  // -0 -> +0, NaN -> 0, as v > 0 ? v : 0
      float* dst = yf + i * ldy + j * col_stride;
      if (col_stride == 1) {
        _mm256_maskstore_ps(dst, cols.mk, v);
      } else {  // channel planes (NCHW): one element per plane
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, v);
        for (int c = 0; c < cols.count; ++c) dst[c * col_stride] = tmp[c];
      }
    }
  }
}

}  // namespace avx2
}  // namespace cnnkit
