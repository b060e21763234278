// Output epilogues with AVX-512 (compiled with the AVX-512 flags only here): bias and ReLU over
// rows of a block of partial sums, stored into the output (the bf16_direct convolution's), and
// the int8 row engine's requantization and dequantization.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512 {

void bias_relu_rows_avx512(const float* c, std::int64_t ldc, int m, std::int64_t n,
                           const float* bias, bool relu, float* y, std::int64_t ldy) {
  const __m512 zero = _mm512_setzero_ps();
  for (int i = 0; i < m; ++i) {
    const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
    const float* src = c + i * ldc;
    float* dst = y + i * ldy;
    for (std::int64_t j = 0; j < n; j += 16) {
      const std::int64_t left = n - j;
      const __mmask16 mk = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, src + j), b);
      if (relu) v = _mm512_max_ps(v, zero);  // NaN -> 0 (the second operand)
      _mm512_mask_storeu_ps(dst + j, mk, v);
    }
  }
}

namespace {

inline __mmask16 cols_mask(int left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// 16 channels' constants of the row engine's v = fma(float(sum + comp), mult, add).
struct Cols16 {
  __mmask16 mk;
  __m512i comp;
  __m512 mult, add;
  Cols16(const std::int32_t* c, const float* m, const float* a, int left)
      : mk(cols_mask(left)),
        comp(_mm512_maskz_loadu_epi32(mk, c)),
        mult(_mm512_maskz_loadu_ps(mk, m)),
        add(_mm512_maskz_loadu_ps(mk, a)) {}
  __m512 value(const std::int32_t* sums) const {
    const __m512i d = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mk, sums), comp);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), mult, add);
  }
};

}  // namespace

// The row engine's epilogues (contracts: I8Requantize / I8DequantizeCols): 16 channels per
// step, their constants loaded once for all rows. The clamp to [lo, 255] in fp32 then VCVTPS2DQ
// (round to nearest even, the MXCSR mode) and VPMOVDB: 8 vector operations a vector, on the two
// ports that run 512-bit code.
void i8_requantize_avx512(const std::int32_t* sums, std::int64_t lds, int m, int n,
                          const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                          bool relu, std::uint8_t* yq, std::int64_t ldy) {
  const __m512 lo = _mm512_set1_ps(relu ? float(y_zp) : 0.0f), hi = _mm512_set1_ps(255.0f);
  for (int j = 0; j < n; j += 16) {
    const Cols16 cols(comp + j, mult + j, add + j, n - j);
    for (int i = 0; i < m; ++i) {
      // max(v, lo): lo when v is NaN (the second operand), as the reference
      const __m512 v = _mm512_min_ps(_mm512_max_ps(cols.value(sums + i * lds + j), lo), hi);
      // The register form of VPMOVDB, then one store: GCC would fold the two into VPMOVDB's
      // masked memory form, which is several micro-ops more.
      __m128i bytes = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));
      __asm__("" : "+v"(bytes));
      _mm_mask_storeu_epi8(yq + i * ldy + j, cols.mk, bytes);
    }
  }
}

void i8_dequantize_cols_avx512(const std::int32_t* sums, std::int64_t lds, int m, int n,
                               const std::int32_t* comp, const float* mult, const float* add,
                               bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i index = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(int(col_stride)));
  for (int j = 0; j < n; j += 16) {
    const Cols16 cols(comp + j, mult + j, add + j, n - j);
    for (int i = 0; i < m; ++i) {
      __m512 v = cols.value(sums + i * lds + j);
      if (relu) v = _mm512_max_ps(v, zero);  // -0 -> +0, as v > 0 ? v : 0
      float* dst = yf + i * ldy + j * col_stride;
      if (col_stride == 1) {
        _mm512_mask_storeu_ps(dst, cols.mk, v);
      } else {  // channel planes (NCHW): one element per plane
        _mm512_mask_i32scatter_ps(dst, cols.mk, index, v, 4);
      }
    }
  }
}

}  // namespace avx512
}  // namespace cnnkit
