// NEON batch-norm building blocks (contracts: BnStats, BnApply, BnBwdReduce, BnBwdApply in
// norm/norm_kernels.hpp; the maths in norm/batch_norm.cpp).
//
//   stats:      sum += sum(x - shift), sumsq += sum((x - shift)^2)
//   apply:      y = ((x - mean_hi) - mean_lo) scale + shift   (fused multiply-add, as AVX-512)
//   bwd_reduce: sum_dy += sum(g), sum_dy_xmu += sum(g (x - mean))
//   bwd_apply:  dx = a g + (b (x - mean) + c)                 (fused, as AVX-512)
// with g = dy, or 0 where a non-null relu_mask has a 0 bit (bit i % 16 of relu_mask[i / 16]).
//
// The differences x - shift (x - mean) are taken in float, as in the reference, then widened to
// double (4 floats -> two 2-lane double vectors) and summed there: a product of two floats is
// exact in double, so only the additions round. The loops are bound by memory, not by the
// converts. Each call sums its lanes and then its scalar tail in a fixed order, so results do
// not depend on how the driver splits the work. Elementwise tails go through the vector code by
// a zero-padded stack copy (load_partial), so nothing past n is read.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/neon/vmath_neon.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

// All-ones lanes where bits k..k+3 of the relu mask of values [i, i + 4) are set (i % 4 == 0,
// so the 4 bits lie in one 16-bit word).
inline uint32x4_t relu_lanes(const std::uint16_t* relu_mask, std::int64_t i) {
  const std::uint32_t bits = std::uint32_t(relu_mask[i / 16]) >> (i % 16);
  const uint32x4_t lane_bit = {1u, 2u, 4u, 8u};
  return vtstq_u32(vdupq_n_u32(bits), lane_bit);
}

inline float32x4_t and_mask(uint32x4_t keep, float32x4_t v) {
  return vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(v)));
}

inline float masked_dy(const float* dy, const std::uint16_t* mask, std::int64_t i) {
  return (mask == nullptr || ((mask[i / 16] >> (i % 16)) & 1u)) ? dy[i] : 0.0f;
}

inline float64x2_t lo_pd(float32x4_t v) { return vcvt_f64_f32(vget_low_f32(v)); }
inline float64x2_t hi_pd(float32x4_t v) { return vcvt_high_f64_f32(v); }

}  // namespace

void bn_stats_f32_neon(const float* src, std::int64_t n, float shift, double* sum, double* sumsq) {
  const float32x4_t sh = set1(shift);
  const float64x2_t z = vdupq_n_f64(0.0);
  float64x2_t s0 = z, s1 = z, s2 = z, s3 = z, q0 = z, q1 = z, q2 = z, q3 = z;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {  // four independent chains per sum: the adds' latency hidden
    const float32x4_t d0 = vsubq_f32(vld1q_f32(src + i), sh);
    const float32x4_t d1 = vsubq_f32(vld1q_f32(src + i + 4), sh);
    const float64x2_t a = lo_pd(d0), b = hi_pd(d0), c = lo_pd(d1), d = hi_pd(d1);
    s0 = vaddq_f64(s0, a);
    s1 = vaddq_f64(s1, b);
    s2 = vaddq_f64(s2, c);
    s3 = vaddq_f64(s3, d);
    q0 = vfmaq_f64(q0, a, a);
    q1 = vfmaq_f64(q1, b, b);
    q2 = vfmaq_f64(q2, c, c);
    q3 = vfmaq_f64(q3, d, d);
  }
  if (i + 4 <= n) {
    const float32x4_t d0 = vsubq_f32(vld1q_f32(src + i), sh);
    const float64x2_t a = lo_pd(d0), b = hi_pd(d0);
    s0 = vaddq_f64(s0, a);
    s1 = vaddq_f64(s1, b);
    q0 = vfmaq_f64(q0, a, a);
    q1 = vfmaq_f64(q1, b, b);
    i += 4;
  }
  double s = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
  double ss = vaddvq_f64(vaddq_f64(vaddq_f64(q0, q1), vaddq_f64(q2, q3)));
  for (; i < n; ++i) {
    const double d = double(src[i] - shift);
    s += d;
    ss += d * d;
  }
  *sum += s;
  *sumsq += ss;
}

