// bf16 GEMM micro-kernel on AMX tiles (compiled with -mamx-tile -mamx-bf16 and the AVX-512
// flags only here).
//
// Tiles (palette 1, all 16 rows x 64 bytes): 0-3 the fp32 accumulators of a 32 x 32 block of C
// (2 x 2 tiles of 16 x 16), 4-5 A (16 rows x 32 bf16 each), 6-7 B (16 k pairs x 16 columns).
// Per 32-deep step: 4 tile loads from the packed panels, 4 TDPBF16PS. A tile's rows are 64
// contiguous bytes of the A panel (stride 64); a B tile is 16 columns of pairs, half of each
// 128-byte pair row of the B panel (stride 128). TDPBF16PS flushes denormal results to zero
// (the rounding already made denormal inputs zeros).
//
// bf16_row_32 runs a whole row of C blocks against one A panel: full 32 x 32 blocks with alpha
// 1 and beta 0 or 1 load C into the accumulators (beta 1) and store them straight back, the
// next block's first operands loaded before the store (measured +5-12 %: a tile store holds
// back the tile loads after it); edge blocks go through a local buffer and the general
// epilogue. No software prefetch: measured no gain (B and C) or a loss (B two slices ahead).
// Operands and C rows must start on cache lines (a split line halves the tile loads' speed);
// the engine sees to it.
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include <algorithm>

#include "gemm/gemm_kernels.hpp"
#include "kernels/amx/sums_amx.hpp"
#include "runtime/peak_kernels.hpp"

namespace cnnkit {
namespace amx {
namespace {

struct alignas(64) TileConfig {
  std::uint8_t palette_id;
  std::uint8_t start_row;
  std::uint8_t reserved[14];
  std::uint16_t colsb[16];
  std::uint8_t rows[16];
};

inline __mmask16 lane_mask(int count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

constexpr int kA = kBf16Mr * kBf16KStep;  // bf16 values per 32-deep A slice
constexpr int kB = 16 * 2 * kBf16Nr;      // bf16 values per 32-deep B slice

// Tiles 4-7 <- one 32-deep slice of the A panel (rows 0-15, 16-31) and the B panel (columns
// 0-15, 16-31).
template <bool kTwoRows, bool kTwoCols>
inline void load_slice(const bf16_t* a, const bf16_t* b) {
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 128);
  if (kTwoCols) _tile_loadd(7, b + 32, 128);
  if (kTwoRows) _tile_loadd(5, a + 16 * kBf16KStep, 64);
}

// Tiles 0-3 += A panel @ B panel over kp, tiles 4-7 holding slice 0 on entry. Software-
// pipelined: tile registers are not renamed, so each A / B tile of the next slice is loaded
// right after the last product that reads the current one; after the last slice the next
// block's first slice (a_next, b_next; none if null) goes in, so its loads overlap this
// block's last products and the store of its sums (a tile store holds back later tile loads).
template <bool kTwoRows, bool kTwoCols>
inline void accumulate(std::int64_t kp, const bf16_t* a, const bf16_t* b, const bf16_t* a_next,
                       const bf16_t* b_next) {
  const std::int64_t steps = kp / kBf16KStep;
  for (std::int64_t t = 0; t < steps; ++t) {
    const bool inside = t + 1 < steps;
    const bool more = inside || a_next != nullptr;
    const bf16_t* an = inside ? a + (t + 1) * kA : a_next;
    const bf16_t* bn = inside ? b + (t + 1) * kB : b_next;
    _tile_dpbf16ps(0, 4, 6);
    if (kTwoCols) _tile_dpbf16ps(1, 4, 7);
    if (more) _tile_loadd(4, an, 64);
    if (kTwoRows) _tile_dpbf16ps(2, 5, 6);
    if (more) _tile_loadd(6, bn, 128);
    if (kTwoRows && kTwoCols) _tile_dpbf16ps(3, 5, 7);
    if (more) {
      if (kTwoRows) _tile_loadd(5, an + 16 * kBf16KStep, 64);
      if (kTwoCols) _tile_loadd(7, bn + 32, 128);
    }
  }
}

// C[m x n] = alpha * acc + beta * C (beta == 0: C is not read), + bias, then ReLU; acc may be C
// itself (a full block whose sums are already in C: beta 0, alpha 1).
void finish(const float* acc, std::int64_t lda, int m, int n, float beta, const UkrEpilogue& ep,
            float* c, std::int64_t ldc) {
  const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
  for (int i = 0; i < m; ++i) {
    float* cp = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      const __mmask16 mk = h ? m1 : m0;
      if (!mk) continue;
      __m512 v = _mm512_maskz_loadu_ps(mk, acc + i * lda + 16 * h);
      if (ep.alpha != 1.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.alpha));
      if (beta != 0.0f) {
        const __m512 old = _mm512_maskz_loadu_ps(mk, cp + 16 * h);
        v = _mm512_fmadd_ps(_mm512_set1_ps(beta), old, v);
      }
      if (ep.bias_row) v = _mm512_add_ps(v, _mm512_set1_ps(ep.bias_row[i]));
      if (ep.bias_col) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, ep.bias_col + 16 * h));
      if (ep.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(cp + 16 * h, mk, v);
    }
  }
}

}  // namespace

