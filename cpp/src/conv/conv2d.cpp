// 2-D convolution, NCHW, as three GEMMs over implicit patches (per image n and group g):
//
//   forward          Y[n,g]  [Kg x HoWo]   = W[g] [Kg x CgFF] @ P(X[n,g]) [CgFF x HoWo] + b
//   backward data    dP      [CgFF x HoWo] = W[g]^T @ dY[n,g];   dX[n,g] = col2im(dP)
//                    (stride 1: dX[n,g] = conv(dY[n,g], rot180(W[g]) with K and C swapped,
//                     padding D(F-1)-P), i.e. the forward kernel again, no scatter)
//   backward weights dW[g]   [Kg x CgFF]   = sum_n dY[n,g] [Kg x HoWo] @ P(X[n,g])^T
//                    db[k]                 = sum_{n,oy,ox} dY[n,k,oy,ox]
//
// where P(X)[(c,fy,fx)][(oy,ox)] = X[c][oy S - P + fy D][ox S - P + fx D] (0 outside), which
// the GEMM engine packs straight from the image (image_operands.cpp): no column matrix, so
// memory does not grow with the batch. Output size: Ho = floor((H + 2P - D(F-1) - 1) / S) + 1.
//
// Threads: over (image, group) items with a one-thread GEMM each when there are enough items,
// otherwise items in turn with a threaded GEMM. The weight gradient sums per-thread partials
// in thread order, so results are bitwise reproducible for a given thread count.
#include "cnnkit/conv.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "conv/image_operands.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {
namespace {

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

PatchGeom forward_geom(const Conv2dParams& p) {
  return PatchGeom{p.C / p.groups, p.H,        p.W,        p.Fh,    p.Fw,  p.stride_h, p.stride_w,
                   p.pad_h,        p.pad_w,    p.dil_h,    p.dil_w, p.Ho,  p.Wo};
}

// For every item (n, g): y[n][g] (M x Ho Wo) = a[g] (M x rows) @ patches(x[n][g]) (+ epilogue).
struct ImplicitGemm {
  PatchGeom g;
  index_t N, G, M;
  const float* x;
  index_t x_img, x_grp;  // strides (floats) between images / groups of x
  const float* a;        // [G][M x rows], row-major
  const float* bias;     // [G * M] or null
  float* y;
  index_t y_img, y_grp;
  bool relu;

  void item(index_t n, index_t grp, int threads, float* ws) const {
    const float* xi = x + n * x_img + grp * x_grp;
    GemmOutput out;
    out.c = y + n * y_img + grp * y_grp;
    out.ldc = g.cols();
    out.bias_row = bias ? bias + grp * M : nullptr;
    out.relu = relu;
    const MatrixOperandA wa(a + grp * M * g.rows(), g.rows(), false);
    if (g.is_pointwise()) {
      gemm(M, g.cols(), g.rows(), wa, MatrixOperandB(xi, g.H * g.W, false), out, threads, ws);
    } else {
      gemm(M, g.cols(), g.rows(), wa, ImagePatchesB(xi, g), out, threads, ws);
    }
  }

  void run() const {
    const int nt = get_num_threads();
    const index_t items = N * G;
    if (items >= nt && nt > 1) {
      const std::size_t per = gemm_workspace_floats(M, g.cols(), g.rows(), 1);
      float* ws = thread_workspace(1, per * nt);
#pragma omp parallel for schedule(static) num_threads(nt)
      for (index_t it = 0; it < items; ++it) {
        item(it / G, it % G, 1, ws + per * thread_id());
      }
    } else {
      for (index_t it = 0; it < items; ++it) item(it / G, it % G, nt, nullptr);
    }
  }
};

void check_params(const Conv2dParams& p) {
  if (p.Ho <= 0 || p.Wo <= 0) throw_invalid("conv2d: parameters were not validated");
}

}  // namespace