void bn_apply_f32_neon(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                       float scale, float shift, std::uint16_t* relu_mask) {
  const float32x4_t mh = set1(mean_hi), ml = set1(mean_lo), sc = set1(scale), b = set1(shift);
  auto affine = [&](float32x4_t x) { return vfmaq_f32(b, vsubq_f32(vsubq_f32(x, mh), ml), sc); };
  if (relu_mask == nullptr) {
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const float32x4_t y0 = affine(vld1q_f32(src + i)), y1 = affine(vld1q_f32(src + i + 4));
      vst1q_f32(dst + i, y0);
      vst1q_f32(dst + i + 4, y1);
    }
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, affine(vld1q_f32(src + i)));
    if (i < n) store_partial(dst + i, affine(load_partial(src + i, n - i)), n - i);
    return;
  }
  // Fused ReLU: one 16-bit word per 16 values; lane l of the k-th vector of a word owns bit
  // 4k + l, and the word is the sum (= OR: disjoint bits) of the lanes' bits.
  const float32x4_t zero = vdupq_n_f32(0.0f);
  const uint32x4_t bit0 = {1u, 2u, 4u, 8u};
  for (std::int64_t w = 0; 16 * w < n; ++w) {
    const std::int64_t i = 16 * w, left = n - i < 16 ? n - i : 16;
    uint32x4_t acc = vdupq_n_u32(0);
    for (std::int64_t k = 0; 4 * k < left; ++k) {
      const std::int64_t cnt = left - 4 * k;  // values left in this word from vector k
      const float* x = src + i + 4 * k;
      const float32x4_t y = affine(cnt >= 4 ? vld1q_f32(x) : load_partial(x, cnt));
      const uint32x4_t pos = vcgtq_f32(y, zero);  // NaN: not > 0 -> 0, as the reference
      acc = vorrq_u32(acc, vandq_u32(pos, vshlq_u32(bit0, vdupq_n_s32(int(4 * k)))));
      if (cnt >= 4) {
        vst1q_f32(dst + i + 4 * k, and_mask(pos, y));
      } else {
        store_partial(dst + i + 4 * k, and_mask(pos, y), cnt);
      }
    }
    // lanes past n (zero-padded inputs) may have come out positive: clear their bits
    const std::uint32_t valid = left == 16 ? 0xFFFFu : (1u << left) - 1u;
    relu_mask[w] = std::uint16_t(vaddvq_u32(acc) & valid);
  }
}

void bn_bwd_reduce_f32_neon(const float* diff_dst, const float* src, std::int64_t n, float mean,
                            const std::uint16_t* relu_mask, double* sum_dy, double* sum_dy_xmu) {
  const float32x4_t mu = set1(mean);
  const float64x2_t z = vdupq_n_f64(0.0);
  float64x2_t s0 = z, s1 = z, q0 = z, q1 = z;
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t g = vld1q_f32(diff_dst + i);
    if (relu_mask) g = and_mask(relu_lanes(relu_mask, i), g);
    const float32x4_t d = vsubq_f32(vld1q_f32(src + i), mu);
    const float64x2_t ga = lo_pd(g), gb = hi_pd(g);
    s0 = vaddq_f64(s0, ga);
    s1 = vaddq_f64(s1, gb);
    q0 = vfmaq_f64(q0, ga, lo_pd(d));
    q1 = vfmaq_f64(q1, gb, hi_pd(d));
  }
  double s = vaddvq_f64(vaddq_f64(s0, s1)), sx = vaddvq_f64(vaddq_f64(q0, q1));
  for (; i < n; ++i) {
    const float g = masked_dy(diff_dst, relu_mask, i);
    s += g;
    sx += double(g) * double(src[i] - mean);
  }
  *sum_dy += s;
  *sum_dy_xmu += sx;
}

void bn_bwd_apply_f32_neon(const float* diff_dst, const float* src, float* diff_src, std::int64_t n,
                           float mean, float a, float b, float c, const std::uint16_t* relu_mask) {
  const float32x4_t mu = set1(mean), va = set1(a), vb = set1(b), vc = set1(c);
  auto apply = [&](float32x4_t g, float32x4_t x) {
    return vfmaq_f32(vfmaq_f32(vc, vb, vsubq_f32(x, mu)), va, g);
  };
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t g = vld1q_f32(diff_dst + i);
    if (relu_mask) g = and_mask(relu_lanes(relu_mask, i), g);
    vst1q_f32(diff_src + i, apply(g, vld1q_f32(src + i)));
  }
  if (i < n) {
    const std::int64_t k = n - i;
    float32x4_t g = load_partial(diff_dst + i, k);
    if (relu_mask) g = and_mask(relu_lanes(relu_mask, i), g);
    store_partial(diff_src + i, apply(g, load_partial(src + i, k)), k);
  }
}

}  // namespace neon
}  // namespace cnnkit
