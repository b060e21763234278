// Tiled convolution (Ngiam et al.): filter banks shared between output positions that are
// (Th, Tw) apart; position (oy, ox) uses bank (oy mod Th, ox mod Tw). Th = Tw = 1 is ordinary
// convolution; (Th, Tw) = (Ho, Wo) gives every position its own bank: a locally connected layer.
//
// For bank b with positions Q_b, over all images at once (columns (n, q)):
//   forward   Y_b  [K x N|Q_b|]   = W_b [K x CFF] @ P_b [CFF x N|Q_b|] + bias
//   weights   dW_b [K x CFF]      = dY_b @ P_b^T
//   data      dP_b [CFF x N|Q_b|] = W_b^T @ dY_b, scattered (col2im) into dX
// where P_b gathers each column's patch. Columns go through the GEMM engine in chunks, so the
// gathered patches take bounded memory. Banks run in parallel (each writes only its own
// outputs and weight gradients); dX, where receptive fields of different banks overlap, is
// summed in per-thread partial buffers added in thread order (deterministic).
#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "runtime/parallel.hpp"
#include "util/reduce.hpp"

namespace cnnkit {
namespace {

struct Bank {
  index_t th, tw, ny, nx;  // first position and count along each axis
  index_t npos() const { return ny * nx; }
};

struct Tiled {
  const TiledConv2dParams& tp;
  const Conv2dParams& p;
  index_t FF, rows, chunk;

  explicit Tiled(const TiledConv2dParams& t)
      : tp(t), p(t.conv), FF(t.conv.Fh * t.conv.Fw), rows(t.conv.C * FF) {
    chunk = std::clamp<index_t>((64 * 1024) / std::max<index_t>(rows, p.K), 16, 4096);
  }

  Bank bank(index_t b) const {
    Bank k;
    k.th = b / tp.Tw;
    k.tw = b % tp.Tw;
    k.ny = k.th < p.Ho ? (p.Ho - k.th + tp.Th - 1) / tp.Th : 0;
    k.nx = k.tw < p.Wo ? (p.Wo - k.tw + tp.Tw - 1) / tp.Tw : 0;
    return k;
  }
  index_t banks() const { return tp.Th * tp.Tw; }

  // Column t of bank k -> image n and output position (oy, ox).
  void column(const Bank& k, index_t t, index_t* n, index_t* oy, index_t* ox) const {
    const index_t q = t % k.npos();
    *n = t / k.npos();
    *oy = k.th + (q / k.nx) * tp.Th;
    *ox = k.tw + (q % k.nx) * tp.Tw;
  }

  // cols[r][j] = patch value r = (c, fy, fx) of column t0 + j.
  void gather(const Bank& k, const float* x, index_t t0, index_t nc, float* cols) const {
    for (index_t j = 0; j < nc; ++j) {
      index_t n, oy, ox;
      column(k, t0 + j, &n, &oy, &ox);
      for (index_t c = 0; c < p.C; ++c) {
        const float* plane = x + (n * p.C + c) * p.H * p.W;
        for (index_t fy = 0; fy < p.Fh; ++fy) {
          const index_t iy = oy * p.stride_h - p.pad_h + fy;
          for (index_t fx = 0; fx < p.Fw; ++fx) {
            const index_t ix = ox * p.stride_w - p.pad_w + fx;
            const bool in = iy >= 0 && iy < p.H && ix >= 0 && ix < p.W;
            cols[((c * p.Fh + fy) * p.Fw + fx) * nc + j] = in ? plane[iy * p.W + ix] : 0.0f;
          }
        }
      }
    }
  }

  // dx[...] += dcols[r][j] (col2im of the chunk).
  void scatter(const Bank& k, const float* dcols, index_t t0, index_t nc, float* dx) const {
    for (index_t j = 0; j < nc; ++j) {
      index_t n, oy, ox;
      column(k, t0 + j, &n, &oy, &ox);
      for (index_t c = 0; c < p.C; ++c) {
        float* plane = dx + (n * p.C + c) * p.H * p.W;
        for (index_t fy = 0; fy < p.Fh; ++fy) {
          const index_t iy = oy * p.stride_h - p.pad_h + fy;
          if (iy < 0 || iy >= p.H) continue;
          for (index_t fx = 0; fx < p.Fw; ++fx) {
            const index_t ix = ox * p.stride_w - p.pad_w + fx;
            if (ix < 0 || ix >= p.W) continue;
            plane[iy * p.W + ix] += dcols[((c * p.Fh + fy) * p.Fw + fx) * nc + j];
          }
        }
      }
    }
  }

