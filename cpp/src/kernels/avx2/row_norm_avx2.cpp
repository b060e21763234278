// AVX2 row-norm building blocks for group and layer norm (contracts: RnApply, RnBwdReduce,
// RnBwdApply, RnDwDb in norm/norm_kernels.hpp; the maths in norm/row_norm.cpp; the AVX-512
// version is kernels/avx512/row_norm_avx512.cpp, whose operations this mirrors, fused
// multiply-adds included). Row sums and the per-element weight-gradient accumulators are double
// (8 floats -> two 4-lane double vectors); the loops are bound by memory, not by the converts.
// Every element of the gradient accumulators is updated by the same operations wherever it falls
// in a vector, so the column split of the driver does not change any result. The last n % 8
// values go through the same code with masked loads and stores (vmaskmovps / vmaskmovpd:
// masked-off lanes read as 0 and are never touched in memory).
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/vmath_avx2.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

// v with the lanes past the end cleared (a whole block: v).
inline __m256 keep(const Full&, __m256 v) { return v; }
inline __m256 keep(const Part& io, __m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(io.m)); }

// The 4 doubles of float lanes [4 h, 4 h + 4) of a block at p (h = 0, 1), loaded and stored.
inline __m256d load_pd(const Full&, const double* p, int) { return _mm256_loadu_pd(p); }
inline void store_pd(const Full&, double* p, int, __m256d v) { _mm256_storeu_pd(p, v); }
inline __m256i half_mask(const Part& io, int h) {
  return _mm256_cvtepi32_epi64(h ? _mm256_extracti128_si256(io.m, 1)
                                 : _mm256_castsi256_si128(io.m));
}
inline __m256d load_pd(const Part& io, const double* p, int h) {
  return _mm256_maskload_pd(p, half_mask(io, h));
}
inline void store_pd(const Part& io, double* p, int h, __m256d v) {
  _mm256_maskstore_pd(p, half_mask(io, h), v);
}

// The 4 lanes of v summed as ((l0 + l2) + (l1 + l3)): a fixed order.
inline double reduce(__m256d v) {
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

}  // namespace

void rn_apply_f32_avx2(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                       float inv_std, const float* w, const float* b) {
  const __m256 mh = set1(mean_hi), ml = set1(mean_lo), r = set1(inv_std);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(io.load(src + i), mh), ml), r);
    const __m256 shift = b ? io.load(b + i) : _mm256_setzero_ps();
    io.store(dst + i,
             w ? _mm256_fmadd_ps(xhat, io.load(w + i), shift) : _mm256_add_ps(xhat, shift));
  });
}

void rn_bwd_reduce_f32_avx2(const float* diff_dst, const float* src, const float* w, std::int64_t n,
                            float mean, double* sum_g, double* sum_gx) {
  const __m256 mu = set1(mean);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 dy = io.load(diff_dst + i);
    const __m256 d = keep(io, _mm256_sub_ps(io.load(src + i), mu));
    __m256d ga = lo_pd(dy), gb = hi_pd(dy);
    if (w) {  // dy * w is exact in double
      const __m256 wv = io.load(w + i);
      ga = _mm256_mul_pd(ga, lo_pd(wv));
      gb = _mm256_mul_pd(gb, hi_pd(wv));
    }
    s0 = _mm256_add_pd(s0, ga);
    s1 = _mm256_add_pd(s1, gb);
    q0 = _mm256_fmadd_pd(ga, lo_pd(d), q0);
    q1 = _mm256_fmadd_pd(gb, hi_pd(d), q1);
  });
  *sum_g += reduce(_mm256_add_pd(s0, s1));
  *sum_gx += reduce(_mm256_add_pd(q0, q1));
}

void rn_bwd_apply_f32_avx2(const float* diff_dst, const float* src, const float* w, float* diff_src,
                           std::int64_t n, float mean, float a, float b, float c) {
  const __m256 mu = set1(mean), va = set1(a), vb = set1(b), vc = set1(c);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 dy = io.load(diff_dst + i);
    const __m256 g = w ? _mm256_mul_ps(dy, io.load(w + i)) : dy;
    const __m256 d = _mm256_sub_ps(io.load(src + i), mu);
    io.store(diff_src + i, _mm256_fmadd_ps(va, g, _mm256_fmadd_ps(vb, d, vc)));
  });
}

void rn_dwdb_f32_avx2(const float* diff_dst, const float* src, std::int64_t n, float mean_hi,
                      float mean_lo, float inv_std, double* dw, double* db) {
  const __m256 mh = set1(mean_hi), ml = set1(mean_lo), r = set1(inv_std);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(io.load(src + i), mh), ml), r);
    const __m256 dy = io.load(diff_dst + i);
    // the product of two floats is exact in double: fma or not, the same sums as the reference
    store_pd(io, dw + i, 0, _mm256_fmadd_pd(lo_pd(dy), lo_pd(xhat), load_pd(io, dw + i, 0)));
    store_pd(io, dw + i + 4, 1,
             _mm256_fmadd_pd(hi_pd(dy), hi_pd(xhat), load_pd(io, dw + i + 4, 1)));
    store_pd(io, db + i, 0, _mm256_add_pd(lo_pd(dy), load_pd(io, db + i, 0)));
    store_pd(io, db + i + 4, 1, _mm256_add_pd(hi_pd(dy), load_pd(io, db + i + 4, 1)));
  });
}

}  // namespace avx2
}  // namespace cnnkit
