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
// Fast paths in order: 1x1 stride 1 unpadded (the image is the B matrix, no packing of
// patches); depthwise (groups == C: direct loops, depthwise.cpp); implicit GEMM.
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
#include "runtime/parallel.hpp"
#include "conv/depthwise.hpp"
#include "conv/image_operands.hpp"
#include "conv/winograd.hpp"
#include "util/reduce.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {
namespace {

// Backward data as a forward convolution puts the input channels on the GEMM's M side; with
// fewer than this many (a first layer's 3 colours) the micro-kernel runs mostly empty and the
// GEMM + col2im formulation (M = C F F) is faster.
constexpr index_t kMinRowsForTransposedConv = 16;

// Stride-1 backward data as a forward convolution of dY (ungrouped: the Winograd path's view).
Conv2dParams as_forward_of_diff_dst(const Conv2dParams& p) {
  Conv2dParams t = p;
  t.C = p.K;
  t.H = p.Ho;
  t.W = p.Wo;
  t.K = p.C;
  t.pad_h = p.dil_h * (p.Fh - 1) - p.pad_h;
  t.pad_w = p.dil_w * (p.Fw - 1) - p.pad_w;
  t.Ho = p.H;
  t.Wo = p.W;
  return t;
}

PatchGeom forward_geom(const Conv2dParams& p) {
  return PatchGeom{p.C / p.groups, p.H,        p.W,        p.Fh,    p.Fw,  p.stride_h, p.stride_w,
                   p.pad_h,        p.pad_w,    p.dil_h,    p.dil_w, p.Ho,  p.Wo};
}

// Each group's M x K weight operand (op = transpose when `trans`, the matrix stored K x M),
// packed into micro-panels once for all the images instead of once per image.
class GroupWeights {
 public:
  GroupWeights(const float* w, index_t G, index_t M, index_t K, bool trans) {
    src_.reserve(std::size_t(G));
    packed_.reserve(std::size_t(G));  // no reallocation: packed_ refers into src_
    const std::size_t per_group = PrepackedA::floats(M, K);
    float* storage = thread_workspace(2, per_group * G);
    for (index_t grp = 0; grp < G; ++grp) {
      src_.emplace_back(w + grp * M * K, trans ? M : K, trans);
      packed_.emplace_back(M, K, src_.back(), storage + per_group * grp);
    }
  }
  const GemmOperandA& operator[](index_t grp) const { return packed_[std::size_t(grp)]; }

 private:
  std::vector<MatrixOperandA> src_;
  std::vector<PrepackedA> packed_;
};

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

  void item(index_t n, index_t grp, const GemmOperandA& wa, int threads, float* ws) const {
    const float* xi = x + n * x_img + grp * x_grp;
    GemmOutput out;
    out.c = y + n * y_img + grp * y_grp;
    out.ldc = g.cols();
    out.bias_row = bias ? bias + grp * M : nullptr;
    out.relu = relu;
    if (g.is_pointwise()) {
      gemm(M, g.cols(), g.rows(), wa, MatrixOperandB(xi, g.H * g.W, false), out, threads, ws);
    } else {
      gemm(M, g.cols(), g.rows(), wa, ImagePatchesB(xi, g), out, threads, ws);
    }
  }

  void run() const {
    const int nt = get_num_threads();
    const index_t items = N * G;
    const GroupWeights packed(a, G, M, g.rows(), false);
    if (items >= nt && nt > 1) {
      const std::size_t per = gemm_workspace_floats(M, g.cols(), g.rows(), 1);
      float* ws = thread_workspace(1, per * nt);
#pragma omp parallel for schedule(static) num_threads(nt)
      for (index_t it = 0; it < items; ++it) {
        item(it / G, it % G, packed[it % G], 1, ws + per * current_thread());
      }
    } else {
      for (index_t it = 0; it < items; ++it) {
        item(it / G, it % G, packed[it % G], nt, nullptr);
      }
    }
  }
};

void check_params(const Conv2dParams& p) {
  if (p.Ho <= 0 || p.Wo <= 0) throw_invalid("conv2d: parameters were not validated");
}


