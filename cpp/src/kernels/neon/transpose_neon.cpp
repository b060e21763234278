// NEON packing transpose (contract: TransposeF32 in gemm/gemm_kernels.hpp): 4 x 4 blocks in
// registers (TRN1/TRN2 on 32-bit, then on 64-bit lanes); edges go through a small zero-padded
// buffer, so nothing is read past `cols` or written past `rows_out`.
#include <arm_neon.h>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

// r[i] = row i of a 4 x 4 block -> r[j] = column j.
inline void transpose4(float32x4_t* r) {
  const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
  const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
  const auto d = [](float32x4_t v) { return vreinterpretq_f64_f32(v); };
  r[0] = vreinterpretq_f32_f64(vtrn1q_f64(d(t0), d(t2)));
  r[1] = vreinterpretq_f32_f64(vtrn1q_f64(d(t1), d(t3)));
  r[2] = vreinterpretq_f32_f64(vtrn2q_f64(d(t0), d(t2)));
  r[3] = vreinterpretq_f32_f64(vtrn2q_f64(d(t1), d(t3)));
}

}  // namespace

void transpose_f32_neon(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                        float* dst, std::int64_t ldd, std::int64_t rows_out) {
  float32x4_t r[4];
  float edge[4];
  for (std::int64_t r0 = 0; r0 < rows_out; r0 += 4) {
    const std::int64_t nr_out = rows_out - r0 < 4 ? rows_out - r0 : 4;
    for (std::int64_t c0 = 0; c0 < cols; c0 += 4) {
      const std::int64_t nc = cols - c0 < 4 ? cols - c0 : 4;
      for (int i = 0; i < 4; ++i) {
        const std::int64_t row = r0 + i;
        if (row >= rows) {
          r[i] = vdupq_n_f32(0.0f);
        } else if (nc == 4) {
          r[i] = vld1q_f32(src + row * lds + c0);
        } else {
          for (int c = 0; c < 4; ++c) edge[c] = c < nc ? src[row * lds + c0 + c] : 0.0f;
          r[i] = vld1q_f32(edge);
        }
      }
      transpose4(r);
      for (std::int64_t c = 0; c < nc; ++c) {
        float* d = dst + (c0 + c) * ldd + r0;
        if (nr_out == 4) {
          vst1q_f32(d, r[c]);
        } else {
          vst1q_f32(edge, r[c]);
          for (std::int64_t i = 0; i < nr_out; ++i) d[i] = edge[i];
        }
      }
    }
  }
}

}  // namespace neon
}  // namespace cnnkit
