// SGD with momentum, PyTorch's rule, as one pass over the parameter, gradient and buffer:
//   g <- -g if maximize;  g <- g + wd p
//   b <- g (first step) or b <- momentum b + (1 - dampening) g
//   g <- g + momentum b (Nesterov) or g <- b
//   p <- p - lr g
// Each line rounds to float32 in the same order as the numpy formulation (baseline x86-64 has
// no FMA to contract into, and the build never uses -ffast-math), so the result is the same
// as the reference, bit for bit. The numpy version made temporaries for every line: 378 ms of
// an AlexNet step went into it; this is one read and write of each array.
#include "cnnkit/optim.hpp"

#include "runtime/parallel.hpp"

namespace cnnkit {

void sgd_update(const SgdParams& s, index_t n, float* param, const float* grad, float* buf) {
  const float wd = s.weight_decay, m = s.momentum, keep = 1.0f - s.dampening, lr = s.lr;
  const bool use_buf = m != 0.0f;
  parallel_ranges(n, 1 << 15, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) {
      float g = s.maximize ? -grad[i] : grad[i];
      if (wd != 0.0f) g = g + wd * param[i];
      if (use_buf) {
        const float v = s.first ? g : buf[i] * m + keep * g;
        buf[i] = v;
        g = s.nesterov ? g + m * v : v;
      }
      param[i] = param[i] - lr * g;
    }
  });
}

}  // namespace cnnkit
