// Normalisation layers: batch normalisation ([N, C] or [N, C, H, W]), local response
// normalisation across channels, group and layer normalisation. The maths is at the top of
// src/norm/batch_norm.cpp, src/norm/lrn.cpp and src/norm/row_norm.cpp.
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

// Training: normalises with the batch mean and biased variance, writes save_mean[C] (double:
// the backward needs the mean to better than float precision when |mean| >> std) and
// save_invstd[C] = 1 / sqrt(var + eps), and, when given, updates running_mean/running_var in
// place with momentum (running_var takes the unbiased variance). weight/bias may be null (1/0).
// With relu_mask (S > 1 only): a fused ReLU, dst = max(y, 0), and relu_mask records y > 0 as
// bits, ceil(S / 16) 16-bit words per (n, c) plane (bn_relu_mask_words), for the backward.
void batch_norm_forward_train(const BatchNormParams& p, const float* src, const float* weight,
                              const float* bias, float* running_mean, float* running_var,
                              float* dst, double* save_mean, float* save_invstd,
                              std::uint16_t* relu_mask = nullptr);
inline index_t bn_relu_mask_words(const BatchNormParams& p) {
  return p.N * p.C * ((p.S + 15) / 16);
}
// Inference: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
void batch_norm_forward_eval(const BatchNormParams& p, const float* src, const float* weight,
                             const float* bias, const float* running_mean, const float* running_var,
                             float* dst);
// Backward of the training forward: diff_src, diff_weight[C] and diff_bias[C] (the last two
// are always computed; they are sums over N and S).
// With relu_mask (from the fused forward): the gradient of relu(batch_norm(x)).
void batch_norm_backward(const BatchNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias,
                         const std::uint16_t* relu_mask = nullptr);
// Backward of the eval forward (fixed running statistics); diff_src may be null.
void batch_norm_backward_eval(const BatchNormParams& p, const float* diff_dst, const float* src,
                              const float* weight, const float* running_mean,
                              const float* running_var, float* diff_src, float* diff_weight,
                              float* diff_bias);

// The training forward and backward in stages, for statistics summed over several processes
// between the stages (SyncBatchNorm); `count` is the number of values per channel in all.
// sums[2 * C]: sums[c] = sum(x - shift[c]), sums[C + c] = sum((x - shift[c])^2), in double
// (shift null: 0; a shift near the channel's mean keeps the variance accurate).
void batch_norm_stats(const BatchNormParams& p, const float* src, const float* shift, double* sums);
// batch_norm_forward_train's outputs and running-statistics update, from summed stats.
void batch_norm_forward_from_stats(const BatchNormParams& p, const float* src, const float* weight,
                                   const float* bias, const double* sums, double count,
                                   const float* shift, float* running_mean, float* running_var,
                                   float* dst, double* save_mean, float* save_invstd);
// sums[2 * C]: sums[c] = sum(dy), sums[C + c] = sum(dy (x - mean)); diff_weight and diff_bias
// are this process's sums (r sum(dy (x - mean)) and sum(dy)).
void batch_norm_backward_reduce(const BatchNormParams& p, const float* diff_dst, const float* src,
                                const double* save_mean, const float* save_invstd, double* sums,
                                float* diff_weight, float* diff_bias);
// diff_src from the sums of batch_norm_backward_reduce over all processes.
void batch_norm_backward_apply(const BatchNormParams& p, const float* diff_dst, const float* src,
                               const float* weight, const double* save_mean,
                               const float* save_invstd, const double* sums, double count,
                               float* diff_src);

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

// Group and layer normalisation both normalise contiguous rows of x (row_norm.cpp); the
// statistics of row r are save_mean[r] (double, as batch norm's) and save_invstd[r] =
// 1 / sqrt(var + eps) (biased variance). weight/bias may be null (1 / 0); in the backward,
// diff_weight/diff_bias may be null (not computed; both or neither).

// x viewed as [N, C, S] (S = the product of the dims after C); G groups of C / G channels:
// row (n, g) is the (C / G) * S contiguous floats of those channels, affine per channel.
struct GroupNormParams {
  index_t N = 0, C = 0, S = 1, G = 1;
  float eps = 1e-5f;
};
void validate(const GroupNormParams& p);
// save_mean, save_invstd: [N, G].
void group_norm_forward(const GroupNormParams& p, const float* src, const float* weight,
                        const float* bias, float* dst, double* save_mean, float* save_invstd);
void group_norm_backward(const GroupNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias);

// x viewed as [rows, L], L = the product of the normalised trailing dims; affine per element
// (weight, bias: L floats).
struct LayerNormParams {
  index_t rows = 0, L = 1;
  float eps = 1e-5f;
};
void validate(const LayerNormParams& p);
// save_mean, save_invstd: [rows].
void layer_norm_forward(const LayerNormParams& p, const float* src, const float* weight,
                        const float* bias, float* dst, double* save_mean, float* save_invstd);
void layer_norm_backward(const LayerNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias);

}  // namespace cnnkit
