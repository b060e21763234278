// Implicit GEMM forward convolution: per image n and group g,
//   Y[n,g] [Kg x HoWo] = W[g] [Kg x CgFF] @ P(X[n,g]) [CgFF x HoWo] + b,
// where the GEMM engine packs the patch matrix P straight from the image, panel by panel
// (ImagePatchesB, image_operands.cpp): im2col's data movement without its column matrix, so
// memory does not grow with the batch. It takes any shape, stride, padding, dilation and
// groups; the list puts it after the special cases that beat it (depthwise, Winograd, 1x1).
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {

bool implicit_gemm_forward_applies(const Conv2dParams&, const ConvPolicy&) { return true; }

void implicit_gemm_forward(const Conv2dParams& p, const float* src, const float* weights,
                           const float* bias, float* dst, bool relu) {
  const GroupedImageGemm gemms = forward_gemms(p, src, weights, bias, dst, relu);
  gemms.run([&](const float* x) { return ImagePatchesB(x, gemms.g); });
}

}  // namespace cnnkit
