/* Softmax family and losses over rows x[n, :] of C logits (N rows).
 *
 *   softmax:     y_j = exp(x_j - m) / sum_k exp(x_k - m),  m = max_k x_k  (no overflow)
 *                dx_j = y_j (dy_j - sum_k dy_k y_k)
 *   log_softmax: y_j = x_j - m - log sum_k exp(x_k - m)                    (log-sum-exp)
 *                dx_j = dy_j - exp(y_j) sum_k dy_k
 *   cross-entropy (mean over the batch, labels t_n in [0, C), label smoothing e in [0, 1]):
 *                q_n = (1 - e) onehot(t_n) + e / C                  (the smoothed target)
 *                L = -(1/N) sum_n sum_k q_{n,k} log softmax(x_n)_k
 *                  = (1/N) sum_n (1 - e) (lse_n - x_{n,t_n}) + e (lse_n - mean_k x_{n,k})
 *                dL/dx_n = grad (softmax(x_n) - q_n) / N            (softmax saved by forward)
 *                (lse = log sum_k exp x_k; e = 0 is the plain loss, computed without the
 *                smoothing term, so its results do not change)
 *   multi_margin_loss (p = 1, as PyTorch):
 *                L = (1/N) sum_n sum_{j != t_n} max(0, margin - x_{n,t_n} + x_{n,j}) / C
 *                dL/dx_{n,j} = grad / (N C) [margin - x_t + x_j > 0]           (j != t_n)
 *                dL/dx_{n,t} = -grad / (N C) #{j != t_n : margin - x_t + x_j > 0}
 *   mse:         L = (1/n) sum (x - y)^2,  dL/dx = grad 2 (x - y) / n
 *
 * Row sums run in a fixed order (double where a row or the batch is summed into the loss), and
 * the batch mean is reduced from per-row values in row order: results do not depend on the
 * thread count.
 */
#include "cnnkit/loss.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "loss/loss_kernels.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace {

index_t min_rows(index_t C) { return std::max<index_t>(1, 16384 / std::max<index_t>(1, C)); }

// The shift for a stable softmax: max_j x[j] (0 when it is infinite, so x - m stays defined).
// 16 interleaved running maxima: the compiler keeps them in vector registers (one running max is
// a chain of dependent compares). NaN entries are skipped, as by std::max(m, x).
float row_max(const float* x, index_t C) {
  float lanes[16];
  for (float& v : lanes) v = -INFINITY;
  index_t j = 0;
  for (; j + 16 <= C; j += 16) {
    for (int l = 0; l < 16; ++l) lanes[l] = x[j + l] > lanes[l] ? x[j + l] : lanes[l];
  }
  float m = -INFINITY;
  for (float v : lanes) m = v > m ? v : m;
  for (; j < C; ++j) m = x[j] > m ? x[j] : m;
  return std::isinf(m) ? 0.0f : m;
}

}  // namespace

double exp_shift_sum_ref(const float* x, float* y, std::int64_t n, float shift) {
  double s = 0.0;
  for (std::int64_t j = 0; j < n; ++j) {
    y[j] = std::exp(x[j] - shift);
    s += y[j];
  }
  return s;
}

void softmax_forward(index_t N, index_t C, const float* src, float* dst) {
  const ExpShiftSum exp_shift = kernels().loss.exp_shift_sum;
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* x = src + n * C;
      float* y = dst + n * C;
      const double s = exp_shift(x, y, C, row_max(x, C));
      const float inv = float(1.0 / s);
      for (index_t j = 0; j < C; ++j) y[j] *= inv;
    }
  });
}

void softmax_backward(index_t N, index_t C, const float* diff_dst, const float* dst,
                      float* diff_src) {
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* dy = diff_dst + n * C;
      const float* y = dst + n * C;
      double dot = 0.0;
      for (index_t j = 0; j < C; ++j) dot += double(dy[j]) * y[j];
      const float d = float(dot);
      for (index_t j = 0; j < C; ++j) diff_src[n * C + j] = y[j] * (dy[j] - d);
    }
  });
}

void log_softmax_forward(index_t N, index_t C, const float* src, float* dst) {
  const ExpShiftSum exp_shift = kernels().loss.exp_shift_sum;
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* x = src + n * C;
      float* y = dst + n * C;
      const float m = row_max(x, C);
      const float lse = float(std::log(exp_shift(x, y, C, m)));  // y is scratch here
      for (index_t j = 0; j < C; ++j) y[j] = (x[j] - m) - lse;
    }
  });
}

void log_softmax_backward(index_t N, index_t C, const float* diff_dst, const float* dst,
                          float* diff_src) {
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* dy = diff_dst + n * C;
      const float* y = dst + n * C;
      double s = 0.0;
      for (index_t j = 0; j < C; ++j) s += dy[j];
      const float sf = float(s);
      for (index_t j = 0; j < C; ++j) diff_src[n * C + j] = dy[j] - std::exp(y[j]) * sf;
    }
  });
}

