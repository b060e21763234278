// Reference convolution: the definition, as plain loops with double accumulators.
//   y[n,k,oy,ox] = b[k] + sum_{c,fy,fx} w[k,c,fy,fx] x[n, g Cg + c, oy S - P + fy D, ox S - P + fx
//   D]
// with k in group g = k / Kg. Backward passes are the same sums read the other way.
// The last entry of every list in conv2d.cpp (it applies to everything); since the implicit
// GEMM, GEMM + col2im and GEMM weight gradient before it take any shape, the lists never reach
// it today: it is the oracle (the _ref bindings, tests) and the guarantee that a walk ends.
#include <algorithm>
#include <vector>

#include "cnnkit/conv.hpp"
#include "conv/conv2d_algorithms.hpp"

namespace cnnkit {
namespace {

// Calls f(n, k, oy, ox, ci, fy, fx, x_index, w_index) for every valid tap.
template <typename F>
void for_each_tap(const Conv2dParams& p, F f) {
  const index_t Cg = p.C / p.groups, Kg = p.K / p.groups;
  for (index_t n = 0; n < p.N; ++n)
    for (index_t k = 0; k < p.K; ++k) {
      const index_t grp = k / Kg;
      for (index_t oy = 0; oy < p.Ho; ++oy)
        for (index_t ox = 0; ox < p.Wo; ++ox)
          for (index_t c = 0; c < Cg; ++c)
            for (index_t fy = 0; fy < p.Fh; ++fy) {
              const index_t iy = oy * p.stride_h - p.pad_h + fy * p.dil_h;
              if (iy < 0 || iy >= p.H) continue;
              for (index_t fx = 0; fx < p.Fw; ++fx) {
                const index_t ix = ox * p.stride_w - p.pad_w + fx * p.dil_w;
                if (ix < 0 || ix >= p.W) continue;
                const index_t xi = ((n * p.C + grp * Cg + c) * p.H + iy) * p.W + ix;
                const index_t wi = ((k * Cg + c) * p.Fh + fy) * p.Fw + fx;
                const index_t yi = ((n * p.K + k) * p.Ho + oy) * p.Wo + ox;
                f(xi, wi, yi);
              }
            }
    }
}

}  // namespace

bool reference_applies(const Conv2dParams&, const ConvPolicy&) { return true; }

void conv2d_forward_ref(const Conv2dParams& p, const float* src, const float* weights,
                        const float* bias, float* dst, bool relu) {
  const index_t ysize = p.N * p.K * p.Ho * p.Wo;
  std::vector<double> acc(ysize, 0.0);
  for_each_tap(
      p, [&](index_t xi, index_t wi, index_t yi) { acc[yi] += double(src[xi]) * weights[wi]; });
  const index_t HoWo = p.Ho * p.Wo;
  for (index_t i = 0; i < ysize; ++i) {
    double v = acc[i] + (bias ? bias[(i / HoWo) % p.K] : 0.0);
    if (relu) v = std::max(v, 0.0);
    dst[i] = float(v);
  }
}

void conv2d_backward_data_ref(const Conv2dParams& p, const float* diff_dst, const float* weights,
                              float* diff_src) {
  std::vector<double> acc(p.N * p.C * p.H * p.W, 0.0);
  for_each_tap(p, [&](index_t xi, index_t wi, index_t yi) {
    acc[xi] += double(diff_dst[yi]) * weights[wi];
  });
  for (std::size_t i = 0; i < acc.size(); ++i) diff_src[i] = float(acc[i]);
}

void conv2d_backward_weights_ref(const Conv2dParams& p, const float* diff_dst, const float* src,
                                 float* diff_weights, float* diff_bias) {
  std::vector<double> acc(p.K * (p.C / p.groups) * p.Fh * p.Fw, 0.0);
  for_each_tap(
      p, [&](index_t xi, index_t wi, index_t yi) { acc[wi] += double(diff_dst[yi]) * src[xi]; });
  for (std::size_t i = 0; i < acc.size(); ++i) diff_weights[i] = float(acc[i]);
  if (diff_bias) {
    const index_t HoWo = p.Ho * p.Wo;
    for (index_t k = 0; k < p.K; ++k) {
      double s = 0;
      for (index_t n = 0; n < p.N; ++n)
        for (index_t j = 0; j < HoWo; ++j) s += diff_dst[(n * p.K + k) * HoWo + j];
      diff_bias[k] = float(s);
    }
  }
}

}  // namespace cnnkit
