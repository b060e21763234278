// AVX-512 row-norm building blocks for group and layer norm (contracts: RnApply, RnBwdReduce,
// RnBwdApply, RnDwDb in norm/norm_kernels.hpp). Row sums and the per-element weight-gradient
// accumulators are double (16 floats -> two 8-lane double vectors); the loops are bound by
// memory, not by the converts. Every element of the gradient accumulators is updated by the
// same operations wherever it falls in a vector, so the column split of the driver does not
// change any result.
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/vmath_avx512.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx512 {

void rn_apply_f32_avx512(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                         float inv_std, const float* w, const float* b) {
  const __m512 mh = set1(mean_hi), ml = set1(mean_lo), r = set1(inv_std);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(load(src + i, m), mh), ml), r);
    const __m512 shift = b ? load(b + i, m) : _mm512_setzero_ps();
    store(dst + i, w ? _mm512_fmadd_ps(xhat, load(w + i, m), shift) : _mm512_add_ps(xhat, shift),
          m);
  });
}

void rn_bwd_reduce_f32_avx512(const float* diff_dst, const float* src, const float* w,
                              std::int64_t n, float mean, double* sum_g, double* sum_gx) {
  const __m512 mu = set1(mean);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 dy = load(diff_dst + i, m);
    const __m512 d = _mm512_maskz_sub_ps(m, load(src + i, m), mu);
    __m512d ga = lo_pd(dy), gb = hi_pd(dy);
    if (w) {  // dy * w is exact in double
      const __m512 wv = load(w + i, m);
      ga = _mm512_mul_pd(ga, lo_pd(wv));
      gb = _mm512_mul_pd(gb, hi_pd(wv));
    }
    s0 = _mm512_add_pd(s0, ga);
    s1 = _mm512_add_pd(s1, gb);
    q0 = _mm512_fmadd_pd(ga, lo_pd(d), q0);
    q1 = _mm512_fmadd_pd(gb, hi_pd(d), q1);
  });
  *sum_g += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  *sum_gx += _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
}

void rn_bwd_apply_f32_avx512(const float* diff_dst, const float* src, const float* w,
                             float* diff_src, std::int64_t n, float mean, float a, float b,
                             float c) {
  const __m512 mu = set1(mean), va = set1(a), vb = set1(b), vc = set1(c);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 dy = load(diff_dst + i, m);
    const __m512 g = w ? _mm512_mul_ps(dy, load(w + i, m)) : dy;
    const __m512 d = _mm512_sub_ps(load(src + i, m), mu);
    store(diff_src + i, _mm512_fmadd_ps(va, g, _mm512_fmadd_ps(vb, d, vc)), m);
  });
}

void rn_dwdb_f32_avx512(const float* diff_dst, const float* src, std::int64_t n, float mean_hi,
                        float mean_lo, float inv_std, double* dw, double* db) {
  const __m512 mh = set1(mean_hi), ml = set1(mean_lo), r = set1(inv_std);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(load(src + i, m), mh), ml), r);
    const __m512 dy = load(diff_dst + i, m);
    const __mmask8 m0 = __mmask8(m), m1 = __mmask8(m >> 8);
    // the product of two floats is exact in double: fma or not, the same sums as the reference
    _mm512_mask_storeu_pd(
        dw + i, m0, _mm512_fmadd_pd(lo_pd(dy), lo_pd(xhat), _mm512_maskz_loadu_pd(m0, dw + i)));
    _mm512_mask_storeu_pd(
        dw + i + 8, m1,
        _mm512_fmadd_pd(hi_pd(dy), hi_pd(xhat), _mm512_maskz_loadu_pd(m1, dw + i + 8)));
    _mm512_mask_storeu_pd(db + i, m0, _mm512_add_pd(lo_pd(dy), _mm512_maskz_loadu_pd(m0, db + i)));
    _mm512_mask_storeu_pd(db + i + 8, m1,
                          _mm512_add_pd(hi_pd(dy), _mm512_maskz_loadu_pd(m1, db + i + 8)));
  });
}

}  // namespace avx512
}  // namespace cnnkit
