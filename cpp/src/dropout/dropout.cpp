/* Inverted dropout (training): each element is kept with probability q = 1 - p.
 *   mask[i] = u(seed, i) >= p,  y[i] = mask[i] x[i] / q           (eval: y = x, no call needed)
 *   dx[i] = mask[i] dy[i] / q
 * u(seed, i) = (high 32 bits of splitmix64(seed + (i + 1) golden)) / 2^32: a counter-based
 * generator, so element i gets the same decision whatever thread or vector lane computes it,
 * and the mask for a given seed is reproducible across thread counts and ISAs. The comparison
 * is done in integers against threshold = round(p 2^32), so P(keep) = 1 - p to within 2^-32.
 */
#include "cnnkit/dropout.hpp"

#include <cmath>

#include "cnnkit/runtime.hpp"
#include "dropout/dropout_kernels.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace ref {

void dropout_fwd_f32_ref(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                         std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                         float scale) {
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t u = std::uint32_t(dropout_hash(seed, std::uint64_t(first + i)) >> 32);
    const bool keep = u >= threshold;
    mask[i] = keep;
    dst[i] = keep ? src[i] * scale : 0.0f;
  }
}

}  // namespace ref

void validate_dropout(float p) {
  if (!(p >= 0.0f && p < 1.0f)) {
    throw_invalid("dropout: p must be in [0, 1), got ", p);
  }
}

void dropout_forward(const float* src, float* dst, std::uint8_t* mask, index_t n, float p,
                     std::uint64_t seed) {
  validate_dropout(p);
  const double t = std::ldexp(double(p), 32);
  const std::uint32_t threshold = t >= 4294967295.0 ? 0xFFFFFFFFu : std::uint32_t(std::llround(t));
  const float scale = float(1.0 / (1.0 - double(p)));
  const DropoutFwd kernel = kernels().dropout.dropout_fwd;
  parallel_ranges(n, 16384, [&](index_t b, index_t e) {
    kernel(src + b, dst + b, mask + b, e - b, b, seed, threshold, scale);
  });
}

void dropout_backward(const float* diff_dst, const std::uint8_t* mask, float* diff_src, index_t n,
                      float p) {
  validate_dropout(p);
  const float scale = float(1.0 / (1.0 - double(p)));
  parallel_ranges(n, 16384, [&](index_t b, index_t e) {
    // Branch-free (mask is 0 or 1) so the compiler vectorises it.
    for (index_t i = b; i < e; ++i) diff_src[i] = diff_dst[i] * (float(mask[i] != 0) * scale);
  });
}

}  // namespace cnnkit
