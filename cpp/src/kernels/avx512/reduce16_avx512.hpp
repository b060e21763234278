// The horizontal sums of 16 zmm accumulators at once, for the AVX-512 dot-product tiles (fp32
// and bf16). Include ONLY from AVX-512 translation units (kernels/avx512/, kernels/avx512_bf16/);
// internal linkage on purpose, as vmath_avx512.hpp.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace cnnkit {
namespace avx512 {
namespace {

// r[l] = sum of the 16 lanes of v[l], l < 16: a transpose-and-add tree (45 operations instead
// of 16 separate horizontal sums of ~10 each).
inline __m512 reduce16(const __m512* v) {
  __m512 w[8], u[4], z[2];
  for (int i = 0; i < 8; ++i) {
    w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 2; ++i) {
    z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// c[i * ldc + j] += the lane sum of acc[i * N + j], i < M, j < N (M N <= 32 accumulators).
template <int M, int N>
inline void add_lane_sums(const __m512* acc, float* c, std::int64_t ldc) {
  constexpr int kCount = M * N, kGroups = (kCount + 15) / 16;
  __m512 flat[kGroups * 16];
#pragma GCC unroll 32
  for (int t = 0; t < kGroups * 16; ++t) flat[t] = t < kCount ? acc[t] : _mm512_setzero_ps();
  float sums[kGroups * 16];
  for (int gi = 0; gi < kGroups; ++gi) _mm512_storeu_ps(sums + 16 * gi, reduce16(flat + 16 * gi));
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) c[i * ldc + j] += sums[i * N + j];
  }
}

}  // namespace
}  // namespace avx512
}  // namespace cnnkit
