// The direct bf16 convolution's block kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16
// only here; see conv_kernels.hpp for the contract). Tiles as the GEMM kernel configures them
// (gemm_bf16_amx.cpp): 0-3 the 2 x 2 fp32 accumulators, 4-5 A, 6-7 B. The B tiles come
// straight from the padded bf16 image: 16 channel pairs at a stride of one plane, 16 columns
// of consecutive pixels each; the slice's tap is the offset. The accumulators start from (and
// go back to) a block of fp32 partial sums, so the caller can split K into chunks whose A
// slices stay in L1 across many blocks.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace amx {
namespace {

// Software-pipelined: tile registers are not renamed, so each A / B tile of the next slice is
// loaded right after the last product that reads the current one, a product or two ahead of
// its use, instead of just before it (measured 1.5-2x on AlexNet and CIFAR layers).
template <bool kTwoRows>
void accumulate_slices(const std::uint16_t* a, int slices, const std::uint16_t* x0,
                       const std::uint16_t* x1, const std::int64_t* off, std::int64_t stride) {
  if (slices <= 0) return;
  _tile_loadd(4, a, 64);
  _tile_loadd(6, x0 + off[0], stride);
  _tile_loadd(7, x1 + off[0], stride);
  if (kTwoRows) _tile_loadd(5, a + 16 * 32, 64);
  for (int s = 0; s < slices; ++s) {
    const bool more = s + 1 < slices;
    const std::uint16_t* an = a + (s + 1) * 32 * 32;
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (more) _tile_loadd(4, an, 64);
    if (kTwoRows) {
      _tile_dpbf16ps(2, 5, 6);
      if (more) _tile_loadd(6, x0 + off[s + 1], stride);
      _tile_dpbf16ps(3, 5, 7);
      if (more) {
        _tile_loadd(5, an + 16 * 32, 64);
        _tile_loadd(7, x1 + off[s + 1], stride);
      }
    } else if (more) {
      _tile_loadd(6, x0 + off[s + 1], stride);
      _tile_loadd(7, x1 + off[s + 1], stride);
    }
  }
}

}  // namespace

void bf16_direct_block_amx(const std::uint16_t* a, int slices, const std::uint16_t* x0,
                           const std::uint16_t* x1, const std::int64_t* off, std::int64_t ld, int m,
                           float* c, std::int64_t ldc, bool add_to_c) {
  const std::int64_t stride = ld * std::int64_t(sizeof(std::uint16_t));
  const std::int64_t sc = ldc * std::int64_t(sizeof(float));
  const bool two = m > 16;
  if (add_to_c) {
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    if (two) {
      _tile_loadd(2, c + 16 * ldc, sc);
      _tile_loadd(3, c + 16 * ldc + 16, sc);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  if (two) {
    accumulate_slices<true>(a, slices, x0, x1, off, stride);
  } else {
    accumulate_slices<false>(a, slices, x0, x1, off, stride);
  }
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  if (two) {
    _tile_stored(2, c + 16 * ldc, sc);
    _tile_stored(3, c + 16 * ldc + 16, sc);
  }
}

}  // namespace amx
}  // namespace cnnkit
