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
// Full 32 x 32 blocks with alpha 1 and beta 0 or 1 load C into the accumulators (beta 1) and
// store them straight back; edge blocks go through a local buffer and the general epilogue.
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include <cstring>

#include "gemm/gemm_kernels.hpp"
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
constexpr int kPrefetchSlices = 2;

// next_c (or null): the C block of the next call (the driver walks C blocks left to right),
// fetched while this one computes: when C is updated once per K block, its loads from memory
// are what the tile unit would wait for. 32 rows of 128 bytes, spread over the K steps.
template <bool kTwoRows, bool kTwoCols>
void accumulate(std::int64_t kp, const bf16_t* a, const bf16_t* b, const float* next_c,
                std::int64_t ldc) {
  const std::int64_t steps = kp / kBf16KStep;
  const int rows_per_step = next_c ? int((32 + steps - 1) / steps) : 0;
  int row = 0;
  // Software-pipelined: tile registers are not renamed, so each A / B tile of the next step is
  // loaded right after the last product that reads the current one.
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 128);
  if (kTwoCols) _tile_loadd(7, b + 32, 128);
  if (kTwoRows) _tile_loadd(5, a + 16 * kBf16KStep, 64);
  for (std::int64_t t = 0; t < steps; ++t) {
    for (int r = 0; r < rows_per_step && row < 32; ++r, ++row) {
      const char* line = reinterpret_cast<const char*>(next_c + row * ldc);
      _mm_prefetch(line, _MM_HINT_T0);
      _mm_prefetch(line + 64, _MM_HINT_T0);
    }
    // B streams from L2 (A stays in L1 across the B panels of a chunk): fetch the slice two
    // steps ahead, 32 cache lines (past the panel's end that is the next panel's start).
    const char* ahead = reinterpret_cast<const char*>(b + (t + kPrefetchSlices) * kB);
#pragma GCC unroll 32
    for (int line = 0; line < 32; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    const bool more = t + 1 < steps;
    const bf16_t* an = a + (t + 1) * kA;
    const bf16_t* bn = b + (t + 1) * kB;
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

TileConfig make_config() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  return cfg;
}

// In static storage: GCC's _tile_loadconfig tells the compiler it reads only the first 8
// bytes, so the stores into a local configuration could be dropped as dead.
const TileConfig kConfig = make_config();

void tiles_begin() { _tile_loadconfig(&kConfig); }

void tiles_end() { _tile_release(); }

void bf16_ukr_32x32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                    std::int64_t ldc, const UkrEpilogue& ep) {
  const std::int64_t ldc_bytes = ldc * std::int64_t(sizeof(float));
  if (m == 32 && n == 32 && ep.alpha == 1.0f && (ep.beta == 0.0f || ep.beta == 1.0f)) {
    if (ep.beta == 1.0f) {
      _tile_loadd(0, c, ldc_bytes);
      _tile_loadd(1, c + 16, ldc_bytes);
      _tile_loadd(2, c + 16 * ldc, ldc_bytes);
      _tile_loadd(3, c + 16 * ldc + 16, ldc_bytes);
    } else {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    }
    accumulate<true, true>(kp, a, b, ep.beta == 1.0f ? c + 32 : nullptr, ldc);
    _tile_stored(0, c, ldc_bytes);
    _tile_stored(1, c + 16, ldc_bytes);
    _tile_stored(2, c + 16 * ldc, ldc_bytes);
    _tile_stored(3, c + 16 * ldc + 16, ldc_bytes);
    if (ep.bias_row || ep.bias_col || ep.relu) finish(c, ldc, 32, 32, 0.0f, ep, c, ldc);
    return;
  }
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const bool two_rows = m > 16, two_cols = n > 16;
  if (two_rows && two_cols) {
    accumulate<true, true>(kp, a, b, nullptr, ldc);
  } else if (two_rows) {
    accumulate<true, false>(kp, a, b, nullptr, ldc);
  } else if (two_cols) {
    accumulate<false, true>(kp, a, b, nullptr, ldc);
  } else {
    accumulate<false, false>(kp, a, b, nullptr, ldc);
  }
  alignas(64) float buf[32 * 32];
  _tile_stored(0, buf, 128);
  _tile_stored(1, buf + 16, 128);
  _tile_stored(2, buf + 16 * 32, 128);
  _tile_stored(3, buf + 16 * 32 + 16, 128);
  finish(buf, 32, m, n, ep.beta, ep, c, ldc);
}

void bf16_accumulate_block(const bf16_t* a, std::int64_t lda, const bf16_t* b, std::int64_t ldb,
                           int slices, float* c, std::int64_t ldc) {
  const std::int64_t sa = lda * 2, sb = ldb * 2, sc = ldc * 4;  // bytes
  _tile_loadd(0, c, sc);
  _tile_loadd(1, c + 16, sc);
  _tile_loadd(2, c + 16 * ldc, sc);
  _tile_loadd(3, c + 16 * ldc + 16, sc);
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
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  _tile_stored(2, c + 16 * ldc, sc);
  _tile_stored(3, c + 16 * ldc + 16, sc);
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
