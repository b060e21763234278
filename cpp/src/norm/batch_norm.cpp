/* Batch normalisation over x[N, C, S] (S = H * W, or 1 for [N, C]); M = N * S values per channel.
 *
 * Training forward (per channel c):
 *   mu = sum(x) / M,  var = sum((x - mu)^2) / M  (biased),  r = 1 / sqrt(var + eps)
 *   xhat = (x - mu) r,  y = gamma xhat + beta
 *   running_mean <- (1 - m) running_mean + m mu
 *   running_var  <- (1 - m) running_var + m var M / (M - 1)   (unbiased, as PyTorch)
 * Eval forward: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta.
 * Backward (training statistics):
 *   dbeta = sum(dy),  dgamma = sum(dy xhat) = r sum(dy (x - mu))
 *   dx = gamma r (dy - dbeta / M - xhat dgamma / M)
 *      = a dy + b (x - mu) + c  with a = gamma r, b = -gamma r^3 sum(dy (x - mu)) / M,
 *                                    c = -gamma r dbeta / M.
 * Backward (eval statistics: a per-channel affine map y = gamma r (x - running_mean) + beta):
 *   dx = gamma r dy,  dgamma = r sum(dy (x - running_mean)),  dbeta = sum(dy).
 * Staged (statistics summed over several processes: SyncBatchNorm; M = all processes' values):
 *   forward:  batch_norm_stats (sums of x - shift and its square) -> sum across processes ->
 *             batch_norm_forward_from_stats (mu, var, running statistics, y as above);
 *   backward: batch_norm_backward_reduce (sum(dy), sum(dy (x - mu)); this process's dgamma,
 *             dbeta) -> sum across processes -> batch_norm_backward_apply (dx as above).
 *
 * Numerics: sums are accumulated in double over (x - shift), shift = the channel's first value,
 * so sum((x - shift)^2) / M - (sum(x - shift) / M)^2 does not cancel catastrophically even for a
 * channel with mean 1e4 and std 1e-2 (where x^2 ~ 1e8 would swamp a variance of 1e-4). The
 * forward subtracts mu as two floats (mu_hi + mu_lo), so y keeps its accuracy when |mu| >> std;
 * save_mean is kept in double so the backward can do the same: its kernels subtract mu_hi, and
 * the mu_lo terms are added to the double sums and to the constant c (backward_coef).
 *
 * Threads own whole channels, so every channel is reduced in the same order whatever the thread
 * count (results are bit-identical across thread counts), and the second pass over a channel
 * (normalise) finds it still in L2 for the usual layer sizes.
 */
#include <algorithm>
#include <cmath>
#include <vector>

#include "cnnkit/norm.hpp"
#include "cnnkit/runtime.hpp"
#include "norm/norm_kernels.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace ref {

void bn_stats_f32_ref(const float* src, std::int64_t n, float shift, double* sum, double* sumsq) {
  double s = 0, ss = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = double(src[i] - shift);
    s += d;
    ss += d * d;
  }
  *sum += s;
  *sumsq += ss;
}

void bn_apply_f32_ref(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                      float scale, float shift, std::uint16_t* relu_mask) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float y = ((src[i] - mean_hi) - mean_lo) * scale + shift;
    if (relu_mask == nullptr) {
      dst[i] = y;
      continue;
    }
    if (i % 16 == 0) relu_mask[i / 16] = 0;
    if (y > 0) relu_mask[i / 16] |= std::uint16_t(1u << (i % 16));
    dst[i] = y > 0 ? y : 0.0f;
  }
}

namespace {
inline float masked_dy(const float* dy, const std::uint16_t* mask, std::int64_t i) {
  return (mask == nullptr || ((mask[i / 16] >> (i % 16)) & 1u)) ? dy[i] : 0.0f;
}
}  // namespace

void bn_bwd_reduce_f32_ref(const float* diff_dst, const float* src, std::int64_t n, float mean,
                           const std::uint16_t* relu_mask, double* sum_dy, double* sum_dy_xmu) {
  double s = 0, sx = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = masked_dy(diff_dst, relu_mask, i);
    s += g;
    sx += double(g) * double(src[i] - mean);
  }
  *sum_dy += s;
  *sum_dy_xmu += sx;
}

