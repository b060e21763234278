// Depthwise convolution (groups == C: each output channel k reads only input channel
// k / (K / C)), as direct loops. A GEMM per channel would have a single row (M = 1) and do
// nothing but overhead; here each output row is a sum of shifted, scaled input rows:
//   y[n,k,oy,:]  = b[k] + sum_{fy,fx} w[k,fy,fx] x[n,c,oy S - P + fy D, (:) S - P + fx D]
//   dx[n,c,iy,:] = sum over k of channel c, fy, fx of the same taps read backwards (scatter)
//   dw[k,fy,fx]  = sum_{n,oy,ox} dy[n,k,oy,ox] x[n,c,oy S - P + fy D, ox S - P + fx D]
//   db[k]        = sum_{n,oy,ox} dy[n,k,oy,ox]
// The inner loops run along output columns; for stride 1 they are contiguous and vectorise.
// First in every direction's list: no other algorithm comes near it for groups == C.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnkit/runtime.hpp"
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {
namespace {

// Output columns ox in [lo, hi) read input columns inside [0, W) for tap column offset off.
inline void valid_cols(index_t Wo, index_t W, index_t sw, index_t off, index_t* lo, index_t* hi) {
  // ix = ox * sw + off in [0, W)  <=>  ox >= ceil(-off / sw) and ox <= floor((W - 1 - off) / sw)
  // (ceil written without -off + sw - 1, which overflows for a stride near 2^63: UBSan)
  index_t l = off >= 0 ? 0 : (-off) / sw + ((-off) % sw != 0 ? 1 : 0);
  index_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;
  *lo = std::min(l, Wo);
  *hi = std::clamp(h, *lo, Wo);
}

// Filters wider than this take the generic path (the per-row tap tables are on the stack).
constexpr index_t kMaxTaps = 64;

}  // namespace

bool depthwise_applies(const Conv2dParams& p, const ConvPolicy&) {
  return p.groups == p.C && p.groups > 1 && p.Fw <= kMaxTaps;
}

void depthwise_forward(const Conv2dParams& p, const float* src, const float* weights,
                       const float* bias, float* dst, bool relu) {
  const index_t mult = p.K / p.C, FF = p.Fh * p.Fw, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const int nt = get_num_threads();
  parallel_for(nt, p.N * p.K, [&](index_t nk) {
    const index_t n = nk / p.K, k = nk % p.K, c = k / mult;
    const float* x = src + (n * p.C + c) * HW;
    const float* w = weights + k * FF;
    float* y = dst + nk * HoWo;
    const float b = bias ? bias[k] : 0.0f;
    index_t lo[kMaxTaps], hi[kMaxTaps];
    for (index_t fx = 0; fx < p.Fw; ++fx) {
      valid_cols(p.Wo, p.W, p.stride_w, fx * p.dil_w - p.pad_w, &lo[fx], &hi[fx]);
    }
    for (index_t oy = 0; oy < p.Ho; ++oy) {
      float* yr = y + oy * p.Wo;
      for (index_t ox = 0; ox < p.Wo; ++ox) yr[ox] = b;
      for (index_t fy = 0; fy < p.Fh; ++fy) {
        const index_t iy = oy * p.stride_h - p.pad_h + fy * p.dil_h;
        if (iy < 0 || iy >= p.H) continue;
        const float* xr = x + iy * p.W;
        for (index_t fx = 0; fx < p.Fw; ++fx) {
          const float wv = w[fy * p.Fw + fx];
          const index_t off = fx * p.dil_w - p.pad_w;
          if (p.stride_w == 1) {
            const float* xs = xr + off;
            for (index_t ox = lo[fx]; ox < hi[fx]; ++ox) yr[ox] += wv * xs[ox];
          } else {
            for (index_t ox = lo[fx]; ox < hi[fx]; ++ox) yr[ox] += wv * xr[ox * p.stride_w + off];
          }
        }
      }
      if (relu) {
        for (index_t ox = 0; ox < p.Wo; ++ox) yr[ox] = std::max(yr[ox], 0.0f);
      }
    }
  });
}

void depthwise_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                             float* diff_src) {
  const index_t mult = p.K / p.C, FF = p.Fh * p.Fw, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const int nt = get_num_threads();
  parallel_for(nt, p.N * p.C, [&](index_t nc) {
    const index_t n = nc / p.C, c = nc % p.C;
    float* dx = diff_src + nc * HW;
    std::memset(dx, 0, sizeof(float) * HW);
    index_t lo[kMaxTaps], hi[kMaxTaps];
    for (index_t fx = 0; fx < p.Fw; ++fx) {
      valid_cols(p.Wo, p.W, p.stride_w, fx * p.dil_w - p.pad_w, &lo[fx], &hi[fx]);
    }
    for (index_t k = c * mult; k < (c + 1) * mult; ++k) {
      const float* dy = diff_dst + (n * p.K + k) * HoWo;
      const float* w = weights + k * FF;
      for (index_t oy = 0; oy < p.Ho; ++oy) {
        const float* dyr = dy + oy * p.Wo;
        for (index_t fy = 0; fy < p.Fh; ++fy) {
          const index_t iy = oy * p.stride_h - p.pad_h + fy * p.dil_h;
          if (iy < 0 || iy >= p.H) continue;
          float* dxr = dx + iy * p.W;
          for (index_t fx = 0; fx < p.Fw; ++fx) {
            const float wv = w[fy * p.Fw + fx];
            const index_t off = fx * p.dil_w - p.pad_w;
            if (p.stride_w == 1) {
              float* d = dxr + off;
              for (index_t ox = lo[fx]; ox < hi[fx]; ++ox) d[ox] += wv * dyr[ox];
            } else {
              for (index_t ox = lo[fx]; ox < hi[fx]; ++ox)
                dxr[ox * p.stride_w + off] += wv * dyr[ox];
            }
          }
        }
      }
    }
  });
}

