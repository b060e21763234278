// int8 GEMM micro-kernel and packing with AVX512-VNNI (compiled with -mavx512vnni and the
// AVX-512 flags only here).
//
// Micro-kernel, 14 x 32: per k quad, two zmm loads of the B panel (32 columns x 4 k, as 16
// lanes of 4 uint8 each) and 14 32-bit broadcasts of an A quad (4 int8 of one row); VPDPBUSD
// multiplies the unsigned bytes of B by the signed bytes of A and adds the 4 products of a lane
// to its int32 accumulator, 28 accumulators in all. The non-saturating form: the sums are exact
// (|a b| <= 128 * 255, and the engine keeps K <= kI8MaxK), so every path gives the same bits.
// At two VPDPBUSD per cycle a quad takes 14 cycles against 16 loads (2 B + 14 broadcasts).
// kI8Kc = 1024: the engine's B panel (1024 x 32 bytes) stays in the 48 KiB L1 while the A
// panels stream from L2 (2048 measured no faster once K blocks are even; its fp32 staging
// panel would be 256 KiB).
//
// The row engine's 14 x 32 (activations as rows): the same loop with the roles swapped, 14
// broadcast uint8 quads of A (pixels, read in place lda apart) against two int8 vectors of B
// (the weights' panel): VPDPBUSD takes its unsigned bytes from the broadcast operand.
//
// Packing: B rows are interleaved into quads of consecutive k (byte unpacks, then word
// unpacks, then 128-bit lane moves); the quantizing pack rounds x * inv_scale with VCVTPS2DQ
// (the MXCSR mode: nearest even, as nearbyint in the reference) after clamping to +-1024, so
// saturation is exact, and sets NaN lanes to the zero point by compare mask (VCVTPS2DQ would
// give INT_MIN). Padding (k past kc, columns past n, rows past m) is written as zeros.
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

inline __mmask32 byte_mask32(int count) {
  return count >= 32  ? __mmask32(0xFFFFFFFFu)
         : count <= 0 ? __mmask32(0)
                      : __mmask32((1u << count) - 1);
}

inline __mmask64 byte_mask64(int count) {
  return count >= 64  ? __mmask64(~0ull)
         : count <= 0 ? __mmask64(0)
                      : __mmask64((1ull << count) - 1);
}

// Software prefetch distances of the B packs, in rows (uint8 rows: one line; fp32: two).
constexpr int kPackAheadRows = 32, kQuantizeAheadRows = 16;

inline int round_up_64(int kc) { return (kc + kI8KStep - 1) / kI8KStep * kI8KStep; }

// NV: 2 vectors of 16 columns (n > 16) or 1 (n <= 16: half the work on a panel's last columns).
template <int M, int NV>
void ukr(int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b, std::int32_t* c,
         std::int64_t ldc, bool accumulate) {
  __m512i acc0[M], acc1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm512_setzero_si512();
    acc1[i] = _mm512_setzero_si512();
  }
  for (std::int64_t s = 0; s < kp; s += kI8KStep, a += kI8Mr * kI8KStep) {
#pragma GCC unroll 4
    for (int qq = 0; qq < kI8KStep; qq += 4, b += 4 * kI8Nr) {
      const __m512i b0 = _mm512_loadu_si512(b);
      const __m512i b1 = NV == 2 ? _mm512_loadu_si512(b + 64) : _mm512_setzero_si512();
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        int quad;
        __builtin_memcpy(&quad, a + i * kI8KStep + qq, 4);
        const __m512i ai = _mm512_set1_epi32(quad);
        acc0[i] = _mm512_dpbusd_epi32(acc0[i], b0, ai);  // u8 (B) x s8 (A), exact
        if (NV == 2) acc1[i] = _mm512_dpbusd_epi32(acc1[i], b1, ai);
      }
    }
  }
  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    std::int32_t* cp = c + i * ldc;
    __m512i v0 = acc0[i];
    if (accumulate) v0 = _mm512_add_epi32(v0, _mm512_maskz_loadu_epi32(mask0, cp));
    _mm512_mask_storeu_epi32(cp, mask0, v0);
    if (NV == 2) {
      __m512i v1 = acc1[i];
      if (accumulate) v1 = _mm512_add_epi32(v1, _mm512_maskz_loadu_epi32(mask1, cp + 16));
      _mm512_mask_storeu_epi32(cp + 16, mask1, v1);
    }
  }
}

