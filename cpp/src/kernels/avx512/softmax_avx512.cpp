// AVX-512 softmax building block (contract: ExpShiftSum in loss/loss_kernels.hpp):
// y = exp(x - shift) with the vector exp of vmath_avx512.hpp, summed in 16 float lanes
// (a fixed order) and combined in double.
#include <immintrin.h>

#include "kernels/avx512/vmath_avx512.hpp"
#include "loss/loss_kernels.hpp"

namespace cnnkit {
namespace avx512 {

double exp_shift_sum_avx512(const float* x, float* y, std::int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 v = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), s));
    _mm512_mask_storeu_ps(y + j, m, v);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, v));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  double total = 0.0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace avx512
}  // namespace cnnkit