Conv2dParams conv2d_params(index_t N, index_t C, index_t H, index_t W, index_t K,
                           index_t weight_in_channels, index_t Fh, index_t Fw, index_t stride_h,
                           index_t stride_w, index_t pad_h, index_t pad_w, index_t dil_h,
                           index_t dil_w, index_t groups) {
  const char* op = "conv2d";
  if (N < 0 || C < 1 || H < 1 || W < 1) {
    throw_invalid(op, ": input must be [N, C, H, W] with C, H, W >= 1, got ",
                  shape_str({N, C, H, W}));
  }
  if (K < 1 || Fh < 1 || Fw < 1) {
    throw_invalid(op, ": weight must be [K, C/groups, Fh, Fw] with K, Fh, Fw >= 1, got ",
                  shape_str({K, weight_in_channels, Fh, Fw}));
  }
  if (stride_h < 1 || stride_w < 1) {
    throw_invalid(op, ": stride must be >= 1, got (", stride_h, ", ", stride_w, ")");
  }
  if (pad_h < 0 || pad_w < 0) {
    throw_invalid(op, ": padding must be >= 0, got (", pad_h, ", ", pad_w, ")");
  }
  if (dil_h < 1 || dil_w < 1) {
    throw_invalid(op, ": dilation must be >= 1, got (", dil_h, ", ", dil_w, ")");
  }
  if (groups < 1) throw_invalid(op, ": groups must be >= 1, got ", groups);
  if (C % groups != 0) {
    throw_invalid(op, ": input channels (", C, ") must be divisible by groups (", groups, ")");
  }
  if (K % groups != 0) {
    throw_invalid(op, ": output channels (", K, ") must be divisible by groups (", groups, ")");
  }
  if (weight_in_channels != C / groups) {
    throw_invalid(op, ": weight has ", weight_in_channels, " input channels but x has ", C,
                  " channels / ", groups, " groups = ", C / groups, " (x: ",
                  shape_str({N, C, H, W}), ", weight: ", shape_str({K, weight_in_channels, Fh, Fw}),
                  ")");
  }
  const index_t eh = dil_h * (Fh - 1) + 1, ew = dil_w * (Fw - 1) + 1;
  if (eh > H + 2 * pad_h || ew > W + 2 * pad_w) {
    throw_invalid(op, ": kernel (", eh, " x ", ew, " with dilation) is larger than the padded input (",
                  H + 2 * pad_h, " x ", W + 2 * pad_w, ")");
  }
  Conv2dParams p;
  p.N = N;
  p.C = C;
  p.H = H;
  p.W = W;
  p.K = K;
  p.Fh = Fh;
  p.Fw = Fw;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.dil_h = dil_h;
  p.dil_w = dil_w;
  p.groups = groups;
  p.Ho = (H + 2 * pad_h - eh) / stride_h + 1;
  p.Wo = (W + 2 * pad_w - ew) / stride_w + 1;
  return p;
}

void conv2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                    const float* bias, float* dst, bool relu) {
  check_params(p);
  if (p.N == 0) return;
  const PatchGeom g = forward_geom(p);
  const index_t Kg = p.K / p.groups;
  ImplicitGemm ig{g,       p.N,     p.groups, Kg,    src, p.C * p.H * p.W, g.C * p.H * p.W,
                  weights, bias,    dst,      p.K * p.Ho * p.Wo, Kg * p.Ho * p.Wo, relu};
  ig.run();
}

void conv2d_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                          float* diff_src) {
  check_params(p);
  if (p.N == 0) return;
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G, FF = p.Fh * p.Fw;
  const index_t rows = Cg * FF, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  if (p.stride_h == 1 && p.stride_w == 1) {
    // dX = conv(dY, W') with W'[g][c][(k, fy, fx)] = W[g Kg + k][c][Fh-1-fy][Fw-1-fx].
    std::vector<float> wt(std::size_t(G) * Cg * Kg * FF);
    for (index_t grp = 0; grp < G; ++grp) {
      for (index_t k = 0; k < Kg; ++k) {
        for (index_t c = 0; c < Cg; ++c) {
          const float* w = weights + ((grp * Kg + k) * Cg + c) * FF;
          float* d = wt.data() + ((grp * Cg + c) * Kg + k) * FF;
          for (index_t f = 0; f < FF; ++f) d[f] = w[FF - 1 - f];
        }
      }
    }
    const PatchGeom g{Kg,      p.Ho,    p.Wo,    p.Fh, p.Fw,
                      1,       1,       p.dil_h * (p.Fh - 1) - p.pad_h,
                      p.dil_w * (p.Fw - 1) - p.pad_w,
                      p.dil_h, p.dil_w, p.H,     p.W};
    ImplicitGemm ig{g,          p.N,     G,       Cg,  diff_dst, p.K * HoWo, Kg * HoWo,
                    wt.data(),  nullptr, diff_src, p.C * HW, Cg * HW, false};
    ig.run();
    return;
  }
  // Strided: dP = W[g]^T @ dY[n,g] a chunk of output pixels at a time, scattered into dX.
  const PatchGeom g = forward_geom(p);
  const index_t chunk = std::min<index_t>(HoWo, std::max<index_t>(64, (64 * 1024) / rows));
  const int nt = get_num_threads();
  const index_t items = p.N * G;
  const bool parallel_items = items >= nt && nt > 1;
  const int gemm_threads = parallel_items ? 1 : nt;
  const std::size_t gws = gemm_workspace_floats(rows, chunk, Kg, gemm_threads);
  const std::size_t per = std::size_t(rows) * chunk + (parallel_items ? gws : 0);
  float* ws = thread_workspace(1, per * (parallel_items ? nt : 1));
  auto item = [&](index_t it, float* buf, float* gemm_ws) {
    const index_t n = it / G, grp = it % G;
    const float* dy = diff_dst + n * p.K * HoWo + grp * Kg * HoWo;
    float* dx = diff_src + n * p.C * HW + grp * Cg * HW;
    std::memset(dx, 0, sizeof(float) * Cg * HW);
    const MatrixOperandA wa(weights + grp * Kg * rows, rows, true);
    for (index_t j0 = 0; j0 < HoWo; j0 += chunk) {
      const index_t nc = std::min(chunk, HoWo - j0);
      GemmOutput out;
      out.c = buf;
      out.ldc = nc;
      gemm(rows, nc, Kg, wa, MatrixOperandB(dy + j0, HoWo, false), out, gemm_threads, gemm_ws);
      for (index_t r = 0; r < rows; ++r) {  // col2im of this chunk
        const index_t fx = r % p.Fw, fy = (r / p.Fw) % p.Fh, c = r / FF;
        float* plane = dx + c * HW;
        const float* b = buf + r * nc;
        for (index_t j = 0; j < nc; ++j) {
          const index_t oy = (j0 + j) / p.Wo, ox = (j0 + j) % p.Wo;
          const index_t iy = oy * g.sh - g.ph + fy * g.dh, ix = ox * g.sw - g.pw + fx * g.dw;
          if (iy >= 0 && iy < p.H && ix >= 0 && ix < p.W) plane[iy * p.W + ix] += b[j];
        }
      }
    }
  };
  if (parallel_items) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t it = 0; it < items; ++it) {
      float* mine = ws + per * thread_id();
      item(it, mine, mine + std::size_t(rows) * chunk);
    }
  } else {
    for (index_t it = 0; it < items; ++it) item(it, ws, nullptr);
  }
}

