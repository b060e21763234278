// AVX2 Winograd F(4x4, 3x3) transforms: a group of 16 tiles as two halves of 8, one tile per
// lane of a 256-bit vector (same contracts as the AVX-512 kernels: WinoInput, WinoOutput,
// WinoGradOutput in conv/conv_kernels.hpp).
//
// Lane order inside a half: tile 2 q + a sits at position 4 a + q (128-bit lane a of the
// vectors). A tile's row is read with a masked 128-bit load into lane a of vector q (columns
// 0..3; columns 4..5 likewise), 4x4 transposes inside the 128-bit lanes turn rows into
// columns, and stores go the same way back. The transforms are the shared templates of
// conv/winograd_f43.hpp on __m256.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_kernels.hpp"
#include "conv/winograd_f43.hpp"
#include "kernels/avx2/vmath_avx2.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

using wino::kA;
using wino::kM;

// Per tile: element offset of its origin, and per tile row i the masks (all-ones int32 lanes)
// of its columns 0..3 (lo) and 4..5 (hi) inside the image.
struct TileMasks {
  std::int64_t at[16];
  __m128i lo[kA][16], hi[kA][16];
  TileMasks(const WinoLanes& L, int size) {
    for (int l = 0; l < 16; ++l) {
      at[l] = L.off[l];
      for (int i = 0; i < size; ++i) {
        alignas(16) std::int32_t m[8];
        const bool row = (L.rows[i] >> l) & 1u;
        for (int j = 0; j < 8; ++j) {
          m[j] = (row && j < size && ((L.cols[j] >> l) & 1u)) ? -1 : 0;  // j < size <= 6
        }
        lo[i][l] = _mm_load_si128(reinterpret_cast<const __m128i*>(m));
        hi[i][l] = _mm_set_epi32(0, 0, m[5], m[4]);
      }
    }
  }
};

inline void transpose4(const __m256* r, __m256* c) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  c[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  c[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  c[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  c[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
}

// Tiles h8 .. h8 + 7 of row i: 4 (or 2, hi) values each at p + at[l] + col into r[q] lane a.
inline void load_tiles(const float* p, const TileMasks& tm, const __m128i* mask, int h8, int col,
                       __m256* r) {
  for (int q = 0; q < 4; ++q) {
    const int l = h8 + 2 * q;
    const __m128 a0 = _mm_maskload_ps(p + tm.at[l] + col, mask[l]);
    const __m128 a1 = _mm_maskload_ps(p + tm.at[l + 1] + col, mask[l + 1]);
    r[q] = _mm256_set_m128(a1, a0);
  }
}

inline void store_tiles(float* p, const TileMasks& tm, const __m128i* mask, int h8,
                        const __m256* r) {
  for (int q = 0; q < 4; ++q) {
    const int l = h8 + 2 * q;
    _mm_maskstore_ps(p + tm.at[l], mask[l], _mm256_castps256_ps128(r[q]));
    _mm_maskstore_ps(p + tm.at[l + 1], mask[l + 1], _mm256_extractf128_ps(r[q], 1));
  }
}

template <bool kRound>
void input_impl(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                const TileMasks& tm, float* v, std::int64_t v_xi, std::int64_t v_c) {
  for (int c = 0; c < channels; ++c) {
    const float* xc = x + c * plane;
    for (int h8 = 0; h8 < 16; h8 += 8) {
      __m256 t[kA * kA];
      for (int i = 0; i < kA; ++i) {
        __m256 r[4], d[kA];
        load_tiles(xc + i * ld, tm, tm.lo[i], h8, 0, r);
        transpose4(r, d);
        load_tiles(xc + i * ld, tm, tm.hi[i], h8, 4, r);
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]);
        d[4] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
        d[5] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
        for (int j = 0; kRound && j < kA; ++j) d[j] = bf16_round_ps(d[j]);
        wino::input_1d(d, 1, t + i * kA, 1);  // row i of d B
      }
      float* vc = v + c * v_c + h8;
      for (int j = 0; j < kA; ++j) {
        __m256 o[kA];
        wino::input_1d(t + j, kA, o, 1);  // column j of B^T (d B)
        for (int i = 0; i < kA; ++i) _mm256_storeu_ps(vc + (i * kA + j) * v_xi, o[i]);
      }
    }
  }
}

template <bool kRound>
void grad_output_impl(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                      const TileMasks& tm, float* m, std::int64_t m_xi, std::int64_t m_k) {
  for (int k = 0; k < channels; ++k) {
    const float* dk = dy + k * plane;
    for (int h8 = 0; h8 < 16; h8 += 8) {
      __m256 t[kM * kA];
      for (int i = 0; i < kM; ++i) {
        __m256 r[4], g[kM];
        load_tiles(dk + i * ld, tm, tm.lo[i], h8, 0, r);
        transpose4(r, g);
        for (int j = 0; kRound && j < kM; ++j) g[j] = bf16_round_ps(g[j]);
        wino::grad_output_1d(g, 1, t + i * kA, 1);  // row i of dY A^T
      }
      float* mk = m + k * m_k + h8;
      for (int j = 0; j < kA; ++j) {
        __m256 o[kA];
        wino::grad_output_1d(t + j, kA, o, 1);  // column j of A (dY A^T)
        for (int i = 0; i < kA; ++i) _mm256_storeu_ps(mk + (i * kA + j) * m_xi, o[i]);
      }
    }
  }
}

}  // namespace

void wino_input_avx2(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                     const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c,
                     bool round_bf16) {
  const TileMasks tm(L, kA);
  if (round_bf16) return input_impl<true>(x, plane, ld, channels, tm, v, v_xi, v_c);
  input_impl<false>(x, plane, ld, channels, tm, v, v_xi, v_c);
}

void wino_output_avx2(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                      const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                      const float* bias, bool relu) {
  const TileMasks tm(L, kM);
  const __m256 zero = _mm256_setzero_ps();
  for (int k = 0; k < channels; ++k) {
    float* yk = y + k * plane;
    const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
    for (int h8 = 0; h8 < 16; h8 += 8) {
      const float* mk = m + k * m_k + h8;
      __m256 t[kM * kA];
      for (int j = 0; j < kA; ++j) {
        __m256 in[kA];
        for (int i = 0; i < kA; ++i) in[i] = _mm256_loadu_ps(mk + (i * kA + j) * m_xi);
        wino::output_1d(in, 1, t + j, kA);  // column j of A^T M
      }
      for (int i = 0; i < kM; ++i) {
        __m256 o[kM], r[4];
        wino::output_1d(t + i * kA, 1, o, 1);  // row i of (A^T M) A
        for (int j = 0; j < kM; ++j) {
          o[j] = _mm256_add_ps(o[j], b);
          if (relu) o[j] = _mm256_max_ps(o[j], zero);
        }
        transpose4(o, r);
        store_tiles(yk + i * ld, tm, tm.lo[i], h8, r);
      }
    }
  }
}

void wino_grad_output_avx2(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k,
                           bool round_bf16) {
  const TileMasks tm(L, kM);
  if (round_bf16) return grad_output_impl<true>(dy, plane, ld, channels, tm, m, m_xi, m_k);
  grad_output_impl<false>(dy, plane, ld, channels, tm, m, m_xi, m_k);
}

}  // namespace avx2
}  // namespace cnnkit
