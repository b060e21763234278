/* Local response normalisation across channels (AlexNet's "NORM" layers), PyTorch's formula:
 *
 *   scale[c] = k + alpha / n * sum_{j = c - n/2}^{c + (n-1)/2} x[j]^2   (x[j] = 0 outside [0, C))
 *   y[c]     = x[c] * scale[c]^-beta
 * Backward (y[j] depends on x[i] for every j whose window holds i, i.e. i - (n-1)/2 <= j <= i +
 * n/2): dx[i] = dy[i] scale[i]^-beta - (2 alpha beta / n) x[i] sum_{j = i - (n-1)/2}^{i + n/2}
 * dy[j] y[j] / scale[j]
 *
 * Reproducing the AlexNet paper / Caffe: Caffe's LRN (ACROSS_CHANNELS) divides alpha by
 * local_size exactly as PyTorch does, so Caffe's parameters carry over unchanged
 * (bvlc_alexnet: local_size 5, alpha 1e-4, beta 0.75, k 1). The paper (Krizhevsky et al. 2012,
 * section 3.3) writes b = a / (k + alpha * sum a^2)^beta WITHOUT dividing by n, with
 * k = 2, n = 5, alpha = 1e-4, beta = 0.75; in PyTorch/cnnkit terms that is
 *   local_response_norm(x, size=5, alpha=5 * 1e-4 = 5e-4, beta=0.75, k=2.0).
 *
 * Work is split into (image, run of up to kChunk spatial positions) items; inside an item the
 * kernel walks the channels, so a window's planes are re-read from L1/L2, not from memory.
 * The backward keeps dy y / scale of the n channels in the current window in a ring buffer.
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

void lrn_fwd_f32_ref(const float* src, float* dst, float* scale, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const float coef = a.alpha / float(a.size);
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = std::max<std::int64_t>(0, c - before);
    const std::int64_t hi = std::min<std::int64_t>(a.C - 1, c + after);
    for (std::int64_t i = 0; i < a.len; ++i) {
      float s = 0.0f;
      for (std::int64_t j = lo; j <= hi; ++j) s += src[j * st + i] * src[j * st + i];
      const float sc = a.k + coef * s;
      scale[c * st + i] = sc;
      dst[c * st + i] = src[c * st + i] * std::pow(sc, -a.beta);
    }
  }
}

void lrn_bwd_f32_ref(const float* diff_dst, const float* src, const float* dst, const float* scale,
                     float* diff_src, float* work, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const float coef2 = 2.0f * a.alpha * a.beta / float(a.size);
  std::int64_t next = 0;  // next channel whose dy y / scale enters the ring
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = std::max<std::int64_t>(0, c - after);
    const std::int64_t hi = std::min<std::int64_t>(a.C - 1, c + before);
    for (; next <= hi; ++next) {
      float* t = work + (next % a.size) * a.len;
      for (std::int64_t i = 0; i < a.len; ++i) {
        const std::int64_t o = next * st + i;
        t[i] = diff_dst[o] * dst[o] / scale[o];
      }
    }
    for (std::int64_t i = 0; i < a.len; ++i) {
      float s = 0.0f;
      for (std::int64_t j = lo; j <= hi; ++j) s += work[(j % a.size) * a.len + i];
      const std::int64_t o = c * st + i;
      diff_src[o] = diff_dst[o] * std::pow(scale[o], -a.beta) - coef2 * src[o] * s;
    }
  }
}

}  // namespace ref

namespace {

constexpr index_t kChunk = 1024;  // positions per item: n planes x 4 KB stay in L1/L2

struct Split {
  index_t chunks, len;
};
Split split(index_t S) {
  const index_t chunks = std::max<index_t>(1, (S + kChunk - 1) / kChunk);
  index_t len = (S + chunks - 1) / chunks;
  len = std::min(S, (len + 15) / 16 * 16);
  return {chunks, std::max<index_t>(1, len)};
}

LrnArgs args_of(const LrnParams& p, index_t len) {
  LrnArgs a;
  a.C = p.C;
  a.hw_stride = p.S;
  a.len = len;
  a.size = int(p.size);
  a.alpha = p.alpha;
  a.beta = p.beta;
  a.k = p.k;
  return a;
}

index_t min_items(const LrnParams& p, index_t len) {
  return std::max<index_t>(1, 16384 / std::max<index_t>(1, p.C * len));
}

}  // namespace

void validate(const LrnParams& p) {
  if (p.size < 1 || p.size > 1024) {
    throw_invalid("local_response_norm: size must be in [1, 1024], got ", p.size);
  }
  if (p.N < 0 || p.C < 1 || p.S < 0) {
    throw_invalid("local_response_norm: x must have at least one channel, got [N, C, S] = ",
                  shape_str({p.N, p.C, p.S}));
  }
}

void lrn_forward(const LrnParams& p, const float* src, float* dst, float* scale) {
  validate(p);
  if (p.S == 0) return;
  const Split sp = split(p.S);
  const LrnFwd kernel = kernels().norm.lrn_fwd;
  parallel_ranges(p.N * sp.chunks, min_items(p, sp.len), [&](index_t b, index_t e) {
    for (index_t it = b; it < e; ++it) {
      const index_t n = it / sp.chunks, h0 = (it % sp.chunks) * sp.len;
      const LrnArgs a = args_of(p, std::min(sp.len, p.S - h0));
      if (a.len <= 0) continue;
      const index_t off = n * p.C * p.S + h0;
      kernel(src + off, dst + off, scale + off, a);
    }
  });
}

void lrn_backward(const LrnParams& p, const float* diff_dst, const float* src, const float* dst,
                  const float* scale, float* diff_src) {
  validate(p);
  if (p.S == 0) return;
  const Split sp = split(p.S);
  const LrnBwd kernel = kernels().norm.lrn_bwd;
  const index_t items = p.N * sp.chunks;
  const int nt = threads_for(items, min_items(p, sp.len));
  // Ring buffers, one per thread, allocated here: nothing may allocate inside the region.
  const index_t per_thread = p.size * sp.len + 16;
  std::vector<float> work(std::size_t(nt) * std::size_t(per_thread));
  parallel_ranges_on(nt, items, [&](index_t b, index_t e) {
    float* ring = work.data() + index_t(current_thread()) * per_thread;
    for (index_t it = b; it < e; ++it) {
      const index_t n = it / sp.chunks, h0 = (it % sp.chunks) * sp.len;
      const LrnArgs a = args_of(p, std::min(sp.len, p.S - h0));
      if (a.len <= 0) continue;
      const index_t off = n * p.C * p.S + h0;
      kernel(diff_dst + off, src + off, dst + off, scale + off, diff_src + off, ring, a);
    }
  });
}

}  // namespace cnnkit
