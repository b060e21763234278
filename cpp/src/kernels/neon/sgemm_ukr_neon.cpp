// NEON GEMM micro-kernel, 8 x 12 tile (contract: SgemmUkr in gemm/gemm_kernels.hpp).
//
//   C[i][j] = epilogue(sum_p A[p][i] * B[p][j]),  i < m <= 8, j < n <= 12
//
// 24 accumulators (8 rows x 3 vectors of 4 columns) + 3 B vectors + 2 A vectors of the 32
// 128-bit registers; each k step is 24 FMLA by element (`fmla v.4s, b.4s, a.s[i]`), so the A
// column is loaded once as two vectors and never broadcast. Full tiles (8 x 12) take the loop
// with whole-vector loads; edge tiles (fewer rows: a row count template; fewer columns: the
// last B vector is loaded and C stored lane by lane) never touch memory past m rows or n
// columns, since B may be read in place. Only intrinsics and internal-linkage functions here.
#include <arm_neon.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

constexpr int kVecs = kSgemmNr / 4;  // 3 column vectors

// The first `count` (1..4) floats at p, zeros after.
inline float32x4_t load_part(const float* p, int count) {
  switch (count) {
    case 1:
      return vsetq_lane_f32(p[0], vdupq_n_f32(0.0f), 0);
    case 2:
      return vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    case 3:
      return vcombine_f32(vld1_f32(p), vset_lane_f32(p[2], vdup_n_f32(0.0f), 0));
    default:
      return vld1q_f32(p);
  }
}

inline void store_part(float* p, float32x4_t v, int count) {
  switch (count) {
    case 1:
      vst1q_lane_f32(p, v, 0);
      return;
    case 2:
      vst1_f32(p, vget_low_f32(v));
      return;
    case 3:
      vst1_f32(p, vget_low_f32(v));
      vst1q_lane_f32(p + 2, v, 2);
      return;
    default:
      vst1q_f32(p, v);
  }
}

// acc -> C for one row's vector of `count` columns at cp (bias_c: its bias values or null).
inline void finish(float32x4_t v, float* cp, int count, const UkrEpilogue& ep, float bias_r,
                   const float* bias_c) {
  if (ep.alpha != 1.0f) v = vmulq_n_f32(v, ep.alpha);
  if (ep.beta != 0.0f) {  // beta == 0: C is never read
    const float32x4_t old = load_part(cp, count);
    v = ep.beta == 1.0f ? vaddq_f32(v, old) : vfmaq_n_f32(v, old, ep.beta);
  }
  if (ep.bias_row) v = vaddq_f32(v, vdupq_n_f32(bias_r));
  if (bias_c) v = vaddq_f32(v, load_part(bias_c, count));
  if (ep.relu) v = vmaxnmq_f32(v, vdupq_n_f32(0.0f));
  store_part(cp, v, count);
}

template <int M, bool Full>
void ukr(int n, std::int64_t k, const float* a, const float* bp, std::int64_t ldb, float* c,
         std::int64_t ldc, const UkrEpilogue& ep) {
  float32x4_t acc[M][kVecs];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < kVecs; ++v) acc[i][v] = vdupq_n_f32(0.0f);
  }
  const int vecs = Full ? kVecs : (n + 3) / 4;     // column vectors in use
  const int last = Full ? 4 : n - 4 * (vecs - 1);  // columns in the last one
  for (std::int64_t p = 0; p < k; ++p) {
    float32x4_t b[kVecs];
    if (Full) {
      b[0] = vld1q_f32(bp);
      b[1] = vld1q_f32(bp + 4);
      b[2] = vld1q_f32(bp + 8);
    } else {
      for (int v = 0; v < kVecs; ++v) {
        b[v] = v < vecs - 1    ? vld1q_f32(bp + 4 * v)
               : v == vecs - 1 ? load_part(bp + 4 * v, last)
                               : vdupq_n_f32(0.0f);
      }
    }
    if constexpr (M == 8) {  // the A column as two vectors, FMLA by element
      const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#pragma GCC unroll 3
      for (int v = 0; v < kVecs; ++v) {
        acc[0][v] = vfmaq_laneq_f32(acc[0][v], b[v], a0, 0);
        acc[1][v] = vfmaq_laneq_f32(acc[1][v], b[v], a0, 1);
        acc[2][v] = vfmaq_laneq_f32(acc[2][v], b[v], a0, 2);
        acc[3][v] = vfmaq_laneq_f32(acc[3][v], b[v], a0, 3);
        acc[4][v] = vfmaq_laneq_f32(acc[4][v], b[v], a1, 0);
        acc[5][v] = vfmaq_laneq_f32(acc[5][v], b[v], a1, 1);
        acc[6][v] = vfmaq_laneq_f32(acc[6][v], b[v], a1, 2);
        acc[7][v] = vfmaq_laneq_f32(acc[7][v], b[v], a1, 3);
      }
    } else {  // edge rows: m values per k step (not a whole vector), one scalar each
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const float ai = a[i];
#pragma GCC unroll 3
        for (int v = 0; v < kVecs; ++v) acc[i][v] = vfmaq_n_f32(acc[i][v], b[v], ai);
      }
    }
    a += M;
    bp += ldb;
  }
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    float* cr = c + i * ldc;
    const float br = ep.bias_row ? ep.bias_row[i] : 0.0f;
    for (int v = 0; v < vecs; ++v) {
      finish(acc[i][v], cr + 4 * v, v == vecs - 1 ? last : 4, ep, br,
             ep.bias_col ? ep.bias_col + 4 * v : nullptr);
    }
  }
}

template <int M>
void ukr_rows(int n, std::int64_t k, const float* a, const float* b, std::int64_t ldb, float* c,
              std::int64_t ldc, const UkrEpilogue& ep) {
  if (n == kSgemmNr) {
    ukr<M, true>(n, k, a, b, ldb, c, ldc, ep);
  } else {
    ukr<M, false>(n, k, a, b, ldb, c, ldc, ep);
  }
}

}  // namespace

void sgemm_ukr_8x12_neon(int m, int n, std::int64_t k, const float* a, const float* b,
                         std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep) {
  switch (m) {
    case 8:
      return ukr_rows<8>(n, k, a, b, ldb, c, ldc, ep);
    case 7:
      return ukr_rows<7>(n, k, a, b, ldb, c, ldc, ep);
    case 6:
      return ukr_rows<6>(n, k, a, b, ldb, c, ldc, ep);
    case 5:
      return ukr_rows<5>(n, k, a, b, ldb, c, ldc, ep);
    case 4:
      return ukr_rows<4>(n, k, a, b, ldb, c, ldc, ep);
    case 3:
      return ukr_rows<3>(n, k, a, b, ldb, c, ldc, ep);
    case 2:
      return ukr_rows<2>(n, k, a, b, ldb, c, ldc, ep);
    case 1:
      return ukr_rows<1>(n, k, a, b, ldb, c, ldc, ep);
    default:
      return;
  }
}

}  // namespace neon
}  // namespace cnnkit
