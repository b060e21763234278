// The int8 row engine's micro-kernel on AMX tiles: C (int32) = A (uint8 activations, rows read
// in place) @ B (int8 weights' panel), exact (compiled with -mamx-tile -mamx-int8 and the
// AVX-512 flags only here).
//
// Tiles (palette 1, all 16 rows x 64 bytes, the bf16 kernel's configuration: tiles_begin()):
// 0-3 the int32 sums of a 32 x 32 block of C (2 x 2 tiles of 16 x 16), 4-5 A (16 pixels x 64
// unsigned bytes each, loaded with the pixels' stride lda, each 64-deep slice at its own offset:
// the filter taps of a padded NHWC image), 6-7 B (16 depth quads x 16 columns of signed bytes,
// half of each 128-byte quad row of the panel: stride 128). Per slice: 4 tile loads, 4 TDPBUSD
// (unsigned bytes of its first source times signed bytes of its second, four products and the
// int32 sum added per lane: exact, as each of the K <= 65536 products is at most 255 * 128).
// The whole depth runs in one call, so the sums leave the tiles once: full blocks (m and n
// multiples of 16) store them straight into C, other blocks into a local buffer and copy the m
// x n part. A tile reads all 16 of its rows whatever m is (the caller keeps them readable);
// a block with at most 16 live rows (columns) skips the other tile row (column).
//
// Measured (one core, TDPBSUD peak ~7.4 TOPS, the s8 x u8 engine this replaced): the slice
// loop runs at ~6.6 TOPS with one operand in L1 and the other streaming from L2, ~4.9 with both
// streaming from L2.
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace amx {
namespace {

constexpr std::int64_t kSliceB = 16 * 4 * kI8Nr;  // bytes per 64-deep slice of a B panel
constexpr std::int64_t kHalfB = 16 * 4;           // columns 16-31 of a B quad row

inline __mmask16 lane_mask(int count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// The sums start from zero; rows 16-31 only with kTwoRows, columns 16-31 only with kTwoCols.
template <bool kTwoRows, bool kTwoCols>
inline void zero_sums() {
  _tile_zero(0);
  if (kTwoCols) _tile_zero(1);
  if (kTwoRows) _tile_zero(2);
  if (kTwoRows && kTwoCols) _tile_zero(3);
}

template <bool kTwoRows, bool kTwoCols>
inline void store_sums(std::int32_t* c, std::int64_t ldc) {
  const std::int64_t sc = ldc * std::int64_t(sizeof(std::int32_t));
  _tile_stored(0, c, sc);
  if (kTwoCols) _tile_stored(1, c + 16, sc);
  if (kTwoRows) _tile_stored(2, c + 16 * ldc, sc);
  if (kTwoRows && kTwoCols) _tile_stored(3, c + 16 * ldc + 16, sc);
}

// Tiles 0-3 = the A rows (in place) @ the B panel over all slices.
template <bool kTwoRows, bool kTwoCols>
inline void accumulate_rows(std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                            const std::int64_t* a_off, const std::int8_t* b) {
  const std::uint8_t* a_half = a + 16 * lda;
  for (std::int64_t t = 0; t < slices; ++t) {
    const std::int8_t* bt = b + t * kSliceB;
    _tile_loadd(4, a + a_off[t], lda);
    _tile_loadd(6, bt, 128);
    if (kTwoCols) _tile_loadd(7, bt + kHalfB, 128);
    if (kTwoRows) _tile_loadd(5, a_half + a_off[t], lda);
    _tile_dpbusd(0, 4, 6);
    if (kTwoCols) _tile_dpbusd(1, 4, 7);
    if (kTwoRows) _tile_dpbusd(2, 5, 6);
    if (kTwoRows && kTwoCols) _tile_dpbusd(3, 5, 7);
  }
}

template <bool kTwoRows, bool kTwoCols>
inline void block_rows(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                       const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                       std::int64_t ldc) {
  zero_sums<kTwoRows, kTwoCols>();
  accumulate_rows<kTwoRows, kTwoCols>(slices, a, lda, a_off, b);
  if (m == (kTwoRows ? 32 : 16) && n == (kTwoCols ? 32 : 16)) {
    store_sums<kTwoRows, kTwoCols>(c, ldc);
    return;
  }
  alignas(64) std::int32_t buf[32 * 32];
  store_sums<kTwoRows, kTwoCols>(buf, 32);
  const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
  for (int i = 0; i < m; ++i) {
    _mm512_mask_storeu_epi32(c + i * ldc, m0, _mm512_load_si512(buf + i * 32));
    if (m1) _mm512_mask_storeu_epi32(c + i * ldc + 16, m1, _mm512_load_si512(buf + i * 32 + 16));
  }
}

}  // namespace

void u8s8_ukr_32x32(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                    const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                    std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const bool two_rows = m > 16, two_cols = n > 16;
  if (two_rows && two_cols) {
    block_rows<true, true>(m, n, slices, a, lda, a_off, b, c, ldc);
  } else if (two_rows) {
    block_rows<true, false>(m, n, slices, a, lda, a_off, b, c, ldc);
  } else if (two_cols) {
    block_rows<false, true>(m, n, slices, a, lda, a_off, b, c, ldc);
  } else {
    block_rows<false, false>(m, n, slices, a, lda, a_off, b, c, ldc);
  }
}

}  // namespace amx
}  // namespace cnnkit