// In static storage: GCC's _tile_loadconfig tells the compiler it reads only the first 8
// bytes, so the stores into a local configuration could be dropped as dead. Constant
// initialised (an aggregate, no constructor): this file is compiled with -mamx and
// -mavx512f, and a dynamic initialiser here would run AVX-512 stores when the library is
// loaded, on every CPU (an illegal instruction on one without AVX-512).
constexpr TileConfig kConfig = {
    1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

void tiles_begin() { _tile_loadconfig(&kConfig); }

void tiles_end() { _tile_release(); }

void bf16_finish(const float* acc, std::int64_t lda, int m, int n, float beta,
                 const UkrEpilogue& ep, float* c, std::int64_t ldc) {
  for (int j = 0; j < n; j += kBf16Nr) {
    UkrEpilogue e = ep;
    e.bias_col = ep.bias_col ? ep.bias_col + j : nullptr;
    finish(acc + j, lda, m, std::min(kBf16Nr, n - j), beta, e, c + j, ldc);
  }
}

// An edge block (m or n below 32, or alpha / beta other than 1 / 0-or-1): sums in a local
// buffer, then the general epilogue.
void bf16_ukr_32x32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                    std::int64_t ldc, const UkrEpilogue& ep) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const bool two_rows = m > 16, two_cols = n > 16;
  if (two_rows && two_cols) {
    load_slice<true, true>(a, b);
    accumulate<true, true>(kp, a, b, nullptr, nullptr);
  } else if (two_rows) {
    load_slice<true, false>(a, b);
    accumulate<true, false>(kp, a, b, nullptr, nullptr);
  } else if (two_cols) {
    load_slice<false, true>(a, b);
    accumulate<false, true>(kp, a, b, nullptr, nullptr);
  } else {
    load_slice<false, false>(a, b);
    accumulate<false, false>(kp, a, b, nullptr, nullptr);
  }
  alignas(64) float buf[32 * 32];
  _tile_stored(0, buf, 128);
  _tile_stored(1, buf + 16, 128);
  _tile_stored(2, buf + 16 * 32, 128);
  _tile_stored(3, buf + 16 * 32 + 16, 128);
  finish(buf, 32, m, n, ep.beta, ep, c, ldc);
}

