// AVX2 batch-norm building blocks (contracts: BnStats, BnApply, BnBwdReduce, BnBwdApply in
// norm/norm_kernels.hpp; the maths in norm/batch_norm.cpp).
//
//   stats:      sum += sum(x - shift), sumsq += sum((x - shift)^2)
//   apply:      y = ((x - mean_hi) - mean_lo) scale + shift   (fused multiply-add, as AVX-512)
//   bwd_reduce: sum_dy += sum(g), sum_dy_xmu += sum(g (x - mean))
//   bwd_apply:  dx = a g + (b (x - mean) + c)                 (fused, as AVX-512)
// with g = dy, or 0 where a non-null relu_mask has a 0 bit (bit i % 16 of relu_mask[i / 16]).
//
// The differences x - shift (x - mean) are taken in float, as in the reference, then widened to
// double (8 floats -> two 4-lane double vectors) and summed there: a product of two floats is
// exact in double, so only the additions round. The loops are bound by memory, not by the
// converts. Each call sums its lanes in a fixed order (the lane chains, then their reduction),
// so results do not depend on how the driver splits the work. Tails use vmaskmovps (masked-off
// lanes read as 0 and are never touched in memory), so nothing past n is read or written.
#include <immintrin.h>

#include <cstdint>

#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

// All-ones int32 lanes l < k (k may be <= 0: none, or >= 8: all).
inline __m256i lanes_below(std::int64_t k) {
  const int kk = k < 0 ? 0 : k > 8 ? 8 : int(k);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(kk), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// All-ones float lanes where bits 0..7 of `bits` are set (lane l: bit l).
inline __m256 bit_lanes(std::uint32_t bits) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i set = _mm256_and_si256(_mm256_set1_epi32(int(bits & 0xFFu)), bit);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, bit));
}

// The relu-mask lanes of the 8 values [i, i + 8) (i % 8 == 0: one half of a 16-bit word).
inline __m256 relu_lanes(const std::uint16_t* relu_mask, std::int64_t i) {
  return bit_lanes(std::uint32_t(relu_mask[i / 16]) >> (i % 16));
}

inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }

// ((v0 + v1) + (v2 + v3)), then its 4 lanes as ((l0 + l2) + (l1 + l3)): a fixed order.
inline double reduce(__m256d v0, __m256d v1, __m256d v2, __m256d v3) {
  const __m256d v = _mm256_add_pd(_mm256_add_pd(v0, v1), _mm256_add_pd(v2, v3));
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

}  // namespace

void bn_stats_f32_avx2(const float* src, std::int64_t n, float shift, double* sum, double* sumsq) {
  const __m256 sh = _mm256_set1_ps(shift);
  const __m256d z = _mm256_setzero_pd();
  __m256d s0 = z, s1 = z, s2 = z, s3 = z, q0 = z, q1 = z, q2 = z, q3 = z;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // four independent chains per sum: the adds' latency hidden
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(src + i), sh);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(src + i + 8), sh);
    const __m256d a = lo_pd(d0), b = hi_pd(d0), c = lo_pd(d1), d = hi_pd(d1);
    s0 = _mm256_add_pd(s0, a);
    s1 = _mm256_add_pd(s1, b);
    s2 = _mm256_add_pd(s2, c);
    s3 = _mm256_add_pd(s3, d);
    q0 = _mm256_fmadd_pd(a, a, q0);
    q1 = _mm256_fmadd_pd(b, b, q1);
    q2 = _mm256_fmadd_pd(c, c, q2);
    q3 = _mm256_fmadd_pd(d, d, q3);
  }
  for (; i < n; i += 8) {  // at most two more blocks, the last one masked
    const __m256i m = lanes_below(n - i);
    const __m256 d =
        _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_sub_ps(_mm256_maskload_ps(src + i, m), sh));
    const __m256d a = lo_pd(d), b = hi_pd(d);
    s0 = _mm256_add_pd(s0, a);
    s1 = _mm256_add_pd(s1, b);
    q0 = _mm256_fmadd_pd(a, a, q0);
    q1 = _mm256_fmadd_pd(b, b, q1);
  }
  *sum += reduce(s0, s1, s2, s3);
  *sumsq += reduce(q0, q1, q2, q3);
}

