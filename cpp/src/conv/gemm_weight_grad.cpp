// Weight gradient by the GEMM engine: per group g, summed over the images n,
//   dW[g] [Kg x CgFF] = sum_n dY[n,g] [Kg x HoWo] @ P(X[n,g])^T [HoWo x CgFF],
// with P^T packed straight from the image (ImagePatchesTB: patch rows gathered, then
// transposed into panels; a 1x1 layer's image is P itself, read as a transposed matrix).
// The reduction runs along the pixels inside the GEMM; images are summed per thread and the
// partials added in thread order (accumulate_weight_grad). Any shape; best for many patch
// rows (AlexNet conv2-5, VGG), where the micro-kernel's register tile beats dot products.
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {

bool gemm_backward_weights_applies(const Conv2dParams&, const ConvPolicy&) { return true; }

void gemm_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                           float* diff_weights, float* diff_bias) {
  if (diff_bias) bias_grad(p, diff_dst, diff_bias);
  const PatchGeom g = forward_geom(p);
  const index_t Cg = p.C / p.groups, Kg = p.K / p.groups, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const index_t rows = g.rows();
  const std::size_t gws = gemm_workspace_floats(Kg, rows, HoWo, 1, p.precision);
  accumulate_weight_grad(
      p, 1, diff_weights, nullptr, gws,
      [&](index_t n, index_t, index_t grp, float* dw, double*, int threads, float* ws) {
        GemmOutput out;
        out.c = dw + grp * Kg * rows;
        out.ldc = rows;
        out.beta = 1.0f;
        const MatrixOperandA dya(diff_dst + n * p.K * HoWo + grp * Kg * HoWo, HoWo, false);
        const float* x = src + n * p.C * HW + grp * Cg * HW;
        float* gw = threads == 1 ? ws : nullptr;
        if (g.is_pointwise()) {
          gemm(Kg, rows, HoWo, dya, MatrixOperandB(x, HW, true), out, threads, gw, p.precision);
        } else {
          gemm(Kg, rows, HoWo, dya, ImagePatchesTB(x, g), out, threads, gw, p.precision);
        }
      });
}

}  // namespace cnnkit
