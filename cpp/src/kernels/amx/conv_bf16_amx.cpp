// The direct bf16 convolution's block kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16
// only here; see conv_kernels.hpp for the contract). Tiles as the GEMM kernel configures them
// (gemm_bf16_amx.cpp): 0-3 the 2 x 2 fp32 accumulators, 4-5 A, 6-7 B. The B tiles come
// straight from the padded bf16 image: 16 channel pairs at a stride of one plane, 16 columns
// of consecutive pixels each; the slice's tap is the offset.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace amx {

void bf16_direct_block_amx(const std::uint16_t* a, int slices, const std::uint16_t* x,
                           const std::int64_t* off, std::int64_t ld, float* out) {
  const std::int64_t stride = ld * std::int64_t(sizeof(std::uint16_t));
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int s = 0; s < slices; ++s, a += 32 * 32) {
    const std::uint16_t* b = x + off[s];
    _tile_loadd(4, a, 64);
    _tile_loadd(6, b, stride);
    _tile_loadd(7, b + 32, stride);
    _tile_loadd(5, a + 16 * 32, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 128);
  _tile_stored(1, out + 16, 128);
  _tile_stored(2, out + 16 * 32, 128);
  _tile_stored(3, out + 16 * 32 + 16, 128);
}

}  // namespace amx
}  // namespace cnnkit
