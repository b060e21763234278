/* Activations (element-wise; x = input, y = output, dy = dL/dy, dx = dL/dx).
 *
 *   relu:       y = max(x, 0)                         dx = dy [y > 0]
 *   leaky_relu: y = x > 0 ? x : s x                   dx = x > 0 ? dy : s dy
 *   elu:        y = x > 0 ? x : a (exp(x) - 1)        dx = x > 0 ? dy : dy (y + a)
 *   sigmoid:    y = 1 / (1 + exp(-x))                 dx = dy y (1 - y)
 *               evaluated as e / (1 + e) with e = exp(-|x|) for x < 0, so no exp overflows
 *   tanh:       y = -expm1(-2|x|) / (2 + expm1(-2|x|)) sign(x)      dx = dy (1 - y^2)
 *               (expm1 keeps the relative accuracy for small |x|; no overflow for large |x|)
 *   maxout:     y[n, g, s] = max_p x[n, g P + p, s]   (first maximum wins; NaN counts as max)
 *               dx[n, g P + p, s] = dy[n, g, s] if p == argmax[n, g, s] else 0
 *
 * The backward passes use whichever of x and y gives the derivative without recomputing a
 * transcendental function. NaN inputs propagate as in PyTorch.
 */
#include "cnnkit/activation.hpp"

#include <algorithm>
#include <cmath>

#include "activation/activation_kernels.hpp"
#include "cnnkit/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace ref {

void relu_fwd_f32_ref(const float* src, float* dst, std::int64_t n, float) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] < 0.0f ? 0.0f : src[i];
}
void leaky_relu_fwd_f32_ref(const float* src, float* dst, std::int64_t n, float s) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] > 0.0f ? src[i] : src[i] * s;
}
void elu_fwd_f32_ref(const float* src, float* dst, std::int64_t n, float a) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = src[i] > 0.0f ? src[i] : a * std::expm1(src[i]);
}
void sigmoid_fwd_f32_ref(const float* src, float* dst, std::int64_t n, float) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = src[i], e = std::exp(-std::fabs(x)), r = 1.0f / (1.0f + e);
    dst[i] = x >= 0.0f ? r : e * r;
  }
}
void tanh_fwd_f32_ref(const float* src, float* dst, std::int64_t n, float) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = std::tanh(src[i]);
}
void relu_bwd_f32_ref(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                      float) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
void leaky_relu_bwd_f32_ref(const float* dy, const float* x, const float*, float* dx,
                            std::int64_t n, float s) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * s;
}
void elu_bwd_f32_ref(const float* dy, const float* x, const float* y, float* dx, std::int64_t n,
                     float a) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * (y[i] + a);
}
void sigmoid_bwd_f32_ref(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                         float) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}
void tanh_bwd_f32_ref(const float* dy, const float* y, const float*, float* dx, std::int64_t n,
                      float) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

}  // namespace ref

namespace {

// ~16K floats (64 KB) per thread at least: below that the wake-up costs more than the work.
constexpr index_t kMinPerThread = 16 * 1024;

void run_fwd(EltwiseFwd k, const float* src, float* dst, index_t n, float alpha) {
  parallel_ranges(n, kMinPerThread,
                  [&](index_t b, index_t e) { k(src + b, dst + b, e - b, alpha); });
}

void run_bwd(EltwiseBwd k, const float* dy, const float* a, const float* b, float* dx, index_t n,
             float alpha) {
  parallel_ranges(n, kMinPerThread, [&](index_t lo, index_t hi) {
    k(dy + lo, a + lo, b ? b + lo : nullptr, dx + lo, hi - lo, alpha);
  });
}

}  // namespace

