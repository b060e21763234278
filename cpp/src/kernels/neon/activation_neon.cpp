// NEON activation kernels (contract: EltwiseFwd / EltwiseBwd in activation/activation_kernels.hpp;
// the maths in activation/activation.cpp). Vector exp/expm1 are in vmath_neon.hpp.
//
//   sigmoid: e = exp(-|x|), r = 1 / (1 + e), y = x >= 0 ? r : e r   (no exp overflows)
//   tanh:    m = expm1(-2|x|) in [-1, 0], y = sign(x) (-m / (2 + m))
//   elu:     y = x > 0 ? x : a expm1(min(x, 0))
//
// Selections are written as the reference's comparisons (x < 0, x > 0, y > 0), so NaN and -0
// come out as there (relu keeps -0 and NaN: FMAX would turn -0 into +0). The last n % 4 values go
// through the same vector code by way of a zero-padded stack copy (load_partial), so a value's
// result never depends on where the driver's per-thread chunks start.
#include <arm_neon.h>

#include <cstdint>

#include "activation/activation_kernels.hpp"
#include "kernels/neon/vmath_neon.hpp"

namespace cnnkit {
namespace neon {
namespace {

// dst[i] = op(src[i]) over [0, n), two vectors per step.
template <typename Op>
inline void map_fwd(const float* src, float* dst, std::int64_t n, Op op) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = op(vld1q_f32(src + i)), b = op(vld1q_f32(src + i + 4));
    vst1q_f32(dst + i, a);
    vst1q_f32(dst + i + 4, b);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, op(vld1q_f32(src + i)));
  if (i < n) store_partial(dst + i, op(load_partial(src + i, n - i)), n - i);
}

// dx[i] = op(dy[i], a[i], b[i]) over [0, n); b is read only when kB (elu).
template <bool kB, typename Op>
inline void map_bwd(const float* dy, const float* a, const float* b, float* dx, std::int64_t n,
                    Op op) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(dx + i, op(vld1q_f32(dy + i), vld1q_f32(a + i), kB ? vld1q_f32(b + i) : zero));
  }
  if (i < n) {
    const std::int64_t k = n - i;
    const float32x4_t r =
        op(load_partial(dy + i, k), load_partial(a + i, k), kB ? load_partial(b + i, k) : zero);
    store_partial(dx + i, r, k);
  }
}

inline float32x4_t sigmoid_ps(float32x4_t x) {
  const float32x4_t e = exp_ps(vnegq_f32(vabsq_f32(x)));  // exp(-|x|) <= 1: never overflows
  const float32x4_t r = vdivq_f32(set1(1.0f), vaddq_f32(set1(1.0f), e));
  return vbslq_f32(vcgeq_f32(x, vdupq_n_f32(0.0f)), r, vmulq_f32(e, r));
}

inline float32x4_t tanh_ps(float32x4_t x) {
  const float32x4_t m = expm1_ps(vmulq_f32(vabsq_f32(x), set1(-2.0f)));  // in [-1, 0]
  const float32x4_t t = vdivq_f32(vnegq_f32(m), vaddq_f32(set1(2.0f), m));
  const uint32x4_t sign = vdupq_n_u32(0x80000000u);
  return vreinterpretq_f32_u32(
      vorrq_u32(vreinterpretq_u32_f32(t), vandq_u32(vreinterpretq_u32_f32(x), sign)));
}

// v where keep, else 0.
inline float32x4_t and_mask(uint32x4_t keep, float32x4_t v) {
  return vreinterpretq_f32_u32(vandq_u32(keep, vreinterpretq_u32_f32(v)));
}

}  // namespace

void relu_fwd_f32_neon(const float* src, float* dst, std::int64_t n, float) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  map_fwd(src, dst, n, [&](float32x4_t x) { return vbslq_f32(vcltq_f32(x, zero), zero, x); });
}

void leaky_relu_fwd_f32_neon(const float* src, float* dst, std::int64_t n, float s) {
  const float32x4_t zero = vdupq_n_f32(0.0f), slope = set1(s);
  map_fwd(src, dst, n,
          [&](float32x4_t x) { return vbslq_f32(vcgtq_f32(x, zero), x, vmulq_f32(x, slope)); });
}

void elu_fwd_f32_neon(const float* src, float* dst, std::int64_t n, float a) {
  const float32x4_t zero = vdupq_n_f32(0.0f), alpha = set1(a);
  map_fwd(src, dst, n, [&](float32x4_t x) {
    const float32x4_t neg = vmulq_f32(alpha, expm1_ps(vminq_f32(zero, x)));  // NaN stays NaN
    return vbslq_f32(vcgtq_f32(x, zero), x, neg);
  });
}

void sigmoid_fwd_f32_neon(const float* src, float* dst, std::int64_t n, float) {
  map_fwd(src, dst, n, [](float32x4_t x) { return sigmoid_ps(x); });
}

void tanh_fwd_f32_neon(const float* src, float* dst, std::int64_t n, float) {
  map_fwd(src, dst, n, [](float32x4_t x) { return tanh_ps(x); });
}

void relu_bwd_f32_neon(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                       float) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  map_bwd<false>(dy, y, nullptr, dx, n, [&](float32x4_t g, float32x4_t v, float32x4_t) {
    return and_mask(vcgtq_f32(v, zero), g);
  });
}

void leaky_relu_bwd_f32_neon(const float* dy, const float* x, const float*, float* dx,
                             std::int64_t n, float s) {
  const float32x4_t zero = vdupq_n_f32(0.0f), slope = set1(s);
  map_bwd<false>(dy, x, nullptr, dx, n, [&](float32x4_t g, float32x4_t v, float32x4_t) {
    return vbslq_f32(vcgtq_f32(v, zero), g, vmulq_f32(g, slope));
  });
}

void elu_bwd_f32_neon(const float* dy, const float* x, const float* y, float* dx, std::int64_t n,
                      float a) {
  const float32x4_t zero = vdupq_n_f32(0.0f), alpha = set1(a);
  map_bwd<true>(dy, x, y, dx, n, [&](float32x4_t g, float32x4_t v, float32x4_t w) {
    return vbslq_f32(vcgtq_f32(v, zero), g, vmulq_f32(g, vaddq_f32(w, alpha)));
  });
}

void sigmoid_bwd_f32_neon(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                          float) {
  map_bwd<false>(dy, y, nullptr, dx, n, [](float32x4_t g, float32x4_t v, float32x4_t) {
    return vmulq_f32(vmulq_f32(g, v), vsubq_f32(set1(1.0f), v));
  });
}

void tanh_bwd_f32_neon(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                       float) {
  map_bwd<false>(dy, y, nullptr, dx, n, [](float32x4_t g, float32x4_t v, float32x4_t) {
    return vmulq_f32(g, vfmsq_f32(set1(1.0f), v, v));  // 1 - y^2 fused, as the AVX-512 kernel
  });
}

}  // namespace neon
}  // namespace cnnkit
