// Stride-1 backward data as a transposed convolution: with stride 1, every dX pixel gathers
// the dY pixels its taps reached, which is itself a convolution,
//   dX[n,g] = conv(dY[n,g], W'[g]),  W'[g][c][(k, fy, fx)] = W[g Kg + k][c][Fh-1-fy][Fw-1-fx],
// with K and C swapped and padding D(F-1)-P. So it runs the forward GEMM algorithms on dY
// (1x1 GEMM or implicit GEMM): no dP buffer and no col2im scatter. Needs enough input
// channels per group to fill the micro-kernel's rows (kMinRowsForTransposedConv); a strided
// convolution's gradient is not a convolution, and goes to GEMM + col2im.
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {

bool transposed_conv_backward_data_applies(const Conv2dParams& p, const ConvPolicy&) {
  return backward_data_as_forward(p);
}

void transposed_conv_backward_data(const Conv2dParams& p, const float* diff_dst,
                                   const float* weights, float* diff_src) {
  const std::vector<float> wt = rotated_weights(p, weights);
  const Conv2dParams t = as_forward_of_diff_dst(p);
  if (forward_geom(t).is_pointwise()) {
    gemm_1x1_forward(t, diff_dst, wt.data(), nullptr, diff_src, false);
  } else {
    implicit_gemm_forward(t, diff_dst, wt.data(), nullptr, diff_src, false);
  }
}

}  // namespace cnnkit
