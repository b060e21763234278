/* 2-D pooling, NCHW, one [H, W] plane at a time (planes = N * C are independent).
 *
 * Output size (PyTorch): Ho = floor((H + 2P - F) / S) + 1, or with ceil_mode the ceiling,
 *   minus one if that last window would start in the right padding ((Ho - 1) S >= H + P).
 *   P <= F / 2 so that every window overlaps the input.
 * Window of output (i, j): rows [i S - P, i S - P + F) clipped to [0, H), columns likewise.
 *
 * Max:  y[i][j] = max over the window; idx[i][j] = h W + w of its first maximum in row-major
 *       window order (a NaN counts as a maximum, as in PyTorch).
 *       dL/dx[h][w] = sum over (i, j) with idx[i][j] = h W + w of dL/dy[i][j]  (the "max gate").
 * Avg:  y[i][j] = sum over the clipped window / D, where D = window area clipped to the padded
 *       input [-P, H + P) (count_include_pad) or to the input itself (not counting padding).
 *       dL/dx[h][w] = sum over windows (i, j) containing (h, w) of dL/dy[i][j] / D[i][j].
 * Adaptive avg: rows [floor(i H / Ho), ceil((i + 1) H / Ho)), columns likewise; D = its area.
 *
 * Backward passes scatter into a zeroed plane in output order: deterministic and race-free
 * because threads own whole planes.
 */
#include "cnnkit/pool.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "cnnkit/runtime.hpp"
#include "pool/pool_kernels.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace {

// In 128 bits: validate() sizes the output from whatever the caller passed (sizes, kernels and
// padding near the int64 limits included) before it rejects them.
using wide_t = __int128;
wide_t floor_div(wide_t a, wide_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Planes per thread below which threading costs more than it saves (~64K elements).
index_t min_planes(index_t plane_elems) {
  return std::max<index_t>(1, (index_t(1) << 16) / std::max<index_t>(1, plane_elems));
}

}  // namespace

Pool2dPlane pool2d_plane(const Pool2dParams& p) {
  Pool2dPlane q;
  q.H = p.H;
  q.W = p.W;
  q.Ho = pool_out_h(p);
  q.Wo = pool_out_w(p);
  q.kh = p.kh;
  q.kw = p.kw;
  q.sh = p.sh;
  q.sw = p.sw;
  q.ph = p.ph;
  q.pw = p.pw;
  return q;
}

index_t pool_output_size(index_t in, index_t k, index_t s, index_t p, bool ceil_mode) {
  const wide_t num = wide_t(in) + 2 * wide_t(p) - k + (ceil_mode ? wide_t(s) - 1 : 0);
  wide_t out = floor_div(num, s) + 1;
  if (ceil_mode && (out - 1) * s >= wide_t(in) + p) --out;
  const wide_t lo = std::numeric_limits<index_t>::min(), hi = std::numeric_limits<index_t>::max();
  return index_t(out < lo ? lo : out > hi ? hi : out);
}

index_t pool_out_h(const Pool2dParams& p) {
  return pool_output_size(p.H, p.kh, p.sh, p.ph, p.ceil_mode);
}
index_t pool_out_w(const Pool2dParams& p) {
  return pool_output_size(p.W, p.kw, p.sw, p.pw, p.ceil_mode);
}

