// AVX2 max pooling forward (contract: MaxPool2dFwd in pool/pool_kernels.hpp; the reference is
// maxpool2d_fwd_f32_ref in pool/pool.cpp).
//
//   y[i, j] = max over the window rows [i sh - ph, + kh) and columns [j sw - pw, + kw), clipped
//   to the plane; index = h W + w of the maximum found scanning the window row-major with the
//   reference's rule "take v when v > best or v is NaN" (best starts at -inf): ties keep the
//   first maximum, and a NaN wins over numbers (the last NaN of the window is reported).
//
// Vectorised over 8 output columns of one output row. Only windows that lie fully inside the row
// horizontally ("interior" columns) take the vector path; the border columns and any stride
// other than 1 or 2 use the scalar loop. Stride 1 reads the 8 inputs of one window column with
// one load; stride 2 reads two window columns at once from two loads of 8 (even lanes: column
// q, odd lanes: column q + 1, split by vshufps + vpermpd), and a last odd column from two
// overlapping loads (so no load reaches past the last window's last column). A last group of
// fewer than 8 outputs uses vmaskmovps loads limited to the values its windows cover (masked
// lanes are never touched in memory) and stores through a small stack buffer. The common 2 x 2
// window at stride 2 with every window inside the plane has its own loop. Argmax indices are
// tracked as int32 lanes and widened to int64 on the store. indices == nullptr (inference):
// only the maxima are written.
#include <immintrin.h>

#include <cstdint>

#include "pool/maxpool_edges.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

// 8 floats from p, of which only lanes l < lim are read (the rest are 0).
inline __m256 load_lim(const float* p, std::int64_t lim) {
  if (lim >= 8) return _mm256_loadu_ps(p);
  const int k = lim < 0 ? 0 : int(lim);
  const __m256i m =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_ps(p, m);
}

// Lanes 0, 2, .., 14 of the 16 values lo:hi.
inline __m256 evens(__m256 lo, __m256 hi) {
  const __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}
// Lanes 1, 3, .., 15 of the 16 values lo:hi.
inline __m256 odds(__m256 lo, __m256 hi) {
  const __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}
// Offsets 0, 2, .., 14 from lo = p[0 .. 7] and hi = p[7 .. 14].
inline __m256 evens_overlapped(__m256 lo, __m256 hi) {
  const __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

// The reference's update rule, lane-wise: v > best, or v is NaN.
template <bool kIndices>
inline void take(__m256 v, __m256i idx, __m256& best, __m256i& bidx) {
  const __m256 upd =
      _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  best = _mm256_blendv_ps(best, v, upd);
  if (kIndices) {
    bidx = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx), upd));
  }
}

// The first m (1..8) lanes of best and (when kIndices) of bidx, widened to int64, at y and id.
template <bool kIndices>
inline void store_outputs(__m256 best, __m256i bidx, int m, float* y, std::int64_t* id) {
  const __m256i lo64 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bidx));
  const __m256i hi64 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bidx, 1));
  if (m == 8) {
    _mm256_storeu_ps(y, best);
    if (kIndices) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(id), lo64);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(id + 4), hi64);
    }
    return;
  }
  alignas(32) float yb[8];
  alignas(32) std::int64_t ib[8];
  _mm256_store_ps(yb, best);
  for (int l = 0; l < m; ++l) y[l] = yb[l];
  if (!kIndices) return;
  _mm256_store_si256(reinterpret_cast<__m256i*>(ib), lo64);
  _mm256_store_si256(reinterpret_cast<__m256i*>(ib + 4), hi64);
  for (int l = 0; l < m; ++l) id[l] = ib[l];
}

