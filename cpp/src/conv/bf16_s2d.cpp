// Strided bf16 convolution as a stride-1 one (space to depth), for layers with few input
// channels such as AlexNet's conv1 (3 -> 96, 11 x 11, stride 4). With stride s and the input
// zero-padded by P (Hp = H + 2P), the s x s phases of each channel become channels:
//
//   X'[c s^2 + a s + b][i][j] = Xpad[c][s i + a][s j + b]          (i < ceil(Hp / s), ...)
//   W'[k][c s^2 + a s + b][u][v] = W[k][c][s u + a][s v + b]        (0 where s u + a >= F)
//   Y[k][oy][ox] = sum W[k][c][fy][fx] Xpad[c][s oy + fy][s ox + fx]
//                = sum W'[k][c'][u][v] X'[c'][oy + u][ox + v]       (fy = s u + a, fx = s v + b)
//
// a stride-1, unpadded convolution with C s^2 channels and ceil(F / s)^2 taps, which the bf16
// direct algorithm (AMX tiles straight from the image) runs: 3 -> 48 channels and 3 x 3 taps
// for AlexNet's conv1, instead of an implicit GEMM whose patch packing dominates. The products
// are the same (plus zeros for the padded taps), summed in another order. The weight gradient
// is the direct algorithm's on X' and dY, mapped back; the input gradient is its backward-data
// pass, dX' mapped back to dX. Applies where the stride-1 output has exactly Ho x Wo pixels
// (ceil(Hp / s) - ceil(F / s) + 1 == Ho, true for AlexNet's and ResNet's stems).
// Images go in groups of four per thread (phase images of a few MB).
#include <algorithm>
#include <vector>

#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "runtime/kernel_table.hpp"

namespace cnnkit {
namespace {

constexpr index_t kMaxPhaseChannels = 64;  // C s^2: beyond it the direct K chunks help less

struct Phases {
  index_t s, Hs, Ws, Fs;
  Conv2dParams q;  // the stride-1 convolution on X'

  explicit Phases(const Conv2dParams& p) {
    s = p.stride_h;
    Hs = (p.H + 2 * p.pad_h + s - 1) / s;
    Ws = (p.W + 2 * p.pad_w + s - 1) / s;
    Fs = (std::max(p.Fh, p.Fw) + s - 1) / s;
    q = p;
    q.C = p.C * s * s;
    q.H = Hs;
    q.W = Ws;
    q.Fh = q.Fw = Fs;
    q.stride_h = q.stride_w = 1;
    q.pad_h = q.pad_w = 0;
    q.Ho = Hs - Fs + 1;
    q.Wo = Ws - Fs + 1;
    q.packed_weights = nullptr;  // a cached packing is of W, not W'
  }
  index_t phase_channel(index_t c, index_t a, index_t b) const { return (c * s + a) * s + b; }
};

// X' of images [n0, n0 + count) into xs (count q.C Hs Ws floats): zeros, then each input row
// read once, left to right, its values dealt out to the s phase rows it feeds.
void to_phases(const Conv2dParams& p, const Phases& ph, const float* x, index_t n0, index_t count,
               float* xs) {
  const index_t s = ph.s, plane = ph.Hs * ph.Ws;
  std::vector<index_t> col(std::size_t(p.W));  // where input column x goes in a phase row pair
  for (index_t xx = 0; xx < p.W; ++xx) {
    col[std::size_t(xx)] = ((xx + p.pad_w) % s) * plane + (xx + p.pad_w) / s;
  }
  parallel_ranges(count * p.C, 1, [&](index_t b0, index_t e0) {
    for (index_t it = b0; it < e0; ++it) {
      const index_t n = it / p.C, c = it % p.C;
      float* base = xs + (n * ph.q.C + ph.phase_channel(c, 0, 0)) * plane;
      std::fill(base, base + s * s * plane, 0.0f);
      const float* src = x + ((n0 + n) * p.C + c) * p.H * p.W;
      for (index_t y = 0; y < p.H; ++y) {
        const index_t a = (y + p.pad_h) % s, i = (y + p.pad_h) / s;
        const float* row = src + y * p.W;
        float* out = base + a * s * plane + i * ph.Ws;
        for (index_t xx = 0; xx < p.W; ++xx) out[col[std::size_t(xx)]] = row[xx];
      }
    }
  });
}

std::vector<float> phase_weights(const Conv2dParams& p, const Phases& ph, const float* w) {
  const index_t s = ph.s, Fs = ph.Fs;
  std::vector<float> ws(std::size_t(p.K * ph.q.C * Fs * Fs), 0.0f);
  for (index_t k = 0; k < p.K; ++k)
    for (index_t c = 0; c < p.C; ++c)
      for (index_t fy = 0; fy < p.Fh; ++fy)
        for (index_t fx = 0; fx < p.Fw; ++fx) {
          const index_t cs = ph.phase_channel(c, fy % s, fx % s);
          ws[std::size_t(((k * ph.q.C + cs) * Fs + fy / s) * Fs + fx / s)] =
              w[((k * p.C + c) * p.Fh + fy) * p.Fw + fx];
        }
  return ws;
}

// Groups of four images per thread: few calls of the direct algorithm, phase images of a few MB.
index_t group_size(const Conv2dParams& p) {
  return std::min<index_t>(p.N, 4 * std::max(1, get_num_threads()));
}
template <typename F>
void in_groups(const Conv2dParams& p, F&& f) {
  const index_t group = group_size(p);
  for (index_t n0 = 0; n0 < p.N; n0 += group) f(n0, std::min(group, p.N - n0));
}

void s2d_forward(const Conv2dParams& p, const float* src, const float* weights, const float* bias,
                 bool relu, const Pool2dPlane* pool, float* dst) {
  const Phases ph(p);
  const std::vector<float> ws = phase_weights(p, ph, weights);
  Conv2dParams q = ph.q;
  std::vector<std::uint16_t> packed(conv2d_packed_values(q));  // once for all groups
  conv2d_pack_bf16(q, ws.data(), packed.data());
  q.packed_weights = packed.data();
  const index_t xs_img = q.C * q.H * q.W;
  const index_t y_img = pool ? p.K * pool->Ho * pool->Wo : p.K * p.Ho * p.Wo;
  std::vector<float> xs(std::size_t(group_size(p) * xs_img));
  in_groups(p, [&](index_t n0, index_t count) {
    to_phases(p, ph, src, n0, count, xs.data());
    Conv2dParams g = q;
    g.N = count;
    if (pool) {
      bf16_direct_forward_pooled(g, xs.data(), ws.data(), bias, relu, *pool, dst + n0 * y_img);
    } else {
      bf16_direct_forward(g, xs.data(), ws.data(), bias, dst + n0 * y_img, relu);
    }
  });
}

}  // namespace

bool bf16_s2d_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  if (p.precision != Precision::bf16 || p.groups != 1 || p.stride_h < 2 ||
      p.stride_h != p.stride_w || p.dil_h != 1 || p.dil_w != 1 ||
      p.C * p.stride_h * p.stride_h > kMaxPhaseChannels || p.N < 1) {
    return false;
  }
  const Phases ph(p);
  return ph.q.Ho == p.Ho && ph.q.Wo == p.Wo && bf16_direct_applies(ph.q, policy);
}

