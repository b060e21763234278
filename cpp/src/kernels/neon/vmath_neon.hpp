// Vector maths for the NEON kernels: exp, expm1 and partial (tail) loads and stores. Include
// ONLY from cpp/src/kernels/neon/*.cpp. Everything here is in an anonymous namespace on purpose,
// as in vmath_avx512.hpp: each ISA translation unit gets its own internal copy.
//
// exp and expm1 follow vmath_avx512.hpp: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split of
// ln 2, exact for |n| <= 2^15), |r| <= ln 2 / 2, p(r) = expm1(r) by its degree-7 Taylor polynomial
// (truncation < 1e-8 relative) evaluated with fused multiply-adds, and p kept apart from the 1 so
// expm1 keeps its relative accuracy near 0. NEON has no vscalefps, so 2^n is built in the
// exponent field:
//   exp:   x is clamped to [-104, 89] (NaN kept), so n lies in [-150, 128], outside the normal
//          range at both ends. 2^n = 2^(n >> 1) * 2^(n - (n >> 1)), two normal powers of two:
//          (1 + p) 2^(n >> 1) is exact, and the second product rounds once, so a result past
//          FLT_MAX is inf and one below FLT_MIN is the correctly rounded subnormal (or 0).
//   expm1: x is clamped to [-87, 89]; below -87, e^x < 2^-125 is far under half an ulp of 1, so
//          expm1 = -1 exactly there. s = 2^min(n, 127) is then always normal, and
//          expm1 = s p + (s - 1) (one fused rounding); n = 128 (x > 88.38) multiplies that by 2
//          (the -1 is negligible there), so values up to FLT_MAX stay finite and beyond are inf.
// NaN propagates through the clamps (FMIN/FMAX return NaN when an operand is NaN).
#pragma once

#include <arm_neon.h>

#include <cstdint>

namespace cnnkit {
namespace neon {
namespace {

inline float32x4_t set1(float v) { return vdupq_n_f32(v); }

// Clamp keeping NaN: FMIN / FMAX return NaN when either operand is NaN.
inline float32x4_t clamp_keep_nan(float32x4_t x, float lo, float hi) {
  return vmaxq_f32(set1(lo), vminq_f32(set1(hi), x));
}

// 2^e for integer lanes e in [-126, 127], built in the exponent field.
inline float32x4_t pow2i(int32x4_t e) {
  return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(e, vdupq_n_s32(127)), 23));
}

// x = n ln2 + r; returns p = expm1(r) and n (as an integer).
inline float32x4_t exp_reduce(float32x4_t x, int32x4_t* n_out) {
  const int32x4_t ni = vcvtnq_s32_f32(vmulq_f32(x, set1(1.44269504088896341f)));  // ties to even
  const float32x4_t n = vcvtq_f32_s32(ni);
  float32x4_t r = vfmsq_f32(x, n, set1(0.693359375f));
  r = vfmsq_f32(r, n, set1(-2.12194440e-4f));
  float32x4_t q = vfmaq_f32(set1(1.0f / 720), r, set1(1.0f / 5040));
  q = vfmaq_f32(set1(1.0f / 120), q, r);
  q = vfmaq_f32(set1(1.0f / 24), q, r);
  q = vfmaq_f32(set1(1.0f / 6), q, r);
  q = vfmaq_f32(set1(0.5f), q, r);
  *n_out = ni;
  return vfmaq_f32(r, vmulq_f32(r, r), q);
}

inline float32x4_t exp_ps(float32x4_t x) {
  int32x4_t n;
  const float32x4_t p = exp_reduce(clamp_keep_nan(x, -104.0f, 89.0f), &n);
  const int32x4_t n1 = vshrq_n_s32(n, 1);  // floor(n / 2): n1, n - n1 in [-75, 64]
  const float32x4_t t = vmulq_f32(vaddq_f32(p, set1(1.0f)), pow2i(n1));  // exact
  return vmulq_f32(t, pow2i(vsubq_s32(n, n1)));
}

inline float32x4_t expm1_ps(float32x4_t x) {
  int32x4_t n;
  const float32x4_t p = exp_reduce(clamp_keep_nan(x, -87.0f, 89.0f), &n);
  const int32x4_t n_lo = vminq_s32(n, vdupq_n_s32(127));  // n >= -126 after the clamp
  const float32x4_t s = pow2i(n_lo);
  const float32x4_t m = vfmaq_f32(vsubq_f32(s, set1(1.0f)), s, p);
  // n = 128: 2^128 = 2 * 2^127 (2 or 1 from n - n_lo, which is 1 or 0)
  return vmulq_f32(m, vcvtq_f32_s32(vaddq_s32(vsubq_s32(n, n_lo), vdupq_n_s32(1))));
}

inline float32x4_t abs_ps(float32x4_t x) { return vabsq_f32(x); }

// The first k (0..3) floats at p into the low lanes of a vector, zeros above: a tail read that
// touches nothing past p + k.
inline float32x4_t load_partial(const float* p, std::int64_t k) {
  float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (std::int64_t i = 0; i < k; ++i) buf[i] = p[i];
  return vld1q_f32(buf);
}

// The low k (0..3) lanes of v to p.
inline void store_partial(float* p, float32x4_t v, std::int64_t k) {
  float buf[4];
  vst1q_f32(buf, v);
  for (std::int64_t i = 0; i < k; ++i) p[i] = buf[i];
}

}  // namespace
}  // namespace neon
}  // namespace cnnkit