// The weight gradient takes the dot-product path when it gets dot products at least this long
// (pixels of one or several images) ...
constexpr index_t kMinPixelsForDotWeightGrad = 512;
// ... and layers with more patch rows than this (C F F) take the GEMM path too (measured: the
// GEMM wins on AlexNet conv2-5 and VGG, the dot products on first layers, 1x1 and CIFAR 3x3).
constexpr index_t kMaxRowsForDotWeightGrad = 640;

// Runs item(n0, count, grp, dw, db, threads, scratch) over all groups and over the images in
// runs of `imgs`, summing into diff_weights (and, if the item fills them, the bias sums db[K],
// kept in double): with enough runs, each thread accumulates a static share into its own
// partials (zeroed first), added in thread order (bitwise reproducible); otherwise runs go in
// turn and item() uses all threads on diff_weights directly.
template <typename Item>
void accumulate_weight_grad(const Conv2dParams& p, index_t imgs, float* diff_weights,
                            double* bias_sums, std::size_t extra_per_thread, Item item) {
  const index_t wsize = p.K * (p.C / p.groups) * p.Fh * p.Fw;
  const int nt = get_num_threads();
  std::memset(diff_weights, 0, sizeof(float) * wsize);
  if (bias_sums) std::fill(bias_sums, bias_sums + p.K, 0.0);
  if (p.N == 0) return;
  const index_t runs = (p.N + imgs - 1) / imgs;
  if (runs >= nt && nt > 1) {
    const std::size_t per = std::size_t(wsize) + extra_per_thread;
    float* ws = thread_workspace(1, per * nt);
    std::vector<double> db(bias_sums ? std::size_t(nt) * p.K : 0, 0.0);
    // Zeroed here, not in the region: a partial whose thread the runtime did not start adds 0.
    for (int t = 0; t < nt; ++t) std::memset(ws + per * t, 0, sizeof(float) * wsize);
#pragma omp parallel num_threads(nt)
    {
      const int t = current_thread();
      float* part = ws + per * t;
      double* dbt = bias_sums ? db.data() + std::size_t(t) * p.K : nullptr;
#pragma omp for schedule(static)
      for (index_t r = 0; r < runs; ++r) {
        const index_t n0 = r * imgs, count = std::min(imgs, p.N - n0);
        for (index_t grp = 0; grp < p.groups; ++grp) {
          item(n0, count, grp, part, dbt, 1, part + wsize);
        }
      }
#pragma omp for schedule(static)
      for (index_t i = 0; i < wsize; ++i) {
        float s = 0;
        for (int u = 0; u < nt; ++u) s += ws[per * u + i];
        diff_weights[i] = s;
      }
    }
    if (bias_sums) {
      for (int t = 0; t < nt; ++t) {
        for (index_t k = 0; k < p.K; ++k) bias_sums[k] += db[std::size_t(t) * p.K + k];
      }
    }
  } else {
    float* ws = thread_workspace(1, extra_per_thread * nt + 1);
    for (index_t n0 = 0; n0 < p.N; n0 += imgs) {
      const index_t count = std::min(imgs, p.N - n0);
      for (index_t grp = 0; grp < p.groups; ++grp) {
        item(n0, count, grp, diff_weights, bias_sums, nt, ws);
      }
    }
  }
}

void backward_weights_gemm(const Conv2dParams& p, const PatchGeom& g, const float* diff_dst,
                           const float* src, float* diff_weights) {
  const index_t Cg = p.C / p.groups, Kg = p.K / p.groups, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const index_t rows = g.rows();
  const std::size_t gws = gemm_workspace_floats(Kg, rows, HoWo, 1);
  accumulate_weight_grad(p, 1, diff_weights, nullptr, gws,
                         [&](index_t n, index_t, index_t grp, float* dw, double*, int threads,
                             float* ws) {
    GemmOutput out;
    out.c = dw + grp * Kg * rows;
    out.ldc = rows;
    out.beta = 1.0f;
    const MatrixOperandA dya(diff_dst + n * p.K * HoWo + grp * Kg * HoWo, HoWo, false);
    const float* x = src + n * p.C * HW + grp * Cg * HW;
    float* gw = threads == 1 ? ws : nullptr;
    if (g.is_pointwise()) {
      gemm(Kg, rows, HoWo, dya, MatrixOperandB(x, HW, true), out, threads, gw);
    } else {
      gemm(Kg, rows, HoWo, dya, ImagePatchesTB(x, g), out, threads, gw);
    }
  });
}

