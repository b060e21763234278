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

// Mean over N of -log softmax(x)[n, target[n]]; probs[N, C] = softmax(x) for the backward.
double cross_entropy_forward(index_t N, index_t C, const float* logits, const index_t* target,
                             float* probs);
// diff_src = grad (probs - onehot(target)) / N.
void cross_entropy_backward(index_t N, index_t C, const float* probs, const index_t* target,
                            float grad, float* diff_src);

// PyTorch's multi_margin_loss (p = 1): mean over n of sum_{j != y} max(0, margin - x_y + x_j) / C.
double multi_margin_loss_forward(index_t N, index_t C, const float* src, const index_t* target,
                                 float margin);
void multi_margin_loss_backward(index_t N, index_t C, const float* src, const index_t* target,
                                float margin, float grad, float* diff_src);

// Mean squared error over n elements and its gradient grad * 2 (x - y) / n.
double mse_loss_forward(index_t n, const float* x, const float* y);
void mse_loss_backward(index_t n, const float* x, const float* y, float grad, float* diff_src);

}  // namespace cnnkit
