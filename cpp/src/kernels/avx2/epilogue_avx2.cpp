// AVX2 row kernel of the convolution family (contract: AddF32 in conv/conv_kernels.hpp; the
// AVX-512 version is in kernels/avx512/pack_patches_avx512.cpp):
//
//   add_f32: dst += src (col2im's scatter of a patch row back into an image row)
//
// (BiasReluRows has no AVX2 version: only bf16_direct calls it, on AMX, whose CPUs have the
// AVX-512 one.) 8 floats a step, then one 4-float step and single floats, as the NEON add_f32:
// the kernel works element by element, so the tail gives the same bits as vector lanes,
// and short rows (col2im's are as wide as the output, often 13 or 27) avoid vmaskmovps, whose
// masked store costs more than the scalar loop there on Zen 3. Nothing past n is read or written.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace avx2 {

namespace {

// dst[j] = op(src[j]) for j < n: op8 on 8 floats, op4 on 4, op1 on one.
template <typename Op8, typename Op4, typename Op1>
inline void rows_of(std::int64_t n, Op8 op8, Op4 op4, Op1 op1) {
  std::int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    op8(j);
    op8(j + 8);
    op8(j + 16);
    op8(j + 24);
  }
  for (; j + 8 <= n; j += 8) op8(j);
  if (j + 4 <= n) {
    op4(j);
    j += 4;
  }
  for (; j < n; ++j) op1(j);
}

}  // namespace

void add_f32_avx2(const float* src, float* dst, std::int64_t n) {
  rows_of(
      n,
      [&](std::int64_t i) {
        _mm256_storeu_ps(dst + i,
                         _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
      },
      [&](std::int64_t i) {
        _mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
      },
      [&](std::int64_t i) { dst[i] += src[i]; });
}

}  // namespace avx2
}  // namespace cnnkit
