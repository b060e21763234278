// Output epilogues with AVX-512 (compiled with the AVX-512 flags only here): bias and ReLU over
// rows of a block of partial sums, stored into the output (the bf16_direct convolution's).
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

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

}  // namespace avx512
}  // namespace cnnkit
