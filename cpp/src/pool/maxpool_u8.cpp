// uint8 NHWC max pooling (int8 inference): the quantization is monotonic, so the maximum of
// the quantized values is the quantized maximum, exactly.
//
//   dst[n][oy][ox][c] = max over the window's in-bounds (iy, ix) of src[n][iy][ix][c]
//
// A window's pixels are whole channel vectors, so the inner loop is a byte maximum over C
// contiguous bytes (the compiler's vector PMAXUB at the baseline ISA).
#include <algorithm>
#include <cstring>

#include "cnnkit/pool.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace {

void pool_images(const Pool2dParams& p, index_t n0, index_t n1, const std::uint8_t* src,
                 std::uint8_t* dst) {
  const index_t C = p.planes, Ho = pool_out_h(p), Wo = pool_out_w(p);
  for (index_t n = n0; n < n1; ++n) {
    const std::uint8_t* img = src + n * p.H * p.W * C;
    for (index_t oy = 0; oy < Ho; ++oy) {
      const index_t y0 = std::max<index_t>(0, oy * p.sh - p.ph);
      const index_t y1 = std::min<index_t>(p.H, oy * p.sh - p.ph + p.kh);
      for (index_t ox = 0; ox < Wo; ++ox) {
        const index_t x0 = std::max<index_t>(0, ox * p.sw - p.pw);
        const index_t x1 = std::min<index_t>(p.W, ox * p.sw - p.pw + p.kw);
        std::uint8_t* out = dst + ((n * Ho + oy) * Wo + ox) * C;
        std::memset(out, 0, std::size_t(C));
        for (index_t iy = y0; iy < y1; ++iy) {
          for (index_t ix = x0; ix < x1; ++ix) {
            const std::uint8_t* in = img + (iy * p.W + ix) * C;
            for (index_t c = 0; c < C; ++c) out[c] = std::max(out[c], in[c]);
          }
        }
      }
    }
  }
}

}  // namespace

void max_pool2d_nhwc_u8(const Pool2dParams& p, index_t N, const std::uint8_t* src,
                        std::uint8_t* dst) {
  if (N == 1) return pool_images(p, 0, 1, src, dst);  // (inside a convolution's thread)
  parallel_ranges(N, 1, [&](index_t begin, index_t end) { pool_images(p, begin, end, src, dst); });
}

}  // namespace cnnkit