void bn_bwd_apply_f32_ref(const float* diff_dst, const float* src, float* diff_src, std::int64_t n,
                          float mean, float a, float b, float c, const std::uint16_t* relu_mask) {
  for (std::int64_t i = 0; i < n; ++i) {
    diff_src[i] = a * masked_dy(diff_dst, relu_mask, i) + b * (src[i] - mean) + c;
  }
}

}  // namespace ref

namespace {

// Per-channel constants of the normalisation y = ((x - mean_hi) - mean_lo) * scale + shift.
struct Affine {
  float mean_hi, mean_lo, scale, shift;
};

Affine make_affine(double mean, double invstd, const float* weight, const float* bias, index_t c) {
  Affine a;
  a.mean_hi = float(mean);
  a.mean_lo = float(mean - double(a.mean_hi));
  a.scale = float(invstd * (weight ? double(weight[c]) : 1.0));
  a.shift = bias ? bias[c] : 0.0f;
  return a;
}

// A channel's batch statistics from sums over its M values taken around `shift`:
// mean = shift + sum / M, var = sumsq / M - (sum / M)^2 (biased); the running statistics
// move towards mean and the unbiased var M / (M - 1). Returns the normalisation constants.
Affine finish_channel(const BatchNormParams& p, index_t c, double shift, double sum, double sumsq,
                      double M, const float* weight, const float* bias, float* running_mean,
                      float* running_var, double* save_mean, float* save_invstd) {
  const double mo = sum / M, var = std::max(0.0, sumsq / M - mo * mo), mean = shift + mo;
  const double invstd = 1.0 / std::sqrt(var + double(p.eps));
  save_mean[c] = mean;
  save_invstd[c] = float(invstd);
  if (running_mean) {
    running_mean[c] = float((1.0 - p.momentum) * running_mean[c] + p.momentum * mean);
  }
  if (running_var) {
    running_var[c] = float((1.0 - p.momentum) * running_var[c] + p.momentum * var * M / (M - 1.0));
  }
  return make_affine(mean, invstd, weight, bias, c);
}

// The kernels subtract the float mean_hi = float(mean); the exact mean is mean_hi + mean_lo.
double mean_low(double mean) { return mean - double(float(mean)); }

// sum(dy (x - mean)) around the exact mean, from the reduce kernels' sum(dy (x - mean_hi)).
double around_mean(double mean, double sum_dy, double sum_dy_xmu_hi) {
  return sum_dy_xmu_hi - mean_low(mean) * sum_dy;
}

// Backward constants of dx = a dy + b (x - mean_hi) + c for one channel, from the sums over
// M values sum_dy = sum(dy) and sum_dy_xmu = sum(dy (x - mean)) (around_mean); the b mean_lo
// of b (x - mean) = b (x - mean_hi) - b mean_lo goes into c, so the backward keeps the
// forward's accuracy when |mean| >> std.
struct Coef {
  float a, b, c;
};

Coef backward_coef(double mean, double invstd, double gamma, double sum_dy, double sum_dy_xmu,
                   double M) {
  const double r = invstd;
  const double b = -gamma * r * r * r * sum_dy_xmu / M;
  return Coef{float(gamma * r), float(b), float(-gamma * r * sum_dy / M - b * mean_low(mean))};
}

// Channels per thread: at least ~32K values of work per thread.
index_t min_channels(const BatchNormParams& p) {
  return std::max<index_t>(1, (index_t(1) << 15) / std::max<index_t>(1, p.N * p.S));
}

// Calls f(offset, count) for the stretches of channel c's values: one plane of S values per
// image ([N, C, S]), or single values a row apart ([N, C]: S == 1).
template <typename F>
void for_channel(const BatchNormParams& p, index_t c, F&& f) {
  for (index_t n = 0; n < p.N; ++n) f((n * p.C + c) * p.S, p.S);
}

void check_relu_mask(const BatchNormParams& p, const std::uint16_t* relu_mask) {
  if (relu_mask != nullptr && p.S == 1) {
    throw_invalid("batch_norm: the fused ReLU needs spatial dimensions (got [N, C])");
  }
}

}  // namespace

