// Vector maths for the AVX2 kernels: exp, expm1, log, pow and the 8-float block loop with masked
// tails. Include ONLY from cpp/src/kernels/avx2/*.cpp. Everything here is in an anonymous
// namespace on purpose, as in vmath_avx512.hpp: each ISA translation unit gets its own internal
// copy, so no AVX2 instance of an inline function can be picked by the linker for baseline code.
//
// exp and expm1 follow vmath_avx512.hpp: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split of
// ln 2, exact for |n| <= 2^15), |r| <= ln 2 / 2, p(r) = expm1(r) by its degree-7 Taylor polynomial
// (truncation < 1e-8 relative) evaluated with fused multiply-adds, and p kept apart from the 1 so
// expm1 keeps its relative accuracy near 0. AVX2 has no vscalefps, so 2^n is built in the
// exponent field as in vmath_neon.hpp:
//   exp:   x is clamped to [-104, 89] (NaN kept), so n lies in [-150, 128], outside the normal
//          range at both ends. 2^n = 2^(n >> 1) * 2^(n - (n >> 1)), two normal powers of two:
//          (1 + p) 2^(n >> 1) is exact, and the second product rounds once, so a result past
//          FLT_MAX is inf and one below FLT_MIN is the correctly rounded subnormal (or 0).
//   expm1: x is clamped to [-87, 89]; below -87, e^x < 2^-125 is far under half an ulp of 1, so
//          expm1 = -1 exactly there. s = 2^min(n, 127) is then always normal, and
//          expm1 = s p + (s - 1) (one fused rounding); n = 128 (x > 88.38) multiplies that by 2
//          (the -1 is negligible there), so values up to FLT_MAX stay finite and beyond are inf.
// NaN propagates through the clamps (minps / maxps return their second operand, x, when either
// is NaN) and then through p; the integer n of a NaN lane (0x80000000 from vcvtps2dq) only
// builds a finite garbage power of two that NaN * garbage leaves NaN.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace cnnkit {
namespace avx2 {
namespace {

inline __m256 set1(float v) { return _mm256_set1_ps(v); }

// Clamp keeping NaN: min/max return their second operand when either is NaN.
inline __m256 clamp_keep_nan(__m256 x, float lo, float hi) {
  return _mm256_max_ps(set1(lo), _mm256_min_ps(set1(hi), x));
}

// 2^e for integer lanes e in [-126, 127], built in the exponent field.
inline __m256 pow2i(__m256i e) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}

// x = n ln2 + r; returns p = expm1(r) and n (as an integer).
inline __m256 exp_reduce(__m256 x, __m256i* n_out) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 q = _mm256_fmadd_ps(set1(1.0f / 5040), r, set1(1.0f / 720));
  q = _mm256_fmadd_ps(q, r, set1(1.0f / 120));
  q = _mm256_fmadd_ps(q, r, set1(1.0f / 24));
  q = _mm256_fmadd_ps(q, r, set1(1.0f / 6));
  q = _mm256_fmadd_ps(q, r, set1(0.5f));
  *n_out = _mm256_cvtps_epi32(n);  // n is integral: exact
  return _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r);
}

inline __m256 exp_ps(__m256 x) {
  __m256i n;
  const __m256 p = exp_reduce(clamp_keep_nan(x, -104.0f, 89.0f), &n);
  const __m256i n1 = _mm256_srai_epi32(n, 1);  // floor(n / 2): n1, n - n1 in [-75, 64]
  const __m256 t = _mm256_mul_ps(_mm256_add_ps(p, set1(1.0f)), pow2i(n1));  // exact
  return _mm256_mul_ps(t, pow2i(_mm256_sub_epi32(n, n1)));
}

inline __m256 expm1_ps(__m256 x) {
  __m256i n;
  const __m256 p = exp_reduce(clamp_keep_nan(x, -87.0f, 89.0f), &n);
  const __m256i n_lo = _mm256_min_epi32(n, _mm256_set1_epi32(127));  // n >= -126 after the clamp
  const __m256 s = pow2i(n_lo);
  const __m256 m = _mm256_fmadd_ps(s, p, _mm256_sub_ps(s, set1(1.0f)));
  // n = 128: 2^128 = 2 * 2^127 (2 or 1 from n - n_lo, which is 1 or 0)
  const __m256i f = _mm256_add_epi32(_mm256_sub_epi32(n, n_lo), _mm256_set1_epi32(1));
  return _mm256_mul_ps(m, _mm256_cvtepi32_ps(f));
}

// 8 floats rounded to the nearest bf16 (util/bf16.hpp's rule, bitwise): their bf16 patterns
// in the low 16 bits of each lane, by masks instead of branches:
//   normal:        (u + 0x7fff + ((u >> 16) & 1)) >> 16     (nearest, ties to even)
//   zero/denormal: (u >> 16) & 0x8000                       (exponent field 0: signed zero)
//   inf/NaN:       (u >> 16) | (mantissa != 0 ? 0x40 : 0)   (NaN stays a quiet NaN)
inline __m256i bf16_patterns(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i exp = _mm256_and_si256(u, _mm256_set1_epi32(0x7f800000));
  const __m256i top = _mm256_srli_epi32(u, 16);
  const __m256i lsb = _mm256_and_si256(top, _mm256_set1_epi32(1));
  const __m256i normal =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan =
      _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)),
                                             _mm256_setzero_si256()),
                          _mm256_set1_epi32(0x40));
  const __m256i special = _mm256_or_si256(top, nan);
  const __m256i zero = _mm256_and_si256(top, _mm256_set1_epi32(0x8000));
  __m256i r =
      _mm256_blendv_epi8(normal, special, _mm256_cmpeq_epi32(exp, _mm256_set1_epi32(0x7f800000)));
  r = _mm256_blendv_epi8(r, zero, _mm256_cmpeq_epi32(exp, _mm256_setzero_si256()));
  return r;
}

