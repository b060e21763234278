// int8 GEMM micro-kernel on AMX tiles: C (int32) (+)= A (int8 weights) @ B (uint8 activations),
// exact (compiled with -mamx-tile -mamx-int8 and the AVX-512 flags only here).
//
// Tiles (palette 1, all 16 rows x 64 bytes, the bf16 kernel's configuration: tiles_begin()):
// 0-3 the int32 sums of a 32 x 32 block of C (2 x 2 tiles of 16 x 16), 4-5 A (16 rows x 64
// signed bytes each), 6-7 B (16 k quads x 16 columns of unsigned bytes). Per 64-deep slice: 4
// tile loads from the packed panels, 4 TDPBSUD (signed bytes of its first source times unsigned
// bytes of its second, four products and the int32 sum added per lane: exact, as each of the
// kp <= 65536 products is at most 128 * 255). An A tile's rows are 64 contiguous bytes of the A
// panel (stride 64); a B tile is 16 columns of quads, half of each 128-byte quad row of the B
// panel (stride 128). The packers pad A to 32 rows and B to 32 columns with zeros, so every
// tile is full-size; a block with fewer than 16 live rows (columns) skips that tile row
// (column).
//
// Full blocks (m and n multiples of 16) load C into the accumulators when accumulating and store
// them straight back; other blocks sum in a local buffer and add / copy only the m x n part (C is
// neither read nor written outside it, and not read at all without accumulate). The slices are
// software-pipelined as in the bf16 kernel (tile registers are not renamed: each operand tile of
// the next slice is loaded right after the last product that reads the current one).
//
// Measured (one core, TDPBSUD peak ~7.4 TOPS): the slice loop runs at ~6.6 TOPS with one panel
// in L1 (<= 16 KiB) and the other streaming from L2, ~4.9 with both streaming from L2, and a 32
// KiB panel is already evicted by the stream. Yet a K block of 512 (B panel in L1) costs a
// round trip of the 32 x 32 C block per block, and C (M x N int32) lives in L2 / L3: end to
// end, the engine was fastest with one K block up to K = 4096 (kI8Kc). Software prefetch (of A,
// B or the next C block) and adding C with vector code instead of tile loads measured no gain.
// The row engine's 32 x 32 (u8s8_ukr_32x32: the activations as rows) uses the same tiles with
// the roles swapped: A tiles of 16 uint8 rows loaded in place (row stride lda, each slice at its
// own offset: the filter taps of a padded NHWC image), B tiles of the int8 weights' panel,
// TDPBUSD, the whole K in one call (the sums leave the tiles once).
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace amx {
namespace {

constexpr std::int64_t kSliceA = kI8Mr * kI8KStep;  // bytes per 64-deep slice of an A panel
constexpr std::int64_t kSliceB = 16 * 4 * kI8Nr;    // bytes per 64-deep slice of a B panel
constexpr std::int64_t kHalfA = 16 * kI8KStep;      // rows 16-31 of an A slice
constexpr std::int64_t kHalfB = 16 * 4;             // columns 16-31 of a B quad row

inline __mmask16 lane_mask(int count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// Tiles 4-7 <- one 64-deep slice of the A panel (rows 0-15, 16-31) and the B panel (columns
// 0-15, 16-31).
template <bool kTwoRows, bool kTwoCols>
inline void load_slice(const std::int8_t* a, const std::uint8_t* b) {
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 128);
  if (kTwoCols) _tile_loadd(7, b + kHalfB, 128);
  if (kTwoRows) _tile_loadd(5, a + kHalfA, 64);
}

// Tiles 0-3 += A panel @ B panel over kp (a multiple of 64), software-pipelined.
template <bool kTwoRows, bool kTwoCols>
inline void accumulate(std::int64_t kp, const std::int8_t* a, const std::uint8_t* b) {
  const std::int64_t steps = kp / kI8KStep;
  if (steps <= 0) return;
  load_slice<kTwoRows, kTwoCols>(a, b);
  for (std::int64_t t = 0; t < steps; ++t) {
    const bool more = t + 1 < steps;
    const std::int8_t* an = a + (t + 1) * kSliceA;
    const std::uint8_t* bn = b + (t + 1) * kSliceB;
    _tile_dpbsud(0, 4, 6);
    if (kTwoCols) _tile_dpbsud(1, 4, 7);
    if (more) _tile_loadd(4, an, 64);
    if (kTwoRows) _tile_dpbsud(2, 5, 6);
    if (more) _tile_loadd(6, bn, 128);
    if (kTwoRows && kTwoCols) _tile_dpbsud(3, 5, 7);
    if (more) {
      if (kTwoRows) _tile_loadd(5, an + kHalfA, 64);
      if (kTwoCols) _tile_loadd(7, bn + kHalfB, 128);
    }
  }
}

// The sums start from C (load) or from zero; rows 16-31 only with kTwoRows, columns 16-31 only
// with kTwoCols. Row stride ldc int32.
template <bool kTwoRows, bool kTwoCols>
inline void start_sums(const std::int32_t* c, std::int64_t ldc, bool load) {
  const std::int64_t sc = ldc * std::int64_t(sizeof(std::int32_t));
  if (load) {
    _tile_loadd(0, c, sc);
    if (kTwoCols) _tile_loadd(1, c + 16, sc);
    if (kTwoRows) _tile_loadd(2, c + 16 * ldc, sc);
    if (kTwoRows && kTwoCols) _tile_loadd(3, c + 16 * ldc + 16, sc);
  } else {
    _tile_zero(0);
    if (kTwoCols) _tile_zero(1);
    if (kTwoRows) _tile_zero(2);
    if (kTwoRows && kTwoCols) _tile_zero(3);
  }
}

template <bool kTwoRows, bool kTwoCols>
inline void store_sums(std::int32_t* c, std::int64_t ldc) {
  const std::int64_t sc = ldc * std::int64_t(sizeof(std::int32_t));
  _tile_stored(0, c, sc);
  if (kTwoCols) _tile_stored(1, c + 16, sc);
  if (kTwoRows) _tile_stored(2, c + 16 * ldc, sc);
  if (kTwoRows && kTwoCols) _tile_stored(3, c + 16 * ldc + 16, sc);
}

// A block whose live rows and columns fill its tiles: the sums go through C itself.
template <bool kTwoRows, bool kTwoCols>
inline void full_block(std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
                       std::int32_t* c, std::int64_t ldc, bool acc) {
  start_sums<kTwoRows, kTwoCols>(c, ldc, acc);
  accumulate<kTwoRows, kTwoCols>(kp, a, b);
  store_sums<kTwoRows, kTwoCols>(c, ldc);
}

// Any other block: the sums from zero into a local 32 x 32 buffer, then C[m x n] = (acc ? C : 0)
// + buffer.
template <bool kTwoRows, bool kTwoCols>
inline void edge_block(int m, int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
                       std::int32_t* c, std::int64_t ldc, bool acc) {
  alignas(64) std::int32_t buf[32 * 32];
  start_sums<kTwoRows, kTwoCols>(nullptr, 0, false);
  accumulate<kTwoRows, kTwoCols>(kp, a, b);
  store_sums<kTwoRows, kTwoCols>(buf, 32);
  const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
  for (int i = 0; i < m; ++i) {
    std::int32_t* cp = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      const __mmask16 mk = h ? m1 : m0;
      if (!mk) continue;
      __m512i v = _mm512_load_si512(buf + i * 32 + 16 * h);
      if (acc) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mk, cp + 16 * h));
      _mm512_mask_storeu_epi32(cp + 16 * h, mk, v);
    }
  }
}

