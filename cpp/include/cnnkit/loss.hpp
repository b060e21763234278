// Softmax, log-softmax and losses over [N, C] rows (see src/loss/loss.cpp for the maths).
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

void softmax_forward(index_t N, index_t C, const float* src, float* dst);
void softmax_backward(index_t N, index_t C, const float* diff_dst, const float* dst,
                      float* diff_src);
void log_softmax_forward(index_t N, index_t C, const float* src, float* dst);
void log_softmax_backward(index_t N, index_t C, const float* diff_dst, const float* dst,
                          float* diff_src);

// Throws std::invalid_argument naming the first label outside [0, C) and C.
void validate_targets(const char* op, index_t N, index_t C, const index_t* target);

// Throws std::invalid_argument naming `op`, label_smoothing and its value unless it is in
// [0, 1] (NaN is refused).
void validate_label_smoothing(const char* op, double label_smoothing);

// Mean over N of (1 - eps) (-log softmax(x)[n, target[n]]) + eps mean_k(-log softmax(x)[n, k]),
// eps = label_smoothing (PyTorch's); probs[N, C] = softmax(x) for the backward.
double cross_entropy_forward(index_t N, index_t C, const float* logits, const index_t* target,
                             float* probs, double label_smoothing = 0.0);
// diff_src = grad (probs - ((1 - eps) onehot(target) + eps / C)) / N.
void cross_entropy_backward(index_t N, index_t C, const float* probs, const index_t* target,
                            float grad, float* diff_src, double label_smoothing = 0.0);

// PyTorch's multi_margin_loss (p = 1): mean over n of sum_{j != y} max(0, margin - x_y + x_j) / C.
double multi_margin_loss_forward(index_t N, index_t C, const float* src, const index_t* target,
                                 float margin);
void multi_margin_loss_backward(index_t N, index_t C, const float* src, const index_t* target,
                                float margin, float grad, float* diff_src);

// Mean squared error over n elements and its gradient grad * 2 (x - y) / n.
double mse_loss_forward(index_t n, const float* x, const float* y);
void mse_loss_backward(index_t n, const float* x, const float* y, float grad, float* diff_src);

}  // namespace cnnkit