// x rounded to the nearest bf16, as floats
inline __m256 bf16_round_ps(__m256 x) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_patterns(x), 16));
}

inline __m256 abs_ps(__m256 x) { return _mm256_andnot_ps(set1(-0.0f), x); }

// log(x) for x > 0 (+-0 -> -inf, negative or NaN -> NaN, inf -> inf). AVX2 has no vgetexpps /
// vgetmantps: the exponent field comes off by integer operations (subnormals first scaled by
// 2^23) and the mantissa is brought into [0.75, 1.5) as getmant does, then the same atanh
// series as vmath_avx512.hpp.
inline __m256 log_ps(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, set1(1.17549435e-38f), _CMP_LT_OQ);  // subnormal (or <= 0)
  const __m256 xs = _mm256_blendv_ps(x, _mm256_mul_ps(x, set1(8388608.0f)), tiny);
  const __m256i bits = _mm256_castps_si256(xs);
  const __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  __m256 m =
      _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)),
                                          _mm256_set1_epi32(0x3F800000)));  // [1, 2)
  const __m256 big = _mm256_cmp_ps(m, set1(1.5f), _CMP_GE_OQ);              // to [0.75, 1.5): halve
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, set1(0.5f)), big);
  __m256 ex = _mm256_add_ps(_mm256_cvtepi32_ps(e), _mm256_and_ps(big, set1(1.0f)));
  ex = _mm256_sub_ps(ex, _mm256_and_ps(tiny, set1(23.0f)));
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.2
  const __m256 s = _mm256_div_ps(_mm256_sub_ps(m, set1(1.0f)), _mm256_add_ps(m, set1(1.0f)));
  const __m256 s2 = _mm256_mul_ps(s, s);
  __m256 q = _mm256_fmadd_ps(set1(2.0f / 11), s2, set1(2.0f / 9));
  q = _mm256_fmadd_ps(q, s2, set1(2.0f / 7));
  q = _mm256_fmadd_ps(q, s2, set1(2.0f / 5));
  q = _mm256_fmadd_ps(q, s2, set1(2.0f / 3));
  const __m256 lm = _mm256_fmadd_ps(_mm256_mul_ps(s, s2), q, _mm256_add_ps(s, s));
  __m256 r =
      _mm256_fmadd_ps(ex, set1(0.693359375f), _mm256_fmadd_ps(ex, set1(-2.12194440e-4f), lm));
  // Limits the polynomial cannot give.
  const __m256 zero = _mm256_setzero_ps(), inf = set1(__builtin_inff());
  r = _mm256_blendv_ps(r, _mm256_sub_ps(zero, inf), _mm256_cmp_ps(x, zero, _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, inf, _mm256_cmp_ps(x, inf, _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, set1(__builtin_nanf("")), _mm256_cmp_ps(x, zero, _CMP_NGE_UQ));
  return r;
}

// x^y for x >= 0 (y a scalar), as vmath_avx512.hpp's pow_ps.
inline __m256 pow_ps(__m256 x, float y) {
  if (y == -0.75f) {
    const __m256 t = _mm256_sqrt_ps(x);
    return _mm256_div_ps(set1(1.0f), _mm256_mul_ps(t, _mm256_sqrt_ps(t)));
  }
  return exp_ps(_mm256_mul_ps(set1(y), log_ps(x)));
}

// Whole 8-float block: plain loads and stores.
struct Full {
  __m256 load(const float* p) const { return _mm256_loadu_ps(p); }
  void store(float* p, __m256 v) const { _mm256_storeu_ps(p, v); }
};

// The last, partial block: masked loads (zeros in the lanes past the end, which are never read)
// and masked stores, so the tail goes through the same arithmetic as a whole block.
struct Part {
  __m256i m;
  explicit Part(std::int64_t left)
      : m(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)),
                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))) {}
  __m256 load(const float* p) const { return _mm256_maskload_ps(p, m); }
  void store(float* p, __m256 v) const { _mm256_maskstore_ps(p, m, v); }
};

// Applies op(i, io) to each 8-float block [i, i + 8) of [0, n); io (Full or Part) loads and
// stores the block, the last one masked.
template <typename Op>
inline void blocks(std::int64_t n, Op op) {
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    op(i, Full());
    op(i + 8, Full());
    op(i + 16, Full());
    op(i + 24, Full());
  }
  for (; i + 8 <= n; i += 8) op(i, Full());
  if (i < n) op(i, Part(n - i));
}

}  // namespace
}  // namespace avx2
}  // namespace cnnkit
