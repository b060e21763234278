// The direct bf16 convolution's block kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16
// only here; see conv_kernels.hpp for the contract). Tiles as the GEMM kernel configures them
// (gemm_bf16_amx.cpp): 0-3 the 2 x 2 fp32 accumulators, 4-5 A, 6-7 B. The B tiles come
// straight from the padded bf16 image: 16 channel pairs at a stride of one plane, 16 columns
// of consecutive pixels each; the slice's tap is the offset. A full block without bias or ReLU
// stores the accumulators straight into the output rows; otherwise through a local buffer.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace amx {
namespace {

template <bool kTwoRows>
void accumulate(const std::uint16_t* a, int slices, const std::uint16_t* x0,
                const std::uint16_t* x1, const std::int64_t* off, std::int64_t stride) {
  for (int s = 0; s < slices; ++s, a += 32 * 32) {
    _tile_loadd(4, a, 64);
    _tile_loadd(6, x0 + off[s], stride);
    _tile_loadd(7, x1 + off[s], stride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (kTwoRows) {
      _tile_loadd(5, a + 16 * 32, 64);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
}

}  // namespace

void bf16_direct_block_amx(const std::uint16_t* a, int slices, const std::uint16_t* x0,
                           const std::uint16_t* x1, const std::int64_t* off, std::int64_t ld, int m,
                           float* y0, float* y1, std::int64_t ldy, const float* bias, bool relu) {
  const std::int64_t stride = ld * std::int64_t(sizeof(std::uint16_t));
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  if (m > 16) {
    accumulate<true>(a, slices, x0, x1, off, stride);
  } else {
    accumulate<false>(a, slices, x0, x1, off, stride);
  }
  const std::int64_t ldy_bytes = ldy * std::int64_t(sizeof(float));
  if ((m == 32 || m == 16) && bias == nullptr && !relu) {
    _tile_stored(0, y0, ldy_bytes);
    _tile_stored(1, y1, ldy_bytes);
    if (m == 32) {
      _tile_stored(2, y0 + 16 * ldy, ldy_bytes);
      _tile_stored(3, y1 + 16 * ldy, ldy_bytes);
    }
    return;
  }
  alignas(64) float buf[32 * 32];
  _tile_stored(0, buf, 128);
  _tile_stored(1, buf + 16, 128);
  _tile_stored(2, buf + 16 * 32, 128);
  _tile_stored(3, buf + 16 * 32 + 16, 128);
  for (int i = 0; i < m; ++i) {
    const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
    __m512 v0 = _mm512_add_ps(_mm512_load_ps(buf + i * 32), b);
    __m512 v1 = _mm512_add_ps(_mm512_load_ps(buf + i * 32 + 16), b);
    if (relu) {
      v0 = _mm512_max_ps(v0, _mm512_setzero_ps());
      v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
    }
    _mm512_storeu_ps(y0 + i * ldy, v0);
    _mm512_storeu_ps(y1 + i * ldy, v1);
  }
}

}  // namespace amx
}  // namespace cnnkit
