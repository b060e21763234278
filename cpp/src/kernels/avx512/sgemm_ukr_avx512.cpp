// AVX-512 GEMM micro-kernel, 14 x 32 tile (compiled with -mavx512f/bw/dq/vl -mfma only here).
//
// Each k step loads one 32-wide row of the B panel (2 zmm) and broadcasts 14 A values, feeding
// 28 independent accumulator chains: enough to cover the 4-cycle FMA latency at one 512-bit FMA
// per cycle, leaving zmm registers for B and the broadcast. Columns past n are masked (AVX-512
// masked loads do not fault), so the same code reads packed panels and, for small problems,
// B rows in place. The row count is a template parameter: the engine balances row panels and
// calls the variant with exactly m rows instead of padding with zeros.
//
// Only intrinsics and functions with internal linkage here: an inline function shared with
// baseline code could be emitted with AVX-512 instructions and picked by the linker for all.
#include <immintrin.h>

#include "gemm/gemm_kernels.hpp"
#include "kernels/avx512/ukr_finish_avx512.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

constexpr int kPrefetchRows = 16;
constexpr int kPrefetchCMinK = 128;

template <int M>
void ukr(int n, std::int64_t k, const float* a, const float* b, std::int64_t ldb, float* c,
         std::int64_t ldc, const UkrEpilogue& epilogue) {
  // A copy: C's stores could alias the caller's struct, which would make the compiler reload
  // and re-test every field for every row.
  const UkrEpilogue ep = epilogue;
  // The C tile is read (beta != 0) or written once, after the k loop: ask for its lines now so
  // that the misses overlap a long loop (C rows of a large problem are pages apart). sgemm
  // 2048^3 on one Zen 5 core, paired fresh processes: 129-151 -> 147-187 GFLOP/s. A short
  // loop (k = 27, a first conv layer) hides nothing and only pays for the prefetches.
  if (k >= kPrefetchCMinK) {
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      if (n > 16) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
  }
  __m512 acc0[M], acc1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  const __mmask16 mask0 = lane_mask(n), mask1 = lane_mask(n - 16);
  if (n == 32) {
    for (std::int64_t p = 0; p < k; ++p) {
      // The B panel (k x 32) is larger than L1 for k >= 256 and streams from L2: fetch a few
      // rows ahead (measured +7 % on a CIFAR convolution).
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchRows * ldb), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchRows * ldb + 16), _MM_HINT_T0);
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
      }
      a += M;
      b += ldb;
    }
  } else if (n > 16) {
    for (std::int64_t p = 0; p < k; ++p) {
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_maskz_loadu_ps(mask1, b + 16);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
      }
      a += M;
      b += ldb;
    }
  } else {  // n <= 16: one vector per row
    for (std::int64_t p = 0; p < k; ++p) {
      const __m512 b0 = _mm512_maskz_loadu_ps(mask0, b);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) acc0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc0[i]);
      a += M;
      b += ldb;
    }
  }
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

void sgemm_ukr_14x32_avx512(int m, int n, std::int64_t k, const float* a, const float* b,
                            std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep) {
  switch (m) {
    case 14:
      return ukr<14>(n, k, a, b, ldb, c, ldc, ep);
    case 13:
      return ukr<13>(n, k, a, b, ldb, c, ldc, ep);
    case 12:
      return ukr<12>(n, k, a, b, ldb, c, ldc, ep);
    case 11:
      return ukr<11>(n, k, a, b, ldb, c, ldc, ep);
    case 10:
      return ukr<10>(n, k, a, b, ldb, c, ldc, ep);
    case 9:
      return ukr<9>(n, k, a, b, ldb, c, ldc, ep);
    case 8:
      return ukr<8>(n, k, a, b, ldb, c, ldc, ep);
    case 7:
      return ukr<7>(n, k, a, b, ldb, c, ldc, ep);
    case 6:
      return ukr<6>(n, k, a, b, ldb, c, ldc, ep);
    case 5:
      return ukr<5>(n, k, a, b, ldb, c, ldc, ep);
    case 4:
      return ukr<4>(n, k, a, b, ldb, c, ldc, ep);
    case 3:
      return ukr<3>(n, k, a, b, ldb, c, ldc, ep);
    case 2:
      return ukr<2>(n, k, a, b, ldb, c, ldc, ep);
    case 1:
      return ukr<1>(n, k, a, b, ldb, c, ldc, ep);
    default:
      return;
  }
}

}  // namespace avx512
}  // namespace cnnkit