void bf16_s2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) {
  s2d_forward(p, src, weights, bias, relu, nullptr, dst);
}

void bf16_s2d_forward_pooled(const Conv2dParams& p, const float* src, const float* weights,
                             const float* bias, bool relu, const Pool2dPlane& pool, float* dst) {
  s2d_forward(p, src, weights, bias, relu, &pool, dst);
}

bool bf16_s2d_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return bf16_s2d_applies(p, policy);
}

void bf16_s2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                               float* diff_weights, float* diff_bias) {
  const Phases ph(p);
  const index_t s = ph.s, Fs = ph.Fs, C2 = ph.q.C;
  const index_t xs_img = C2 * ph.Hs * ph.Ws, y_img = p.K * p.Ho * p.Wo;
  const index_t wsz = p.K * C2 * Fs * Fs;
  const std::size_t wn = std::size_t(wsz);
  std::vector<float> dws(wn, 0.0f), part(wn);
  std::vector<float> xs(std::size_t(group_size(p) * xs_img));
  if (diff_bias) bias_grad(p, diff_dst, diff_bias);
  // per group: the direct weight gradient (its own thread partials, in order), summed in
  // group order -- bitwise reproducible for a thread count
  in_groups(p, [&](index_t n0, index_t count) {
    to_phases(p, ph, src, n0, count, xs.data());
    Conv2dParams g = ph.q;
    g.N = count;
    bf16_direct_backward_weights(g, diff_dst + n0 * y_img, xs.data(), part.data(), nullptr);
    for (index_t i = 0; i < wsz; ++i) dws[std::size_t(i)] += part[std::size_t(i)];
  });
  for (index_t k = 0; k < p.K; ++k)
    for (index_t c = 0; c < p.C; ++c)
      for (index_t fy = 0; fy < p.Fh; ++fy)
        for (index_t fx = 0; fx < p.Fw; ++fx) {
          const index_t cs = ph.phase_channel(c, fy % s, fx % s);
          diff_weights[((k * p.C + c) * p.Fh + fy) * p.Fw + fx] =
              dws[std::size_t(((k * C2 + cs) * Fs + fy / s) * Fs + fx / s)];
        }
}

bool bf16_s2d_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return bf16_s2d_applies(p, policy) && bf16_direct_backward_data_applies(Phases(p).q, policy);
}

void bf16_s2d_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                            float* diff_src) {
  const Phases ph(p);
  const std::vector<float> ws = phase_weights(p, ph, weights);
  const index_t s = ph.s, plane = ph.Hs * ph.Ws, C2 = ph.q.C;
  const index_t xs_img = C2 * plane, y_img = p.K * p.Ho * p.Wo, x_img = p.C * p.H * p.W;
  std::vector<float> dxs(std::size_t(group_size(p) * xs_img));
  in_groups(p, [&](index_t n0, index_t count) {
    Conv2dParams g = ph.q;
    g.N = count;
    bf16_direct_backward_data(g, diff_dst + n0 * y_img, ws.data(), dxs.data());
    // dX[c][y][x] = dX'[phase (y + P) % s, (x + P) % s][(y + P) / s][(x + P) / s]
    parallel_ranges(count * p.C, 1, [&](index_t b0, index_t e0) {
      for (index_t it = b0; it < e0; ++it) {
        const index_t n = it / p.C, c = it % p.C;
        float* dst = diff_src + (n0 + n) * x_img + c * p.H * p.W;
        for (index_t y = 0; y < p.H; ++y) {
          const index_t yy = y + p.pad_h;
          for (index_t x = 0; x < p.W; ++x) {
            const index_t xx = x + p.pad_w;
            const index_t cs = ph.phase_channel(c, yy % s, xx % s);
            dst[y * p.W + x] = dxs[std::size_t((n * C2 + cs) * plane + (yy / s) * ph.Ws + xx / s)];
          }
        }
      }
    });
  });
}

}  // namespace cnnkit
