/* Data augmentation: the pixel work of cnnkit.data.transforms (RandomResizedCrop, resize,
 * ColorJitter), with exactly the numpy code's semantics.
 *
 * resize_boxes: PIL's bilinear resampling (torchvision's antialias=True) of the window
 * [t, t + len) of an axis of the image to `out` pixels:
 *   scale = len / out,  support = max(scale, 1)   (the filter widens when shrinking)
 *   output pixel i samples at c_i = t + (i + 0.5) scale
 *   w_ij = max(0, 1 - |j + 0.5 - c_i| / support) for t <= j < t + len (0 outside the window)
 *   R_ij = w_ij / sum_j w_ij   (in double, then rounded to float)
 * and out = Ry x Rx^T separably: tmp = x Rx^T [rows of the window, w] (per thread), then
 * out = Ry tmp. Each row of R is kept as its band of non-zero taps (contiguous j, at most
 * 2 support + 1 of them). With whole-pixel windows the pixel holding c_i lies in the window and
 * has w_ij >= 1/2, so no sum is 0.
 *
 * color_jitter (torchvision's ColorJitter on float images), each step clamping to [0, 1]:
 *   brightness  y = f x
 *   contrast    y = f x + (1 - f) m,  m = the mean over the image of the grayscale
 *               g = 0.299 R + 0.587 G + 0.114 B (one channel: the mean of the channel)
 *   saturation  y = f x + (1 - f) g   (g per pixel)
 * in float with the numpy code's roundings: f rounded to float, 1 - f in float, g in float
 * left to right, m summed in double and rounded to float.
 *
 * Threads own whole images (a static split): the results do not depend on the thread count.
 */
#include "cnnkit/augment.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/parallel.hpp"

namespace cnnkit {

namespace {

constexpr const char* kOps[3] = {"brightness", "contrast", "saturation"};

// Threads for N images: each gets at least ~32K values of output, and at most `limit` run
// (0: no limit but get_num_threads()).
int threads_for_images(index_t N, index_t values_per_image, int limit) {
  const index_t min_images = (index_t(1) << 15) / std::max<index_t>(1, values_per_image);
  const int nt = threads_for(N, std::max<index_t>(1, min_images));
  return limit > 0 ? std::min(nt, limit) : nt;
}

void validate_threads(int threads, const char* op) {
  if (threads < 0 || threads > kMaxThreads) {
    throw_invalid(op, ": threads must be in [0, ", kMaxThreads,
                  "] (0: cnnkit's thread count), got ", threads);
  }
}

// One axis of one image: output i reads the `taps` inputs first[i] .. first[i] + taps - 1
// with the weights weight[k * out + i] (tap-major, so a row of outputs reads its weights
// contiguously).
struct Band {
  index_t out = 0, cap = 0, taps = 0;  // cap: the most non-zero taps any window can give
  std::vector<index_t> first, count;
  std::vector<double> raw;  // [out, cap] the weights before normalising
  std::vector<double> sum;
  std::vector<float> weight;

  Band(index_t out_len, index_t in) : out(out_len) {
    // a window of len <= in: the integers of an open interval of length 2 support
    const double support = std::max(double(in) / double(out), 1.0);
    cap = std::min<index_t>(in, 2 * index_t(std::ceil(support)) + 3);
    first.resize(out);
    count.resize(out);
    raw.resize(out * cap);
    sum.resize(out);
    weight.resize(out * cap);
  }