void conv2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                             float* diff_weights, float* diff_bias) {
  check_params(p);
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const PatchGeom g = forward_geom(p);
  const index_t rows = g.rows(), wsize = p.K * rows;
  const int nt = get_num_threads();
  if (diff_bias) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t k = 0; k < p.K; ++k) {
      double s = 0;
      for (index_t n = 0; n < p.N; ++n) {
        const float* d = diff_dst + (n * p.K + k) * HoWo;
        float part = 0;
        for (index_t j = 0; j < HoWo; ++j) part += d[j];
        s += part;
      }
      diff_bias[k] = float(s);
    }
  }
  std::memset(diff_weights, 0, sizeof(float) * wsize);
  if (p.N == 0) return;
  auto item = [&](index_t n, index_t grp, float* dw, int threads, float* ws) {
    GemmOutput out;
    out.c = dw + grp * Kg * rows;
    out.ldc = rows;
    out.beta = 1.0f;
    const MatrixOperandA dya(diff_dst + n * p.K * HoWo + grp * Kg * HoWo, HoWo, false);
    const float* x = src + n * p.C * HW + grp * Cg * HW;
    if (g.is_pointwise()) {
      gemm(Kg, rows, HoWo, dya, MatrixOperandB(x, HW, true), out, threads, ws);
    } else {
      gemm(Kg, rows, HoWo, dya, ImagePatchesTB(x, g), out, threads, ws);
    }
  };
  if (p.N >= nt && nt > 1) {
    // Per-thread partial sums over a static share of the images, added in thread order.
    const std::size_t gws = gemm_workspace_floats(Kg, rows, HoWo, 1);
    const std::size_t per = std::size_t(wsize) + gws;
    float* ws = thread_workspace(1, per * nt);
    // Zeroed here, not in the region: a partial whose thread the runtime did not start adds 0.
    for (int t = 0; t < nt; ++t) std::memset(ws + per * t, 0, sizeof(float) * wsize);
#pragma omp parallel num_threads(nt)
    {
      float* part = ws + per * thread_id();
#pragma omp for schedule(static)
      for (index_t n = 0; n < p.N; ++n) {
        for (index_t grp = 0; grp < G; ++grp) item(n, grp, part, 1, part + wsize);
      }
#pragma omp for schedule(static)
      for (index_t i = 0; i < wsize; ++i) {
        float s = 0;
        for (int t = 0; t < nt; ++t) s += ws[per * t + i];
        diff_weights[i] = s;
      }
    }
  } else {
    for (index_t n = 0; n < p.N; ++n) {
      for (index_t grp = 0; grp < G; ++grp) item(n, grp, diff_weights, nt, nullptr);
    }
  }
}

}  // namespace cnnkit
