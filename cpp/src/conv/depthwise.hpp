// Direct depthwise convolution (groups == C), used by conv2d_* for that case.
#pragma once

#include "cnnkit/conv.hpp"

namespace cnnkit {

bool depthwise_supported(const Conv2dParams& p);
inline bool is_depthwise(const Conv2dParams& p) {
  return p.groups == p.C && p.groups > 1 && depthwise_supported(p);
}

void depthwise_forward(const Conv2dParams& p, const float* src, const float* weights,
                       const float* bias, float* dst, bool relu);
void depthwise_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                             float* diff_src);
void depthwise_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                                float* diff_weights);

}  // namespace cnnkit