void validate(const Pool2dParams& p, const char* op) {
  if (p.kh < 1 || p.kw < 1) {
    throw_invalid(op, ": kernel_size must be >= 1, got (", p.kh, ", ", p.kw, ")");
  }
  if (p.sh < 1 || p.sw < 1) {
    throw_invalid(op, ": stride must be >= 1, got (", p.sh, ", ", p.sw, ")");
  }
  if (p.ph < 0 || p.pw < 0) {
    throw_invalid(op, ": padding must be >= 0, got (", p.ph, ", ", p.pw, ")");
  }
  if (p.ph > p.kh / 2) {
    throw_invalid(op, ": padding (", p.ph, ") must be <= kernel_size / 2 (", p.kh,
                  " / 2 = ", p.kh / 2, ") along H: at most half the window");
  }
  if (p.pw > p.kw / 2) {
    throw_invalid(op, ": padding (", p.pw, ") must be <= kernel_size / 2 (", p.kw,
                  " / 2 = ", p.kw / 2, ") along W: at most half the window");
  }
  if (p.planes < 0 || p.H < 0 || p.W < 0) {
    throw_invalid(op, ": negative input size");
  }
  // the output-size formula adds H, 2 * padding and stride: keep it clear of overflow (issue 9)
  checked_add(checked_add(p.H, checked_mul(2, p.ph, op, "padding"), op, "padding"), p.sh, op,
              "stride");
  checked_add(checked_add(p.W, checked_mul(2, p.pw, op, "padding"), op, "padding"), p.sw, op,
              "stride");
  const index_t ho = pool_out_h(p), wo = pool_out_w(p);
  if (ho < 1 || wo < 1) {
    throw_invalid(op, ": output size (", ho, ", ", wo, ") is too small for input (", p.H, ", ", p.W,
                  ") with kernel_size (", p.kh, ", ", p.kw, "), stride (", p.sh, ", ", p.sw,
                  "), padding (", p.ph, ", ", p.pw, ")");
  }
}

void maxpool2d_fwd_f32_ref(const float* src, float* dst, std::int64_t* indices,
                           const Pool2dPlane& p, std::int64_t planes) {
  const index_t HW = p.H * p.W, HWo = p.Ho * p.Wo;
  for (index_t q = 0; q < planes; ++q) {
    const float* x = src + q * HW;
    float* y = dst + q * HWo;
    for (index_t i = 0; i < p.Ho; ++i) {
      const index_t h0 = std::max<index_t>(i * p.sh - p.ph, 0);
      const index_t h1 = std::min(i * p.sh - p.ph + p.kh, p.H);
      for (index_t j = 0; j < p.Wo; ++j) {
        const index_t w0 = std::max<index_t>(j * p.sw - p.pw, 0);
        const index_t w1 = std::min(j * p.sw - p.pw + p.kw, p.W);
        float best = -std::numeric_limits<float>::infinity();
        index_t arg = h0 * p.W + w0;
        for (index_t h = h0; h < h1; ++h) {
          for (index_t w = w0; w < w1; ++w) {
            const float v = x[h * p.W + w];
            if (v > best || std::isnan(v)) {
              best = v;
              arg = h * p.W + w;
            }
          }
        }
        y[i * p.Wo + j] = best;
        if (indices) indices[q * HWo + i * p.Wo + j] = arg;
      }
    }
  }
}

void max_pool2d_forward(const Pool2dParams& p, const float* src, float* dst, index_t* indices) {
  validate(p, "max_pool2d");
  const Pool2dPlane q = pool2d_plane(p);
  const MaxPool2dFwd kernel = kernels().pool.max_pool2d_fwd;
  parallel_ranges(p.planes, min_planes(p.H * p.W), [&](index_t b, index_t e) {
    kernel(src + b * p.H * p.W, dst + b * q.Ho * q.Wo,
           indices ? indices + b * q.Ho * q.Wo : nullptr, q, e - b);
  });
}

void max_pool2d_backward(index_t planes, index_t H, index_t W, index_t Ho, index_t Wo,
                         const float* diff_dst, const index_t* indices, float* diff_src) {
  const index_t HW = H * W, HWo = Ho * Wo;
  std::atomic<bool> bad{false};
  parallel_ranges(planes, min_planes(HW + HWo), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      float* dx = diff_src + q * HW;
      const float* dy = diff_dst + q * HWo;
      const index_t* id = indices + q * HWo;
      std::memset(dx, 0, sizeof(float) * HW);
      for (index_t t = 0; t < HWo; ++t) {
        const index_t k = id[t];
        if (k < 0 || k >= HW) {
          bad.store(true, std::memory_order_relaxed);
          continue;
        }
        dx[k] += dy[t];
      }
    }
  });
  if (bad.load()) {
    throw_invalid("max_pool2d_backward: indices must lie in [0, H * W) = [0, ", HW,
                  ") for input_hw (", H, ", ", W, ")");
  }
}

