// The int8 row engine's micro-kernel and the activations' quantization with AVX512-VNNI
// (compiled with -mavx512vnni and the AVX-512 flags only here).
//
// Micro-kernel, 14 x 32: per depth quad, two zmm loads of the weight panel (32 output
// channels x 4 depths, as 16 lanes of 4 int8 each) and 14 32-bit broadcasts of a pixel's quad
// (4 uint8 of one row of A, read in place lda apart); VPDPBUSD multiplies the unsigned bytes
// of its first source (the broadcast) by the signed bytes of its second and adds the 4
// products of a lane to its int32 accumulator, 28 accumulators in all. The non-saturating
// form: the sums are exact (|a b| <= 255 * 128, and the engine keeps K <= kI8MaxK), so every
// path gives the same bits. At one 512-bit VPDPBUSD per cycle (measured on Zen 4) a quad takes
// 28 cycles against 16 loads (2 weight vectors + 14 broadcasts): 430-447 G int8 ops/s on one
// core with the operands in L1.
//
// Quantization rounds x * inv_scale with VCVTPS2DQ (the MXCSR mode: nearest even, as nearbyint
// in the reference) after clamping to +-1024, so saturation is exact, and sets NaN lanes to
// the zero point by compare mask (VCVTPS2DQ would give INT_MIN).
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx512_vnni {
namespace {

inline __mmask16 lane_mask(int count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// The accumulator as a register value. With the masked stores reading the arrays directly,
// GCC 12 kept acc0/acc1 in memory and wrote every accumulator to the stack after each update
// (20-26 stores per depth quad: 111 against 234 G int8 ops/s on one Zen 4 core, a 4096-deep
// layer); an empty asm that takes the value in a register lets it keep the arrays in registers.
// It emits no instruction.
inline __m512i in_register(__m512i v) {
  __asm__("" : "+v"(v));
  return v;
}

// Row i of A at p + off(i): two base pointers (rows 0-6 and 7-13) and the byte offsets
// {0, 1, 2, 3, 4, 5, 6} * lda formed from lda, 3 lda and 5 lda by the addressing modes
// (x1, x2, x4), so the 14 rows cost 5 general registers, not 14 (with 14 offsets the compiler
// ran out of registers and reloaded some of them from the stack on every quad).
template <int I>
inline const std::uint8_t* row_at(const std::uint8_t* p0, const std::uint8_t* p7, std::int64_t l,
                                  std::int64_t l3, std::int64_t l5) {
  const std::uint8_t* p = I < 7 ? p0 : p7;
  constexpr int r = I % 7;
  return r == 0   ? p
         : r == 1 ? p + l
         : r == 2 ? p + 2 * l
         : r == 3 ? p + l3
         : r == 4 ? p + 4 * l
         : r == 5 ? p + l5
                  : p + 2 * l3;
}

template <int I, int M, int NV>
inline void quad_rows(const std::uint8_t* p0, const std::uint8_t* p7, std::int64_t l,
                      std::int64_t l3, std::int64_t l5, __m512i b0, __m512i b1, __m512i* acc0,
                      __m512i* acc1) {
  if constexpr (I < M) {
    int quad;
    __builtin_memcpy(&quad, row_at<I>(p0, p7, l, l3, l5), 4);
    const __m512i ai = _mm512_set1_epi32(quad);
    acc0[I] = _mm512_dpbusd_epi32(acc0[I], ai, b0);  // u8 (A) x s8 (B), exact
    if constexpr (NV == 2) acc1[I] = _mm512_dpbusd_epi32(acc1[I], ai, b1);
    quad_rows<I + 1, M, NV>(p0, p7, l, l3, l5, b0, b1, acc0, acc1);
  }
}

// M rows of A (in place) x NV vectors of 16 columns of B: 2 (n > 16) or 1 (n <= 16, half
// the work on a panel's last columns).
template <int M, int NV>
void ukr(int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
         const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  __m512i acc0[M], acc1[NV == 2 ? M : 1];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm512_setzero_si512();
    if constexpr (NV == 2) acc1[i] = _mm512_setzero_si512();
  }
  const std::int64_t l3 = 3 * lda, l5 = 5 * lda;
  for (std::int64_t t = 0; t < slices; ++t) {
    const std::uint8_t* p0 = a + a_off[t];
    const std::uint8_t* p7 = p0 + 7 * lda;
    for (int qq = 0; qq < kI8KStepVec; qq += 4, b += 4 * kI8Nr) {
      const __m512i b0 = _mm512_loadu_si512(b);
      const __m512i b1 = NV == 2 ? _mm512_loadu_si512(b + 64) : _mm512_setzero_si512();
      quad_rows<0, M, NV>(p0 + qq, p7 + qq, lda, l3, l5, b0, b1, acc0, acc1);
    }
  }
  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    _mm512_mask_storeu_epi32(c + i * ldc, mask0, in_register(acc0[i]));
    if constexpr (NV == 2) _mm512_mask_storeu_epi32(c + i * ldc + 16, mask1, in_register(acc1[i]));
  }
}

template <int M>
void rows(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
          const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  if (m == M) {
    if (n > 16) return ukr<M, 2>(n, slices, a, lda, a_off, b, c, ldc);
    return ukr<M, 1>(n, slices, a, lda, a_off, b, c, ldc);
  }
  if constexpr (M > 1) rows<M - 1>(m, n, slices, a, lda, a_off, b, c, ldc);
}

// 16 fp32 -> 16 int32 lanes in [0, 255]: the quantization rule of quantize_u8_ref.
inline __m512i quantize16(__m512 x, __m512 inv_scale, __m512i zero_point, __m512i nan_value) {
  const __m512 r = _mm512_mul_ps(x, inv_scale);
  const __mmask16 nan = _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
  const __m512 clamped =
      _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-1024.0f)), _mm512_set1_ps(1024.0f));
  __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(clamped), zero_point);
  q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
  return _mm512_mask_mov_epi32(q, nan, nan_value);
}

}  // namespace

