// The micro-kernels' epilogue on one vector of C, shared by the AVX-512 fp32 and bf16 GEMM
// tiles: C = relu(alpha * acc + beta * C + bias_row + bias_col), beta == 0 never reading C;
// and lane_mask (the few-row kernel's too). Include ONLY from AVX-512 translation units
// (kernels/avx512/, kernels/avx512_bf16/); internal linkage on purpose, as vmath_avx512.hpp.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

// The first `count` of 16 lanes (none for count <= 0, all for count >= 16).
inline __mmask16 lane_mask(std::int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

inline __m512 finish(__m512 v, float* cp, __mmask16 mask, const UkrEpilogue& ep, float bias_r,
                     const float* bias_c) {
  if (ep.alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.alpha));
  if (ep.beta != 0.0f) {
    const __m512 old = _mm512_maskz_loadu_ps(mask, cp);
    v = ep.beta == 1.0f ? _mm512_add_ps(v, old) : _mm512_fmadd_ps(_mm512_set1_ps(ep.beta), old, v);
  }
  if (ep.bias_row) v = _mm512_add_ps(v, _mm512_set1_ps(bias_r));
  if (bias_c) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias_c));
  if (ep.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
  return v;
}

}  // namespace
}  // namespace avx512
}  // namespace cnnkit
