// Optimizer updates over flat float32 parameter arrays (one fused pass each).
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

struct SgdParams {
  float lr = 0.0f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false, maximize = false;
  bool first = false;  // the momentum buffer is initialised with this step's gradient
};

// PyTorch's SGD step, in place on param (and buf when momentum != 0; buf may be null otherwise).
void sgd_update(const SgdParams& p, index_t n, float* param, const float* grad, float* buf);

}  // namespace cnnkit
