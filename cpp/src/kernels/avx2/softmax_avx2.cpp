// AVX2 softmax building block (contract: ExpShiftSum in loss/loss_kernels.hpp; the AVX-512
// version is kernels/avx512/softmax_avx512.cpp): y = exp(x - shift) with the vector exp of
// vmath_avx2.hpp, summed in 8 float lanes (a fixed order: the lanes of each block, the last one
// masked, then the lanes in index order) and combined in double. The tail's masked-off lanes
// load as 0, whose exp is not 0, so they are cleared before the sum and never stored.
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/vmath_avx2.hpp"
#include "loss/loss_kernels.hpp"

namespace cnnkit {
namespace avx2 {

double exp_shift_sum_avx2(const float* x, float* y, std::int64_t n, float shift) {
  const __m256 s = set1(shift);
  __m256 acc = _mm256_setzero_ps();
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
    _mm256_storeu_ps(y + j, v);
    acc = _mm256_add_ps(acc, v);
  }
  if (j < n) {
    const Part io(n - j);
    const __m256 v = exp_ps(_mm256_sub_ps(io.load(x + j), s));
    io.store(y + j, v);
    acc = _mm256_add_ps(acc, _mm256_and_ps(v, _mm256_castsi256_ps(io.m)));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  double total = 0.0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace avx2
}  // namespace cnnkit