void relu_forward(const float* src, float* dst, index_t n) {
  run_fwd(kernels().activation.relu_fwd, src, dst, n, 0.0f);
}
void relu_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n) {
  run_bwd(kernels().activation.relu_bwd, diff_dst, dst, nullptr, diff_src, n, 0.0f);
}
void leaky_relu_forward(const float* src, float* dst, index_t n, float negative_slope) {
  run_fwd(kernels().activation.leaky_relu_fwd, src, dst, n, negative_slope);
}
void leaky_relu_backward(const float* diff_dst, const float* src, float* diff_src, index_t n,
                         float negative_slope) {
  run_bwd(kernels().activation.leaky_relu_bwd, diff_dst, src, nullptr, diff_src, n, negative_slope);
}
void elu_forward(const float* src, float* dst, index_t n, float alpha) {
  run_fwd(kernels().activation.elu_fwd, src, dst, n, alpha);
}
void elu_backward(const float* diff_dst, const float* src, const float* dst, float* diff_src,
                  index_t n, float alpha) {
  run_bwd(kernels().activation.elu_bwd, diff_dst, src, dst, diff_src, n, alpha);
}
void sigmoid_forward(const float* src, float* dst, index_t n) {
  run_fwd(kernels().activation.sigmoid_fwd, src, dst, n, 0.0f);
}
void sigmoid_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n) {
  run_bwd(kernels().activation.sigmoid_bwd, diff_dst, dst, nullptr, diff_src, n, 0.0f);
}
void tanh_forward(const float* src, float* dst, index_t n) {
  run_fwd(kernels().activation.tanh_fwd, src, dst, n, 0.0f);
}
void tanh_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n) {
  run_bwd(kernels().activation.tanh_bwd, diff_dst, dst, nullptr, diff_src, n, 0.0f);
}

void validate(const MaxoutParams& p) {
  if (p.pieces < 1 || p.pieces > 255) {
    throw_invalid("maxout: pieces must be in [1, 255], got ", p.pieces);
  }
  if (p.C % p.pieces != 0) {
    throw_invalid("maxout: number of channels (", p.C, ") must be divisible by pieces (", p.pieces,
                  ")");
  }
}

void maxout_forward(const MaxoutParams& p, const float* src, float* dst, std::uint8_t* argmax) {
  validate(p);
  const index_t G = p.C / p.pieces, S = p.S;
  parallel_ranges(p.N * G, std::max<index_t>(1, kMinPerThread / std::max<index_t>(1, p.pieces * S)),
                  [&](index_t b, index_t e) {
                    for (index_t ng = b; ng < e; ++ng) {
                      const float* x = src + ng * p.pieces * S;  // n * C + g * pieces = ng * pieces
                      float* y = dst + ng * S;
                      std::uint8_t* am = argmax + ng * S;
                      for (index_t s = 0; s < S; ++s) {
                        y[s] = x[s];
                        am[s] = 0;
                      }
                      for (index_t q = 1; q < p.pieces; ++q) {
                        const float* xq = x + q * S;
                        for (index_t s = 0; s < S; ++s) {
                          const bool take =
                              xq[s] > y[s] || (std::isnan(xq[s]) && !std::isnan(y[s]));
                          y[s] = take ? xq[s] : y[s];
                          am[s] = take ? std::uint8_t(q) : am[s];
                        }
                      }
                    }
                  });
}

void maxout_backward(const MaxoutParams& p, const float* diff_dst, const std::uint8_t* argmax,
                     float* diff_src) {
  validate(p);
  const index_t G = p.C / p.pieces, S = p.S;
  parallel_ranges(p.N * G, std::max<index_t>(1, kMinPerThread / std::max<index_t>(1, p.pieces * S)),
                  [&](index_t b, index_t e) {
                    for (index_t ng = b; ng < e; ++ng) {
                      float* dx = diff_src + ng * p.pieces * S;
                      const float* dy = diff_dst + ng * S;
                      const std::uint8_t* am = argmax + ng * S;
                      for (index_t q = 0; q < p.pieces; ++q) {
                        float* dxq = dx + q * S;
                        for (index_t s = 0; s < S; ++s) dxq[s] = am[s] == q ? dy[s] : 0.0f;
                      }
                    }
                  });
}

}  // namespace cnnkit
