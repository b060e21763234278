// Element-wise activations (any shape, n contiguous floats) and maxout, forward and backward.
// Semantics as PyTorch's; the maths is at the top of src/activation/activation.cpp.
#pragma once

#include <cstdint>

#include "cnnkit/common.hpp"

namespace cnnkit {

void relu_forward(const float* src, float* dst, index_t n);
void relu_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n);
void leaky_relu_forward(const float* src, float* dst, index_t n, float negative_slope);
void leaky_relu_backward(const float* diff_dst, const float* src, float* diff_src, index_t n,
                         float negative_slope);
void elu_forward(const float* src, float* dst, index_t n, float alpha);
void elu_backward(const float* diff_dst, const float* src, const float* dst, float* diff_src,
                  index_t n, float alpha);
void sigmoid_forward(const float* src, float* dst, index_t n);
void sigmoid_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n);
void tanh_forward(const float* src, float* dst, index_t n);
void tanh_backward(const float* diff_dst, const float* dst, float* diff_src, index_t n);

// Maxout: src [N, C, S] -> dst [N, C / pieces, S] (S = product of the trailing dims),
// argmax[N, C / pieces, S] = which piece (first maximum) won.
struct MaxoutParams {
  index_t N = 0, C = 0, S = 1;
  index_t pieces = 1;
};
void validate(const MaxoutParams& p);
void maxout_forward(const MaxoutParams& p, const float* src, float* dst, std::uint8_t* argmax);
void maxout_backward(const MaxoutParams& p, const float* diff_dst, const std::uint8_t* argmax,
                     float* diff_src);

}  // namespace cnnkit
