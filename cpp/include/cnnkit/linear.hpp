// Fully connected layer y = x W^T + b on the GEMM engine (see src/linear/linear.cpp).
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

struct LinearParams {
  index_t N = 0, in = 0, out = 0;  // x [N, in], weight [out, in], y [N, out]
  // bf16 (autocast): each product's two operands rounded to bf16, fp32 sums; bias in fp32.
  Precision precision = Precision::fp32;
};
void validate(const LinearParams& p);
// bias may be null.
void linear_forward(const LinearParams& p, const float* src, const float* weights,
                    const float* bias, float* dst);
// diff_src may be null (not needed, e.g. first layer); diff_bias may be null.
void linear_backward(const LinearParams& p, const float* diff_dst, const float* src,
                     const float* weights, float* diff_src, float* diff_weights, float* diff_bias);

}  // namespace cnnkit