// A row of C blocks against one A panel. Full blocks with alpha 1 and beta 0 or 1 load C into
// the accumulators (beta 1) and store them straight back, one block after the other with the
// next block's first operands loaded before this one's store; the rest go block by block.
// A panel of 32 rows takes the 2 x 2 tiles, one of 16 (or, into padded C, fewer) the 1 x 2
// (batch-16 linear layers stream their weights through it).
template <bool kTwoRows>
int row_blocks(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
               std::int64_t ldc, const UkrEpilogue& ep) {
  const std::int64_t panel = kp * kBf16Nr;
  const int full = n / kBf16Nr;
  const bool epilogue = ep.bias_row || ep.bias_col || ep.relu;
  if (full > 0) load_slice<kTwoRows, true>(a, b);
  for (int j = 0; j < full; ++j) {
    float* cj = c + j * kBf16Nr;
    start_sums<kTwoRows>(cj, ldc, ep.beta == 1.0f);
    const bool more = j + 1 < full;
    accumulate<kTwoRows, true>(kp, a, b + j * panel, more ? a : nullptr,
                               more ? b + (j + 1) * panel : nullptr);
    store_sums<kTwoRows>(cj, ldc);
    if (epilogue) {
      UkrEpilogue e = ep;
      e.bias_col = ep.bias_col ? ep.bias_col + j * kBf16Nr : nullptr;
      finish(cj, ldc, m, 32, 0.0f, e, cj, ldc);
    }
  }
  return full * kBf16Nr;
}

void bf16_row_32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                 std::int64_t ldc, const UkrEpilogue& ep) {
  const std::int64_t panel = kp * kBf16Nr;
  const bool simple = ep.alpha == 1.0f && (ep.beta == 0.0f || ep.beta == 1.0f);
  // whole tile rows: a full panel, or rows past m that are C's scratch
  const bool tiles_fit = m == 32 || m == 16 || ep.c_padded;
  int done = 0;
  if (simple && tiles_fit) {
    done = m > 16 ? row_blocks<true>(m, n, kp, a, b, c, ldc, ep)
                  : row_blocks<false>(m, n, kp, a, b, c, ldc, ep);
  }
  for (int j = done; j < n; j += kBf16Nr) {
    UkrEpilogue e = ep;
    e.bias_col = ep.bias_col ? ep.bias_col + j : nullptr;
    bf16_ukr_32x32(m, std::min(kBf16Nr, n - j), kp, a, b + (j / kBf16Nr) * panel, c + j, ldc, e);
  }
}

void bf16_accumulate_block(const bf16_t* a, std::int64_t lda, const bf16_t* b, std::int64_t ldb,
                           int slices, float* c, std::int64_t ldc) {
  const std::int64_t sa = lda * 2, sb = ldb * 2;  // bytes
  start_sums<true>(c, ldc, true);
  // software-pipelined as the direct convolution's kernel (conv_bf16_amx.cpp)
  _tile_loadd(4, a, sa);
  _tile_loadd(6, b, sb);
  _tile_loadd(7, b + 32, sb);
  _tile_loadd(5, a + 16 * lda, sa);
  for (int s = 0; s < slices; ++s) {
    const bool more = s + 1 < slices;
    const bf16_t* an = a + (s + 1) * kBf16KStep;
    const bf16_t* bn = b + (s + 1) * 16 * ldb;
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (more) _tile_loadd(4, an, sa);
    _tile_dpbf16ps(2, 5, 6);
    if (more) _tile_loadd(6, bn, sb);
    _tile_dpbf16ps(3, 5, 7);
    if (more) {
      _tile_loadd(5, an + 16 * lda, sa);
      _tile_loadd(7, bn + 32, sb);
    }
  }
  store_sums<true>(c, ldc);
}

// The bf16 peak probe: 4 independent tile accumulators, A and B tiles loaded once.
float tdp_chains(std::int64_t iters) {
  alignas(64) static const bf16_t zeros[16 * 32] = {};
  alignas(64) float out[16 * 16];
  tiles_begin();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
  for (std::int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  tiles_end();
  return out[0];
}

}  // namespace amx
}  // namespace cnnkit