  void build(double start, double len) {
    const double scale = len / double(out), support = std::max(scale, 1.0);
    const index_t end = index_t(start + len);
    for (index_t i = 0; i < out; ++i) {
      const double center = start + (double(i) + 0.5) * scale;
      const index_t lo = std::max(index_t(start), index_t(std::floor(center - support - 0.5)));
      const index_t hi = std::min(end, index_t(std::ceil(center + support - 0.5)) + 1);
      index_t k = 0;
      sum[i] = 0.0;
      for (index_t j = lo; j < hi && k < cap; ++j) {
        const double w = std::max(0.0, 1.0 - std::fabs((double(j) + 0.5) - center) / support);
        if (w > 0.0) {
          if (k == 0) first[i] = j;
          raw[i * cap + k++] = w;
          sum[i] += w;
        }
      }
      count[i] = k;
    }
    // Every output gets the same number of taps, padded with zero weights (first moves back
    // where the band would leave the window), so that the tap loops have a fixed length;
    // adding 0 * x changes no bit of a finite sum.
    taps = *std::max_element(count.begin(), count.end());
    std::fill(weight.begin(), weight.begin() + taps * out, 0.0f);
    for (index_t i = 0; i < out; ++i) {
      const index_t f = std::min(first[i], end - taps), shift = first[i] - f;
      for (index_t k = 0; k < count[i]; ++k) {
        weight[(k + shift) * out + i] = float(raw[i * cap + k] / sum[i]);
      }
      first[i] = f;
    }
  }
};

// out[o] = sum_k weight[k, o] row[first[o] + k] for the w outputs of a row. T > 0: the number
// of taps known at compile time (the tap loop unrolls and the loop over o vectorises with
// emulated gathers), else b.taps.
template <int T>
void along_w(const float* row, const Band& b, float* out) {
  const index_t taps = T > 0 ? T : b.taps, w = b.out;
  const float* wt = b.weight.data();
  const index_t* first = b.first.data();
  for (index_t o = 0; o < w; ++o) {
    float acc = 0.0f;
    for (index_t k = 0; k < taps; ++k) acc += wt[k * w + o] * row[first[o] + k];
    out[o] = acc;
  }
}

using AlongW = void (*)(const float*, const Band&, float*);
AlongW along_w_for(index_t taps) {
  switch (taps) {
    case 1:
      return along_w<1>;
    case 2:
      return along_w<2>;
    case 3:
      return along_w<3>;
    case 4:
      return along_w<4>;
    default:
      return along_w<0>;
  }
}

struct ResizeScratch {
  Band rows, cols;
  std::vector<float> tmp;  // [rows of the window, w]
  ResizeScratch(const ResizeBoxesParams& p)
      : rows(p.h, p.H), cols(p.w, p.W), tmp(std::size_t(p.H * p.w)) {}
};

void resize_image(const ResizeBoxesParams& p, const float* x, const double* box, ResizeScratch& s,
                  float* y) {
  const index_t h = p.h, w = p.w;
  Band& rb = s.rows;
  Band& cb = s.cols;
  rb.build(box[0], box[2]);
  cb.build(box[1], box[3]);
  const index_t r0 = rb.first[0], r1 = rb.first[h - 1] + rb.taps;  // the rows read
  const AlongW row_along_w = along_w_for(cb.taps);
  for (index_t c = 0; c < p.C; ++c) {
    const float* xc = x + c * p.H * p.W;
    for (index_t r = r0; r < r1; ++r) {  // along W: tmp = x Rx^T
      row_along_w(xc + r * p.W, cb, s.tmp.data() + (r - r0) * w);
    }
    for (index_t o = 0; o < h; ++o) {  // along H: out = Ry tmp, vectorised along the row
      float* out = y + (c * h + o) * w;
      const float* t = s.tmp.data() + (rb.first[o] - r0) * w;
      const float w0 = rb.weight[o];
      for (index_t i = 0; i < w; ++i) out[i] = w0 * t[i];
      for (index_t k = 1; k < rb.taps; ++k) {
        const float wk = rb.weight[k * h + o];
        const float* tk = t + k * w;
        for (index_t i = 0; i < w; ++i) out[i] += wk * tk[i];
      }
    }
  }
}

inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }  // keeps NaN

// The ops below read `in` and write `out`, which may be the same array (the loops read each
// element before writing it).
void scale_clamp(const float* in, float* out, index_t n, float a, float b) {
  for (index_t i = 0; i < n; ++i) out[i] = clamp01(in[i] * a + b);
}

inline float gray(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// Mean of the image's grayscale (of the channel when C = 1), summed in double in four
// interleaved partial sums (a fixed order).
double mean_gray(const float* x, index_t C, index_t S) {
  if (S == 0) return 0.0;
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  index_t i = 0;
  if (C == 3) {
    const float *r = x, *g = x + S, *b = x + 2 * S;
    for (; i + 4 <= S; i += 4) {
      for (int k = 0; k < 4; ++k) acc[k] += double(gray(r[i + k], g[i + k], b[i + k]));
    }
    for (; i < S; ++i) acc[0] += double(gray(r[i], g[i], b[i]));
  } else {
    for (; i + 4 <= S; i += 4) {
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]);
    }
    for (; i < S; ++i) acc[0] += double(x[i]);
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) / double(S);
}

// out_c = clamp(a in_c + c gray(in)) for the three planes, a block of pixels at a time (the
// block's grayscale in a local buffer, so that every loop reads and writes two arrays).
void saturation(const float* in, float* out, index_t S, float a, float c) {
  constexpr index_t kBlock = 256;
  float off[kBlock];
  for (index_t i0 = 0; i0 < S; i0 += kBlock) {
    const index_t len = std::min(kBlock, S - i0);
    const float *r = in + i0, *g = r + S, *b = r + 2 * S;
    for (index_t i = 0; i < len; ++i) off[i] = c * gray(r[i], g[i], b[i]);
    for (index_t ch = 0; ch < 3; ++ch) {
      const float* x = in + ch * S + i0;
      float* y = out + ch * S + i0;
      for (index_t i = 0; i < len; ++i) y[i] = clamp01(x[i] * a + off[i]);
    }
  }
}

// One image: the first op reads the source, the others work in place on dst.
void jitter_image(const ColorJitterParams& p, const float* src, const double* factors,
                  const std::int64_t* order, float* dst) {
  const index_t S = p.H * p.W, n = p.C * S;
  const float* in = src;
  for (index_t k = 0; k < p.K; ++k) {
    const std::int64_t op = order[k];
    if (op < 0) continue;
    const float f = float(factors[op]), rest = 1.0f - f;
    if (op == 0) {
      scale_clamp(in, dst, n, f, 0.0f);
    } else if (op == 1) {
      scale_clamp(in, dst, n, f, rest * float(mean_gray(in, p.C, S)));
    } else {
      saturation(in, dst, S, f, rest);
    }
    in = dst;
  }
  if (in == src) std::memcpy(dst, src, sizeof(float) * n);
}

}  // namespace

