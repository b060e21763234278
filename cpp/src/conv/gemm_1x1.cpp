// 1x1 convolution, stride 1, no padding: the patch matrix is the image itself, so per image n
// and group g the forward pass is one plain GEMM,
//   Y[n,g] [Kg x HW] = W[g] [Kg x Cg] @ X[n,g] [Cg x HW] + b,
// with B read as a matrix (row-contiguous: packed by copies, or read in place for small
// problems) instead of gathered as patches. ResNet's bottleneck layers.
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {

bool gemm_1x1_forward_applies(const Conv2dParams& p, const ConvPolicy&) {
  return forward_geom(p).is_pointwise();
}

void gemm_1x1_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) {
  const GroupedImageGemm gemms = forward_gemms(p, src, weights, bias, dst, relu);
  gemms.run([&](const float* x) { return MatrixOperandB(x, p.H * p.W, false); });
}

}  // namespace cnnkit
