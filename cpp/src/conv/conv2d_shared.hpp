// Building blocks the convolution algorithms share: the GEMM views of a convolution, packed
// group weights, the per-(image, group) GEMM loop and the threaded weight-gradient sum.
// Baseline code only (inline functions and templates): never include from ISA files.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "conv/image_operands.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

// The patch geometry of one (image, group) of the forward convolution.
PatchGeom forward_geom(const Conv2dParams& p);

// Stride-1 backward data is a forward convolution of dY with the rotated weights (K and C
// swapped, padding D(F-1)-P); with fewer input channels per group than this (a first
// layer's 3 colours) that GEMM's M side runs the micro-kernel mostly empty and the
// GEMM + col2im formulation (M = C F F) is faster.
constexpr index_t kMinRowsForTransposedConv = 16;
bool backward_data_as_forward(const Conv2dParams& p);

// That forward convolution's parameters (input dY [N, K, Ho, Wo], output dX [N, C, H, W]).
Conv2dParams as_forward_of_diff_dst(const Conv2dParams& p);

// Its weights W'[g][c][(k, fy, fx)] = W[g Kg + k][c][Fh-1-fy][Fw-1-fx] ([C, K/groups, Fh, Fw]).
std::vector<float> rotated_weights(const Conv2dParams& p, const float* weights);

// diff_bias[k] = sum over n, oy, ox of dY[n, k, oy, ox] (threads over k, sums in double).
void bias_grad(const Conv2dParams& p, const float* diff_dst, float* diff_bias);

// Each group's M x K weight operand (op = transpose when `trans`, the matrix stored K x M),
// packed into micro-panels once for all the images instead of once per image.
class GroupWeights {
 public:
  GroupWeights(const float* w, index_t G, index_t M, index_t K, bool trans,
               Precision precision = Precision::fp32);
  const GemmOperandA& operator[](index_t grp) const { return packed_[std::size_t(grp)]; }

 private:
  std::vector<MatrixOperandA> src_;
  std::vector<PrepackedA> packed_;
};

// For every item (image n, group grp): y[n][grp] (M x g.cols()) = a[grp] (M x g.rows()) @
// B(x[n][grp]) + bias, then ReLU, where make_b(x[n][grp]) builds the B operand (the image's
// patches, or the image itself for a 1x1 convolution). Threads over the items with a
// one-thread GEMM each when there are enough of them, otherwise items in turn with a threaded
// GEMM.
struct GroupedImageGemm {
  PatchGeom g;
  index_t N, G, M;
  const float* x;
  index_t x_img, x_grp;  // strides (floats) between images / groups of x
  const float* a;        // [G][M x rows], row-major
  const float* bias;     // [G * M] or null
  float* y;
  index_t y_img, y_grp;
  bool relu;
  Precision precision;

  template <typename MakeB>
  void run(MakeB make_b) const {
    const int nt = get_num_threads();
    const index_t items = N * G;
    const GroupWeights packed(a, G, M, g.rows(), false, precision);
    auto item = [&](index_t n, index_t grp, int threads, float* ws) {
      GemmOutput out;
      out.c = y + n * y_img + grp * y_grp;
      out.ldc = g.cols();
      out.bias_row = bias ? bias + grp * M : nullptr;
      out.relu = relu;
      gemm(M, g.cols(), g.rows(), packed[grp], make_b(x + n * x_img + grp * x_grp), out, threads,
           ws, precision);
    };
    if (items >= nt && nt > 1) {
      const std::size_t per = gemm_workspace_floats(M, g.cols(), g.rows(), 1, precision);
      float* ws = thread_workspace(1, per * nt);
      parallel_for(nt, items,
                   [&](index_t it) { item(it / G, it % G, 1, ws + per * current_thread()); });
    } else {
      for (index_t it = 0; it < items; ++it) item(it / G, it % G, nt, nullptr);
    }
  }
};

// The forward convolution p (or backward data's view of it) as a GroupedImageGemm.
GroupedImageGemm forward_gemms(const Conv2dParams& p, const float* src, const float* weights,
                               const float* bias, float* dst, bool relu);

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
    parallel_team(nt, [&](int t, int) {
      float* part = ws + per * t;
      double* dbt = bias_sums ? db.data() + std::size_t(t) * p.K : nullptr;
      index_t b, e;
      team_range(runs, &b, &e);
      for (index_t r = b; r < e; ++r) {
        const index_t n0 = r * imgs, count = std::min(imgs, p.N - n0);
        for (index_t grp = 0; grp < p.groups; ++grp) {
          item(n0, count, grp, part, dbt, 1, part + wsize);
        }
      }
      team_barrier();
      team_range(wsize, &b, &e);
      for (index_t i = b; i < e; ++i) {
        float s = 0;
        for (int u = 0; u < nt; ++u) s += ws[per * u + i];
        diff_weights[i] = s;
      }
    });
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

}  // namespace cnnkit