// Dot products run along k = pixels of `imgs` images at a time (so small images still give
// long dot products); k is capped so the Kg x k block of dY stays in L2.
struct DotPlan {
  index_t imgs = 1, chunk = 0;
  bool use = false;
};

DotPlan plan_dot(const Conv2dParams& p, index_t Kg, index_t rows) {
  const index_t HoWo = p.Ho * p.Wo;
  const int nt = get_num_threads();
  const index_t kmax = std::clamp<index_t>((128 * 1024) / Kg, 256, 4096);
  DotPlan d;
  // Images of 512 pixels or more each give long enough dot products on their own (and dY is
  // then read in place; gathering several images means copying their dY rows).
  if (HoWo >= std::min<index_t>(kmax, 512)) {
    d.imgs = 1;
    d.chunk = std::min<index_t>(HoWo, std::max<index_t>(256, (index_t(1) << 20) / rows));
  } else {
    const index_t per_thread = std::max<index_t>(1, p.N / std::max(1, nt));
    d.imgs = std::clamp<index_t>(kmax / HoWo, 1, per_thread);
    d.chunk = d.imgs * HoWo;
  }
  d.use = std::min(d.chunk, HoWo * d.imgs) >= kMinPixelsForDotWeightGrad &&
          rows <= kMaxRowsForDotWeightGrad;
  return d;
}

