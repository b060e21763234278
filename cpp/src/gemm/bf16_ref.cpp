// bf16 reference kernels: the exact emulation the fast paths are tested against.
//
//   bf16(x): keep the top 16 bits of the fp32 pattern, rounded to nearest, ties to even
//            (add 0x7fff plus the lowest kept bit, then truncate); NaN -> quiet NaN;
//            denormals (exponent field 0) -> zero of the same sign, as the hardware's
//            VCVTNE2PS2BF16 does, so every path rounds an operand to the same value.
//   C[i][j] = epilogue(sum_{k = 0 .. kp-1, in order} float(a[i][k]) * float(b[k][j])), one fp32
//            addition per product (the products of two bf16 values are exact in fp32).
#include <cstring>

#include "gemm/gemm_kernels.hpp"
#include "util/bf16.hpp"

namespace cnnkit {

void round_bf16_ref(const float* src, std::int64_t n, bf16_t* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

void round_bf16_f32_ref(const float* src, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_widen(bf16_bits(src[i]));
}

void pack_bf16_a_ref(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst) {
  const int kp = (kc + kBf16KStep - 1) / kBf16KStep * kBf16KStep;
  for (int p = 0; p < kp; ++p) {
    bf16_t* d = dst + (p / kBf16KStep) * mr * kBf16KStep + p % kBf16KStep;
    for (int i = 0; i < mr; ++i) {
      d[i * kBf16KStep] = i < m && p < kc ? bf16_bits(src[i * ld + p]) : bf16_t(0);
    }
  }
}

void pack_bf16_b_ref(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst) {
  const int kp = (kc + kBf16KStep - 1) / kBf16KStep * kBf16KStep;
  for (int p = 0; p < kp; ++p) {
    bf16_t* d = dst + (p / 2) * 2 * kBf16Nr + p % 2;
    for (int j = 0; j < kBf16Nr; ++j) {
      d[2 * j] = p < kc && j < n ? bf16_bits(src[std::int64_t(p) * ld + j]) : bf16_t(0);
    }
  }
}

void interleave_bf16_ref(const float* r0, const float* r1, std::int64_t n, bf16_t* dst) {
  for (std::int64_t i = 0; i < n; ++i) {
    dst[2 * i] = bf16_bits(r0[i]);
    dst[2 * i + 1] = r1 ? bf16_bits(r1[i]) : bf16_t(0);
  }
}

void bf16_ukr_ref(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                  std::int64_t ldc, const UkrEpilogue& ep) {
  const int mr = kBf16MrRef;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (std::int64_t p = 0; p < kp; ++p) {
        const float av =
            bf16_widen(a[(p / kBf16KStep) * mr * kBf16KStep + i * kBf16KStep + p % kBf16KStep]);
        const float bv = bf16_widen(b[(p / 2) * 2 * kBf16Nr + j * 2 + p % 2]);
        acc += av * bv;
      }
      float* cp = c + i * ldc + j;
      float v = ep.alpha * acc;
      if (ep.beta != 0.0f) v += ep.beta * *cp;
      if (ep.bias_row) v += ep.bias_row[i];
      if (ep.bias_col) v += ep.bias_col[j];
      if (ep.relu) v = v > 0.0f ? v : 0.0f;
      *cp = v;
    }
  }
}

}  // namespace cnnkit
