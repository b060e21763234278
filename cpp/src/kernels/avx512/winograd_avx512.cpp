// AVX-512 Winograd F(4x4, 3x3) transforms: 16 tiles at once, one per lane.
//
// Each tile's rows are contiguous in the image, so a row of several tiles is read with masked
// loads (the mask drops columns outside the image; masked-off elements are never touched) and
// turned into "one column of every tile per vector" with in-lane 4x4 transposes; the output
// goes the opposite way. This works for any tiles in the lanes (several tile rows or images in
// one group). Four consecutive tiles of one tile row share a 16-float window, so they are
// read (or written) by one masked access instead of four: measured 2x faster input transforms
// (Zen 4; the loads are what costs). Gathers and scatters were ~4x slower; a vpermt2ps tree
// instead of the in-lane transposes measured the same.
// The transforms themselves are the shared templates of conv/winograd_f43.hpp on __m512.
#include <immintrin.h>

#include <cstdint>

#include "cnnkit/kernels.hpp"
#include "conv/winograd_f43.hpp"

namespace cnnkit {
namespace avx512 {

using wino::kA;
using wino::kM;

namespace {

// Lane order. A vector of "one column of 16 tiles" keeps tile l = 4 q + a at position
// p = 4 a + q: 128-bit lane a of it holds tiles a, 4 + a, 8 + a, 12 + a. With that order a
// row of 16 tiles is read with masked loads, tile 4 q + a's columns going to 128-bit lane a of
// vector q, and turned into columns by 4x4 transposes inside the 128-bit lanes (cheap
// in-lane shuffles, no cross-lane permutes); stores go the same way back. The GEMMs do not
// care about the order of the tiles, and the three kernels here use the same one.

// Per-lane masks of one tile row, pre-shifted to the lane's 128-bit slot (4 (l % 4)):
// lo = columns 0..3, hi = columns 4..5 (input rows only); and the matching element offsets
// (tile origin minus the slot, so a 16-float access puts the tile's values in its slot).
// Computed once per call: the channel loop then does one load or store per tile and row.
struct RowMasks {
  __mmask16 lo[kA][16], hi[kA][16];
  std::int64_t at_lo[16], at_hi[16];
  bool joint[4];
  __mmask16 lo4[kA][4], hi4[kA][4];
  RowMasks(const WinoLanes& L, int size) {
    for (int l = 0; l < 16; ++l) {
      at_lo[l] = std::int64_t(L.off[l]) - 4 * (l % 4);
      at_hi[l] = at_lo[l] + 4;
      std::uint32_t cols = 0;
      for (int j = 0; j < size; ++j) cols |= ((L.cols[j] >> l) & 1u) << j;
      const int slot = 4 * (l % 4);
      for (int i = 0; i < size; ++i) {
        const std::uint32_t m = ((L.rows[i] >> l) & 1u) ? cols : 0u;
        lo[i][l] = __mmask16((m & 0xFu) << slot);
        hi[i][l] = __mmask16(((m >> 4) & 0x3u) << slot);
      }
    }
    // Four consecutive tiles of one tile row share their 16-float window: one access does.
    for (int q = 0; q < 4; ++q) {
      const int l = 4 * q;
      joint[q] = at_lo[l] == at_lo[l + 1] && at_lo[l] == at_lo[l + 2] && at_lo[l] == at_lo[l + 3];
      for (int i = 0; i < size; ++i) {
        lo4[i][q] = __mmask16(lo[i][l] | lo[i][l + 1] | lo[i][l + 2] | lo[i][l + 3]);
        hi4[i][q] = __mmask16(hi[i][l] | hi[i][l + 1] | hi[i][l + 2] | hi[i][l + 3]);
      }
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

// Tile l's values under mask[l] at p + at[l] (its 128-bit slot) into r[l / 4].
inline void load_tiles(const float* p, const std::int64_t* at, const __mmask16* mask,
                       const __mmask16* mask4, const bool* joint, __m512* r) {
  for (int q = 0; q < 4; ++q) {
    if (joint[q]) {
      r[q] = _mm512_maskz_loadu_ps(mask4[q], p + at[4 * q]);
      continue;
    }
    const __m512 a0 = _mm512_maskz_loadu_ps(mask[4 * q], p + at[4 * q]);
    const __m512 a1 = _mm512_maskz_loadu_ps(mask[4 * q + 1], p + at[4 * q + 1]);
    const __m512 a2 = _mm512_maskz_loadu_ps(mask[4 * q + 2], p + at[4 * q + 2]);
    const __m512 a3 = _mm512_maskz_loadu_ps(mask[4 * q + 3], p + at[4 * q + 3]);
    r[q] = _mm512_or_ps(_mm512_or_ps(a0, a1), _mm512_or_ps(a2, a3));
  }
}

// 16 tiles x 6 columns of row i (the row's origin at p) -> d[j] = column j.
inline void load_rows6(const float* p, const RowMasks& rm, int i, __m512* d) {
  __m512 r[4];
  load_tiles(p, rm.at_lo, rm.lo[i], rm.lo4[i], rm.joint, r);
  transpose4(r, d);
  load_tiles(p, rm.at_hi, rm.hi[i], rm.hi4[i], rm.joint, r);
  const __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t2 = _mm512_unpacklo_ps(r[2], r[3]);
  d[4] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  d[5] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
}

// o[j] = column j of 16 tiles' output row i -> each tile's 4 floats (the row's origin at p).
inline void store_rows4(float* p, const RowMasks& rm, int i, const __m512* o) {
  __m512 r[4];
  transpose4(o, r);  // the 4x4 transpose is its own inverse
  for (int q = 0; q < 4; ++q) {
    if (rm.joint[q]) {
      _mm512_mask_storeu_ps(p + rm.at_lo[4 * q], rm.lo4[i][q], r[q]);
      continue;
    }
    for (int l = 4 * q; l < 4 * q + 4; ++l) _mm512_mask_storeu_ps(p + rm.at_lo[l], rm.lo[i][l], r[q]);
  }
}

}  // namespace

void wino_input_avx512(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                       const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c) {
  const RowMasks rm(L, kA);
  for (int c = 0; c < channels; ++c) {
    const float* xc = x + c * plane;
    __m512 t[kA * kA];
    for (int i = 0; i < kA; ++i) {
      __m512 d[kA];
      load_rows6(xc + i * ld, rm, i, d);
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

void wino_output_avx512(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                        const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                        const float* bias, bool relu) {
  const RowMasks rm(L, kM);
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
      store_rows4(yk + i * ld, rm, i, o);
    }
  }
}

void wino_grad_output_avx512(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                             const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k) {
  const RowMasks rm(L, kM);
  for (int k = 0; k < channels; ++k) {
    const float* dk = dy + k * plane;
    __m512 t[kM * kA];
    for (int i = 0; i < kM; ++i) {
      __m512 g[kM], r[4];
      load_tiles(dk + i * ld, rm.at_lo, rm.lo[i], rm.lo4[i], rm.joint, r);
      transpose4(r, g);
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

}  // namespace avx512
}  // namespace cnnkit
