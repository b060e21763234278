// Peak probe: 24 independent zmm FMA chains, no loads (timing lives in runtime/peak.cpp).
#include <immintrin.h>

#include <cstdint>

#include "runtime/peak_kernels.hpp"

namespace cnnkit {
namespace avx512 {

float fma_chains_avx512(std::int64_t iters) {
  constexpr int kChains = 24;
  __m512 acc[kChains];
  volatile float seed = 1e-7f;
  const __m512 x = _mm512_set1_ps(seed), y = _mm512_set1_ps(1.0f - seed);
#pragma GCC unroll 24
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], y, x);
  }
  __m512 s = _mm512_setzero_ps();
#pragma GCC unroll 24
  for (int i = 0; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

}  // namespace avx512
}  // namespace cnnkit
