// AVX-512 batch-norm building blocks (contracts: BnStats, BnApply, BnBwdReduce, BnBwdApply in
// norm/norm_kernels.hpp). Sums are accumulated in double (16 floats -> two 8-lane double vectors),
// which costs nothing here: the loops are bound by memory, not by the converts. Each call reduces
// its lanes in a fixed order, so results do not depend on how the driver splits the work.
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/vmath_avx512.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx512 {

void bn_stats_f32_avx512(const float* src, std::int64_t n, float shift, double* sum,
                         double* sumsq) {
  const __m512 sh = set1(shift);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, src + i), sh);
    const __m512d a = lo_pd(d), b = hi_pd(d);
    s0 = _mm512_add_pd(s0, a);
    s1 = _mm512_add_pd(s1, b);
    q0 = _mm512_fmadd_pd(a, a, q0);
    q1 = _mm512_fmadd_pd(b, b, q1);
  });
  *sum += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  *sumsq += _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
}

void bn_apply_f32_avx512(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                         float scale, float shift, std::uint16_t* relu_mask) {
  const __m512 mh = set1(mean_hi), ml = set1(mean_lo), sc = set1(scale), b = set1(shift);
  if (relu_mask == nullptr) {
    blocks(n, [&](std::int64_t i, __mmask16 m) {
      const __m512 x = load(src + i, m);
      store(dst + i, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_sub_ps(x, mh), ml), sc, b), m);
    });
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 y = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_sub_ps(load(src + i, m), mh), ml), sc, b);
    const __mmask16 pos = _mm512_mask_cmp_ps_mask(m, y, zero, _CMP_GT_OQ);
    relu_mask[i / 16] = std::uint16_t(pos);
    store(dst + i, _mm512_maskz_mov_ps(pos, y), m);
  });
}

void bn_bwd_reduce_f32_avx512(const float* diff_dst, const float* src, std::int64_t n, float mean,
                              const std::uint16_t* relu_mask, double* sum_dy, double* sum_dy_xmu) {
  const __m512 mu = set1(mean);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 g = load(diff_dst + i, relu_mask ? __mmask16(m & relu_mask[i / 16]) : m);
    const __m512 d = _mm512_maskz_sub_ps(m, load(src + i, m), mu);
    const __m512d ga = lo_pd(g), gb = hi_pd(g);
    s0 = _mm512_add_pd(s0, ga);
    s1 = _mm512_add_pd(s1, gb);
    q0 = _mm512_fmadd_pd(ga, lo_pd(d), q0);
    q1 = _mm512_fmadd_pd(gb, hi_pd(d), q1);
  });
  *sum_dy += _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  *sum_dy_xmu += _mm512_reduce_add_pd(_mm512_add_pd(q0, q1));
}

void bn_bwd_apply_f32_avx512(const float* diff_dst, const float* src, float* diff_src,
                             std::int64_t n, float mean, float a, float b, float c,
                             const std::uint16_t* relu_mask) {
  const __m512 mu = set1(mean), va = set1(a), vb = set1(b), vc = set1(c);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 d = _mm512_sub_ps(load(src + i, m), mu);
    const __m512 g = load(diff_dst + i, relu_mask ? __mmask16(m & relu_mask[i / 16]) : m);
    store(diff_src + i, _mm512_fmadd_ps(va, g, _mm512_fmadd_ps(vb, d, vc)), m);
  });
}

}  // namespace avx512
}  // namespace cnnkit
