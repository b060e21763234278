// AVX-512 max pooling forward (contract: MaxPool2dFwd in pool/pool_kernels.hpp).
//
// Vectorised over 16 output columns of one output row. Only windows that lie fully inside the
// row horizontally ("interior" columns) take the vector path; the few border columns and any
// stride other than 1 or 2 use the scalar loop. For stride 2 the 16 inputs at even offsets are
// gathered from two loads with one vpermt2ps. Argmax indices are tracked as int32 lanes and
// widened to int64 on the store. Update rule as the reference: take v when v > best or v is
// NaN, scanning the window row-major, so ties keep the first maximum. All loads are masked to
// the row, so nothing past the input is touched. indices == nullptr (inference): only the
// maxima are written.
#include <immintrin.h>

#include <cstdint>

#include "pool/maxpool_edges.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

inline __mmask16 first(std::int64_t k) {
  return k >= 16 ? __mmask16(0xFFFF) : k <= 0 ? __mmask16(0) : __mmask16((1u << k) - 1);
}

// The int32 argmax lanes mo of bidx, widened to int64, at id.
inline void store_indices(std::int64_t* id, __m512i bidx, __mmask16 mo) {
  const __m512i lo64 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(bidx));
  const __m512i hi64 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(bidx, 1));
  _mm512_mask_storeu_epi64(id, __mmask8(mo & 0xFF), lo64);
  _mm512_mask_storeu_epi64(id + 8, __mmask8(mo >> 8), hi64);
}

// m (1..16) outputs starting at column j0 of output row [h0, h1); indices when kIndices.
template <int kStride, bool kIndices>
inline void vector_outputs(const float* x, const Pool2dPlane& p, std::int64_t h0, std::int64_t h1,
                           std::int64_t j0, int m, float* y, std::int64_t* id) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i lane_off = _mm512_mullo_epi32(lane, _mm512_set1_epi32(kStride));
  const std::int64_t w_base = j0 * kStride - p.pw;  // first input column of output j0's window
  const __mmask16 mo = first(m);
  // For stride 2, lane l reads offset 2l: 2m - 1 values from the first element.
  const __mmask16 m_lo = kStride == 1 ? mo : first(2 * m - 1);
  const __mmask16 m_hi = kStride == 1 ? 0 : first(2 * m - 1 - 16);
  __m512 best = _mm512_set1_ps(-__builtin_inff());
  __m512i bidx = _mm512_add_epi32(_mm512_set1_epi32(int(h0 * p.W + w_base)), lane_off);
  for (std::int64_t h = h0; h < h1; ++h) {
    const float* row = x + h * p.W + w_base;
    for (std::int64_t q = 0; q < p.kw; ++q) {
      __m512 v;
      if (kStride == 1) {
        v = _mm512_maskz_loadu_ps(m_lo, row + q);
      } else {
        const __m512 lo = _mm512_maskz_loadu_ps(m_lo, row + q);
        const __m512 hi = _mm512_maskz_loadu_ps(m_hi, row + q + 16);
        v = _mm512_permutex2var_ps(lo, even, hi);
      }
      const __mmask16 upd =
          _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      best = _mm512_mask_mov_ps(best, upd, v);
      if (!kIndices) continue;
      const __m512i cidx = _mm512_add_epi32(_mm512_set1_epi32(int(h * p.W + w_base + q)), lane_off);
      bidx = _mm512_mask_mov_epi32(bidx, upd, cidx);
    }
  }
  _mm512_mask_storeu_ps(y, mo, best);
  if (!kIndices) return;
  store_indices(id, bidx, mo);
}

