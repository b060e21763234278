// AVX-512 activation kernels (contract: EltwiseFwd / EltwiseBwd in
// activation/activation_kernels.hpp). Vector exp/expm1 are in vmath_avx512.hpp. NaN propagates as
// in the reference kernels.
#include <immintrin.h>

#include <cstdint>

#include "activation/activation_kernels.hpp"
#include "kernels/avx512/vmath_avx512.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

inline __m512 sigmoid_ps(__m512 x) {
  const __m512 e = exp_ps(_mm512_or_ps(x, set1(-0.0f)));  // exp(-|x|) <= 1: never overflows
  const __m512 r = _mm512_div_ps(set1(1.0f), _mm512_add_ps(set1(1.0f), e));
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_mask_mov_ps(_mm512_mul_ps(e, r), pos, r);
}

inline __m512 tanh_ps(__m512 x) {
  const __m512 m = expm1_ps(_mm512_mul_ps(abs_ps(x), set1(-2.0f)));  // in [-1, 0]
  const __m512 t =
      _mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), m), _mm512_add_ps(set1(2.0f), m));
  return _mm512_or_ps(t, _mm512_and_ps(x, set1(-0.0f)));
}

}  // namespace

void relu_fwd_f32_avx512(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    store(dst + i, _mm512_max_ps(_mm512_setzero_ps(), load(src + i, m)), m);
  });
}

void leaky_relu_fwd_f32_avx512(const float* src, float* dst, std::int64_t n, float s) {
  const __m512 slope = set1(s);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 x = load(src + i, m);
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    store(dst + i, _mm512_mask_mov_ps(_mm512_mul_ps(x, slope), pos, x), m);
  });
}

void elu_fwd_f32_avx512(const float* src, float* dst, std::int64_t n, float a) {
  const __m512 alpha = set1(a);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 x = load(src + i, m);
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 neg = _mm512_mul_ps(alpha, expm1_ps(_mm512_min_ps(_mm512_setzero_ps(), x)));
    store(dst + i, _mm512_mask_mov_ps(neg, pos, x), m);
  });
}

void sigmoid_fwd_f32_avx512(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) { store(dst + i, sigmoid_ps(load(src + i, m)), m); });
}

void tanh_fwd_f32_avx512(const float* src, float* dst, std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) { store(dst + i, tanh_ps(load(src + i, m)), m); });
}

void relu_bwd_f32_avx512(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                         float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __mmask16 pos = _mm512_cmp_ps_mask(load(y + i, m), _mm512_setzero_ps(), _CMP_GT_OQ);
    store(dx + i, _mm512_maskz_mov_ps(pos, load(dy + i, m)), m);
  });
}

void leaky_relu_bwd_f32_avx512(const float* dy, const float* x, const float*, float* dx,
                               std::int64_t n, float s) {
  const __m512 slope = set1(s);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __mmask16 pos = _mm512_cmp_ps_mask(load(x + i, m), _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 g = load(dy + i, m);
    store(dx + i, _mm512_mask_mov_ps(_mm512_mul_ps(g, slope), pos, g), m);
  });
}

void elu_bwd_f32_avx512(const float* dy, const float* x, const float* y, float* dx, std::int64_t n,
                        float a) {
  const __m512 alpha = set1(a);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __mmask16 pos = _mm512_cmp_ps_mask(load(x + i, m), _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 g = load(dy + i, m);
    const __m512 neg = _mm512_mul_ps(g, _mm512_add_ps(load(y + i, m), alpha));
    store(dx + i, _mm512_mask_mov_ps(neg, pos, g), m);
  });
}

void sigmoid_bwd_f32_avx512(const float* dy, const float* y, const float*, float* dx,
                            std::int64_t n, float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 v = load(y + i, m);
    const __m512 d = _mm512_mul_ps(_mm512_mul_ps(load(dy + i, m), v), _mm512_sub_ps(set1(1.0f), v));
    store(dx + i, d, m);
  });
}

void tanh_bwd_f32_avx512(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                         float) {
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512 v = load(y + i, m);
    store(dx + i, _mm512_mul_ps(load(dy + i, m), _mm512_fnmadd_ps(v, v, set1(1.0f))), m);
  });
}

}  // namespace avx512
}  // namespace cnnkit
