// AVX2/FMA GEMM micro-kernel, 6 x 16 tile (compiled with -mavx2 -mfma only here).
//
// 12 ymm accumulators + 2 B vectors + 1 broadcast fill the 16 ymm registers. Columns past n
// use vmaskmovps (which does not fault on masked lanes) so B can be read in place; full tiles
// take the unmasked loop. Row count is a template parameter, as in the AVX-512 kernel.
// Only intrinsics and internal-linkage functions here (see sgemm_ukr_avx512.cpp).
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

constexpr int kPrefetchCMinK = 128;

inline __m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 finish(__m256 v, const float* cp, __m256i mask, const UkrEpilogue& ep, float bias_r,
                     const float* bias_c) {
  if (ep.alpha != 1.0f) v = _mm256_mul_ps(v, _mm256_set1_ps(ep.alpha));
  if (ep.beta != 0.0f) {
    const __m256 old = _mm256_maskload_ps(cp, mask);
    v = ep.beta == 1.0f ? _mm256_add_ps(v, old) : _mm256_fmadd_ps(_mm256_set1_ps(ep.beta), old, v);
  }
  if (ep.bias_row) v = _mm256_add_ps(v, _mm256_set1_ps(bias_r));
  if (bias_c) v = _mm256_add_ps(v, _mm256_maskload_ps(bias_c, mask));
  if (ep.relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
  return v;
}

template <int M, bool Full>
void ukr(int n, std::int64_t k, const float* a, const float* b, std::int64_t ldb, float* c,
         std::int64_t ldc, const UkrEpilogue& epilogue) {
  const UkrEpilogue ep = epilogue;  // a copy: C's stores could alias the caller's struct
  // The C tile's lines, asked for before a long k loop so that their misses overlap it (as in
  // the AVX-512 kernel); c + 15 is the second line when a row straddles two.
  if (k >= kPrefetchCMinK) {
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
    }
  }
  __m256 acc0[M], acc1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  const __m256i mask0 = lane_mask(n), mask1 = lane_mask(n - 8);
  for (std::int64_t p = 0; p < k; ++p) {
    __m256 b0, b1;
    if (Full) {
      b0 = _mm256_loadu_ps(b);
      b1 = _mm256_loadu_ps(b + 8);
    } else {
      b0 = _mm256_maskload_ps(b, mask0);
      b1 = _mm256_maskload_ps(b + 8, mask1);
    }
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
    a += M;
    b += ldb;
  }
  const float* bias_c1 = ep.bias_col ? ep.bias_col + 8 : nullptr;
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    float* cp = c + i * ldc;
    const float br = ep.bias_row ? ep.bias_row[i] : 0.0f;
    _mm256_maskstore_ps(cp, mask0, finish(acc0[i], cp, mask0, ep, br, ep.bias_col));
    if (n > 8) _mm256_maskstore_ps(cp + 8, mask1, finish(acc1[i], cp + 8, mask1, ep, br, bias_c1));
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

void sgemm_ukr_6x16_avx2(int m, int n, std::int64_t k, const float* a, const float* b,
                         std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep) {
  switch (m) {
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

}  // namespace avx2
}  // namespace cnnkit