void validate(const BatchNormParams& p, bool training) {
  if (p.N < 0 || p.C < 1 || p.S < 0) {
    throw_invalid("batch_norm: x must have at least one channel, got [N, C, S] = ",
                  shape_str({p.N, p.C, p.S}));
  }
  if (!(p.eps > 0.0f)) throw_invalid("batch_norm: eps must be > 0, got ", p.eps);
  if (training && p.N * p.S < 2) {
    throw_invalid("batch_norm: expected more than 1 value per channel when training, got ",
                  p.N * p.S, " (x: N = ", p.N, ", spatial size = ", p.S, ")");
  }
}

void batch_norm_forward_train(const BatchNormParams& p, const float* src, const float* weight,
                              const float* bias, float* running_mean, float* running_var,
                              float* dst, double* save_mean, float* save_invstd,
                              std::uint16_t* relu_mask) {
  validate(p, true);
  check_relu_mask(p, relu_mask);
  const index_t words = (p.S + 15) / 16;
  const NormKernels& kt = kernels().norm;
  const index_t N = p.N, C = p.C, S = p.S;
  const double M = double(N) * double(S);
  auto finish = [&](index_t c, double shift, double sum, double sumsq) {
    return finish_channel(p, c, shift, sum, sumsq, M, weight, bias, running_mean, running_var,
                          save_mean, save_invstd);
  };
  if (S == 1) {
    // [N, C]: a channel is a strided column; sweep rows, vectorising over channels.
    std::vector<double> sum(C, 0.0), sumsq(C, 0.0);
    std::vector<Affine> aff(C);
    parallel_ranges(C, std::max<index_t>(1, 4096 / std::max<index_t>(1, N)),
                    [&](index_t b, index_t e) {
                      for (index_t n = 0; n < N; ++n) {
                        const float* x = src + n * C;
                        for (index_t c = b; c < e; ++c) {
                          const double d = double(x[c] - src[c]);
                          sum[c] += d;
                          sumsq[c] += d * d;
                        }
                      }
                      for (index_t c = b; c < e; ++c) aff[c] = finish(c, src[c], sum[c], sumsq[c]);
                      for (index_t n = 0; n < N; ++n) {
                        const float* x = src + n * C;
                        float* y = dst + n * C;
                        for (index_t c = b; c < e; ++c) {
                          const Affine& a = aff[c];
                          y[c] = ((x[c] - a.mean_hi) - a.mean_lo) * a.scale + a.shift;
                        }
                      }
                    });
    return;
  }
  parallel_ranges(C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const float shift = src[c * S];
      double sum = 0, sumsq = 0;
      for (index_t n = 0; n < N; ++n) kt.bn_stats(src + (n * C + c) * S, S, shift, &sum, &sumsq);
      const Affine a = finish(c, shift, sum, sumsq);
      for (index_t n = 0; n < N; ++n) {
        const index_t off = (n * C + c) * S;
        kt.bn_apply(src + off, dst + off, S, a.mean_hi, a.mean_lo, a.scale, a.shift,
                    relu_mask ? relu_mask + (n * C + c) * words : nullptr);
      }
    }
  });
}