void backward_weights_dot(const Conv2dParams& p, const PatchGeom& g, const DotPlan& plan,
                          const float* diff_dst, const float* src, float* diff_weights,
                          double* bias_sums) {
  const index_t Cg = p.C / p.groups, Kg = p.K / p.groups, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const index_t rows = g.rows();
  const KernelTable& kt = kernels();
  const bool pointwise = g.is_pointwise();
  const index_t chunk = plan.chunk;
  // Row stride of the gathered rows: a multiple of 16 floats but not of 256 (1 KB). The dot
  // tile streams 4 dY rows and 6 patch rows; if all ten sat a multiple of 4 KB apart they
  // would share L1 sets and evict each other (measured: half the speed at 32x32 outputs).
  index_t ld = (chunk + 15) / 16 * 16;
  if (ld % 256 == 0) ld += 16;
  // Several images per dot product: their dY rows are copied side by side (padded stride).
  const bool copy_dy = plan.imgs > 1;
  // Patch rows [r0, r1) of images [n0, n0 + count) of one group into dw ([K x rows], leading
  // dimension rows); t holds the gathered patch rows, then the copied dY rows. The bias
  // gradient is summed in the same pass over dY when db is given.
  auto run = [&](index_t n0, index_t count, index_t grp, index_t r0, index_t r1, float* dw,
                 double* db, float* t) {
    float* dwg = dw + grp * Kg * rows;
    float* a_buf = t + rows * ld;
    const index_t total = count * HoWo;
    for (index_t j0 = 0; j0 < total; j0 += chunk) {
      const index_t nc = std::min(chunk, total - j0);
      // Walk the chunk image by image: [j, j + len) lies in image n0 + j / HoWo.
      for (index_t j = j0; j < j0 + nc;) {
        const index_t n = n0 + j / HoWo, pix = j % HoWo, len = std::min(HoWo - pix, j0 + nc - j);
        const float* x = src + n * p.C * HW + grp * Cg * HW;
        for (index_t r = r0; r < r1; ++r) {
          float* dst = t + (r - r0) * ld + (j - j0);
          if (pointwise) {
            std::memcpy(dst, x + r * HW + pix, sizeof(float) * len);
          } else {
            gather_patch_row(g, x, r, pix, len, dst);
          }
        }
        const float* dy = diff_dst + n * p.K * HoWo + grp * Kg * HoWo + pix;
        for (index_t k = 0; k < Kg; ++k) {
          if (copy_dy) std::memcpy(a_buf + k * ld + (j - j0), dy + k * HoWo, sizeof(float) * len);
          if (db) db[grp * Kg + k] += sum_floats(dy + k * HoWo, len);
        }
        j += len;
      }
      const float* a = copy_dy ? a_buf : diff_dst + n0 * p.K * HoWo + grp * Kg * HoWo + j0;
      const index_t lda = copy_dy ? ld : HoWo;
      for (index_t jb = r0; jb < r1; jb += kt.dot_nr) {
        const int nb = int(std::min<index_t>(kt.dot_nr, r1 - jb));
        for (index_t ib = 0; ib < Kg; ib += kt.dot_mr) {
          const int mb = int(std::min<index_t>(kt.dot_mr, Kg - ib));
          kt.dot_nt_tile(mb, nb, nc, a + ib * lda, lda, t + (jb - r0) * ld, ld,
                         dwg + ib * rows + jb, rows);
        }
      }
    }
  };
  const std::size_t tsize = std::size_t(rows + (copy_dy ? Kg : 0)) * ld;
  accumulate_weight_grad(p, plan.imgs, diff_weights, bias_sums, tsize,
                         [&](index_t n0, index_t count, index_t grp, float* dw, double* db,
                             int threads, float* t) {
    if (threads == 1) {
      run(n0, count, grp, 0, rows, dw, db, t);
      return;
    }
    // Few images: threads split the patch rows (disjoint columns of dW, no reduction).
    const index_t blocks = (rows + kt.dot_nr - 1) / kt.dot_nr;
#pragma omp parallel num_threads(threads)
    {
      int u = current_thread(), team = 1;
#ifdef _OPENMP
      team = omp_get_num_threads();
#endif
      const index_t b0 = blocks * u / team, b1 = blocks * (u + 1) / team;
      run(n0, count, grp, b0 * kt.dot_nr, std::min(rows, b1 * kt.dot_nr), dw,
          u == 0 ? db : nullptr, t + tsize * u);  // every thread copies dY; one sums it
    }
  });
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
  // checked: padding and dilation are user-given and may be huge (issue 9)
  const index_t eh = checked_add(checked_mul(dil_h, Fh - 1, op, "dilation"), 1, op, "dilation");
  const index_t ew = checked_add(checked_mul(dil_w, Fw - 1, op, "dilation"), 1, op, "dilation");
  const index_t padded_h = checked_add(H, checked_mul(2, pad_h, op, "padding"), op, "padding");
  const index_t padded_w = checked_add(W, checked_mul(2, pad_w, op, "padding"), op, "padding");
  if (eh > padded_h || ew > padded_w) {
    throw_invalid(op, ": kernel (", eh, " x ", ew, " with dilation) is larger than the padded input (",
                  padded_h, " x ", padded_w, ")");
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
  p.Ho = (padded_h - eh) / stride_h + 1;
  p.Wo = (padded_w - ew) / stride_w + 1;
  return p;
}

void conv2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                    const float* bias, float* dst, bool relu) {
  check_params(p);
  if (p.N == 0) return;
  if (is_depthwise(p)) return depthwise_forward(p, src, weights, bias, dst, relu);
  if (winograd_selected(p)) return winograd_forward(p, src, weights, bias, dst, relu);
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
  if (is_depthwise(p)) return depthwise_backward_data(p, diff_dst, weights, diff_src);
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G, FF = p.Fh * p.Fw;
  const index_t rows = Cg * FF, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  if (p.stride_h == 1 && p.stride_w == 1 && Cg >= kMinRowsForTransposedConv) {
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
    const Conv2dParams t = as_forward_of_diff_dst(p);
    if (winograd_selected(t)) return winograd_forward(t, diff_dst, wt.data(), nullptr, diff_src, false);
    const PatchGeom g = forward_geom(t);
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
  const GroupWeights packed(weights, G, rows, Kg, true);  // W[g]^T, rows x Kg
  auto item = [&](index_t it, float* buf, float* gemm_ws) {
    const index_t n = it / G, grp = it % G;
    const float* dy = diff_dst + n * p.K * HoWo + grp * Kg * HoWo;
    float* dx = diff_src + n * p.C * HW + grp * Cg * HW;
    std::memset(dx, 0, sizeof(float) * Cg * HW);
    const GemmOperandA& wa = packed[grp];
    for (index_t j0 = 0; j0 < HoWo; j0 += chunk) {
      const index_t nc = std::min(chunk, HoWo - j0);
      GemmOutput out;
      out.c = buf;
      out.ldc = nc;
      gemm(rows, nc, Kg, wa, MatrixOperandB(dy + j0, HoWo, false), out, gemm_threads, gemm_ws);
      for (index_t r = 0; r < rows; ++r) scatter_add_patch_row(g, dx, r, j0, nc, buf + r * nc);
    }
  };
  if (parallel_items) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t it = 0; it < items; ++it) {
      float* mine = ws + per * current_thread();
      item(it, mine, mine + std::size_t(rows) * chunk);
    }
  } else {
    for (index_t it = 0; it < items; ++it) item(it, ws, nullptr);
  }
}