  index_t y_index(index_t n, index_t kk, index_t oy, index_t ox) const {
    return ((n * p.K + kk) * p.Ho + oy) * p.Wo + ox;
  }
};

// Runs body(bank, thread_slot, gemm_threads) over all banks: banks in parallel when there are
// enough of them, else one after another with a threaded GEMM.
template <typename Body>
void for_banks(index_t nbanks, int nt, bool parallel, Body body) {
  if (parallel) {
    parallel_for(nt, nbanks, [&](index_t b) { body(b, current_thread(), 1); });
  } else {
    for (index_t b = 0; b < nbanks; ++b) body(b, 0, nt);
  }
}

}  // namespace

TiledConv2dParams tiled_conv2d_params(const char* op, index_t N, index_t C, index_t H, index_t W,
                                      index_t Th, index_t Tw, index_t K, index_t Cw, index_t Fh,
                                      index_t Fw, index_t stride_h, index_t stride_w, index_t pad_h,
                                      index_t pad_w, bool local) {
  TiledConv2dParams tp;
  try {
    tp.conv = conv2d_params(N, C, H, W, K, Cw, Fh, Fw, stride_h, stride_w, pad_h, pad_w, 1, 1, 1);
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    throw std::invalid_argument(op + msg.substr(msg.find(':')));
  }
  if (local) {
    if (Th != tp.conv.Ho || Tw != tp.conv.Wo) {
      throw_invalid(op, ": weight must be [Ho, Wo, K, C, Fh, Fw] = ",
                    shape_str({tp.conv.Ho, tp.conv.Wo, K, C, Fh, Fw}), " for input ",
                    shape_str({N, C, H, W}), ", got ", shape_str({Th, Tw, K, Cw, Fh, Fw}));
    }
  } else if (Th < 1 || Tw < 1) {
    throw_invalid(op, ": tile size must be >= 1, got (", Th, ", ", Tw, ")");
  }
  tp.Th = Th;
  tp.Tw = Tw;
  tp.bias_per_position = local;
  return tp;
}

void tiled_conv2d_forward(const TiledConv2dParams& tp, const float* src, const float* weights,
                          const float* bias, float* dst) {
  const Tiled t(tp);
  const Conv2dParams& p = tp.conv;
  if (p.N == 0) return;
  const int nt = get_num_threads();
  const bool parallel = t.banks() >= nt && nt > 1;
  const int gt = parallel ? 1 : nt;
  const std::size_t gws = gemm_workspace_floats(p.K, t.chunk, t.rows, gt);
  const std::size_t per = std::size_t(t.rows + p.K) * t.chunk + (parallel ? gws : 0);
  float* ws = thread_workspace(1, per * (parallel ? nt : 1));
  for_banks(t.banks(), nt, parallel, [&](index_t b, int slot, int threads) {
    const Bank k = t.bank(b);
    float* cols = ws + per * slot;
    float* out = cols + t.rows * t.chunk;
    float* gw = parallel ? out + p.K * t.chunk : nullptr;
    const MatrixOperandA wa(weights + b * p.K * t.rows, t.rows, false);
    const index_t total = p.N * k.npos();
    for (index_t t0 = 0; t0 < total; t0 += t.chunk) {
      const index_t nc = std::min(t.chunk, total - t0);
      t.gather(k, src, t0, nc, cols);
      GemmOutput o;
      o.c = out;
      o.ldc = nc;
      gemm(p.K, nc, t.rows, wa, MatrixOperandB(cols, nc, false), o, threads, gw);
      for (index_t j = 0; j < nc; ++j) {
        index_t n, oy, ox;
        t.column(k, t0 + j, &n, &oy, &ox);
        for (index_t kk = 0; kk < p.K; ++kk) {
          float v = out[kk * nc + j];
          if (bias) v += tp.bias_per_position ? bias[(kk * p.Ho + oy) * p.Wo + ox] : bias[kk];
          dst[t.y_index(n, kk, oy, ox)] = v;
        }
      }
    }
  });
}

void tiled_conv2d_backward(const TiledConv2dParams& tp, const float* diff_dst, const float* src,
                           const float* weights, float* diff_src, float* diff_weights,
                           float* diff_bias) {
  const Tiled t(tp);
  const Conv2dParams& p = tp.conv;
  const index_t HoWo = p.Ho * p.Wo, xsize = p.N * p.C * p.H * p.W;
  if (diff_bias) {
    const index_t nb = tp.bias_per_position ? p.K * HoWo : p.K;
    for (index_t i = 0; i < nb; ++i) {
      double s = 0;
      if (tp.bias_per_position) {
        for (index_t n = 0; n < p.N; ++n) s += diff_dst[n * p.K * HoWo + i];
      } else {
        for (index_t n = 0; n < p.N; ++n) s += sum_floats(diff_dst + (n * p.K + i) * HoWo, HoWo);
      }
      diff_bias[i] = float(s);
    }
  }
  if (diff_weights) std::memset(diff_weights, 0, sizeof(float) * t.banks() * p.K * t.rows);
  if (diff_src) std::memset(diff_src, 0, sizeof(float) * xsize);
  if (p.N == 0 || (!diff_weights && !diff_src)) return;
  const int nt = get_num_threads();
  const bool parallel = t.banks() >= nt && nt > 1;
  const int gt = parallel ? 1 : nt;
  const std::size_t gws = std::max({gemm_workspace_floats(p.K, t.rows, t.chunk, gt),
                                    gemm_workspace_floats(t.rows, t.chunk, p.K, gt)});
  const bool partial_dx = diff_src && parallel;
  const std::size_t per = std::size_t(2 * t.rows + p.K) * t.chunk + (parallel ? gws : 0) +
                          (partial_dx ? std::size_t(xsize) : 0);
  float* ws = thread_workspace(1, per * (parallel ? nt : 1));
  if (partial_dx) {
    for (int s = 0; s < nt; ++s)
      std::memset(ws + per * s + (per - xsize), 0, sizeof(float) * xsize);
  }
  for_banks(t.banks(), nt, parallel, [&](index_t b, int slot, int threads) {
    const Bank k = t.bank(b);
    float* cols = ws + per * slot;
    float* dyc = cols + t.rows * t.chunk;
    float* dcols = dyc + p.K * t.chunk;
    float* gw = parallel ? dcols + t.rows * t.chunk : nullptr;
    float* dx = partial_dx ? ws + per * slot + (per - xsize) : diff_src;
    const float* wb = weights + b * p.K * t.rows;
    const index_t total = p.N * k.npos();
    for (index_t t0 = 0; t0 < total; t0 += t.chunk) {
      const index_t nc = std::min(t.chunk, total - t0);
      for (index_t j = 0; j < nc; ++j) {
        index_t n, oy, ox;
        t.column(k, t0 + j, &n, &oy, &ox);
        for (index_t kk = 0; kk < p.K; ++kk) dyc[kk * nc + j] = diff_dst[t.y_index(n, kk, oy, ox)];
      }
      if (diff_weights) {
        t.gather(k, src, t0, nc, cols);
        GemmOutput o;
        o.c = diff_weights + b * p.K * t.rows;
        o.ldc = t.rows;
        o.beta = 1.0f;
        gemm(p.K, t.rows, nc, MatrixOperandA(dyc, nc, false), MatrixOperandB(cols, nc, true), o,
             threads, gw);
      }
      if (diff_src) {
        GemmOutput o;
        o.c = dcols;
        o.ldc = nc;
        gemm(t.rows, nc, p.K, MatrixOperandA(wb, t.rows, true), MatrixOperandB(dyc, nc, false), o,
             threads, gw);
        t.scatter(k, dcols, t0, nc, dx);
      }
    }
  });
  if (partial_dx) {
    parallel_for(nt, xsize, [&](index_t i) {
      float s = 0;
      for (int sl = 0; sl < nt; ++sl) s += ws[per * sl + (per - xsize) + i];
      diff_src[i] = s;
    });
  }
}

}  // namespace cnnkit
