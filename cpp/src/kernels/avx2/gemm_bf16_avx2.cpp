// The bf16 GEMM micro-kernel (Bf16Ukr, gemm/gemm_kernels.hpp) for CPUs without bf16 dot
// products (AVX2; AVX-512 without AVX512-BF16): the packed bf16 operands widened to fp32 and
// multiplied with FMA. Widening is exact (a bf16 value is the top half of an fp32 one) and so is
// the product of two bf16 values in fp32 (8-bit by 8-bit significands), so fma(a, b, acc) rounds
// once, as the reference's acc += a * b does; each C element sums k = 0, 1, ..., kp - 1 in
// order, and the epilogue is the reference's: the results are the reference's bits.
//
// Per k pair, a 16-column half of the B panel is two 32-byte loads (8 columns x 2 k each): the
// even k is the low half of each 32-bit lane (shifted up), the odd k the high half (masked).
// An A pair is one 32-bit broadcast, split the same way. Blocks of 4 rows x 16 columns: 8 ymm
// accumulators + 4 widened B vectors + 2 A vectors; per pair 16 FMAs.
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline __m256 low_half(__m256i pairs) { return _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16)); }

inline __m256 high_half(__m256i pairs) {
  return _mm256_castsi256_ps(_mm256_and_si256(pairs, _mm256_set1_epi32(int(0xFFFF0000u))));
}

inline __m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The reference's epilogue on 8 columns (count of them stored): alpha * acc, + beta * C,
// + bias_row, + bias_col, then ReLU as v > 0 ? v : 0 (VMAXPS gives its second operand, 0, for
// NaN and for -0).
inline void finish(__m256 v, float* cp, int count, const UkrEpilogue& ep, float bias_r,
                   const float* bias_c) {
  const __m256i mk = lane_mask(count);
  if (ep.alpha != 1.0f) v = _mm256_mul_ps(v, _mm256_set1_ps(ep.alpha));
  if (ep.beta != 0.0f) {
    const __m256 old = _mm256_maskload_ps(cp, mk);
    const __m256 scaled = ep.beta == 1.0f ? old : _mm256_mul_ps(_mm256_set1_ps(ep.beta), old);
    v = _mm256_add_ps(v, scaled);
  }
  if (ep.bias_row) v = _mm256_add_ps(v, _mm256_set1_ps(bias_r));
  if (bias_c) v = _mm256_add_ps(v, _mm256_maskload_ps(bias_c, mk));
  if (ep.relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
  _mm256_maskstore_ps(cp, mk, v);
}

// Rows [i0, i0 + M) of the panel (mr rows) by the 16 columns of B at column offset j0 (n of
// them stored).
template <int M>
void block(int i0, int j0, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
           std::int64_t ldc, const UkrEpilogue& ep) {
  __m256 acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const std::int64_t pairs = kp / 2;
  for (std::int64_t q = 0; q < pairs; ++q) {
    const bf16_t* ap = a + (q / 16) * kBf16MrAvx2 * kBf16KStep + i0 * kBf16KStep + (q % 16) * 2;
    const bf16_t* bp = b + q * 2 * kBf16Nr + 2 * j0;
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 16));
    const __m256 e0 = low_half(b0), e1 = low_half(b1), o0 = high_half(b0), o1 = high_half(b1);
    for (int i = 0; i < M; ++i) {
      int pair;
      __builtin_memcpy(&pair, ap + i * kBf16KStep, 4);
      const __m256i ai = _mm256_set1_epi32(pair);
      const __m256 even = low_half(ai), odd = high_half(ai);
      acc[i][0] = _mm256_fmadd_ps(even, e0, acc[i][0]);  // k = 2q first, then 2q + 1
      acc[i][1] = _mm256_fmadd_ps(even, e1, acc[i][1]);
      acc[i][0] = _mm256_fmadd_ps(odd, o0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(odd, o1, acc[i][1]);
    }
  }
  for (int i = 0; i < M; ++i) {
    float* cp = c + (i0 + i) * ldc + j0;
    const float br = ep.bias_row ? ep.bias_row[i0 + i] : 0.0f;
    const float* bc = ep.bias_col ? ep.bias_col + j0 : nullptr;
    finish(acc[i][0], cp, n, ep, br, bc);
    if (n > 8) finish(acc[i][1], cp + 8, n - 8, ep, br, bc ? bc + 8 : nullptr);
  }
}

}  // namespace

void bf16_ukr_avx2(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                   std::int64_t ldc, const UkrEpilogue& ep) {
  if (m < 1 || m > kBf16MrAvx2 || n < 1) return;
  for (int j0 = 0; j0 < n; j0 += 16) {
    const int nj = n - j0 < 16 ? n - j0 : 16;
    for (int i0 = 0; i0 < m; i0 += 4) {
      switch (m - i0) {
        case 1:
          block<1>(i0, j0, nj, kp, a, b, c, ldc, ep);
          break;
        case 2:
          block<2>(i0, j0, nj, kp, a, b, c, ldc, ep);
          break;
        case 3:
          block<3>(i0, j0, nj, kp, a, b, c, ldc, ep);
          break;
        default:
          block<4>(i0, j0, nj, kp, a, b, c, ldc, ep);
          break;
      }
    }
  }
}

}  // namespace avx2
}  // namespace cnnkit
