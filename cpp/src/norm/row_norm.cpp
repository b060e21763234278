/* Group normalisation and layer normalisation (PyTorch semantics): both normalise contiguous
 * rows of L floats.
 *   GroupNorm, x [N, C, S] (S = H * W, ...) with G groups: row (n, g) is the L = (C / G) S
 *     floats of image n's channels g C/G .. (g + 1) C/G - 1; the affine is per channel
 *     (w_c, b_c cover the S values of channel c).
 *   LayerNorm, x [rows, L] (L = prod(normalized_shape)): each row; the affine is per element.
 *
 * Forward (per row):
 *   mean = sum(x) / L,  var = sum((x - mean)^2) / L  (biased),  r = 1 / sqrt(var + eps)
 *   xhat = (x - mean) r,  y = xhat w + b
 * Backward (per row; g = dy w):
 *   dx = r (g - mean(g) - xhat mean(g xhat))
 *      = a g + b' (x - mean) + c  with a = r, b' = -r^3 sum(g (x - mean)) / L,
 *                                     c = -r sum(g) / L
 *   dw = sum(dy xhat),  db = sum(dy): over every row for LayerNorm (per element); over the
 *   images n and the S values of the channel for GroupNorm (per channel).
 *
 * Numerics as in batch_norm.cpp: the sums are accumulated in double around shift = the row's
 * first value, so a row with mean 1e4 and std 1e-2 keeps its variance; the mean is kept in
 * double (save_mean) and subtracted as two floats mean_hi + mean_lo, in the forward and the
 * backward (whose kernels subtract mean_hi; the mean_lo terms go into the double sums and c).
 *
 * Kernels (norm_kernels.hpp): the row's statistics are batch norm's bn_stats; a per-channel
 * affine (GroupNorm planes of S > 1 values) is batch norm's bn_apply / bn_bwd_reduce /
 * bn_bwd_apply with scalar constants; a per-element affine (LayerNorm, and GroupNorm with
 * S = 1, where row (n, g)'s channels are its elements) is rn_apply / rn_bwd_reduce /
 * rn_bwd_apply / rn_dwdb.
 *
 * Threads own whole rows (forward, dx), so each row is reduced in one kernel call whatever the
 * thread count. The weight gradients are summed in a fixed order: LayerNorm's from partial sums
 * of fixed blocks of rows (accumulated in the dx pass, while the row is in L1) added in block
 * order; GroupNorm's with S = 1 by threads that own ranges of columns and walk every row in
 * order; GroupNorm's from per-(n, c) partial sums added over n in order. Results are
 * bit-identical across thread counts.
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

void rn_apply_f32_ref(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                      float inv_std, const float* w, const float* b) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float xhat = ((src[i] - mean_hi) - mean_lo) * inv_std;
    dst[i] = (w ? xhat * w[i] : xhat) + (b ? b[i] : 0.0f);
  }
}

void rn_bwd_reduce_f32_ref(const float* diff_dst, const float* src, const float* w, std::int64_t n,
                           float mean, double* sum_g, double* sum_gx) {
  double s = 0, sx = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double g = double(diff_dst[i]) * (w ? double(w[i]) : 1.0);  // exact in double
    s += g;
    sx += g * double(src[i] - mean);
  }
  *sum_g += s;
  *sum_gx += sx;
}

void rn_bwd_apply_f32_ref(const float* diff_dst, const float* src, const float* w, float* diff_src,
                          std::int64_t n, float mean, float a, float b, float c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = w ? diff_dst[i] * w[i] : diff_dst[i];
    diff_src[i] = a * g + b * (src[i] - mean) + c;
  }
}

void rn_dwdb_f32_ref(const float* diff_dst, const float* src, std::int64_t n, float mean_hi,
                     float mean_lo, float inv_std, double* dw, double* db) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float xhat = ((src[i] - mean_hi) - mean_lo) * inv_std;
    dw[i] += double(diff_dst[i]) * double(xhat);
    db[i] += double(diff_dst[i]);
  }
}

}  // namespace ref

namespace {

// A row's mean (exact: hi + lo as floats) and 1 / sqrt(var + eps).
struct RowStats {
  double mean;
  float mean_hi, mean_lo, inv_std;
};

RowStats split(double mean, float inv_std) {
  const float hi = float(mean);
  return RowStats{mean, hi, float(mean - double(hi)), inv_std};
}

RowStats row_stats(const NormKernels& kt, const float* x, index_t L, float eps) {
  if (L == 0) return split(0.0, float(1.0 / std::sqrt(double(eps))));
  const float shift = x[0];
  double sum = 0, sumsq = 0;
  kt.bn_stats(x, L, shift, &sum, &sumsq);
  const double mo = sum / double(L), var = std::max(0.0, sumsq / double(L) - mo * mo);
  return split(double(shift) + mo, float(1.0 / std::sqrt(var + double(eps))));
}

// dx = a g + b (x - mean_hi) + c for one row of L values, from sum_g = sum(g) and
// sum_gx_hi = sum(g (x - mean_hi)) (the kernels' sums); b mean_lo moves into c.
struct RowCoef {
  float a, b, c;
};

RowCoef row_coef(const RowStats& st, double sum_g, double sum_gx_hi, index_t L) {
  const double r = st.inv_std, lo = st.mean_lo;
  const double sum_gx = sum_gx_hi - lo * sum_g;
  const double b = -r * r * r * sum_gx / double(L);
  return RowCoef{float(r), float(b), float(-r * sum_g / double(L) - b * lo)};
}

// Rows per thread: at least ~32K values of work per thread.
index_t min_rows(index_t L) {
  return std::max<index_t>(1, (index_t(1) << 15) / std::max<index_t>(1, L));
}

// dw[i] = sum(dy xhat) and db[i] = sum(dy) down the columns of a [rows, width] matrix whose
// row r has its columns [k seg, (k + 1) seg) normalised with the statistics r (width / seg) + k
// (LayerNorm: seg = width; GroupNorm with S = 1: seg = C / G). Threads own ranges of columns
// and walk every row in order, so each sum is added in the same order for any thread count.
void column_grads(const NormKernels& kt, const float* diff_dst, const float* src, index_t rows,
                  index_t width, index_t seg, const double* save_mean, const float* save_invstd,
                  float* diff_weight, float* diff_bias) {
  std::vector<double> dw(width, 0.0), db(width, 0.0);
  const index_t per_row = width / seg;
  const index_t min_cols = std::max<index_t>(16, (index_t(1) << 15) / std::max<index_t>(1, rows));
  parallel_ranges(width, min_cols, [&](index_t b, index_t e) {
    for (index_t r = 0; r < rows; ++r) {
      for (index_t i = b; i < e;) {
        const index_t k = i / seg, end = std::min(e, (k + 1) * seg);
        const RowStats st = split(save_mean[r * per_row + k], save_invstd[r * per_row + k]);
        kt.rn_dwdb(diff_dst + r * width + i, src + r * width + i, end - i, st.mean_hi, st.mean_lo,
                   st.inv_std, &dw[i], &db[i]);
        i = end;
      }
    }
    for (index_t i = b; i < e; ++i) {
      diff_weight[i] = float(dw[i]);
      if (diff_bias) diff_bias[i] = float(db[i]);
    }
  });
}

}  // namespace

void validate(const GroupNormParams& p) {
  if (p.N < 0 || p.C < 1 || p.S < 0) {
    throw_invalid("group_norm: x must be [N, C, *] with at least one channel, got [N, C, S] = ",
                  shape_str({p.N, p.C, p.S}));
  }
  if (p.G < 1) throw_invalid("group_norm: num_groups must be >= 1, got ", p.G);
  if (p.C % p.G != 0) {
    throw_invalid("group_norm: num_channels must be divisible by num_groups, got num_channels = ",
                  p.C, " (x.shape[1]) and num_groups = ", p.G);
  }
  if (!(p.eps >= 0.0f)) throw_invalid("group_norm: eps must be >= 0, got ", p.eps);
}

void validate(const LayerNormParams& p) {
  if (p.rows < 0 || p.L < 0) {
    throw_invalid("layer_norm: x viewed as [rows, L] must have sizes >= 0, got ",
                  shape_str({p.rows, p.L}));
  }
  if (!(p.eps >= 0.0f)) throw_invalid("layer_norm: eps must be >= 0, got ", p.eps);
}

void group_norm_forward(const GroupNormParams& p, const float* src, const float* weight,
                        const float* bias, float* dst, double* save_mean, float* save_invstd) {
  validate(p);
  const NormKernels& kt = kernels().norm;
  const index_t G = p.G, Cg = p.C / p.G, S = p.S, L = Cg * S;
  parallel_ranges(p.N * G, min_rows(L), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      const float* x = src + r * L;
      float* y = dst + r * L;
      const RowStats st = row_stats(kt, x, L, p.eps);
      save_mean[r] = st.mean;
      save_invstd[r] = st.inv_std;
      const index_t c0 = (r % G) * Cg;
      if (S == 1) {  // one value per channel: the affine is per element of the row
        kt.rn_apply(x, y, L, st.mean_hi, st.mean_lo, st.inv_std, weight ? weight + c0 : nullptr,
                    bias ? bias + c0 : nullptr);
        continue;
      }
      for (index_t j = 0; j < Cg; ++j) {
        const index_t c = c0 + j;
        const float scale = float(double(st.inv_std) * (weight ? double(weight[c]) : 1.0));
        kt.bn_apply(x + j * S, y + j * S, S, st.mean_hi, st.mean_lo, scale, bias ? bias[c] : 0.0f,
                    nullptr);
      }
    }
  });
}

void group_norm_backward(const GroupNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias) {
  validate(p);
  const NormKernels& kt = kernels().norm;
  const index_t G = p.G, C = p.C, Cg = p.C / p.G, S = p.S, L = Cg * S;
  // S > 1: per-(n, c) sums of dy xhat and dy over the channel's S values, added over n at the
  // end; S = 1: [N, C] is a matrix of rows of G segments (column_grads)
  const bool grads = diff_weight != nullptr, planes = grads && S > 1;
  std::vector<double> dwp(planes ? p.N * C : 0, 0.0), dbp(planes ? p.N * C : 0, 0.0);
  parallel_ranges(p.N * G, min_rows(L), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      if (L == 0) continue;
      const index_t off = r * L, n = r / G, c0 = (r % G) * Cg;
      const float *x = src + off, *dy = diff_dst + off;
      float* dx = diff_src + off;
      const RowStats st = split(save_mean[r], save_invstd[r]);
      double sum_g = 0, sum_gx = 0;
      if (S == 1) {
        const float* w = weight ? weight + c0 : nullptr;
        kt.rn_bwd_reduce(dy, x, w, L, st.mean_hi, &sum_g, &sum_gx);
        const RowCoef k = row_coef(st, sum_g, sum_gx, L);
        kt.rn_bwd_apply(dy, x, w, dx, L, st.mean_hi, k.a, k.b, k.c);
        continue;
      }
      for (index_t j = 0; j < Cg; ++j) {
        const index_t c = c0 + j;
        double sum_dy = 0, sum_dy_xmu = 0;
        kt.bn_bwd_reduce(dy + j * S, x + j * S, S, st.mean_hi, nullptr, &sum_dy, &sum_dy_xmu);
        const double wc = weight ? double(weight[c]) : 1.0;
        sum_g += wc * sum_dy;
        sum_gx += wc * sum_dy_xmu;
        if (planes) {
          dwp[n * C + c] = double(st.inv_std) * (sum_dy_xmu - double(st.mean_lo) * sum_dy);
          dbp[n * C + c] = sum_dy;
        }
      }
      const RowCoef k = row_coef(st, sum_g, sum_gx, L);
      for (index_t j = 0; j < Cg; ++j) {
        const double wc = weight ? double(weight[c0 + j]) : 1.0;
        kt.bn_bwd_apply(dy + j * S, x + j * S, dx + j * S, S, st.mean_hi,
                        float(double(st.inv_std) * wc), k.b, k.c, nullptr);
      }
    }
  });
  if (!grads) return;
  if (S == 1) {
    column_grads(kt, diff_dst, src, p.N, C, Cg, save_mean, save_invstd, diff_weight, diff_bias);
    return;
  }
  std::vector<double> dw(C, 0.0), db(C, 0.0);
  for (index_t n = 0; n < p.N; ++n) {
    for (index_t c = 0; c < C; ++c) {
      dw[c] += dwp[n * C + c];
      db[c] += dbp[n * C + c];
    }
  }
  for (index_t c = 0; c < C; ++c) {
    diff_weight[c] = float(dw[c]);
    if (diff_bias) diff_bias[c] = float(db[c]);
  }
}

void layer_norm_forward(const LayerNormParams& p, const float* src, const float* weight,
                        const float* bias, float* dst, double* save_mean, float* save_invstd) {
  validate(p);
  const NormKernels& kt = kernels().norm;
  const index_t L = p.L;
  parallel_ranges(p.rows, min_rows(L), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      const RowStats st = row_stats(kt, src + r * L, L, p.eps);
      save_mean[r] = st.mean;
      save_invstd[r] = st.inv_std;
      kt.rn_apply(src + r * L, dst + r * L, L, st.mean_hi, st.mean_lo, st.inv_std, weight, bias);
    }
  });
}

void layer_norm_backward(const LayerNormParams& p, const float* diff_dst, const float* src,
                         const float* weight, const double* save_mean, const float* save_invstd,
                         float* diff_src, float* diff_weight, float* diff_bias) {
  validate(p);
  const NormKernels& kt = kernels().norm;
  const index_t rows = p.rows, L = p.L;
  if (L == 0) return;
  // Rows go in blocks of a fixed size (not one per thread): each block adds its rows' dy xhat
  // and dy into its own partial sums while the row is still in L1 from the dx pass, and the
  // partials are added in block order at the end, the same order for any thread count.
  const bool grads = diff_weight != nullptr;
  const index_t block = grads ? std::max<index_t>(8, (index_t(1) << 14) / L) : rows;
  const index_t blocks = rows == 0 ? 0 : (rows + block - 1) / block;
  std::vector<double> dwp(grads ? blocks * L : 0, 0.0), dbp(grads ? blocks * L : 0, 0.0);
  const index_t min_blocks = std::max<index_t>(1, min_rows(L) / std::max<index_t>(1, block));
  parallel_ranges(blocks, min_blocks, [&](index_t b, index_t e) {
    for (index_t k = b; k < e; ++k) {
      for (index_t r = k * block; r < std::min(rows, (k + 1) * block); ++r) {
        const index_t off = r * L;
        const RowStats st = split(save_mean[r], save_invstd[r]);
        double sum_g = 0, sum_gx = 0;
        kt.rn_bwd_reduce(diff_dst + off, src + off, weight, L, st.mean_hi, &sum_g, &sum_gx);
        const RowCoef c = row_coef(st, sum_g, sum_gx, L);
        kt.rn_bwd_apply(diff_dst + off, src + off, weight, diff_src + off, L, st.mean_hi, c.a, c.b,
                        c.c);
        if (grads) {
          kt.rn_dwdb(diff_dst + off, src + off, L, st.mean_hi, st.mean_lo, st.inv_std, &dwp[k * L],
                     &dbp[k * L]);
        }
      }
    }
  });
  if (!grads) return;
  parallel_ranges(L, std::max<index_t>(64, (index_t(1) << 14) / std::max<index_t>(1, blocks)),
                  [&](index_t b, index_t e) {
                    std::vector<double> dw(e - b, 0.0), db(e - b, 0.0);
                    for (index_t k = 0; k < blocks; ++k) {
                      for (index_t i = b; i < e; ++i) {
                        dw[i - b] += dwp[k * L + i];
                        db[i - b] += dbp[k * L + i];
                      }
                    }
                    for (index_t i = b; i < e; ++i) {
                      diff_weight[i] = float(dw[i - b]);
                      if (diff_bias) diff_bias[i] = float(db[i - b]);
                    }
                  });
}

}  // namespace cnnkit
