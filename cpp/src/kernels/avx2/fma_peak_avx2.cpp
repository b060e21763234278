// Peak probe: 12 independent ymm FMA chains, no loads (timing lives in runtime/peak.cpp).
#include <immintrin.h>

#include <cstdint>

#include "runtime/peak_kernels.hpp"

namespace cnnkit {
namespace avx2 {

float fma_chains_avx2(std::int64_t iters) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  volatile float seed = 1e-7f;
  const __m256 x = _mm256_set1_ps(seed), y = _mm256_set1_ps(1.0f - seed);
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], y, x);
  }
  __m256 s = _mm256_setzero_ps();
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

}  // namespace avx2
}  // namespace cnnkit