void depthwise_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                                float* diff_weights, float* diff_bias) {
  if (diff_bias) bias_grad(p, diff_dst, diff_bias);
  const index_t mult = p.K / p.C, FF = p.Fh * p.Fw, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const int nt = get_num_threads();
  // Each thread owns whole output channels: no reduction across threads, fixed order.
  parallel_for(nt, p.K, [&](index_t k) {
    const index_t c = k / mult;
    for (index_t f = 0; f < FF; ++f) {
      const index_t fy = f / p.Fw, fx = f % p.Fw;
      const index_t off = fx * p.dil_w - p.pad_w;
      index_t lo, hi;
      valid_cols(p.Wo, p.W, p.stride_w, off, &lo, &hi);
      double total = 0;
      for (index_t n = 0; n < p.N; ++n) {
        const float* dy = diff_dst + (n * p.K + k) * HoWo;
        const float* x = src + (n * p.C + c) * HW;
        float acc[16] = {};  // interleaved partial sums: vectorises, fixed order
        float tail = 0;
        for (index_t oy = 0; oy < p.Ho; ++oy) {
          const index_t iy = oy * p.stride_h - p.pad_h + fy * p.dil_h;
          if (iy < 0 || iy >= p.H) continue;
          const float* dyr = dy + oy * p.Wo;
          const float* xr = x + iy * p.W;
          index_t ox = lo;
          if (p.stride_w == 1) {
            const float* xs = xr + off;
            for (; ox + 16 <= hi; ox += 16) {
              for (int l = 0; l < 16; ++l) acc[l] += dyr[ox + l] * xs[ox + l];
            }
            for (; ox < hi; ++ox) tail += dyr[ox] * xs[ox];
          } else {
            for (; ox < hi; ++ox) tail += dyr[ox] * xr[ox * p.stride_w + off];
          }
        }
        double s = tail;
        for (float v : acc) s += v;
        total += s;
      }
      diff_weights[k * FF + f] = float(total);
    }
  });
}

}  // namespace cnnkit
