// The AVX-512 Winograd F(4x4, 3x3) transforms as templates (winograd_avx512.cpp has the
// design): included by kernels/avx512/winograd_avx512.cpp and, for the bf16 rounding with
// VCVTNE2PS2BF16, by kernels/avx512_bf16/winograd_avx512bf16.cpp. Include ONLY from those
// ISA files: everything here is in an anonymous namespace (each translation unit its own
// copy, compiled with its own flags). Round::apply2(a, b) is applied to every element read from
// the image (NoRound: none; the bf16 roundings of the two files).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "conv/conv_kernels.hpp"
#include "conv/winograd_f43.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

using wino::kA;
using wino::kM;

struct NoRound {
  static void apply2(__m512&, __m512&) {}
};

// Rounds d[0..N) in place, two vectors at a time (a policy may have a cheaper form for a pair).
template <typename Round, int N>
inline void round_all(__m512* d) {
  static_assert(N % 2 == 0, "the transforms read rows of an even count of vectors");
  for (int j = 0; j < N; j += 2) Round::apply2(d[j], d[j + 1]);
}

// Lane order. A vector of "one column of 16 tiles" keeps tile l = 4 q + a at position
// p = 4 a + q: 128-bit lane a of it holds tiles a, 4 + a, 8 + a, 12 + a. With that order a
// row of 16 tiles is read with masked loads, tile 4 q + a's columns going to 128-bit lane a of
// vector q, and turned into columns by 4x4 transposes inside the 128-bit lanes (cheap
// in-lane shuffles, no cross-lane permutes); stores go the same way back. The GEMMs do not
// care about the order of the tiles, and the three kernels here use the same one.

// Where each group of 4 tiles (vector q) is read or written: tile 4q + a sits in 128-bit slot a,
// so a tile's 16-float window starts 4a floats before its origin, and consecutive tiles of one
// tile row share one window. Per q: the distinct windows (1 when the 4 tiles are consecutive
// in a row, up to 4), their offsets, and per tile row i their masks (the tiles' columns inside
// the image, shifted to the slots): lo = columns 0..3, hi = columns 4..5 (input rows only).
// Computed once per call, so the channel loop does one masked access per window and row.
struct RowMasks {
  int nwin[4];
  bool single = true;  // every q in one window (tile rows of multiples of 4 tiles)
  std::int64_t at[4][4];
  __mmask16 lo[kA][4][4], hi[kA][4][4];
  RowMasks(const WinoLanes& L, int size) {
    for (int q = 0; q < 4; ++q) {
      nwin[q] = 0;
      for (int a = 0; a < 4; ++a) {
        const int l = 4 * q + a;
        const std::int64_t where = std::int64_t(L.off[l]) - 4 * a;
        if (nwin[q] == 0 || at[q][nwin[q] - 1] != where) {
          at[q][nwin[q]] = where;
          for (int i = 0; i < size; ++i) lo[i][q][nwin[q]] = hi[i][q][nwin[q]] = 0;
          ++nwin[q];
        }
        std::uint32_t cols = 0;
        for (int j = 0; j < size; ++j) cols |= ((L.cols[j] >> l) & 1u) << j;
        const int w = nwin[q] - 1;
        for (int i = 0; i < size; ++i) {
          const std::uint32_t m = ((L.rows[i] >> l) & 1u) ? cols : 0u;
          lo[i][q][w] = __mmask16(lo[i][q][w] | ((m & 0xFu) << (4 * a)));
          hi[i][q][w] = __mmask16(hi[i][q][w] | (((m >> 4) & 0x3u) << (4 * a)));
        }
      }
      single = single && nwin[q] == 1;
    }
  }
};