void bn_apply_f32_avx2(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                       float scale, float shift, std::uint16_t* relu_mask) {
  const __m256 mh = _mm256_set1_ps(mean_hi), ml = _mm256_set1_ps(mean_lo);
  const __m256 sc = _mm256_set1_ps(scale), b = _mm256_set1_ps(shift);
  auto affine = [&](__m256 x) {
    return _mm256_fmadd_ps(_mm256_sub_ps(_mm256_sub_ps(x, mh), ml), sc, b);
  };
  if (relu_mask == nullptr) {
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 y0 = affine(_mm256_loadu_ps(src + i));
      const __m256 y1 = affine(_mm256_loadu_ps(src + i + 8));
      _mm256_storeu_ps(dst + i, y0);
      _mm256_storeu_ps(dst + i + 8, y1);
    }
    for (; i < n; i += 8) {
      if (i + 8 <= n) {
        _mm256_storeu_ps(dst + i, affine(_mm256_loadu_ps(src + i)));
      } else {
        const __m256i m = lanes_below(n - i);
        _mm256_maskstore_ps(dst + i, m, affine(_mm256_maskload_ps(src + i, m)));
      }
    }
    return;
  }
  // Fused ReLU: one 16-bit word per 16 values, the low byte from the first vector's sign-free
  // compare mask, the high byte from the second's. NaN: not > 0 -> 0, as the reference.
  const __m256 zero = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 y0 = affine(_mm256_loadu_ps(src + i));
    const __m256 y1 = affine(_mm256_loadu_ps(src + i + 8));
    const __m256 p0 = _mm256_cmp_ps(y0, zero, _CMP_GT_OQ);
    const __m256 p1 = _mm256_cmp_ps(y1, zero, _CMP_GT_OQ);
    _mm256_storeu_ps(dst + i, _mm256_and_ps(p0, y0));
    _mm256_storeu_ps(dst + i + 8, _mm256_and_ps(p1, y1));
    relu_mask[i / 16] =
        std::uint16_t(unsigned(_mm256_movemask_ps(p0)) | (unsigned(_mm256_movemask_ps(p1)) << 8));
  }
  if (i < n) {  // the last, partial word
    const std::int64_t left = n - i;
    const __m256i m0 = lanes_below(left), m1 = lanes_below(left - 8);
    const __m256 y0 = affine(_mm256_maskload_ps(src + i, m0));
    const __m256 y1 = affine(_mm256_maskload_ps(src + i + 8, m1));
    const __m256 p0 = _mm256_cmp_ps(y0, zero, _CMP_GT_OQ);
    const __m256 p1 = _mm256_cmp_ps(y1, zero, _CMP_GT_OQ);
    _mm256_maskstore_ps(dst + i, m0, _mm256_and_ps(p0, y0));
    _mm256_maskstore_ps(dst + i + 8, m1, _mm256_and_ps(p1, y1));
    // lanes past n (zero inputs) may have come out positive: clear their bits
    const unsigned bits =
        unsigned(_mm256_movemask_ps(p0)) | (unsigned(_mm256_movemask_ps(p1)) << 8);
    relu_mask[i / 16] = std::uint16_t(bits & ((1u << left) - 1u));
  }
}

void bn_bwd_reduce_f32_avx2(const float* diff_dst, const float* src, std::int64_t n, float mean,
                            const std::uint16_t* relu_mask, double* sum_dy, double* sum_dy_xmu) {
  const __m256 mu = _mm256_set1_ps(mean);
  const __m256d z = _mm256_setzero_pd();
  __m256d s0 = z, s1 = z, s2 = z, s3 = z, q0 = z, q1 = z, q2 = z, q3 = z;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 g0 = _mm256_loadu_ps(diff_dst + i), g1 = _mm256_loadu_ps(diff_dst + i + 8);
    if (relu_mask) {
      const std::uint32_t bits = relu_mask[i / 16];
      g0 = _mm256_and_ps(bit_lanes(bits), g0);
      g1 = _mm256_and_ps(bit_lanes(bits >> 8), g1);
    }
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(src + i), mu);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(src + i + 8), mu);
    const __m256d ga = lo_pd(g0), gb = hi_pd(g0), gc = lo_pd(g1), gd = hi_pd(g1);
    s0 = _mm256_add_pd(s0, ga);
    s1 = _mm256_add_pd(s1, gb);
    s2 = _mm256_add_pd(s2, gc);
    s3 = _mm256_add_pd(s3, gd);
    q0 = _mm256_fmadd_pd(ga, lo_pd(d0), q0);
    q1 = _mm256_fmadd_pd(gb, hi_pd(d0), q1);
    q2 = _mm256_fmadd_pd(gc, lo_pd(d1), q2);
    q3 = _mm256_fmadd_pd(gd, hi_pd(d1), q3);
  }
  for (; i < n; i += 8) {  // at most two more blocks, the last one masked
    const __m256i m = lanes_below(n - i);
    const __m256 mf = _mm256_castsi256_ps(m);
    __m256 g = _mm256_maskload_ps(diff_dst + i, m);
    if (relu_mask) g = _mm256_and_ps(relu_lanes(relu_mask, i), g);
    const __m256 d = _mm256_and_ps(mf, _mm256_sub_ps(_mm256_maskload_ps(src + i, m), mu));
    const __m256d ga = lo_pd(g), gb = hi_pd(g);
    s0 = _mm256_add_pd(s0, ga);
    s1 = _mm256_add_pd(s1, gb);
    q0 = _mm256_fmadd_pd(ga, lo_pd(d), q0);
    q1 = _mm256_fmadd_pd(gb, hi_pd(d), q1);
  }
  *sum_dy += reduce(s0, s1, s2, s3);
  *sum_dy_xmu += reduce(q0, q1, q2, q3);
}

void bn_bwd_apply_f32_avx2(const float* diff_dst, const float* src, float* diff_src, std::int64_t n,
                           float mean, float a, float b, float c, const std::uint16_t* relu_mask) {
  const __m256 mu = _mm256_set1_ps(mean), va = _mm256_set1_ps(a);
  const __m256 vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
  auto apply = [&](__m256 g, __m256 x) {
    return _mm256_fmadd_ps(va, g, _mm256_fmadd_ps(vb, _mm256_sub_ps(x, mu), vc));
  };
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(diff_dst + i);
    if (relu_mask) g = _mm256_and_ps(relu_lanes(relu_mask, i), g);
    _mm256_storeu_ps(diff_src + i, apply(g, _mm256_loadu_ps(src + i)));
  }
  if (i < n) {
    const __m256i m = lanes_below(n - i);
    __m256 g = _mm256_maskload_ps(diff_dst + i, m);
    if (relu_mask) g = _mm256_and_ps(relu_lanes(relu_mask, i), g);
    _mm256_maskstore_ps(diff_src + i, m, apply(g, _mm256_maskload_ps(src + i, m)));
  }
}

}  // namespace avx2
}  // namespace cnnkit
