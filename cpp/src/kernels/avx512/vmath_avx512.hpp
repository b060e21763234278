// Vector maths for the AVX-512 kernels: exp, expm1, log, pow, masks. Include ONLY from
// cpp/src/kernels/avx512/*.cpp. Everything here is in an anonymous namespace on purpose: each
// ISA translation unit gets its own internal copy, so no AVX-512 instance of an inline function
// can be picked by the linker for baseline code (the ODR hazard of shared inline code).
//
// exp and expm1 are evaluated as 2^n * (1 + p(r)): n = round(x / ln 2), r = x - n ln 2
// (Cody-Waite split of ln 2, exact for |n| <= 2^15), |r| <= ln 2 / 2, p(r) = expm1(r) by its
// degree-7 Taylor polynomial (truncation < 1e-8 relative), and 2^n applied with vscalefps, which
// handles overflow to inf and gradual underflow without integer exponent tricks. Keeping p(r)
// apart from the 1 gives expm1 its relative accuracy near 0 (ELU, tanh). log uses vgetexpps /
// vgetmantps (mantissa in [0.75, 1.5)) and the atanh series. Errors against float64 are checked
// in tests/test_activation.py (<= 4 ulp asserted over a dense sweep).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace cnnkit {
namespace avx512 {
namespace {

inline __m512 set1(float v) { return _mm512_set1_ps(v); }

// The low and high 8 floats of v widened to double (the norm kernels' double sums).
inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d hi_pd(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// Clamp keeping NaN: min/max return their second operand when either is NaN.
inline __m512 clamp_keep_nan(__m512 x, float lo, float hi) {
  return _mm512_max_ps(set1(lo), _mm512_min_ps(set1(hi), x));
}

// x = n ln2 + r; returns p = expm1(r) and n.
inline __m512 exp_reduce(__m512 x, __m512* n_out) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m512 q = _mm512_fmadd_ps(set1(1.0f / 5040), r, set1(1.0f / 720));
  q = _mm512_fmadd_ps(q, r, set1(1.0f / 120));
  q = _mm512_fmadd_ps(q, r, set1(1.0f / 24));
  q = _mm512_fmadd_ps(q, r, set1(1.0f / 6));
  q = _mm512_fmadd_ps(q, r, set1(0.5f));
  *n_out = n;
  return _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
}

inline __m512 exp_ps(__m512 x) {
  __m512 n;
  const __m512 p = exp_reduce(clamp_keep_nan(x, -104.0f, 89.0f), &n);
  return _mm512_scalef_ps(_mm512_add_ps(p, set1(1.0f)), n);
}

inline __m512 expm1_ps(__m512 x) {
  __m512 n;
  const __m512 p = exp_reduce(clamp_keep_nan(x, -104.0f, 89.0f), &n);
  const __m512 s = _mm512_scalef_ps(set1(1.0f), n);  // 2^n, exact
  return _mm512_fmadd_ps(s, p, _mm512_sub_ps(s, set1(1.0f)));
}

// x rounded to the nearest bf16, as floats (util/bf16.hpp's rule, bitwise), AVX-512F only
// (VCVTNEPS2BF16 needs AVX512-BF16) and without mask registers (the Winograd transforms keep
// their load masks in them; compares into masks made the input transform 2x slower):
//   normal (and inf): (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000
//   zero / denormal:  u & 0x80000000, where (exponent + 0x7fffffff) >> 31 (arithmetic) is 0
//   NaN:              (u | 0x00400000) & 0xffff0000, where (0x7f800000 - |u|) >> 31 is -1
// each case picked by a bitwise select (VPTERNLOGD 0xca: a ? b : c).
inline __m512 bf16_round_ps(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i hi = _mm512_set1_epi32(int(0xffff0000u));
  const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
  r = _mm512_and_si512(r, hi);
  const __m512i normal =
      _mm512_srai_epi32(_mm512_add_epi32(_mm512_and_si512(u, _mm512_set1_epi32(0x7f800000)),
                                         _mm512_set1_epi32(0x7fffffff)),
                        31);
  r = _mm512_ternarylogic_epi32(normal, r, _mm512_andnot_si512(abs, u), 0xca);
  const __m512i nan = _mm512_srai_epi32(_mm512_sub_epi32(_mm512_set1_epi32(0x7f800000), abs), 31);
  const __m512i quiet = _mm512_and_si512(_mm512_or_si512(u, _mm512_set1_epi32(0x00400000)), hi);
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(nan, quiet, r, 0xca));
}

inline __m512 abs_ps(__m512 x) { return _mm512_andnot_ps(set1(-0.0f), x); }

inline __mmask16 tail_mask(std::int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// Applies op(i, mask) to each 16-float block [i, i + 16) of [0, n), masking the last one.
template <typename Op>
inline void blocks(std::int64_t n, Op op) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) op(i, __mmask16(0xFFFF));
  if (i < n) op(i, tail_mask(n - i));
}

inline __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline void store(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }

// log(x) for x > 0 (0 -> -inf, negative -> NaN, inf -> inf).
inline __m512 log_ps(__m512 x) {
  const __m512 e = _mm512_getexp_ps(x);  // floor(log2 x), after normalising the mantissa below
  const __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_nan);
  // getmant into [0.75, 1.5) may have halved the mantissa: recover the matching exponent.
  const __mmask16 big = _mm512_cmp_ps_mask(m, set1(1.0f), _CMP_LT_OQ);
  const __m512 ex = _mm512_mask_add_ps(e, big, e, set1(1.0f));
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.2
  const __m512 s = _mm512_div_ps(_mm512_sub_ps(m, set1(1.0f)), _mm512_add_ps(m, set1(1.0f)));
  const __m512 s2 = _mm512_mul_ps(s, s);
  __m512 q = _mm512_fmadd_ps(set1(2.0f / 11), s2, set1(2.0f / 9));
  q = _mm512_fmadd_ps(q, s2, set1(2.0f / 7));
  q = _mm512_fmadd_ps(q, s2, set1(2.0f / 5));
  q = _mm512_fmadd_ps(q, s2, set1(2.0f / 3));
  const __m512 lm = _mm512_fmadd_ps(_mm512_mul_ps(s, s2), q, _mm512_add_ps(s, s));
  __m512 r =
      _mm512_fmadd_ps(ex, set1(0.693359375f), _mm512_fmadd_ps(ex, set1(-2.12194440e-4f), lm));
  // Limits the polynomial cannot give (NaN and negative x come out NaN through getmant).
  const __mmask16 zero = _mm512_fpclass_ps_mask(x, 0x02 | 0x04);  // +0, -0
  const __mmask16 pinf = _mm512_fpclass_ps_mask(x, 0x08);
  r = _mm512_mask_mov_ps(r, zero, set1(-__builtin_inff()));
  r = _mm512_mask_mov_ps(r, pinf, set1(__builtin_inff()));
  return r;
}

// x^y for x >= 0 (y a scalar); y = -0.75 (AlexNet's LRN) goes through square roots, exactly
// rounded steps only, instead of exp(y log x).
inline __m512 pow_ps(__m512 x, float y) {
  if (y == -0.75f) {
    const __m512 t = _mm512_sqrt_ps(x);
    return _mm512_div_ps(set1(1.0f), _mm512_mul_ps(t, _mm512_sqrt_ps(t)));
  }
  return exp_ps(_mm512_mul_ps(set1(y), log_ps(x)));
}

}  // namespace
}  // namespace avx512
}  // namespace cnnkit