// 4x4 transposes inside each 128-bit lane: in r[q] lane a holds 4 values of tile 4q + a;
// out c[k] lane a holds value k of tiles a, 4 + a, 8 + a, 12 + a.
inline void transpose4(const __m512* r, __m512* c) {
  const __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
  const __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
  c[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  c[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  c[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  c[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
}

// The 4 tiles of each vector q at p + col (+ the window offsets), masked: r[q] slot a = tile 4q +
// a. kSingle: every q has one window (the caller checked rm.single), a loop without branches.
template <bool kSingle>
inline void load_tiles(const float* p, const RowMasks& rm, const __mmask16 (*mask)[4], int col,
                       __m512* r) {
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_maskz_loadu_ps(mask[q][0], p + rm.at[q][0] + col);
    if (kSingle) continue;
    for (int w = 1; w < rm.nwin[q]; ++w) {
      r[q] = _mm512_or_ps(r[q], _mm512_maskz_loadu_ps(mask[q][w], p + rm.at[q][w] + col));
    }
  }
}

// 16 tiles x 6 columns of row i (the row's origin at p) -> d[j] = column j.
template <bool kSingle>
inline void load_rows6(const float* p, const RowMasks& rm, int i, __m512* d) {
  __m512 r[4];
  load_tiles<kSingle>(p, rm, rm.lo[i], 0, r);
  transpose4(r, d);
  load_tiles<kSingle>(p, rm, rm.hi[i], 4, r);
  const __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t2 = _mm512_unpacklo_ps(r[2], r[3]);
  d[4] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  d[5] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
}

// o[j] = column j of 16 tiles' output row i -> each tile's 4 floats (the row's origin at p).
template <bool kSingle>
inline void store_rows4(float* p, const RowMasks& rm, int i, const __m512* o) {
  __m512 r[4];
  transpose4(o, r);  // the 4x4 transpose is its own inverse
  for (int q = 0; q < 4; ++q) {
    _mm512_mask_storeu_ps(p + rm.at[q][0], rm.lo[i][q][0], r[q]);
    if (kSingle) continue;
    for (int w = 1; w < rm.nwin[q]; ++w)
      _mm512_mask_storeu_ps(p + rm.at[q][w], rm.lo[i][q][w], r[q]);
  }
}

template <bool kSingle, typename Round>
void input_impl(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                const RowMasks& rm, float* v, std::int64_t v_xi, std::int64_t v_c) {
  for (int c = 0; c < channels; ++c) {
    const float* xc = x + c * plane;
    __m512 t[kA * kA];
    for (int i = 0; i < kA; ++i) {
      __m512 d[kA];
      load_rows6<kSingle>(xc + i * ld, rm, i, d);
      round_all<Round, kA>(d);
      wino::input_1d(d, 1, t + i * kA, 1);  // row i of d B
    }
    float* vc = v + c * v_c;
    for (int j = 0; j < kA; ++j) {
      __m512 o[kA];
      wino::input_1d(t + j, kA, o, 1);  // column j of B^T (d B)
      for (int i = 0; i < kA; ++i) _mm512_storeu_ps(vc + (i * kA + j) * v_xi, o[i]);
    }
  }
}

template <bool kSingle>
void output_impl(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                 const RowMasks& rm, float* y, std::int64_t plane, std::int64_t ld,
                 const float* bias, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  for (int k = 0; k < channels; ++k) {
    const float* mk = m + k * m_k;
    float* yk = y + k * plane;
    __m512 t[kM * kA];
    for (int j = 0; j < kA; ++j) {
      __m512 in[kA];
      for (int i = 0; i < kA; ++i) in[i] = _mm512_loadu_ps(mk + (i * kA + j) * m_xi);
      wino::output_1d(in, 1, t + j, kA);  // column j of A^T M
    }
    const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
    for (int i = 0; i < kM; ++i) {
      __m512 o[kM];
      wino::output_1d(t + i * kA, 1, o, 1);  // row i of (A^T M) A
      for (int j = 0; j < kM; ++j) {
        o[j] = _mm512_add_ps(o[j], b);
        if (relu) o[j] = _mm512_max_ps(o[j], zero);
      }
      store_rows4<kSingle>(yk + i * ld, rm, i, o);
    }
  }
}

template <bool kSingle, typename Round>
void grad_output_impl(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                      const RowMasks& rm, float* m, std::int64_t m_xi, std::int64_t m_k) {
  for (int k = 0; k < channels; ++k) {
    const float* dk = dy + k * plane;
    __m512 t[kM * kA];
    for (int i = 0; i < kM; ++i) {
      __m512 g[kM], r[4];
      load_tiles<kSingle>(dk + i * ld, rm, rm.lo[i], 0, r);
      transpose4(r, g);
      round_all<Round, kM>(g);
      wino::grad_output_1d(g, 1, t + i * kA, 1);  // row i of dY A^T
    }
    float* mk = m + k * m_k;
    for (int j = 0; j < kA; ++j) {
      __m512 o[kA];
      wino::grad_output_1d(t + j, kA, o, 1);  // column j of A (dY A^T)
      for (int i = 0; i < kA; ++i) _mm512_storeu_ps(mk + (i * kA + j) * m_xi, o[i]);
    }
  }
}

// The kernels' bodies: the masks once per call, then the loop without branches where every
// group of 4 tiles has one window (rm.single).
template <typename Round>
void input(const float* x, std::int64_t plane, std::int64_t ld, int channels, const WinoLanes& L,
           float* v, std::int64_t v_xi, std::int64_t v_c) {
  const RowMasks rm(L, kA);
  if (rm.single) return input_impl<true, Round>(x, plane, ld, channels, rm, v, v_xi, v_c);
  input_impl<false, Round>(x, plane, ld, channels, rm, v, v_xi, v_c);
}

template <typename Round>
void grad_output(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                 const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k) {
  const RowMasks rm(L, kM);
  if (rm.single) return grad_output_impl<true, Round>(dy, plane, ld, channels, rm, m, m_xi, m_k);
  grad_output_impl<false, Round>(dy, plane, ld, channels, rm, m, m_xi, m_k);
}

}  // namespace
}  // namespace avx512
}  // namespace cnnkit
