// Normalisation layers: batch normalisation ([N, C] or [N, C, H, W]) and local response
// normalisation across channels. The maths is at the top of src/norm/batch_norm.cpp and
// src/norm/lrn.cpp.
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

// x viewed as [N, C, S] (S = H * W, or 1 for [N, C]).
struct BatchNormParams {
  index_t N = 0, C = 0, S = 1;
  float momentum = 0.1f;
  float eps = 1e-5f;
};
void validate(const BatchNormParams& p, bool training);

// Training: normalises with the batch mean and biased variance, writes save_mean[C] and
// save_invstd[C] = 1 / sqrt(var + eps), and, when given, updates running_mean/running_var in
// place with momentum (running_var takes the unbiased variance). weight/bias may be null (1/0).
// With relu_mask (S > 1 only): a fused ReLU, dst = max(y, 0), and relu_mask records y > 0 as
// bits, ceil(S / 16) 16-bit words per (n, c) plane (bn_relu_mask_words), for the backward.
void batch_norm_forward_train(const BatchNormParams& p, const float* src, const float* weight,
                              const float* bias, float* running_mean, float* running_var,
                              float* dst, float* save_mean, float* save_invstd,
                              std::uint16_t* relu_mask = nullptr);
inline index_t bn_relu_mask_words(const BatchNormParams& p) {
  return p.N * p.C * ((p.S + 15) / 16);
}
// Inference: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
void batch_norm_forward_eval(const BatchNormParams& p, const float* src, const float* weight,
                             const float* bias, const float* running_mean,
                             const float* running_var, float* dst);
// Backward of the training forward: diff_src, diff_weight[C] and diff_bias[C] (the last two
// are always computed; they are sums over N and S).
// With relu_mask (from the fused forward): the gradient of relu(batch_norm(x)).
void batch_norm_backward(const BatchNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const float* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias,
                         const std::uint16_t* relu_mask = nullptr);

// x viewed as [N, C, S] with S = the product of the dims after C.
struct LrnParams {
  index_t N = 0, C = 0, S = 1;
  index_t size = 5;
  float alpha = 1e-4f, beta = 0.75f, k = 1.0f;
};
void validate(const LrnParams& p);
// dst = src * scale^-beta, scale = k + alpha / size * (sum of squares over the channel window).
void lrn_forward(const LrnParams& p, const float* src, float* dst, float* scale);
void lrn_backward(const LrnParams& p, const float* diff_dst, const float* src, const float* dst,
                  const float* scale, float* diff_src);

}  // namespace cnnkit