void validate(const ResizeBoxesParams& p, const double* boxes) {
  if (p.N < 0 || p.C < 0 || p.H < 0 || p.W < 0) {
    throw_invalid("resize_boxes: x must be [N, C, H, W] with sizes >= 0, got ",
                  shape_str({p.N, p.C, p.H, p.W}));
  }
  if (p.h < 1 || p.w < 1) {
    throw_invalid("resize_boxes: size must be (h, w) with h, w >= 1, got (", p.h, ", ", p.w, ")");
  }
  validate_threads(p.threads, "resize_boxes");
  if (boxes == nullptr) return;
  for (index_t n = 0; n < p.N; ++n) {
    const double* b = boxes + 4 * n;
    auto fits = [](double start, double len, index_t size) {
      return std::isfinite(start) && std::isfinite(len) && start == std::floor(start) &&
             len == std::floor(len) && start >= 0.0 && len >= 1.0 && start + len <= double(size);
    };
    if (!fits(b[0], b[2], p.H) || !fits(b[1], b[3], p.W)) {
      throw_invalid("resize_boxes: boxes[", n, "] = (top, left, height, width) = (", b[0], ", ",
                    b[1], ", ", b[2], ", ", b[3],
                    ") must be a window of whole pixels inside the image of ", p.H, " x ", p.W,
                    " (top, left >= 0, height, width >= 1, top + height <= ", p.H,
                    ", left + width <= ", p.W, ")");
    }
  }
}

void resize_boxes(const ResizeBoxesParams& p, const float* src, const double* boxes, float* dst) {
  validate(p, boxes);
  if (p.N == 0) return;
  const int nt = threads_for_images(p.N, p.C * p.h * p.w, p.threads);
  std::vector<ResizeScratch> scratch(nt, ResizeScratch(p));
  parallel_team(nt, [&](int t, int team) {  // team <= nt (a team of one when nested)
    index_t b, e;
    balanced_range(p.N, team, t, &b, &e);
    for (index_t n = b; n < e; ++n) {
      resize_image(p, src + n * p.C * p.H * p.W, boxes + 4 * n, scratch[t],
                   dst + n * p.C * p.h * p.w);
    }
  });
}

void validate(const ColorJitterParams& p, const double* factors, const std::int64_t* order) {
  if (p.N < 0 || p.C < 0 || p.H < 0 || p.W < 0 || p.K < 0) {
    throw_invalid("color_jitter: x must be [N, C, H, W] and order [N, K] with sizes >= 0, got ",
                  shape_str({p.N, p.C, p.H, p.W}), " and K = ", p.K);
  }
  validate_threads(p.threads, "color_jitter");
  for (index_t n = 0; factors && n < p.N; ++n) {
    for (int k = 0; k < 3; ++k) {
      const double f = factors[3 * n + k];
      if (!(std::isfinite(f) && f >= 0.0)) {
        throw_invalid("color_jitter: factors[", n, ", ", k, "] (", kOps[k],
                      ") must be a finite number >= 0, got ", f);
      }
    }
  }
  for (index_t n = 0; order && n < p.N; ++n) {
    bool seen[3] = {false, false, false};
    for (index_t k = 0; k < p.K; ++k) {
      const std::int64_t op = order[n * p.K + k];
      if (op < -1 || op > 2) {
        throw_invalid("color_jitter: order[", n, ", ", k,
                      "] must be -1 (skip), 0 (brightness), 1 (contrast) or 2 (saturation), got ",
                      op);
      }
      if (op < 0) continue;
      if (seen[op]) {
        throw_invalid("color_jitter: order[", n, "] must name each op at most once, got ", kOps[op],
                      " twice");
      }
      seen[op] = true;
      if (op == 1 && p.C != 1 && p.C != 3) {
        throw_invalid("color_jitter: contrast needs 1- or 3-channel images, got ", p.C,
                      " channels (x: ", shape_str({p.N, p.C, p.H, p.W}), ")");
      }
      if (op == 2 && p.C != 3) {
        throw_invalid("color_jitter: saturation needs RGB images [N, 3, H, W], got ", p.C,
                      " channel(s) (x: ", shape_str({p.N, p.C, p.H, p.W}), ")");
      }
    }
  }
}

void color_jitter(const ColorJitterParams& p, const float* src, const double* factors,
                  const std::int64_t* order, float* dst) {
  validate(p, factors, order);
  const index_t values = p.C * p.H * p.W;
  parallel_ranges_on(threads_for_images(p.N, values, p.threads), p.N, [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      jitter_image(p, src + n * values, factors + 3 * n, order + n * p.K, dst + n * values);
    }
  });
}

}  // namespace cnnkit