void conv2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                             float* diff_weights, float* diff_bias) {
  check_params(p);
  const index_t HoWo = p.Ho * p.Wo;
  const PatchGeom g = forward_geom(p);
  const int nt = get_num_threads();
  // Two formulations of dW[k][r] = sum over pixels of dY[k][pixel] * P[r][pixel]:
  //  - dot products along the pixels (dot_nt_tile): dY rows are contiguous and patch rows are
  //    gathered contiguous, no transposition; best for few patch rows (first layers, 1x1,
  //    CIFAR 3x3), and it sums the bias gradient in the same pass over dY;
  //  - the GEMM engine with P^T packed straight from the image (ImagePatchesTB): best for
  //    many patch rows (AlexNet conv2-5, VGG).
  const DotPlan dot = plan_dot(p, p.K / p.groups, g.rows());
  const bool wino = winograd_selected(p, true);
  if (dot.use && !is_depthwise(p) && !wino) {
    std::vector<double> db(diff_bias ? std::size_t(p.K) : 0);
    backward_weights_dot(p, g, dot, diff_dst, src, diff_weights, diff_bias ? db.data() : nullptr);
    if (diff_bias) {
      for (index_t k = 0; k < p.K; ++k) diff_bias[k] = float(db[std::size_t(k)]);
    }
    return;
  }
  if (diff_bias) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t k = 0; k < p.K; ++k) {
      double s = 0;
      for (index_t n = 0; n < p.N; ++n) s += sum_floats(diff_dst + (n * p.K + k) * HoWo, HoWo);
      diff_bias[k] = float(s);
    }
  }
  if (is_depthwise(p)) {
    depthwise_backward_weights(p, diff_dst, src, diff_weights);
  } else if (wino) {
    winograd_backward_weights(p, diff_dst, src, diff_weights);
  } else {
    backward_weights_gemm(p, g, diff_dst, src, diff_weights);
  }
}

const char* conv2d_algorithm_name(const Conv2dParams& p, int pass) {
  check_params(p);
  if (is_depthwise(p)) return "depthwise";
  const PatchGeom g = forward_geom(p);
  switch (pass) {
    case 0:
      if (winograd_selected(p)) return "winograd";
      return g.is_pointwise() ? "gemm" : "implicit_gemm";
    case 1:
      if (p.stride_h == 1 && p.stride_w == 1 && p.C / p.groups >= kMinRowsForTransposedConv) {
        return winograd_selected(as_forward_of_diff_dst(p)) ? "winograd" : "implicit_gemm";
      }
      return "gemm_col2im";
    default:
      if (winograd_selected(p, true)) return "winograd";
      return plan_dot(p, p.K / p.groups, g.rows()).use ? "dot" : "gemm";
  }
}

}  // namespace cnnkit
