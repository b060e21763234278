// Weight gradient as dot products along the pixels: for every output channel k and patch row
// r = (c, fy, fx) of group g,
//   dW[k][r] = sum over images n and pixels j of dY[n,k][j] * P(X[n,g])[r][j],
//   db[k]    = sum over n, j of dY[n,k][j]   (summed in the same pass over dY),
// where dY rows are contiguous along j and patch rows are gathered contiguous, so a tile of
// dot products (dot_nt_tile: dot_mr dY rows x dot_nr patch rows, reduced once at the end)
// reads both in place with no transposition. Small images are taken several at a time so the
// dot products stay long. Wins for few patch rows (first layers, 1x1, CIFAR 3x3); with many
// (AlexNet conv2-5, VGG) the GEMM formulation's register tile is faster (measured).
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "runtime/kernel_table.hpp"
#include "util/reduce.hpp"

namespace cnnkit {
namespace {

// The weight gradient takes the dot-product path when it gets dot products at least this long
// (pixels of one or several images) ...
constexpr index_t kMinPixelsForDotWeightGrad = 512;
// ... and layers with more patch rows than this (C F F) take the GEMM path too (measured: the
// GEMM wins on AlexNet conv2-5 and VGG, the dot products on first layers, 1x1 and CIFAR 3x3).
constexpr index_t kMaxRowsForDotWeightGrad = 640;
// In bf16 on AMX, layers with fewer output channels than the tiles' 32-row A panels take the
// dot products (fp32 on the rounded operands) instead.
constexpr index_t kAmxPanelRows = 32;

// Dot products run along k = pixels of `imgs` images at a time (so small images still give
// long dot products); k is capped so the Kg x k block of dY stays in L2.
struct DotPlan {
  index_t imgs = 1, chunk = 0;
  bool use = false;
};

DotPlan plan_dot(const Conv2dParams& p, int nt) {
  const index_t Kg = p.K / p.groups, rows = forward_geom(p).rows(), HoWo = p.Ho * p.Wo;
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

void dot_weight_grad(const Conv2dParams& p, const DotPlan& plan, const float* diff_dst,
                     const float* src, float* diff_weights, double* bias_sums) {
  const PatchGeom g = forward_geom(p);
  const index_t Cg = p.C / p.groups, Kg = p.K / p.groups, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const index_t rows = g.rows();
  const GemmKernels& kt = kernels().gemm;
  const bool pointwise = g.is_pointwise();
  const index_t chunk = plan.chunk;
  // Row stride of the gathered rows: a multiple of 16 floats but not of 256 (1 KB). The dot
  // tile streams 4 dY rows and 6 patch rows; if all ten sat a multiple of 4 KB apart they
  // would share L1 sets and evict each other (measured: half the speed at 32x32 outputs).
  index_t ld = (chunk + 15) / 16 * 16;
  if (ld % 256 == 0) ld += 16;
  // Several images per dot product: their dY rows are copied side by side (padded stride).
  // bf16: dY rows are always copied, rounded to bf16 (and the gathered patch rows rounded in
  // place), chunk by chunk while they are in cache: no rounded copy of the whole tensor.
  const bool bf16 = p.precision != Precision::fp32;
  const bool copy_dy = plan.imgs > 1 || bf16;
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
          if (bf16) kt.round_bf16_f32(dst, len, dst);
        }
        const float* dy = diff_dst + n * p.K * HoWo + grp * Kg * HoWo + pix;
        for (index_t k = 0; k < Kg; ++k) {
          float* to = a_buf + k * ld + (j - j0);
          if (bf16) {
            kt.round_bf16_f32(dy + k * HoWo, len, to);
          } else if (copy_dy) {
            std::memcpy(to, dy + k * HoWo, sizeof(float) * len);
          }
          if (db) db[grp * Kg + k] += sum_floats(dy + k * HoWo, len);  // dY unrounded
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
  accumulate_weight_grad(
      p, plan.imgs, diff_weights, bias_sums, tsize,
      [&](index_t n0, index_t count, index_t grp, float* dw, double* db, int threads, float* t) {
        if (threads == 1) {
          run(n0, count, grp, 0, rows, dw, db, t);
          return;
        }
        // Few images: threads split the patch rows (disjoint columns of dW, no reduction).
        const index_t blocks = (rows + kt.dot_nr - 1) / kt.dot_nr;
        parallel_team(threads, [&](int u, int team) {
          const index_t b0 = blocks * u / team, b1 = blocks * (u + 1) / team;
          run(n0, count, grp, b0 * kt.dot_nr, std::min(rows, b1 * kt.dot_nr), dw,
              u == 0 ? db : nullptr, t + tsize * u);  // every thread copies dY; one sums it
        });
      });
}

}  // namespace

bool dot_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  // fp32 kernels; bf16 on rounded operands where the CPU has no AMX (as Winograd), or where
  // the layer has fewer output channels than an AMX panel's 32 rows (measured on LeNet-5's
  // 6 and 16: 330 / 493 us here against 647 / 670 on the tiles)
  return (p.precision == Precision::fp32 || policy.kernels->bf16_direct_blocks == nullptr ||
          p.K / p.groups < kAmxPanelRows) &&
         plan_dot(p, policy.threads).use;
}

void dot_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                          float* diff_weights, float* diff_bias) {
  const DotPlan plan = plan_dot(p, get_num_threads());
  std::vector<double> db(diff_bias ? std::size_t(p.K) : 0);
  dot_weight_grad(p, plan, diff_dst, src, diff_weights, diff_bias ? db.data() : nullptr);
  if (diff_bias) {
    for (index_t k = 0; k < p.K; ++k) diff_bias[k] = float(db[std::size_t(k)]);
  }
}

}  // namespace cnnkit