// The m (1..8) interior outputs j0 .. j0 + m - 1 of output row [h0, h1).
template <int kStride, bool kIndices>
inline void vector_outputs(const float* x, const Pool2dPlane& p, std::int64_t h0, std::int64_t h1,
                           std::int64_t j0, int m, float* y, std::int64_t* id) {
  const __m256i lane_off =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(kStride));
  const std::int64_t w_base = j0 * kStride - p.pw;  // first input column of output j0's window
  __m256 best = _mm256_set1_ps(-__builtin_inff());
  __m256i bidx = _mm256_add_epi32(_mm256_set1_epi32(std::int32_t(h0 * p.W + w_base)), lane_off);
  for (std::int64_t h = h0; h < h1; ++h) {
    const float* row = x + h * p.W + w_base;
    const std::int32_t row_idx = std::int32_t(h * p.W + w_base);
    auto idx = [&](std::int64_t q) {
      return _mm256_add_epi32(_mm256_set1_epi32(row_idx + std::int32_t(q)), lane_off);
    };
    if (kStride == 1) {
      for (std::int64_t q = 0; q < p.kw; ++q)
        take<kIndices>(load_lim(row + q, m), idx(q), best, bidx);
      continue;
    }
    // Stride 2: lane l of column q reads offset q + 2l; the group's windows cover offsets
    // [0, 2 (m - 1) + kw).
    std::int64_t q = 0;
    for (; q + 1 < p.kw; q += 2) {  // offsets q .. q + 2m - 1
      const __m256 lo = load_lim(row + q, 2 * m), hi = load_lim(row + q + 8, 2 * m - 8);
      take<kIndices>(evens(lo, hi), idx(q), best, bidx);
      take<kIndices>(odds(lo, hi), idx(q + 1), best, bidx);
    }
    if (q < p.kw) {  // the last column of an odd kw: offsets q .. q + 2m - 2
      const __m256 lo = load_lim(row + q, 2 * m - 1), hi = load_lim(row + q + 7, 2 * m - 8);
      take<kIndices>(evens_overlapped(lo, hi), idx(q), best, bidx);
    }
  }
  store_outputs<kIndices>(best, bidx, m, y, id);
}

// 2 x 2 windows at stride 2, all inside the plane: 8 outputs from two loads of 8 per input row
// (split into even and odd columns), taken in the window's row-major order (0,0), (0,1), (1,0),
// (1,1).
template <bool kIndices>
void planes_2x2(const float* src, float* dst, std::int64_t* indices, const Pool2dPlane& p,
                std::int64_t planes) {
  const std::int64_t HW = p.H * p.W, HWo = p.Ho * p.Wo;
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), row = _mm256_set1_epi32(int(p.W));
  for (std::int64_t c = 0; c < planes; ++c) {
    const float* x = src + c * HW;
    float* y = dst + c * HWo;
    std::int64_t* ic = kIndices ? indices + c * HWo : nullptr;
    for (std::int64_t i = 0; i < p.Ho; ++i) {
      const float* r0 = x + 2 * i * p.W;
      const float* r1 = r0 + p.W;
      for (std::int64_t j = 0; j < p.Wo; j += 8) {  // reads columns 2j .. 2j + 2m - 1 < W
        const int m = int(imin(8, p.Wo - j));
        const __m256 a_lo = load_lim(r0 + 2 * j, 2 * m), a_hi = load_lim(r0 + 2 * j + 8, 2 * m - 8);
        const __m256 b_lo = load_lim(r1 + 2 * j, 2 * m), b_hi = load_lim(r1 + 2 * j + 8, 2 * m - 8);
        // (0, 0) is taken whatever it is (it beats the -inf start, or equals it)
        __m256 best = evens(a_lo, a_hi);
        __m256i base = _mm256_setzero_si256(), bidx = base;
        if (kIndices) {
          base = _mm256_add_epi32(_mm256_set1_epi32(std::int32_t(2 * i * p.W + 2 * j)), even);
          bidx = base;
        }
        take<kIndices>(odds(a_lo, a_hi), _mm256_add_epi32(base, one), best, bidx);
        take<kIndices>(evens(b_lo, b_hi), _mm256_add_epi32(base, row), best, bidx);
        take<kIndices>(odds(b_lo, b_hi), _mm256_add_epi32(_mm256_add_epi32(base, row), one), best,
                       bidx);
        store_outputs<kIndices>(best, bidx, m, y + i * p.Wo + j,
                                kIndices ? ic + i * p.Wo + j : nullptr);
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
  maxpool_planes<8, true, kIndices>(src, dst, indices, p, planes, vector);
}

}  // namespace

void maxpool2d_fwd_f32_avx2(const float* src, float* dst, std::int64_t* indices,
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

}  // namespace avx2
}  // namespace cnnkit
