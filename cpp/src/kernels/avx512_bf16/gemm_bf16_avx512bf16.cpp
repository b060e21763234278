// bf16 GEMM micro-kernel and conversions with AVX512-BF16 (compiled with -mavx512bf16 and the
// AVX-512 flags only here).
//
// Micro-kernel, 14 x 32: per k pair, two zmm loads of the B panel (32 columns x 2 k) and 14
// 32-bit broadcasts of an A pair; VDPBF16PS adds a[i][2q] b[2q][j] + a[i][2q+1] b[2q+1][j] to
// each of the 16 fp32 lanes, 28 accumulators in all. Rounding with VCVTNEPS2BF16 (nearest
// even, denormal inputs as zero: the same as the reference's).
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx512/ukr_finish_avx512.hpp"
#include "runtime/peak_kernels.hpp"

namespace cnnkit {
namespace avx512_bf16 {
namespace {

using avx512::finish;
using avx512::lane_mask;

// 16 fp32 -> 16 bf16 in the low halves of 32-bit lanes.
inline __m512i to_bf16_lanes(__m512 v) {
  return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

template <int M>
void ukr(int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c, std::int64_t ldc,
         const UkrEpilogue& ep) {
  __m512 acc0[M], acc1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  const std::int64_t pairs = kp / 2;
  for (std::int64_t q = 0; q < pairs; ++q) {
    const bf16_t* ap = a + (q / 16) * kBf16Mr * kBf16KStep + (q % 16) * 2;
    const bf16_t* bp = b + q * 2 * kBf16Nr;
    _mm_prefetch(reinterpret_cast<const char*>(bp + 16 * 2 * kBf16Nr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 16 * 2 * kBf16Nr + 32), _MM_HINT_T0);
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      int pair;
      __builtin_memcpy(&pair, ap + i * kBf16KStep, 4);
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);
      acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
    }
  }
  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
  const float* bias_c0 = ep.bias_col;
  const float* bias_c1 = ep.bias_col ? ep.bias_col + 16 : nullptr;
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    float* cp = c + i * ldc;
    const float br = ep.bias_row ? ep.bias_row[i] : 0.0f;
    _mm512_mask_storeu_ps(cp, mask0, finish(acc0[i], cp, mask0, ep, br, bias_c0));
    if (n > 16) {
      _mm512_mask_storeu_ps(cp + 16, mask1, finish(acc1[i], cp + 16, mask1, ep, br, bias_c1));
    }
  }
}

}  // namespace

void bf16_ukr_14x32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                    std::int64_t ldc, const UkrEpilogue& ep) {
  switch (m) {
    case 14:
      return ukr<14>(n, kp, a, b, c, ldc, ep);
    case 13:
      return ukr<13>(n, kp, a, b, c, ldc, ep);
    case 12:
      return ukr<12>(n, kp, a, b, c, ldc, ep);
    case 11:
      return ukr<11>(n, kp, a, b, c, ldc, ep);
    case 10:
      return ukr<10>(n, kp, a, b, c, ldc, ep);
    case 9:
      return ukr<9>(n, kp, a, b, c, ldc, ep);
    case 8:
      return ukr<8>(n, kp, a, b, c, ldc, ep);
    case 7:
      return ukr<7>(n, kp, a, b, c, ldc, ep);
    case 6:
      return ukr<6>(n, kp, a, b, c, ldc, ep);
    case 5:
      return ukr<5>(n, kp, a, b, c, ldc, ep);
    case 4:
      return ukr<4>(n, kp, a, b, c, ldc, ep);
    case 3:
      return ukr<3>(n, kp, a, b, c, ldc, ep);
    case 2:
      return ukr<2>(n, kp, a, b, c, ldc, ep);
    case 1:
      return ukr<1>(n, kp, a, b, c, ldc, ep);
    default:
      return;
  }
}

void round_bf16(const float* src, std::int64_t n, bf16_t* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
  }
  if (i < n) {
    const __mmask16 m = lane_mask(int(n - i));
    _mm256_mask_storeu_epi16(dst + i, m,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

void round_bf16_f32(const float* src, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lane_mask(int(n - i));
    const __m512i w = _mm512_slli_epi32(to_bf16_lanes(_mm512_maskz_loadu_ps(m, src + i)), 16);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(w));
  }
}

void pack_bf16_a(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst) {
  for (int s = 0; s < kc; s += kBf16KStep, dst += mr * kBf16KStep) {
    const __mmask16 m0 = lane_mask(kc - s), m1 = lane_mask(kc - s - 16);
    for (int i = 0; i < m; ++i) {
      const float* r = src + i * ld + s;
      const __m512 lo = _mm512_maskz_loadu_ps(m0, r), hi = _mm512_maskz_loadu_ps(m1, r + 16);
      _mm512_storeu_si512(dst + i * kBf16KStep, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (int i = m; i < mr; ++i) _mm512_storeu_si512(dst + i * kBf16KStep, _mm512_setzero_si512());
  }
}

void pack_bf16_b(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst) {
  const int kp = (kc + kBf16KStep - 1) / kBf16KStep * kBf16KStep;
  const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
  for (int p = 0; p < kp; p += 2, dst += 2 * kBf16Nr) {
    __m512i lo0 = _mm512_setzero_si512(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    if (p < kc) {
      const float* r = src + std::int64_t(p) * ld;
      lo0 = to_bf16_lanes(_mm512_maskz_loadu_ps(m0, r));
      lo1 = to_bf16_lanes(_mm512_maskz_loadu_ps(m1, r + 16));
    }
    if (p + 1 < kc) {
      const float* r = src + std::int64_t(p + 1) * ld;
      hi0 = _mm512_slli_epi32(to_bf16_lanes(_mm512_maskz_loadu_ps(m0, r)), 16);
      hi1 = _mm512_slli_epi32(to_bf16_lanes(_mm512_maskz_loadu_ps(m1, r + 16)), 16);
    }
    _mm512_storeu_si512(dst, _mm512_or_si512(lo0, hi0));
    _mm512_storeu_si512(dst + 32, _mm512_or_si512(lo1, hi1));
  }
}

void interleave_bf16(const float* r0, const float* r1, std::int64_t n, bf16_t* dst) {
  for (std::int64_t i = 0; i < n; i += 16, dst += 32) {
    const __mmask16 m = lane_mask(int(n - i));
    const __m512i lo = to_bf16_lanes(_mm512_maskz_loadu_ps(m, r0 + i));
    __m512i v = lo;
    if (r1)
      v = _mm512_or_si512(lo,
                          _mm512_slli_epi32(to_bf16_lanes(_mm512_maskz_loadu_ps(m, r1 + i)), 16));
    _mm512_mask_storeu_epi32(dst, m, v);
  }
}

// The bf16 peak probe: 24 independent VDPBF16PS chains.
float dpbf16_chains(std::int64_t iters) {
  constexpr int kChains = 24;
  __m512 acc[kChains];
  volatile int seed = 0x3f803f80;  // (1.0, 1.0) as bf16 pairs
  const __m512bh x = (__m512bh)_mm512_set1_epi32(seed), y = (__m512bh)_mm512_set1_epi32(0);
  // Every loop fully unrolled: with the first and last loops left rolled, GCC 12 kept acc in
  // memory and stored each chain to the stack inside the timed loop (the probe then read low).
#pragma GCC unroll 24
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

}  // namespace avx512_bf16
}  // namespace cnnkit