namespace {

// The window of output (i, j) and its divisor, as in PyTorch's avg_pool2d.
struct AvgWindow {
  index_t h0, h1, w0, w1;
  float divisor;
};

AvgWindow avg_window(const Pool2dParams& p, index_t i, index_t j) {
  index_t h0 = i * p.sh - p.ph, w0 = j * p.sw - p.pw;
  index_t h1 = std::min(h0 + p.kh, p.H + p.ph), w1 = std::min(w0 + p.kw, p.W + p.pw);
  const index_t padded_area = (h1 - h0) * (w1 - w0);
  h0 = std::max<index_t>(h0, 0);
  w0 = std::max<index_t>(w0, 0);
  h1 = std::min(h1, p.H);
  w1 = std::min(w1, p.W);
  const index_t area = (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, float(p.count_include_pad ? padded_area : area)};
}

// No padding and every window inside the image (the usual 2x2/2 or 3x3/2 on even sizes): the
// divisor is kh * kw everywhere, and a window sum is a column sum of kh rows (a vectorised
// row add) followed by kw neighbours of that row.
bool all_windows_inside(const Pool2dParams& p, index_t Ho, index_t Wo) {
  return p.ph == 0 && p.pw == 0 && (Ho - 1) * p.sh + p.kh <= p.H && (Wo - 1) * p.sw + p.kw <= p.W;
}

constexpr index_t kMaxRowFloats = 4096;  // the row buffer of the fast path lives on the stack

}  // namespace

void avg_pool2d_forward(const Pool2dParams& p, const float* src, float* dst) {
  validate(p, "avg_pool2d");
  const index_t Ho = pool_out_h(p), Wo = pool_out_w(p), HW = p.H * p.W;
  if (all_windows_inside(p, Ho, Wo) && p.W <= kMaxRowFloats) {
    const float inv = 1.0f / float(p.kh * p.kw);
    parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
      float col[kMaxRowFloats];
      for (index_t q = b; q < e; ++q) {
        const float* x = src + q * HW;
        float* y = dst + q * Ho * Wo;
        for (index_t i = 0; i < Ho; ++i) {
          const float* r = x + i * p.sh * p.W;
          for (index_t w = 0; w < p.W; ++w) col[w] = r[w];
          for (index_t h = 1; h < p.kh; ++h) {
            for (index_t w = 0; w < p.W; ++w) col[w] += r[h * p.W + w];
          }
          for (index_t j = 0; j < Wo; ++j) {
            const float* c = col + j * p.sw;
            float s = c[0];
            for (index_t k = 1; k < p.kw; ++k) s += c[k];
            y[i * Wo + j] = s * inv;
          }
        }
      }
    });
    return;
  }
  parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      const float* x = src + q * HW;
      float* y = dst + q * Ho * Wo;
      for (index_t i = 0; i < Ho; ++i) {
        for (index_t j = 0; j < Wo; ++j) {
          const AvgWindow win = avg_window(p, i, j);
          float s = 0.0f;
          for (index_t h = win.h0; h < win.h1; ++h) {
            for (index_t w = win.w0; w < win.w1; ++w) s += x[h * p.W + w];
          }
          y[i * Wo + j] = win.h0 < win.h1 && win.w0 < win.w1 ? s / win.divisor : 0.0f;
        }
      }
    }
  });
}