void batch_norm_forward_eval(const BatchNormParams& p, const float* src, const float* weight,
                             const float* bias, const float* running_mean, const float* running_var,
                             float* dst) {
  validate(p, false);
  const NormKernels& kt = kernels().norm;
  const index_t N = p.N, C = p.C, S = p.S;
  std::vector<Affine> aff(C);
  for (index_t c = 0; c < C; ++c) {
    aff[c] = make_affine(running_mean[c], 1.0 / std::sqrt(double(running_var[c]) + p.eps), weight,
                         bias, c);
  }
  if (S == 1) {
    parallel_ranges(N, std::max<index_t>(1, 16384 / C), [&](index_t b, index_t e) {
      for (index_t n = b; n < e; ++n) {
        for (index_t c = 0; c < C; ++c) {
          const Affine& a = aff[c];
          dst[n * C + c] = ((src[n * C + c] - a.mean_hi) - a.mean_lo) * a.scale + a.shift;
        }
      }
    });
    return;
  }
  parallel_ranges(N * C, std::max<index_t>(1, 16384 / S), [&](index_t b, index_t e) {
    for (index_t nc = b; nc < e; ++nc) {
      const Affine& a = aff[nc % C];
      kt.bn_apply(src + nc * S, dst + nc * S, S, a.mean_hi, a.mean_lo, a.scale, a.shift, nullptr);
    }
  });
}

void batch_norm_backward(const BatchNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias,
                         const std::uint16_t* relu_mask) {
  validate(p, false);
  check_relu_mask(p, relu_mask);
  const index_t words = (p.S + 15) / 16;
  const NormKernels& kt = kernels().norm;
  const index_t N = p.N, C = p.C, S = p.S;
  const double M = double(N) * double(S);
  auto coef = [&](index_t c, double sum_dy, double sum_dy_xmu_hi) {
    const double sxm = around_mean(save_mean[c], sum_dy, sum_dy_xmu_hi);
    diff_bias[c] = float(sum_dy);
    diff_weight[c] = float(sxm * save_invstd[c]);
    return backward_coef(save_mean[c], save_invstd[c], weight ? weight[c] : 1.0, sum_dy, sxm, M);
  };
  if (S == 1) {
    std::vector<double> sdy(C, 0.0), sdx(C, 0.0);
    std::vector<Coef> k(C);
    std::vector<float> mean_hi(C);
    for (index_t c = 0; c < C; ++c) mean_hi[c] = float(save_mean[c]);
    parallel_ranges(
        C, std::max<index_t>(1, 4096 / std::max<index_t>(1, N)), [&](index_t b, index_t e) {
          for (index_t n = 0; n < N; ++n) {
            for (index_t c = b; c < e; ++c) {
              const double dy = diff_dst[n * C + c];
              sdy[c] += dy;
              sdx[c] += dy * double(src[n * C + c] - mean_hi[c]);
            }
          }
          for (index_t c = b; c < e; ++c) k[c] = coef(c, sdy[c], sdx[c]);
          for (index_t n = 0; n < N; ++n) {
            for (index_t c = b; c < e; ++c) {
              const index_t i = n * C + c;
              diff_src[i] = k[c].a * diff_dst[i] + k[c].b * (src[i] - mean_hi[c]) + k[c].c;
            }
          }
        });
    return;
  }
  parallel_ranges(C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const float mean_hi = float(save_mean[c]);
      double sum_dy = 0, sum_dy_xmu = 0;
      for (index_t n = 0; n < N; ++n) {
        const index_t off = (n * C + c) * S;
        kt.bn_bwd_reduce(diff_dst + off, src + off, S, mean_hi,
                         relu_mask ? relu_mask + (n * C + c) * words : nullptr, &sum_dy,
                         &sum_dy_xmu);
      }
      const Coef k = coef(c, sum_dy, sum_dy_xmu);
      for (index_t n = 0; n < N; ++n) {
        const index_t off = (n * C + c) * S;
        kt.bn_bwd_apply(diff_dst + off, src + off, diff_src + off, S, mean_hi, k.a, k.b, k.c,
                        relu_mask ? relu_mask + (n * C + c) * words : nullptr);
      }
    }
  });
}

void batch_norm_backward_eval(const BatchNormParams& p, const float* diff_dst, const float* src,
                              const float* weight, const float* running_mean,
                              const float* running_var, float* diff_src, float* diff_weight,
                              float* diff_bias) {
  validate(p, false);
  const NormKernels& kt = kernels().norm;
  parallel_ranges(p.C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const double r = 1.0 / std::sqrt(double(running_var[c]) + p.eps);
      const float scale = float(r * (weight ? double(weight[c]) : 1.0));
      double sum_dy = 0, sum_dy_xmu = 0;
      for_channel(p, c, [&](index_t off, index_t n) {
        kt.bn_bwd_reduce(diff_dst + off, src + off, n, running_mean[c], nullptr, &sum_dy,
                         &sum_dy_xmu);
        if (diff_src) {
          kt.bn_bwd_apply(diff_dst + off, src + off, diff_src + off, n, running_mean[c], scale,
                          0.0f, 0.0f, nullptr);
        }
      });
      diff_bias[c] = float(sum_dy);
      diff_weight[c] = float(sum_dy_xmu * r);
    }
  });
}

