// AVX2 local response normalisation (contracts: LrnFwd / LrnBwd in norm/norm_kernels.hpp; the
// maths in norm/lrn.cpp; the AVX-512 version is kernels/avx512/lrn_avx512.cpp, whose operations
// this mirrors). Vectorised over spatial positions, 8 a step; for each channel the window's
// planes (a few KB each) are re-read from L1, so memory sees each input once. The last len % 8
// positions go through the same code with masked loads and stores (vmath_avx2.hpp), so nothing
// past len is read or written.
//
// scale^-beta uses square roots for beta = 0.75 (AlexNet: exactly rounded steps only) and
// exp(-beta log s) otherwise. AVX2 has no vgetexpps / vgetmantps, so log splits the exponent
// field off by integer operations (subnormals first scaled by 2^23) and brings the mantissa
// into [0.75, 1.5) as getmant does, then the same atanh series as vmath_avx512.hpp.
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/vmath_avx2.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

// log(x) for x > 0 (+-0 -> -inf, negative or NaN -> NaN, inf -> inf).
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

}  // namespace

void lrn_fwd_f32_avx2(const float* src, float* dst, float* scale, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m256 coef = set1(a.alpha / float(a.size)), k = set1(a.k);
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - before < 0 ? 0 : c - before;
    const std::int64_t hi = c + after > a.C - 1 ? a.C - 1 : c + after;
    blocks(a.len, [&](std::int64_t i, auto io) {
      __m256 s = _mm256_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j) {
        const __m256 v = io.load(src + j * st + i);
        s = _mm256_fmadd_ps(v, v, s);
      }
      const __m256 sc = _mm256_fmadd_ps(coef, s, k);
      io.store(scale + c * st + i, sc);
      io.store(dst + c * st + i, _mm256_mul_ps(io.load(src + c * st + i), pow_ps(sc, -a.beta)));
    });
  }
}

void lrn_bwd_f32_avx2(const float* diff_dst, const float* src, const float* dst, const float* scale,
                      float* diff_src, float* work, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m256 coef2 = set1(2.0f * a.alpha * a.beta / float(a.size));
  std::int64_t next = 0;  // next channel whose dy y / scale enters the ring buffer
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - after < 0 ? 0 : c - after;
    const std::int64_t hi = c + before > a.C - 1 ? a.C - 1 : c + before;
    for (; next <= hi; ++next) {
      float* t = work + (next % a.size) * a.len;
      const std::int64_t o = next * st;
      blocks(a.len, [&](std::int64_t i, auto io) {
        const __m256 v = _mm256_div_ps(
            _mm256_mul_ps(io.load(diff_dst + o + i), io.load(dst + o + i)), io.load(scale + o + i));
        io.store(t + i, v);
      });
    }
    const std::int64_t o = c * st;
    blocks(a.len, [&](std::int64_t i, auto io) {
      __m256 s = _mm256_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j)
        s = _mm256_add_ps(s, io.load(work + (j % a.size) * a.len + i));
      const __m256 g =
          _mm256_mul_ps(io.load(diff_dst + o + i), pow_ps(io.load(scale + o + i), -a.beta));
      io.store(diff_src + o + i,
               _mm256_fnmadd_ps(_mm256_mul_ps(coef2, io.load(src + o + i)), s, g));
    });
  }
}

}  // namespace avx2
}  // namespace cnnkit
