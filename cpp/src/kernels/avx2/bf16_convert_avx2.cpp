// fp32 -> bf16 rounding and the bf16 engine's packing with AVX2 (contracts: RoundBf16,
// RoundBf16F32, PackBf16A, PackBf16B, InterleaveBf16 in gemm/gemm_kernels.hpp), for CPUs
// without VCVTNEPS2BF16. The reference's rule on 8 lanes at a time (bf16_patterns in
// vmath_avx2.hpp). The 16-bit results sit in the low halves of 32-bit lanes; two such vectors
// become 16 bf16 by VPACKUSDW (exact: the values are below 2^16) or 8 k pairs by a shift and
// an OR.
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx2/vmath_avx2.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

inline __m256i lane_mask(std::int64_t count) {
  const int c = count >= 8 ? 8 : count <= 0 ? 0 : int(count);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256i round_load(const float* src, std::int64_t left) {
  if (left >= 8) return bf16_patterns(_mm256_loadu_ps(src));
  return bf16_patterns(_mm256_maskload_ps(src, lane_mask(left)));  // masked lanes: 0 -> bf16 0
}

// 16 bf16 from two vectors of low-half patterns, in order.
inline __m256i pack16(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
}

// 8 k pairs (even k in the low half) from two vectors of low-half patterns.
inline __m256i pairs8(__m256i even, __m256i odd) {
  return _mm256_or_si256(even, _mm256_slli_epi32(odd, 16));
}

inline void store_tail(bf16_t* dst, __m256i v, std::int64_t count) {
  alignas(32) bf16_t tmp[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
  for (std::int64_t i = 0; i < count; ++i) dst[i] = tmp[i];
}

}  // namespace

void round_bf16_avx2(const float* src, std::int64_t n, bf16_t* dst) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __m256i v = pack16(round_load(src + i, n - i), round_load(src + i + 8, n - i - 8));
    if (n - i >= 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), v);
    } else {
      store_tail(dst + i, v, n - i);
    }
  }
}

void round_bf16_f32_avx2(const float* src, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_castsi256_ps(_mm256_slli_epi32(round_load(src + i, n - i), 16));
    if (n - i >= 8) {
      _mm256_storeu_ps(dst + i, v);
    } else {
      _mm256_maskstore_ps(dst + i, lane_mask(n - i), v);
    }
  }
}

void pack_bf16_a_avx2(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst) {
  const int kp = (kc + kBf16KStep - 1) / kBf16KStep * kBf16KStep;
  for (int p0 = 0; p0 < kp; p0 += kBf16KStep) {
    bf16_t* slice = dst + (p0 / kBf16KStep) * mr * kBf16KStep;
    for (int i = 0; i < mr; ++i) {
      bf16_t* d = slice + i * kBf16KStep;
      if (i >= m) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_setzero_si256());
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 16), _mm256_setzero_si256());
        continue;
      }
      const float* s = src + i * ld + p0;
      const int left = kc - p0;
      for (int h = 0; h < kBf16KStep; h += 16) {
        const __m256i v = pack16(round_load(s + h, left - h), round_load(s + h + 8, left - h - 8));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + h), v);
      }
    }
  }
}

void pack_bf16_b_avx2(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst) {
  const int kp = (kc + kBf16KStep - 1) / kBf16KStep * kBf16KStep;
  const __m256i zero = _mm256_setzero_si256();
  for (int p = 0; p < kp; p += 2, dst += 2 * kBf16Nr) {
    const float* r0 = src + std::int64_t(p) * ld;
    for (int j = 0; j < kBf16Nr; j += 8) {
      const __m256i even = p < kc ? round_load(r0 + j, n - j) : zero;
      const __m256i odd = p + 1 < kc ? round_load(r0 + ld + j, n - j) : zero;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * j), pairs8(even, odd));
    }
  }
}

void interleave_bf16_avx2(const float* r0, const float* r1, std::int64_t n, bf16_t* dst) {
  for (std::int64_t i = 0; i < n; i += 8) {
    const __m256i even = round_load(r0 + i, n - i);
    const __m256i odd = r1 ? round_load(r1 + i, n - i) : _mm256_setzero_si256();
    const __m256i v = pairs8(even, odd);
    if (n - i >= 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i), v);
    } else {
      store_tail(dst + 2 * i, v, 2 * (n - i));
    }
  }
}

}  // namespace avx2
}  // namespace cnnkit
