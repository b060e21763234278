// Fully connected layer y = x W^T + b on the GEMM engine (see src/linear/linear.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cnnkit/common.hpp"

namespace cnnkit {

struct LinearParams {
  index_t N = 0, in = 0, out = 0;  // x [N, in], weight [out, in], y [N, out]
  // bf16 (autocast): each product's two operands rounded to bf16, fp32 sums; bias in fp32.
  Precision precision = Precision::fp32;
  // bf16 only: the weights already packed by linear_pack_bf16 (PrepackedB::values(in, out)
  // values), read in place instead of packed per call; null: pack them.
  const std::uint16_t* packed_weights = nullptr;
};

// The weights [out, in] as the bf16 engine's B panels of W^T (for an inference cache).
std::size_t linear_packed_values(const LinearParams& p);
void linear_pack_bf16(const LinearParams& p, const float* weights, std::uint16_t* packed);
void validate(const LinearParams& p);
// bias may be null.
void linear_forward(const LinearParams& p, const float* src, const float* weights,
                    const float* bias, float* dst);
// diff_src may be null (not needed, e.g. first layer); diff_bias may be null.
void linear_backward(const LinearParams& p, const float* diff_dst, const float* src,
                     const float* weights, float* diff_src, float* diff_weights, float* diff_bias);

}  // namespace cnnkit
