// AVX2 local response normalisation (contracts: LrnFwd / LrnBwd in norm/norm_kernels.hpp; the
// maths in norm/lrn.cpp; the AVX-512 version is kernels/avx512/lrn_avx512.cpp, whose operations
// this mirrors). Vectorised over spatial positions, 8 a step; for each channel the window's
// planes (a few KB each) are re-read from L1, so memory sees each input once. The last len % 8
// positions go through the same code with masked loads and stores (vmath_avx2.hpp), so nothing
// past len is read or written.
//
// scale^-beta uses square roots for beta = 0.75 (AlexNet: exactly rounded steps only) and
// exp(-beta log s) otherwise (pow_ps, vmath_avx2.hpp).
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/vmath_avx2.hpp"
#include "norm/norm_kernels.hpp"

namespace cnnkit {
namespace avx2 {

void lrn_fwd_f32_avx2(const float* src, float* dst, float* scale, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m256 coef = set1(a.alpha / float(a.size)), k = set1(a.k);
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - before < 0 ? 0 : c - before;
    const std::int64_t hi = c + after > a.C - 1 ? a.C - 1 : c + after;
    blocks(a.len, [&](std::int64_t i, auto io) {
      __m256 s = _mm256_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j) {
        const __m256 v = io.load(src + j * st + i);
        s = _mm256_fmadd_ps(v, v, s);
      }
      const __m256 sc = _mm256_fmadd_ps(coef, s, k);
      io.store(scale + c * st + i, sc);
      io.store(dst + c * st + i, _mm256_mul_ps(io.load(src + c * st + i), pow_ps(sc, -a.beta)));
    });
  }
}

void lrn_bwd_f32_avx2(const float* diff_dst, const float* src, const float* dst, const float* scale,
                      float* diff_src, float* work, const LrnArgs& a) {
  const std::int64_t before = a.size / 2, after = (a.size - 1) / 2, st = a.hw_stride;
  const __m256 coef2 = set1(2.0f * a.alpha * a.beta / float(a.size));
  std::int64_t next = 0;  // next channel whose dy y / scale enters the ring buffer
  for (std::int64_t c = 0; c < a.C; ++c) {
    const std::int64_t lo = c - after < 0 ? 0 : c - after;
    const std::int64_t hi = c + before > a.C - 1 ? a.C - 1 : c + before;
    for (; next <= hi; ++next) {
      float* t = work + (next % a.size) * a.len;
      const std::int64_t o = next * st;
      blocks(a.len, [&](std::int64_t i, auto io) {
        const __m256 v = _mm256_div_ps(
            _mm256_mul_ps(io.load(diff_dst + o + i), io.load(dst + o + i)), io.load(scale + o + i));
        io.store(t + i, v);
      });
    }
    const std::int64_t o = c * st;
    blocks(a.len, [&](std::int64_t i, auto io) {
      __m256 s = _mm256_setzero_ps();
      for (std::int64_t j = lo; j <= hi; ++j)
        s = _mm256_add_ps(s, io.load(work + (j % a.size) * a.len + i));
      const __m256 g =
          _mm256_mul_ps(io.load(diff_dst + o + i), pow_ps(io.load(scale + o + i), -a.beta));
      io.store(diff_src + o + i,
               _mm256_fnmadd_ps(_mm256_mul_ps(coef2, io.load(src + o + i)), s, g));
    });
  }
}

}  // namespace avx2
}  // namespace cnnkit