void batch_norm_stats(const BatchNormParams& p, const float* src, const float* shift,
                      double* sums) {
  validate(p, false);
  const NormKernels& kt = kernels().norm;
  parallel_ranges(p.C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      double sum = 0, sumsq = 0;
      const float s = shift ? shift[c] : 0.0f;
      for_channel(p, c,
                  [&](index_t off, index_t n) { kt.bn_stats(src + off, n, s, &sum, &sumsq); });
      sums[c] = sum;
      sums[p.C + c] = sumsq;
    }
  });
}

void batch_norm_forward_from_stats(const BatchNormParams& p, const float* src, const float* weight,
                                   const float* bias, const double* sums, double count,
                                   const float* shift, float* running_mean, float* running_var,
                                   float* dst, double* save_mean, float* save_invstd) {
  validate(p, false);
  if (!(count >= 2.0)) {
    throw_invalid("batch_norm: expected more than 1 value per channel when training, got ", count,
                  " in all");
  }
  const NormKernels& kt = kernels().norm;
  std::vector<Affine> aff(p.C);
  for (index_t c = 0; c < p.C; ++c) {
    aff[c] = finish_channel(p, c, shift ? shift[c] : 0.0f, sums[c], sums[p.C + c], count, weight,
                            bias, running_mean, running_var, save_mean, save_invstd);
  }
  parallel_ranges(p.C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const Affine& a = aff[c];
      for_channel(p, c, [&](index_t off, index_t n) {
        kt.bn_apply(src + off, dst + off, n, a.mean_hi, a.mean_lo, a.scale, a.shift, nullptr);
      });
    }
  });
}

void batch_norm_backward_reduce(const BatchNormParams& p, const float* diff_dst, const float* src,
                                const double* save_mean, const float* save_invstd, double* sums,
                                float* diff_weight, float* diff_bias) {
  validate(p, false);
  const NormKernels& kt = kernels().norm;
  parallel_ranges(p.C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const float mean_hi = float(save_mean[c]);
      double sum_dy = 0, sum_dy_xmu = 0;
      for_channel(p, c, [&](index_t off, index_t n) {
        kt.bn_bwd_reduce(diff_dst + off, src + off, n, mean_hi, nullptr, &sum_dy, &sum_dy_xmu);
      });
      const double sxm = around_mean(save_mean[c], sum_dy, sum_dy_xmu);
      sums[c] = sum_dy;
      sums[p.C + c] = sxm;
      diff_bias[c] = float(sum_dy);
      diff_weight[c] = float(sxm * save_invstd[c]);
    }
  });
}

void batch_norm_backward_apply(const BatchNormParams& p, const float* diff_dst, const float* src,
                               const float* weight, const double* save_mean,
                               const float* save_invstd, const double* sums, double count,
                               float* diff_src) {
  validate(p, false);
  if (!(count >= 1.0)) throw_invalid("batch_norm: count must be >= 1, got ", count);
  const NormKernels& kt = kernels().norm;
  parallel_ranges(p.C, min_channels(p), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      const Coef k = backward_coef(save_mean[c], save_invstd[c], weight ? weight[c] : 1.0, sums[c],
                                   sums[p.C + c], count);
      const float mean_hi = float(save_mean[c]);
      for_channel(p, c, [&](index_t off, index_t n) {
        kt.bn_bwd_apply(diff_dst + off, src + off, diff_src + off, n, mean_hi, k.a, k.b, k.c,
                        nullptr);
      });
    }
  });
}

}  // namespace cnnkit
