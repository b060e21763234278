// NEON max pooling forward (contract: MaxPool2dFwd in pool/pool_kernels.hpp; the reference is
// maxpool2d_fwd_f32_ref in pool/pool.cpp).
//
//   y[i, j] = max over the window rows [i sh - ph, + kh) and columns [j sw - pw, + kw), clipped
//   to the plane; index = h W + w of the maximum found scanning the window row-major with the
//   reference's rule "take v when v > best or v is NaN" (best starts at -inf): ties keep the
//   first maximum, and a NaN wins over numbers (the last NaN of the window is reported).
//
// Vectorised over 4 output columns of one output row. Only windows that lie fully inside the row
// horizontally ("interior" columns) take the vector path, in groups of 4; the border columns, a
// last group of fewer than 4 and any stride other than 1 or 2 use the scalar loop. Stride 1 reads
// the 4 inputs of one window column with one vld1q; stride 2 reads two window columns at once
// with vld2q (even lanes: column q, odd lanes: column q + 1), and a last odd column from two
// overlapping vld1q (so no load reaches past the last window's last column). The common 2 x 2
// window at stride 2 with every window inside the plane has its own loop: two vld2q per output
// group. Argmax indices are tracked as int32 lanes and widened to int64 on the store.
// indices == nullptr (inference): only the maxima are written.
#include <arm_neon.h>

#include <cstdint>

#include "pool/maxpool_edges.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

// The reference's update rule, lane-wise: v > best, or v is NaN (v != v).
template <bool kIndices>
inline void take(float32x4_t v, int32x4_t idx, float32x4_t& best, int32x4_t& bidx) {
  const uint32x4_t upd = vorrq_u32(vcgtq_f32(v, best), vmvnq_u32(vceqq_f32(v, v)));
  best = vbslq_f32(upd, v, best);
  if (kIndices) bidx = vbslq_s32(upd, idx, bidx);
}

// The int32 argmax lanes of bidx, widened to int64, at id.
inline void store_indices(std::int64_t* id, int32x4_t bidx) {
  vst1q_s64(id, vmovl_s32(vget_low_s32(bidx)));
  vst1q_s64(id + 2, vmovl_high_s32(bidx));
}

// The 4 interior outputs j0 .. j0 + 3 of output row [h0, h1).
template <int kStride, bool kIndices>
inline void vector_outputs(const float* x, const Pool2dPlane& p, std::int64_t h0, std::int64_t h1,
                           std::int64_t j0, float* y, std::int64_t* id) {
  const int32x4_t lane_off = {0, kStride, 2 * kStride, 3 * kStride};
  const std::int64_t w_base = j0 * kStride - p.pw;  // first input column of output j0's window
  float32x4_t best = vdupq_n_f32(-__builtin_inff());
  int32x4_t bidx = vaddq_s32(vdupq_n_s32(std::int32_t(h0 * p.W + w_base)), lane_off);
  for (std::int64_t h = h0; h < h1; ++h) {
    const float* row = x + h * p.W + w_base;
    const std::int32_t row_idx = std::int32_t(h * p.W + w_base);
    auto idx = [&](std::int64_t q) {
      return vaddq_s32(vdupq_n_s32(row_idx + std::int32_t(q)), lane_off);
    };
    if (kStride == 1) {
      for (std::int64_t q = 0; q < p.kw; ++q)
        take<kIndices>(vld1q_f32(row + q), idx(q), best, bidx);
      continue;
    }
    std::int64_t q = 0;
    for (; q + 1 < p.kw; q += 2) {  // reads row[q .. q + 7]: inside the last window's columns
      const float32x4x2_t v = vld2q_f32(row + q);
      take<kIndices>(v.val[0], idx(q), best, bidx);
      take<kIndices>(v.val[1], idx(q + 1), best, bidx);
    }
    if (q < p.kw) {  // the last column of an odd kw: row[q], [q + 2] from one load, [q + 4],
                     // [q + 6] from one at q + 3 (not vld2q at q: it would read row[q + 7])
      const float32x4_t a = vld1q_f32(row + q), b = vld1q_f32(row + q + 3);
      const float32x4_t v =
          vcombine_f32(vget_low_f32(vuzp1q_f32(a, a)), vget_low_f32(vuzp2q_f32(b, b)));
      take<kIndices>(v, idx(q), best, bidx);
    }
  }
  vst1q_f32(y, best);
  if (kIndices) store_indices(id, bidx);
}

// 2 x 2 windows at stride 2, all inside the plane: 4 outputs from one vld2q per input row (even
// and odd columns), taken in the window's row-major order (0,0), (0,1), (1,0), (1,1).
template <bool kIndices>
void planes_2x2(const float* src, float* dst, std::int64_t* indices, const Pool2dPlane& p,
                std::int64_t planes) {
  const std::int64_t HW = p.H * p.W, HWo = p.Ho * p.Wo;
  const int32x4_t even = {0, 2, 4, 6}, one = vdupq_n_s32(1), row = vdupq_n_s32(int(p.W));
  for (std::int64_t c = 0; c < planes; ++c) {
    const float* x = src + c * HW;
    float* y = dst + c * HWo;
    std::int64_t* ic = kIndices ? indices + c * HWo : nullptr;
    for (std::int64_t i = 0; i < p.Ho; ++i) {
      const float* r0 = x + 2 * i * p.W;
      const float* r1 = r0 + p.W;
      std::int64_t j = 0;
      for (; j + 4 <= p.Wo; j += 4) {  // reads columns 2j .. 2j + 7 < 2 Wo <= W
        const float32x4x2_t a = vld2q_f32(r0 + 2 * j), b = vld2q_f32(r1 + 2 * j);
        // (0, 0) is taken whatever it is (it beats the -inf start, or equals it)
        float32x4_t best = a.val[0];
        int32x4_t base = vdupq_n_s32(0), bidx = base;
        if (kIndices) {
          base = vaddq_s32(vdupq_n_s32(std::int32_t(2 * i * p.W + 2 * j)), even);
          bidx = base;
        }
        take<kIndices>(a.val[1], vaddq_s32(base, one), best, bidx);
        take<kIndices>(b.val[0], vaddq_s32(base, row), best, bidx);
        take<kIndices>(b.val[1], vaddq_s32(vaddq_s32(base, row), one), best, bidx);
        vst1q_f32(y + i * p.Wo + j, best);
        if (kIndices) store_indices(ic + i * p.Wo + j, bidx);
      }
      for (; j < p.Wo; ++j) {
        maxpool_scalar_output(x, p, 2 * i, 2 * i + 2, j, y + i * p.Wo + j,
                              kIndices ? ic + i * p.Wo + j : nullptr);
      }
    }
  }
}

template <bool kIndices>
void planes_fwd(const float* src, float* dst, std::int64_t* indices, const Pool2dPlane& p,
                std::int64_t planes) {
  auto vector = [&p](const float* x, std::int64_t h0, std::int64_t h1, std::int64_t j,
                     int /* m: 4 */, float* y, std::int64_t* id) {
    if (p.sw == 2) {
      vector_outputs<2, kIndices>(x, p, h0, h1, j, y, id);
    } else {
      vector_outputs<1, kIndices>(x, p, h0, h1, j, y, id);
    }
  };
  maxpool_planes<4, false, kIndices>(src, dst, indices, p, planes, vector);
}

}  // namespace

void maxpool2d_fwd_f32_neon(const float* src, float* dst, std::int64_t* indices,
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

}  // namespace neon
}  // namespace cnnkit