void u8s8_ukr_14x32(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                    const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                    std::int64_t ldc) {
  if (m < 1 || m > kI8RowsMr || n < 1) return;
  rows<kI8RowsMr>(m, n, slices, a, lda, a_off, b, c, ldc);
}

// 16 pixels at a time: each plane's 16 values quantized into a column of a 16 x C byte block
// (C <= 64 per pass), then the block's rows stored as the pixels' channel vectors.
void quantize_u8_nhwc(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                      float inv_scale, int zero_point, std::uint8_t* dst) {
  const __m512 inv = _mm512_set1_ps(inv_scale);
  const __m512i zp = _mm512_set1_epi32(zero_point);
  const __m512i nan_value = _mm512_set1_epi32(zero_point < 0     ? 0
                                              : zero_point > 255 ? 255
                                                                 : zero_point);
  alignas(64) std::uint8_t planes[64][16];
  for (std::int64_t i0 = 0; i0 < n; i0 += 16) {
    const int m = int(n - i0 < 16 ? n - i0 : 16);
    const __mmask16 mk = lane_mask(m);
    for (std::int64_t c0 = 0; c0 < C; c0 += 64) {
      const int cc = int(C - c0 < 64 ? C - c0 : 64);
      for (int c = 0; c < cc; ++c) {
        const __m512 x = _mm512_maskz_loadu_ps(mk, src + (c0 + c) * ld + i0);
        _mm_store_si128(reinterpret_cast<__m128i*>(planes[c]),
                        _mm512_cvtepi32_epi8(quantize16(x, inv, zp, nan_value)));
      }
      for (int i = 0; i < m; ++i) {
        std::uint8_t* d = dst + (i0 + i) * C + c0;
        for (int c = 0; c < cc; ++c) d[c] = planes[c][i];
      }
    }
  }
}

}  // namespace avx512_vnni
}  // namespace cnnkit
