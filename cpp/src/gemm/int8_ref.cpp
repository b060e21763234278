// int8 reference kernels: the exact results every int8 path must give bit for bit.
//
//   C[i][j] = sum_p int32(a[i][p]) * int32(b[p][j])   (exact: no rounding at all)
//   quantize:  q = min(max(nearbyint(x * inv_scale) + zero_point, 0), 255), x * inv_scale one
//              fp32 product, nearbyint to nearest with ties to even; NaN -> zero_point
// The weight panel layout: gemm_kernels.hpp (quads of consecutive depths of 32 columns).
#include <cmath>

#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace {

// B element (p, j) of a 32-column panel.
inline std::int64_t b_at(int p, int j) { return (p / 4) * 4 * kI8Nr + j * 4 + p % 4; }

}  // namespace

std::uint8_t quantize_u8_ref(float x, float inv_scale, int zero_point) {
  float r = x * inv_scale;
  if (std::isnan(r)) return std::uint8_t(zero_point < 0 ? 0 : zero_point > 255 ? 255 : zero_point);
  r = std::nearbyint(r < -1024.0f ? -1024.0f : r > 1024.0f ? 1024.0f : r);  // ties to even
  const int q = int(r) + zero_point;
  return std::uint8_t(q < 0 ? 0 : q > 255 ? 255 : q);
}

// The row engine (U8S8Ukr, I8Requantize, I8DequantizeCols in gemm_kernels.hpp).
void u8s8_ukr_ref(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                  const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                  std::int64_t ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      std::int32_t s = 0;
      for (std::int64_t t = 0; t < slices; ++t) {
        const std::uint8_t* row = a + i * lda + a_off[t];
        for (int kk = 0; kk < kI8KStepVec; ++kk) {
          s += std::int32_t(row[kk]) * std::int32_t(b[b_at(int(t * kI8KStepVec + kk), j)]);
        }
      }
      c[i * ldc + j] = s;
    }
  }
}

void quantize_u8_nhwc_ref(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                          float inv_scale, int zero_point, std::uint8_t* dst) {
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t c = 0; c < C; ++c) {
      dst[i * C + c] = quantize_u8_ref(src[c * ld + i], inv_scale, zero_point);
    }
  }
}

namespace {

// sums + comp in int64 (the SIMD kernels wrap in int32: the same value, see I8Dequantize),
// then the one fused multiply-add of the contract.
inline float requant_value(std::int32_t sum, std::int32_t comp, float mult, float add) {
  return std::fma(float(std::int64_t(sum) + comp), mult, add);
}

}  // namespace

void i8_requantize_ref(const std::int32_t* sums, std::int64_t lds, int m, int n,
                       const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                       bool relu, std::uint8_t* yq, std::int64_t ldy) {
  const float lo = relu ? float(y_zp) : 0.0f;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      const float v = requant_value(sums[i * lds + j], comp[j], mult[j], add[j]);
      // (as VMAXPS / VMINPS: the second operand, the bound, when v is NaN)
      const float c = v < 255.0f ? (v > lo ? v : lo) : 255.0f;
      yq[i * ldy + j] = std::uint8_t(std::nearbyint(std::isnan(v) ? lo : c));
    }
  }
}

void i8_dequantize_cols_ref(const std::int32_t* sums, std::int64_t lds, int m, int n,
                            const std::int32_t* comp, const float* mult, const float* add,
                            bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float v = requant_value(sums[i * lds + j], comp[j], mult[j], add[j]);
      if (relu) v = v > 0.0f ? v : 0.0f;
      yf[i * ldy + j * col_stride] = v;
    }
  }
}

}  // namespace cnnkit