// The common 2 x 2 window at stride 2 with every window inside the plane: 16 outputs from two
// 32-value loads per input row, split into even and odd columns, taken in the window's
// row-major order (0,0), (0,1), (1,0), (1,1) with the same update rule.
template <bool kIndices>
void planes_2x2(const float* src, float* dst, std::int64_t* indices, const Pool2dPlane& p,
                std::int64_t planes) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const std::int64_t HW = p.H * p.W, HWo = p.Ho * p.Wo;
  auto take = [](__m512 v, __m512& best, __m512i idx, __m512i& bidx) {
    const __mmask16 upd =
        _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    best = _mm512_mask_mov_ps(best, upd, v);
    if (kIndices) bidx = _mm512_mask_mov_epi32(bidx, upd, idx);
  };
  for (std::int64_t c = 0; c < planes; ++c) {
    const float* x = src + c * HW;
    float* y = dst + c * HWo;
    for (std::int64_t i = 0; i < p.Ho; ++i) {
      const float* r0 = x + 2 * i * p.W;
      const float* r1 = r0 + p.W;
      for (std::int64_t j = 0; j < p.Wo; j += 16) {
        const int m = int(imin(16, p.Wo - j));
        const __mmask16 mo = first(m), m_lo = first(2 * m), m_hi = first(2 * m - 16);
        const __m512 a_lo = _mm512_maskz_loadu_ps(m_lo, r0 + 2 * j);
        const __m512 a_hi = _mm512_maskz_loadu_ps(m_hi, r0 + 2 * j + 16);
        const __m512 b_lo = _mm512_maskz_loadu_ps(m_lo, r1 + 2 * j);
        const __m512 b_hi = _mm512_maskz_loadu_ps(m_hi, r1 + 2 * j + 16);
        // (0, 0) is taken whatever it is (it beats the -inf start, or equals it)
        __m512 best = _mm512_permutex2var_ps(a_lo, even, a_hi);
        __m512i bidx = _mm512_setzero_si512();
        __m512i base = bidx;
        if (kIndices) {
          base = _mm512_add_epi32(_mm512_set1_epi32(int(2 * i * p.W + 2 * j)), even);
          bidx = base;
        }
        const __m512i one = _mm512_set1_epi32(1), row = _mm512_set1_epi32(int(p.W));
        take(_mm512_permutex2var_ps(a_lo, odd, a_hi), best, _mm512_add_epi32(base, one), bidx);
        take(_mm512_permutex2var_ps(b_lo, even, b_hi), best, _mm512_add_epi32(base, row), bidx);
        take(_mm512_permutex2var_ps(b_lo, odd, b_hi), best,
             _mm512_add_epi32(_mm512_add_epi32(base, row), one), bidx);
        _mm512_mask_storeu_ps(y + i * p.Wo + j, mo, best);
        if (kIndices) {
          std::int64_t* id = indices + c * HWo + i * p.Wo + j;
          store_indices(id, bidx, mo);
        }
      }
    }
  }
}

template <bool kIndices>
void planes_fwd(const float* src, float* dst, std::int64_t* indices, const Pool2dPlane& p,
                std::int64_t planes) {
  auto vector = [&p](const float* x, std::int64_t h0, std::int64_t h1, std::int64_t j, int m,
                     float* y, std::int64_t* id) {
    if (p.sw == 2) {
      vector_outputs<2, kIndices>(x, p, h0, h1, j, m, y, id);
    } else {
      vector_outputs<1, kIndices>(x, p, h0, h1, j, m, y, id);
    }
  };
  maxpool_planes<16, true, kIndices>(src, dst, indices, p, planes, vector);
}

}  // namespace

void maxpool2d_fwd_f32_avx512(const float* src, float* dst, std::int64_t* indices,
                              const Pool2dPlane& p, std::int64_t planes) {
  const bool two_by_two = p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 &&
                          p.pw == 0 && 2 * p.Ho <= p.H && 2 * p.Wo <= p.W &&
                          p.H * p.W < (std::int64_t(1) << 31) - 64;
  if (two_by_two) {
    if (indices) {
      planes_2x2<true>(src, dst, indices, p, planes);
    } else {
      planes_2x2<false>(src, dst, nullptr, p, planes);
    }
    return;
  }
  if (indices) {
    planes_fwd<true>(src, dst, indices, p, planes);
  } else {
    planes_fwd<false>(src, dst, nullptr, p, planes);
  }
}

}  // namespace avx512
}  // namespace cnnkit
