// The int8 row engine's micro-kernel with AVX2 (U8S8Ukr, gemm/gemm_kernels.hpp), for CPUs
// without VNNI (AMD Zen 3, Intel Haswell..Skylake client).
//
// Exact, as every int8 path: VPMADDUBSW (u8 x s8 pairs) would be twice as dense but adds its
// pairs with int16 saturation (255 * 127 * 2 > 32767), so the sums would depend on the CPU.
// Instead both operands are widened to int16 and VPMADDWD adds exact pairs into int32:
//   weights: 16 bytes of the panel (4 output channels x one depth quad) -> 16 int16 (VPMOVSXBW)
//   pixels:  a quad of 4 uint8, broadcast, and spread to int16 (a0 a1 a2 a3) in each 64 bits
//            by VPSHUFB (zero bytes in between)
//   VPMADDWD: per channel two int32 lanes, (a0 b0 + a1 b1) and (a2 b2 + a3 b3)
// The two lanes of a channel are added once at the end (VPHADDD). Block: 3 rows x 16 channels,
// 12 ymm accumulators + 3 spread quads + 1 widened weight vector; per depth quad 4 widening
// loads, 3 broadcasts, 12 VPMADDWD and 12 VPADDD for 192 products. A 32-channel panel is two
// 16-channel halves, and up to kI8RowsMr rows are row groups of 3 (or 2).
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

// The lanes of 8 int32 columns that are stored: the first count.
inline __m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// M rows (M <= 3) x 16 channels: b points at the half panel's first byte of a quad row (row
// stride 4 * kI8Nr bytes), n <= 16 channels stored.
template <int M>
void block(int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
           const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  const __m256i spread =
      _mm256_setr_epi8(0, -1, 1, -1, 2, -1, 3, -1, 0, -1, 1, -1, 2, -1, 3, -1,  //
                       0, -1, 1, -1, 2, -1, 3, -1, 0, -1, 1, -1, 2, -1, 3, -1);
  __m256i acc[M][4];
  for (int i = 0; i < M; ++i)
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm256_setzero_si256();
  for (std::int64_t t = 0; t < slices; ++t) {
    const std::uint8_t* at = a + a_off[t];
#pragma GCC unroll 2
    for (int qq = 0; qq < kI8KStepVec; qq += 4, b += 4 * kI8Nr) {
      __m256i av[M];
      for (int i = 0; i < M; ++i) {
        int quad;
        __builtin_memcpy(&quad, at + i * lda + qq, 4);
        av[i] = _mm256_shuffle_epi8(_mm256_set1_epi32(quad), spread);
      }
      for (int g = 0; g < 4; ++g) {
        const __m256i w =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * g)));
        for (int i = 0; i < M; ++i) {
          acc[i][g] = _mm256_add_epi32(acc[i][g], _mm256_madd_epi16(w, av[i]));
        }
      }
    }
  }
  // (c0, c0', c1, c1', c2, c2', c3, c3') per group: hadd of groups 0 and 1 gives
  // (c0 c1 c4 c5 | c2 c3 c6 c7) and VPERMQ puts the 64-bit pairs in order.
  const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
  for (int i = 0; i < M; ++i) {
    const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][0], acc[i][1]), 0xD8);
    const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][2], acc[i][3]), 0xD8);
    _mm256_maskstore_epi32(reinterpret_cast<int*>(c + i * ldc), m0, lo);
    if (n > 8) _mm256_maskstore_epi32(reinterpret_cast<int*>(c + i * ldc + 8), m1, hi);
  }
}

void rows(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
          const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c, std::int64_t ldc) {
  switch (m) {
    case 1:
      return block<1>(n, slices, a, lda, a_off, b, c, ldc);
    case 2:
      return block<2>(n, slices, a, lda, a_off, b, c, ldc);
    default:
      return block<3>(n, slices, a, lda, a_off, b, c, ldc);
  }
}

}  // namespace

void u8s8_ukr_avx2(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                   const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                   std::int64_t ldc) {
  if (m < 1 || m > kI8RowsMr || n < 1) return;
  // Row groups of 3, but of 2 where m is not a multiple of 3 (16 = 3+3+3+3+2+2, not ...+1):
  // a group of one row would widen each weight vector for one product.
  const int groups = (m + 2) / 3, twos = 3 * groups - m;
  for (int g = 0, i0 = 0; g < groups; ++g) {
    const int mi = m == 1 ? 1 : g < groups - twos ? 3 : 2;
    const std::uint8_t* ai = a + i0 * lda;
    std::int32_t* ci = c + i0 * ldc;
    rows(mi, n < 16 ? n : 16, slices, ai, lda, a_off, b, ci, ldc);
    if (n > 16) rows(mi, n - 16, slices, ai, lda, a_off, b + 64, ci + 16, ldc);
    i0 += mi;
  }
}

}  // namespace avx2
}  // namespace cnnkit