template <bool kTwoRows, bool kTwoCols>
inline void block(int m, int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
                  std::int32_t* c, std::int64_t ldc, bool acc) {
  if (m == (kTwoRows ? 32 : 16) && n == (kTwoCols ? 32 : 16)) {
    full_block<kTwoRows, kTwoCols>(kp, a, b, c, ldc, acc);
  } else {
    edge_block<kTwoRows, kTwoCols>(m, n, kp, a, b, c, ldc, acc);
  }
}

// The row engine: tiles 0-3 = the A rows (in place) @ the B panel over all slices.
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
  start_sums<kTwoRows, kTwoCols>(nullptr, 0, false);
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

void i8_ukr_32x32(int m, int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
                  std::int32_t* c, std::int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  const bool two_rows = m > 16, two_cols = n > 16;
  if (two_rows && two_cols) {
    block<true, true>(m, n, kp, a, b, c, ldc, accumulate);
  } else if (two_rows) {
    block<true, false>(m, n, kp, a, b, c, ldc, accumulate);
  } else if (two_cols) {
    block<false, true>(m, n, kp, a, b, c, ldc, accumulate);
  } else {
    block<false, false>(m, n, kp, a, b, c, ldc, accumulate);
  }
}

}  // namespace amx
}  // namespace cnnkit
