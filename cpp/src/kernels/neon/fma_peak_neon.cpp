// Peak probe: 16 independent FMLA chains of 4 lanes, no loads (timing lives in runtime/peak.cpp).
#include <arm_neon.h>

#include <cstdint>

#include "runtime/peak_kernels.hpp"

namespace cnnkit {
namespace neon {

float fma_chains_neon(std::int64_t iters) {
  constexpr int kChains = 16;
  float32x4_t acc[kChains];
  volatile float seed = 1e-7f;
  const float32x4_t x = vdupq_n_f32(seed), y = vdupq_n_f32(1.0f - seed);
#pragma GCC unroll 16
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_f32(float(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = vfmaq_f32(x, acc[i], y);
  }
  float32x4_t s = vdupq_n_f32(0.0f);
#pragma GCC unroll 16
  for (int i = 0; i < kChains; ++i) s = vaddq_f32(s, acc[i]);
  return vaddvq_f32(s);
}

}  // namespace neon
}  // namespace cnnkit