// Dispatch on the row count: ukr<M, NV> for M = m (recursion unrolled at compile time).
template <int M>
void rows(int m, int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
          std::int32_t* c, std::int64_t ldc, bool accumulate) {
  if (m == M) {
    if (n > 16) return ukr<M, 2>(n, kp, a, b, c, ldc, accumulate);
    return ukr<M, 1>(n, kp, a, b, c, ldc, accumulate);
  }
  if constexpr (M > 1) rows<M - 1>(m, n, kp, a, b, c, ldc, accumulate);
}

// The row engine: M rows of A (in place) x NV vectors of 16 columns of B.
template <int M, int NV>
void ukr_rows(int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
              const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  __m512i acc0[M], acc1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm512_setzero_si512();
    acc1[i] = _mm512_setzero_si512();
  }
  for (std::int64_t t = 0; t < slices; ++t) {
    const std::uint8_t* at = a + a_off[t];
#pragma GCC unroll 4
    for (int qq = 0; qq < kI8KStep; qq += 4, b += 4 * kI8Nr) {
      const __m512i b0 = _mm512_loadu_si512(b);
      const __m512i b1 = NV == 2 ? _mm512_loadu_si512(b + 64) : _mm512_setzero_si512();
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        int quad;
        __builtin_memcpy(&quad, at + i * lda + qq, 4);
        const __m512i ai = _mm512_set1_epi32(quad);
        acc0[i] = _mm512_dpbusd_epi32(acc0[i], ai, b0);  // u8 (A) x s8 (B), exact
        if (NV == 2) acc1[i] = _mm512_dpbusd_epi32(acc1[i], ai, b1);
      }
    }
  }
  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    _mm512_mask_storeu_epi32(c + i * ldc, mask0, acc0[i]);
    if (NV == 2) _mm512_mask_storeu_epi32(c + i * ldc + 16, mask1, acc1[i]);
  }
}