void validate_targets(const char* op, index_t N, index_t C, const index_t* target) {
  for (index_t n = 0; n < N; ++n) {
    if (target[n] < 0 || target[n] >= C) {
      throw_invalid(op, ": target label ", target[n], " (at index ", n, ") is out of range for ", C,
                    " classes (expected 0 <= label < ", C, ")");
    }
  }
}

void validate_label_smoothing(const char* op, double label_smoothing) {
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    throw_invalid(op, ": label_smoothing must be in [0, 1] (0 <= label_smoothing <= 1), got ",
                  label_smoothing);
  }
}

double cross_entropy_forward(index_t N, index_t C, const float* logits, const index_t* target,
                             float* probs, double label_smoothing) {
  validate_targets("cross_entropy", N, C, target);
  validate_label_smoothing("cross_entropy", label_smoothing);
  if (N == 0) return NAN;  // PyTorch: mean over an empty batch
  const ExpShiftSum exp_shift = kernels().loss.exp_shift_sum;
  const double eps = label_smoothing;
  std::vector<double> row(N);
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      // One exp per logit: p = exp(x - m), s = sum p (double), loss = log s - (x_t - m).
      const float* x = logits + n * C;
      float* p = probs + n * C;
      const float m = row_max(x, C);
      const double s = exp_shift(x, p, C, m);
      const double lse = std::log(s);
      row[n] = lse - double(x[target[n]] - m);
      if (eps != 0.0) {
        // -mean_k log softmax(x)_k = lse - mean_k (x_k - m); the shifted logits as in the
        // nll term, summed in double in index order
        double sx = 0.0;
        for (index_t j = 0; j < C; ++j) sx += double(x[j] - m);
        row[n] = (1.0 - eps) * row[n] + eps * (lse - sx / double(C));
      }
      const float inv = float(1.0 / s);
      for (index_t j = 0; j < C; ++j) p[j] *= inv;
    }
  });
  double s = 0.0;
  for (index_t n = 0; n < N; ++n) s += row[n];
  return s / double(N);
}

void cross_entropy_backward(index_t N, index_t C, const float* probs, const index_t* target,
                            float grad, float* diff_src, double label_smoothing) {
  validate_targets("cross_entropy", N, C, target);
  validate_label_smoothing("cross_entropy", label_smoothing);
  if (N == 0) return;
  const float g = grad / float(N);
  // the smoothed target q: `off` off the label, `on` at it (e = 0: 0 and 1, the plain loss
  // bit for bit, since p - 0 = p)
  const float off = float(label_smoothing / double(C));
  const float on = float(1.0 - label_smoothing + label_smoothing / double(C));
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      for (index_t j = 0; j < C; ++j) diff_src[n * C + j] = g * (probs[n * C + j] - off);
      diff_src[n * C + target[n]] = g * (probs[n * C + target[n]] - on);
    }
  });
}

double multi_margin_loss_forward(index_t N, index_t C, const float* src, const index_t* target,
                                 float margin) {
  validate_targets("multi_margin_loss", N, C, target);
  if (N == 0) return NAN;
  std::vector<double> row(N);
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* x = src + n * C;
      const float xt = x[target[n]];
      double s = 0.0;
      for (index_t j = 0; j < C; ++j) {
        if (j == target[n]) continue;
        const float z = margin - xt + x[j];
        if (z > 0.0f) s += z;
      }
      row[n] = s / double(C);
    }
  });
  double s = 0.0;
  for (index_t n = 0; n < N; ++n) s += row[n];
  return s / double(N);
}

void multi_margin_loss_backward(index_t N, index_t C, const float* src, const index_t* target,
                                float margin, float grad, float* diff_src) {
  validate_targets("multi_margin_loss", N, C, target);
  if (N == 0) return;
  const float g = float(double(grad) / (double(N) * double(C)));
  parallel_ranges(N, min_rows(C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const float* x = src + n * C;
      float* dx = diff_src + n * C;
      const index_t t = target[n];
      const float xt = x[t];
      index_t active = 0;
      for (index_t j = 0; j < C; ++j) {
        const bool on = j != t && margin - xt + x[j] > 0.0f;
        dx[j] = on ? g : 0.0f;
        active += on;
      }
      dx[t] = -g * float(active);
    }
  });
}

double mse_loss_forward(index_t n, const float* x, const float* y) {
  if (n == 0) return NAN;
  const int nt = threads_for(n, 65536);
  std::vector<double> part(std::max(1, nt), 0.0);
  parallel_ranges_on(nt, n, [&](index_t b, index_t e) {
    double s = 0.0;
    for (index_t i = b; i < e; ++i) {
      const double d = double(x[i]) - double(y[i]);
      s += d * d;
    }
    part[current_thread()] = s;
  });
  double s = 0.0;
  for (double v : part) s += v;  // per-thread partials in thread order: deterministic
  return s / double(n);
}

void mse_loss_backward(index_t n, const float* x, const float* y, float grad, float* diff_src) {
  if (n == 0) return;
  const float g = float(2.0 * double(grad) / double(n));
  parallel_ranges(n, 65536, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) diff_src[i] = g * (x[i] - y[i]);
  });
}

}  // namespace cnnkit
