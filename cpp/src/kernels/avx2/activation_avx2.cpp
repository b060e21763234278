// AVX2 activation kernels (contract: EltwiseFwd / EltwiseBwd in activation/activation_kernels.hpp;
// the maths in activation/activation.cpp). Vector exp/expm1 are in vmath_avx2.hpp.
//
//   sigmoid: e = exp(-|x|), r = 1 / (1 + e), y = x >= 0 ? r : e r   (no exp overflows)
//   tanh:    m = expm1(-2|x|) in [-1, 0], y = sign(x) (-m / (2 + m))
//   elu:     y = x > 0 ? x : a expm1(min(x, 0))
//
// Selections are written as the reference's comparisons (ordered x > 0, y > 0, x >= 0: false for
// NaN), so NaN and -0 come out as there: relu is maxps(0, x), which returns its second operand x
// when x is NaN or a zero of either sign, so relu(NaN) = NaN and relu(-0) = -0 as x < 0 ? 0 : x.
// The last n % 8 values go through the same vector code with masked loads and stores
// (vmaskmovps), so a value's result never depends on where the driver's per-thread chunks start.
#include <immintrin.h>

#include <cstdint>

#include "activation/activation_kernels.hpp"
#include "kernels/avx2/vmath_avx2.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline __m256 sigmoid_ps(__m256 x) {
  const __m256 e = exp_ps(_mm256_or_ps(x, set1(-0.0f)));  // exp(-|x|) <= 1: never overflows
  const __m256 r = _mm256_div_ps(set1(1.0f), _mm256_add_ps(set1(1.0f), e));
  const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
  return _mm256_blendv_ps(_mm256_mul_ps(e, r), r, pos);
}

inline __m256 tanh_ps(__m256 x) {
  const __m256 m = expm1_ps(_mm256_mul_ps(abs_ps(x), set1(-2.0f)));  // in [-1, 0]
  const __m256 t =
      _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), m), _mm256_add_ps(set1(2.0f), m));
  return _mm256_or_ps(t, _mm256_and_ps(x, set1(-0.0f)));
}

inline __m256 gt0(__m256 v) { return _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ); }

}  // namespace

void relu_fwd_f32_avx2(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, auto io) {
    io.store(dst + i, _mm256_max_ps(_mm256_setzero_ps(), io.load(src + i)));
  });
}

void leaky_relu_fwd_f32_avx2(const float* src, float* dst, std::int64_t n, float s) {
  const __m256 slope = set1(s);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 x = io.load(src + i);
    io.store(dst + i, _mm256_blendv_ps(_mm256_mul_ps(x, slope), x, gt0(x)));
  });
}

void elu_fwd_f32_avx2(const float* src, float* dst, std::int64_t n, float a) {
  const __m256 alpha = set1(a);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 x = io.load(src + i);
    const __m256 neg = _mm256_mul_ps(alpha, expm1_ps(_mm256_min_ps(_mm256_setzero_ps(), x)));
    io.store(dst + i, _mm256_blendv_ps(neg, x, gt0(x)));
  });
}

void sigmoid_fwd_f32_avx2(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, auto io) { io.store(dst + i, sigmoid_ps(io.load(src + i))); });
}

void tanh_fwd_f32_avx2(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, auto io) { io.store(dst + i, tanh_ps(io.load(src + i))); });
}

void relu_bwd_f32_avx2(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                       float) {
  blocks(n, [&](std::int64_t i, auto io) {
    io.store(dx + i, _mm256_and_ps(gt0(io.load(y + i)), io.load(dy + i)));
  });
}

void leaky_relu_bwd_f32_avx2(const float* dy, const float* x, const float*, float* dx,
                             std::int64_t n, float s) {
  const __m256 slope = set1(s);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 g = io.load(dy + i);
    io.store(dx + i, _mm256_blendv_ps(_mm256_mul_ps(g, slope), g, gt0(io.load(x + i))));
  });
}

void elu_bwd_f32_avx2(const float* dy, const float* x, const float* y, float* dx, std::int64_t n,
                      float a) {
  const __m256 alpha = set1(a);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 g = io.load(dy + i);
    const __m256 neg = _mm256_mul_ps(g, _mm256_add_ps(io.load(y + i), alpha));
    io.store(dx + i, _mm256_blendv_ps(neg, g, gt0(io.load(x + i))));
  });
}

void sigmoid_bwd_f32_avx2(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                          float) {
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 v = io.load(y + i);
    const __m256 d = _mm256_mul_ps(_mm256_mul_ps(io.load(dy + i), v), _mm256_sub_ps(set1(1.0f), v));
    io.store(dx + i, d);
  });
}

void tanh_bwd_f32_avx2(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                       float) {
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256 v = io.load(y + i);  // 1 - y^2 fused, as the AVX-512 kernel
    io.store(dx + i, _mm256_mul_ps(io.load(dy + i), _mm256_fnmadd_ps(v, v, set1(1.0f))));
  });
}

}  // namespace avx2
}  // namespace cnnkit
