// AVX2 row kernels of the convolution family (contracts: AddF32 and BiasReluRows in
// conv/conv_kernels.hpp; the AVX-512 versions are in kernels/avx512/pack_patches_avx512.cpp and
// kernels/avx512/epilogue_avx512.cpp):
//
//   add_f32:        dst += src (col2im's scatter of a patch row back into an image row)
//   bias_relu_rows: y = c + bias[i] per row, then ReLU as maxps(v, 0), which returns its second
//                   operand 0 when v is NaN or a zero of either sign: v > 0 ? v : 0, as the
//                   reference
//
// 8 floats a step, then one 4-float step and single floats, as the NEON add_f32: both kernels
// work element by element (one add, one max), so the tail gives the same bits as vector lanes,
// and short rows (col2im's are as wide as the output, often 13 or 27) avoid vmaskmovps, whose
// masked store costs more than the scalar loop there on Zen 3. Nothing past n is read or written.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_kernels.hpp"
#include "kernels/avx2/vmath_avx2.hpp"

namespace cnnkit {
namespace avx2 {

namespace {

// v > 0 ? v : 0 (maxps returns its second operand, 0, for NaN and either zero)
inline __m256 relu8(__m256 v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }
inline __m128 relu4(__m128 v) { return _mm_max_ps(v, _mm_setzero_ps()); }

// dst[j] = op(src[j]) for j < n: op8 on 8 floats, op4 on 4, op1 on one.
template <typename Op8, typename Op4, typename Op1>
inline void rows_of(std::int64_t n, Op8 op8, Op4 op4, Op1 op1) {
  std::int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    op8(j);
    op8(j + 8);
    op8(j + 16);
    op8(j + 24);
  }
  for (; j + 8 <= n; j += 8) op8(j);
  if (j + 4 <= n) {
    op4(j);
    j += 4;
  }
  for (; j < n; ++j) op1(j);
}

}  // namespace

void add_f32_avx2(const float* src, float* dst, std::int64_t n) {
  rows_of(
      n,
      [&](std::int64_t i) {
        _mm256_storeu_ps(dst + i,
                         _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
      },
      [&](std::int64_t i) {
        _mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
      },
      [&](std::int64_t i) { dst[i] += src[i]; });
}

void bias_relu_rows_avx2(const float* c, std::int64_t ldc, int m, std::int64_t n, const float* bias,
                         bool relu, float* y, std::int64_t ldy) {
  for (int i = 0; i < m; ++i) {
    const float bs = bias ? bias[i] : 0.0f;
    const __m256 b = set1(bs);
    const __m128 b4 = _mm_set1_ps(bs);
    const float* src = c + i * ldc;
    float* dst = y + i * ldy;
    if (relu) {
      rows_of(
          n,
          [&](std::int64_t j) {
            _mm256_storeu_ps(dst + j, relu8(_mm256_add_ps(_mm256_loadu_ps(src + j), b)));
          },
          [&](std::int64_t j) {
            _mm_storeu_ps(dst + j, relu4(_mm_add_ps(_mm_loadu_ps(src + j), b4)));
          },
          [&](std::int64_t j) {
            const float v = src[j] + bs;
            dst[j] = v > 0.0f ? v : 0.0f;
          });
    } else {
      rows_of(
          n,
          [&](std::int64_t j) {
            _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(src + j), b));
          },
          [&](std::int64_t j) { _mm_storeu_ps(dst + j, _mm_add_ps(_mm_loadu_ps(src + j), b4)); },
          [&](std::int64_t j) { dst[j] = src[j] + bs; });
    }
  }
}

}  // namespace avx2
}  // namespace cnnkit