template <int M>
void rows_rows(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
               const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  if (m == M) {
    if (n > 16) return ukr_rows<M, 2>(n, slices, a, lda, a_off, b, c, ldc);
    return ukr_rows<M, 1>(n, slices, a, lda, a_off, b, c, ldc);
  }
  if constexpr (M > 1) rows_rows<M - 1>(m, n, slices, a, lda, a_off, b, c, ldc);
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

void i8_ukr_14x32(int m, int n, std::int64_t kp, const std::int8_t* a, const std::uint8_t* b,
                  std::int32_t* c, std::int64_t ldc, bool accumulate) {
  if (m < 1 || m > kI8Mr || n < 1) return;
  rows<kI8Mr>(m, n, kp, a, b, c, ldc, accumulate);
}

void u8s8_ukr_14x32(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                    const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                    std::int64_t ldc) {
  if (m < 1 || m > kI8RowsMr || n < 1) return;
  rows_rows<kI8RowsMr>(m, n, slices, a, lda, a_off, b, c, ldc);
}

void pack_i8_a(const std::int8_t* src, std::int64_t ld, int m, int kc, int mr, std::int8_t* dst) {
  const int kp = round_up_64(kc);
  for (int s = 0; s < kp; s += kI8KStep, dst += std::int64_t(mr) * kI8KStep) {
    const __mmask64 mask = byte_mask64(kc - s);
    for (int i = 0; i < m; ++i) {
      _mm512_storeu_si512(dst + i * kI8KStep, _mm512_maskz_loadu_epi8(mask, src + i * ld + s));
    }
    for (int i = m; i < mr; ++i) _mm512_storeu_si512(dst + i * kI8KStep, _mm512_setzero_si512());
  }
}

void pack_u8_b(const std::uint8_t* src, std::int64_t ld, int kc, int n, std::uint8_t* dst) {
  const int kp = round_up_64(kc);
  const __mmask32 mask = byte_mask32(n);
  for (int p = 0; p < kp; p += 4, dst += 4 * kI8Nr) {
    __m256i r[4];
    for (int t = 0; t < 4; ++t) {
      // Rows lie ld bytes apart (an image's row of pixels): too far for the hardware stride
      // prefetcher, so fetch 8 quads ahead (measured: packing a 2304 x 3136 B 8 % faster).
      if (p + t + kPackAheadRows < kc) {
        _mm_prefetch(reinterpret_cast<const char*>(src + std::int64_t(p + t + kPackAheadRows) * ld),
                     _MM_HINT_T0);
      }
      r[t] = p + t < kc ? _mm256_maskz_loadu_epi8(mask, src + std::int64_t(p + t) * ld)
                        : _mm256_setzero_si256();
    }
    // Per 128-bit lane (columns 0-15 | 16-31): byte pairs of rows 0,1 and 2,3, then quads.
    const __m256i lo01 = _mm256_unpacklo_epi8(r[0], r[1]), hi01 = _mm256_unpackhi_epi8(r[0], r[1]);
    const __m256i lo23 = _mm256_unpacklo_epi8(r[2], r[3]), hi23 = _mm256_unpackhi_epi8(r[2], r[3]);
    const __m256i q0 = _mm256_unpacklo_epi16(lo01, lo23);  // columns 0-3   | 16-19
    const __m256i q1 = _mm256_unpackhi_epi16(lo01, lo23);  // columns 4-7   | 20-23
    const __m256i q2 = _mm256_unpacklo_epi16(hi01, hi23);  // columns 8-11  | 24-27
    const __m256i q3 = _mm256_unpackhi_epi16(hi01, hi23);  // columns 12-15 | 28-31
    auto* d = reinterpret_cast<__m256i*>(dst);
    _mm256_storeu_si256(d + 0, _mm256_permute2x128_si256(q0, q1, 0x20));
    _mm256_storeu_si256(d + 1, _mm256_permute2x128_si256(q2, q3, 0x20));
    _mm256_storeu_si256(d + 2, _mm256_permute2x128_si256(q0, q1, 0x31));
    _mm256_storeu_si256(d + 3, _mm256_permute2x128_si256(q2, q3, 0x31));
  }
}

void quantize_pack_b(const float* src, std::int64_t ld, int kc, int n, float inv_scale,
                     int zero_point, std::uint8_t* dst) {
  const int kp = round_up_64(kc);
  const __m512 inv = _mm512_set1_ps(inv_scale);
  const __m512i zp = _mm512_set1_epi32(zero_point);
  const __m512i nan_value = _mm512_set1_epi32(zero_point < 0     ? 0
                                              : zero_point > 255 ? 255
                                                                 : zero_point);
  const __mmask16 mask[2] = {lane_mask(n), lane_mask(n - 16)};
  for (int p = 0; p < kp; p += 4, dst += 4 * kI8Nr) {
    // As in pack_u8_b, two lines a row (measured: quantizing a 2304 x 3136 B 30 % faster).
    for (int t = 0; t < 4 && p + t + kQuantizeAheadRows < kc; ++t) {
      const char* ahead =
          reinterpret_cast<const char*>(src + std::int64_t(p + t + kQuantizeAheadRows) * ld);
      _mm_prefetch(ahead, _MM_HINT_T0);
      _mm_prefetch(ahead + 64, _MM_HINT_T0);
    }
    for (int h = 0; h < 2; ++h) {
      // Columns 16 h .. 16 h + 15: row p + t goes to byte t of each 32-bit lane.
      __m512i quads = _mm512_setzero_si512();
      for (int t = 0; t < 4 && p + t < kc; ++t) {
        const float* row = src + std::int64_t(p + t) * ld + 16 * h;
        const __m512i q = quantize16(_mm512_maskz_loadu_ps(mask[h], row), inv, zp, nan_value);
        quads = _mm512_or_si512(quads, _mm512_maskz_slli_epi32(mask[h], q, 8 * t));
      }
      _mm512_storeu_si512(dst + 64 * h, quads);
    }
  }
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
