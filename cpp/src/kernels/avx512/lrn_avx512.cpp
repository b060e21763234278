// AVX-512 local response normalisation (contracts: LrnFwd / LrnBwd in norm/norm_kernels.hpp).
// Vectorised over spatial positions; for each channel the window's planes (a few KB each) are
// re-read from L1, so memory sees each input once. scale^-beta uses square roots for
// beta = 0.75 and exp(-beta log s) otherwise (vmath_avx512.hpp).
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/vmath_avx512.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx512 {

void lrn_fwd_f32_avx512(const float* src, float* dst, float* scale, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m512 coef = set1(a.alpha / float(a.size)), k = set1(a.k);
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - before < 0 ? 0 : c - before;
    const std::int64_t hi = c + after > a.C - 1 ? a.C - 1 : c + after;
    blocks(a.len, [&](std::int64_t i, __mmask16 m) {
      __m512 s = _mm512_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j) {
        const __m512 v = load(src + j * st + i, m);
        s = _mm512_fmadd_ps(v, v, s);
      }
      const __m512 sc = _mm512_fmadd_ps(coef, s, k);
      store(scale + c * st + i, sc, m);
      store(dst + c * st + i, _mm512_mul_ps(load(src + c * st + i, m), pow_ps(sc, -a.beta)), m);
    });
  }
}

void lrn_bwd_f32_avx512(const float* diff_dst, const float* src, const float* dst,
                        const float* scale, float* diff_src, float* work, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m512 coef2 = set1(2.0f * a.alpha * a.beta / float(a.size));
  std::int64_t next = 0;  // next channel whose dy y / scale enters the ring buffer
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - after < 0 ? 0 : c - after;
    const std::int64_t hi = c + before > a.C - 1 ? a.C - 1 : c + before;
    for (; next <= hi; ++next) {
      float* t = work + (next % a.size) * a.len;
      const std::int64_t o = next * st;
      blocks(a.len, [&](std::int64_t i, __mmask16 m) {
        const __m512 v = _mm512_div_ps(
            _mm512_mul_ps(load(diff_dst + o + i, m), load(dst + o + i, m)), load(scale + o + i, m));
        store(t + i, v, m);
      });
    }
    const std::int64_t o = c * st;
    blocks(a.len, [&](std::int64_t i, __mmask16 m) {
      __m512 s = _mm512_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j)
        s = _mm512_add_ps(s, load(work + (j % a.size) * a.len + i, m));
      const __m512 g =
          _mm512_mul_ps(load(diff_dst + o + i, m), pow_ps(load(scale + o + i, m), -a.beta));
      store(diff_src + o + i, _mm512_fnmadd_ps(_mm512_mul_ps(coef2, load(src + o + i, m)), s, g),
            m);
    });
  }
}

}  // namespace avx512
}  // namespace cnnkit
