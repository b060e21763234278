// AVX-512 Winograd F(4x4, 3x3) transforms: 16 tiles at once, one per lane.
//
// Each tile's rows are contiguous in the image, so a row of several tiles is read with masked
// loads (the mask drops columns outside the image; masked-off elements are never touched) and
// turned into "one column of every tile per vector" with vpermt2ps trees; the output goes the
// opposite way. This works for any tiles in the lanes (several tile rows or images in one
// group) and costs O(1) shuffles per element, where gathers and scatters were ~4x slower.
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

// vpermt2ps index vectors. A vector holding `lanes` tiles x `cols` columns keeps (tile a,
// column c) at position a * cols + c; two such vectors (the second's positions + 16) combine
// into one with twice the tiles and a slice of the columns.
struct Trees {
  // input: 2 tiles x 8 columns -> 4 x 4 (h: columns 4h..4h+3)
  __m512i in1[2];
  // 4 x 4 -> 8 x 2 (s: columns 2s, 2s+1 of the four) and 8 x 2 -> 16 x 1 (e: column e)
  __m512i in2[2], in3[2];
  // output: 16 x 1 -> 8 x 2 (r: tiles 8r..8r+7) and 8 x 2 -> 4 x 4 (u: tiles 4u..4u+3)
  __m512i outA[2], outB[2];
  Trees() {
    alignas(64) std::int32_t t[16];
    for (int h = 0; h < 2; ++h) {
      for (int a = 0; a < 4; ++a)
        for (int c = 0; c < 4; ++c) t[a * 4 + c] = (a < 2 ? 0 : 16) + (a % 2) * 8 + 4 * h + c;
      in1[h] = _mm512_load_si512(t);
    }
    for (int s = 0; s < 2; ++s) {
      for (int a = 0; a < 8; ++a)
        for (int e = 0; e < 2; ++e) t[a * 2 + e] = (a < 4 ? 0 : 16) + (a % 4) * 4 + 2 * s + e;
      in2[s] = _mm512_load_si512(t);
    }
    for (int e = 0; e < 2; ++e) {
      for (int a = 0; a < 16; ++a) t[a] = (a < 8 ? 0 : 16) + (a % 8) * 2 + e;
      in3[e] = _mm512_load_si512(t);
    }
    for (int r = 0; r < 2; ++r) {
      for (int a = 0; a < 8; ++a)
        for (int e = 0; e < 2; ++e) t[a * 2 + e] = (e == 0 ? 0 : 16) + 8 * r + a;
      outA[r] = _mm512_load_si512(t);
    }
    for (int u = 0; u < 2; ++u) {
      for (int a = 0; a < 4; ++a)
        for (int c = 0; c < 4; ++c) t[a * 4 + c] = (c < 2 ? 0 : 16) + (4 * u + a) * 2 + c % 2;
      outB[u] = _mm512_load_si512(t);
    }
  }
};

const Trees& trees() {
  static const Trees t;
  return t;
}

inline __m512 perm2(const __m512& a, const __m512i& idx, const __m512& b) {
  return _mm512_permutex2var_ps(a, idx, b);
}

// Per-lane load/store masks of one tile row: bits 0..width-1 = the columns inside the image.
struct RowMasks {
  std::uint32_t m[kA][16];
  RowMasks(const WinoLanes& L, int size) {
    for (int l = 0; l < 16; ++l) {
      std::uint32_t cols = 0;
      for (int j = 0; j < size; ++j) cols |= ((L.cols[j] >> l) & 1u) << j;
      for (int i = 0; i < size; ++i) m[i][l] = ((L.rows[i] >> l) & 1u) ? cols : 0u;
    }
  }
};

// 16 tiles x 6 columns of row `row` (tile l's row at p + off[l]) -> d[j] = column j, 16 lanes.
inline void load_rows6(const float* p, const WinoLanes& L, const std::uint32_t* mask, __m512* d) {
  const Trees& T = trees();
  __m512 w[8];
  for (int q = 0; q < 8; ++q) {
    const int l = 2 * q;
    const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(mask[l]), p + L.off[l]);
    w[q] = _mm512_mask_loadu_ps(lo, __mmask16(mask[l + 1] << 8), p + L.off[l + 1] - 8);
  }
  __m512 a1[4][2];
  for (int q = 0; q < 4; ++q) {
    for (int h = 0; h < 2; ++h) a1[q][h] = perm2(w[2 * q], T.in1[h], w[2 * q + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < (h == 0 ? 2 : 1); ++s) {  // columns 0..5 only
      const __m512 lo = perm2(a1[0][h], T.in2[s], a1[1][h]);
      const __m512 hi = perm2(a1[2][h], T.in2[s], a1[3][h]);
      for (int e = 0; e < 2; ++e) d[4 * h + 2 * s + e] = perm2(lo, T.in3[e], hi);
    }
  }
}

// 16 tiles x 4 columns -> g[j] = column j (the 4 x 4 tiles of dY).
inline void load_rows4(const float* p, const WinoLanes& L, const std::uint32_t* mask, __m512* g) {
  const Trees& T = trees();
  __m512 v[4];
  for (int u = 0; u < 4; ++u) {
    __m512 acc = _mm512_setzero_ps();
    for (int a = 0; a < 4; ++a) {
      const int l = 4 * u + a;
      acc = _mm512_mask_loadu_ps(acc, __mmask16(mask[l] << (4 * a)), p + L.off[l] - 4 * a);
    }
    v[u] = acc;
  }
  for (int s = 0; s < 2; ++s) {
    const __m512 lo = perm2(v[0], T.in2[s], v[1]);
    const __m512 hi = perm2(v[2], T.in2[s], v[3]);
    for (int e = 0; e < 2; ++e) g[2 * s + e] = perm2(lo, T.in3[e], hi);
  }
}

// o[j] = column j of 16 tiles' output row -> each tile's 4 floats at p + off[l].
inline void store_rows4(float* p, const WinoLanes& L, const std::uint32_t* mask, const __m512* o) {
  const Trees& T = trees();
  for (int r = 0; r < 2; ++r) {
    const __m512 c01 = perm2(o[0], T.outA[r], o[1]);
    const __m512 c23 = perm2(o[2], T.outA[r], o[3]);
    for (int u = 0; u < 2; ++u) {
      const __m512 v = perm2(c01, T.outB[u], c23);
      for (int a = 0; a < 4; ++a) {
        const int l = 8 * r + 4 * u + a;
        _mm512_mask_storeu_ps(p + L.off[l] - 4 * a, __mmask16(mask[l] << (4 * a)), v);
      }
    }
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
      load_rows6(xc + i * ld, L, rm.m[i], d);
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
      store_rows4(yk + i * ld, L, rm.m[i], o);
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
      __m512 g[kM];
      load_rows4(dk + i * ld, L, rm.m[i], g);
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
