// The direct bf16 convolution's block kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16
// only here; see conv_kernels.hpp for the contract). Tiles as the GEMM kernel configures them
// (gemm_bf16_amx.cpp): 0-3 the 2 x 2 fp32 accumulators, 4-5 A, 6-7 B. The B tiles come
// straight from the padded bf16 image: 16 channel pairs at a stride of one plane, 16 columns
// of consecutive pixels each; the slice's tap is the offset. The accumulators start from (and
// go back to) a block of fp32 partial sums, so the caller can split K into chunks whose A
// slices stay in L1 across many blocks.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"
#include "kernels/amx/sums_amx.hpp"

namespace cnnkit {
namespace amx {
namespace {

// Software-pipelined: tile registers are not renamed, so each A / B tile of the next slice is
// loaded right after the last product that reads the current one, a product or two ahead of
// its use, instead of just before it (measured 1.5-2x on AlexNet and CIFAR layers); after a
// block's last slice come the next block's first tiles, and only then the store of the sums
// (a tile store holds back the loads behind it: the first loads of a block were 19 % of this
// kernel's samples when each block was a call of its own).
template <bool kTwoRows>
void blocks_impl(const std::uint16_t* a, int slices, const std::uint16_t* x,
                 const std::int64_t* runs, int blocks, const std::int64_t* off, std::int64_t stride,
                 float* c, std::int64_t ldc, bool add_to_c) {
  start_sums<kTwoRows>(c, ldc, add_to_c);
  _tile_loadd(4, a, 64);
  _tile_loadd(6, x + runs[0] + off[0], stride);
  _tile_loadd(7, x + runs[1] + off[0], stride);
  if (kTwoRows) _tile_loadd(5, a + 16 * 32, 64);
  for (int b = 0; b < blocks; ++b) {
    const std::uint16_t* x0 = x + runs[2 * b];
    const std::uint16_t* x1 = x + runs[2 * b + 1];
    for (int s = 0; s < slices; ++s) {
      const bool last = s + 1 == slices;
      const bool more = !last || b + 1 < blocks;
      // the tiles of the next product step: this block's next slice or the next block's first
      const std::uint16_t* an = last ? a : a + (s + 1) * 32 * 32;
      const std::uint16_t* xn0 =
          more ? (last ? x + runs[2 * b + 2] + off[0] : x0 + off[s + 1]) : x0;
      const std::uint16_t* xn1 =
          more ? (last ? x + runs[2 * b + 3] + off[0] : x1 + off[s + 1]) : x1;
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (more) _tile_loadd(4, an, 64);
      if (kTwoRows) {
        _tile_dpbf16ps(2, 5, 6);
        if (more) _tile_loadd(6, xn0, stride);
        _tile_dpbf16ps(3, 5, 7);
        if (more) {
          _tile_loadd(5, an + 16 * 32, 64);
          _tile_loadd(7, xn1, stride);
        }
      } else if (more) {
        _tile_loadd(6, xn0, stride);
        _tile_loadd(7, xn1, stride);
      }
    }
    float* cb = c + 32 * b;
    store_sums<kTwoRows>(cb, ldc);
    if (b + 1 < blocks) start_sums<kTwoRows>(cb + 32, ldc, add_to_c);
  }
}

}  // namespace

void bf16_direct_blocks_amx(const std::uint16_t* a, int slices, const std::uint16_t* x,
                            const std::int64_t* runs, int blocks, const std::int64_t* off,
                            std::int64_t ld, int m, float* c, std::int64_t ldc, bool add_to_c) {
  if (blocks <= 0 || slices <= 0) return;
  const std::int64_t stride = ld * std::int64_t(sizeof(std::uint16_t));
  if (m > 16) {
    blocks_impl<true>(a, slices, x, runs, blocks, off, stride, c, ldc, add_to_c);
  } else {
    blocks_impl<false>(a, slices, x, runs, blocks, off, stride, c, ldc, add_to_c);
  }
}

}  // namespace amx
}  // namespace cnnkit