void avg_pool2d_backward(const Pool2dParams& p, const float* diff_dst, float* diff_src) {
  validate(p, "avg_pool2d");
  const index_t Ho = pool_out_h(p), Wo = pool_out_w(p), HW = p.H * p.W;
  if (all_windows_inside(p, Ho, Wo) && p.W <= kMaxRowFloats) {
    // Each output gradient spread over its window: build one row of per-column shares (kw
    // neighbours each), then add it to the kh rows of the window.
    const float inv = 1.0f / float(p.kh * p.kw);
    parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
      float row[kMaxRowFloats];
      for (index_t q = b; q < e; ++q) {
        float* dx = diff_src + q * HW;
        const float* dy = diff_dst + q * Ho * Wo;
        std::memset(dx, 0, sizeof(float) * HW);
        for (index_t i = 0; i < Ho; ++i) {
          for (index_t w = 0; w < p.W; ++w) row[w] = 0.0f;
          for (index_t j = 0; j < Wo; ++j) {
            const float g = dy[i * Wo + j] * inv;
            float* r = row + j * p.sw;
            for (index_t k = 0; k < p.kw; ++k) r[k] += g;
          }
          float* d = dx + i * p.sh * p.W;
          for (index_t h = 0; h < p.kh; ++h) {
            for (index_t w = 0; w < p.W; ++w) d[h * p.W + w] += row[w];
          }
        }
      }
    });
    return;
  }
  parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      float* dx = diff_src + q * HW;
      const float* dy = diff_dst + q * Ho * Wo;
      std::memset(dx, 0, sizeof(float) * HW);
      for (index_t i = 0; i < Ho; ++i) {
        for (index_t j = 0; j < Wo; ++j) {
          const AvgWindow win = avg_window(p, i, j);
          const float g = dy[i * Wo + j] / win.divisor;
          for (index_t h = win.h0; h < win.h1; ++h) {
            for (index_t w = win.w0; w < win.w1; ++w) dx[h * p.W + w] += g;
          }
        }
      }
    }
  });
}

void validate(const AdaptivePool2dParams& p) {
  if (p.Ho < 1 || p.Wo < 1) {
    throw_invalid("adaptive_avg_pool2d: output_size must be >= 1, got (", p.Ho, ", ", p.Wo, ")");
  }
  if (p.H < 1 || p.W < 1) {
    throw_invalid("adaptive_avg_pool2d: input spatial size must be >= 1, got (", p.H, ", ", p.W,
                  ")");
  }
}

void adaptive_avg_pool2d_forward(const AdaptivePool2dParams& p, const float* src, float* dst) {
  validate(p);
  const index_t HW = p.H * p.W;
  parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      const float* x = src + q * HW;
      float* y = dst + q * p.Ho * p.Wo;
      for (index_t i = 0; i < p.Ho; ++i) {
        const index_t h0 = i * p.H / p.Ho, h1 = ((i + 1) * p.H + p.Ho - 1) / p.Ho;
        for (index_t j = 0; j < p.Wo; ++j) {
          const index_t w0 = j * p.W / p.Wo, w1 = ((j + 1) * p.W + p.Wo - 1) / p.Wo;
          float s = 0.0f;
          for (index_t h = h0; h < h1; ++h) {
            for (index_t w = w0; w < w1; ++w) s += x[h * p.W + w];
          }
          y[i * p.Wo + j] = s / float((h1 - h0) * (w1 - w0));
        }
      }
    }
  });
}

void adaptive_avg_pool2d_backward(const AdaptivePool2dParams& p, const float* diff_dst,
                                  float* diff_src) {
  validate(p);
  const index_t HW = p.H * p.W;
  parallel_ranges(p.planes, min_planes(HW), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      float* dx = diff_src + q * HW;
      const float* dy = diff_dst + q * p.Ho * p.Wo;
      std::memset(dx, 0, sizeof(float) * HW);
      for (index_t i = 0; i < p.Ho; ++i) {
        const index_t h0 = i * p.H / p.Ho, h1 = ((i + 1) * p.H + p.Ho - 1) / p.Ho;
        for (index_t j = 0; j < p.Wo; ++j) {
          const index_t w0 = j * p.W / p.Wo, w1 = ((j + 1) * p.W + p.Wo - 1) / p.Wo;
          const float g = dy[i * p.Wo + j] / float((h1 - h0) * (w1 - w0));
          for (index_t h = h0; h < h1; ++h) {
            for (index_t w = w0; w < w1; ++w) dx[h * p.W + w] += g;
          }
        }
      }
    }
  });
}

}  // namespace cnnkit
