// The AVX-512 Winograd input and weight-gradient transforms of a bf16 convolution
// (kernels/avx512/winograd_avx512.hpp) with the operand rounded by VCVTNEPS2BF16 as it is read:
// nearest even, denormal inputs as zero, NaN quiet (util/bf16.hpp's rule), then widened back
// to fp32. The fp32 transforms are the AVX-512 file's.
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include "kernels/avx512/winograd_avx512.hpp"

namespace cnnkit {
namespace avx512_bf16 {
namespace {

struct RoundCvt {
  static __m512 apply(__m512 v) {
    const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
};

}  // namespace

void wino_input_avx512bf16(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c,
                           bool round_bf16) {
  if (!round_bf16) return avx512::wino_input_avx512(x, plane, ld, channels, L, v, v_xi, v_c, false);
  avx512::input<RoundCvt>(x, plane, ld, channels, L, v, v_xi, v_c);
}

void wino_grad_output_avx512bf16(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                                 const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k,
                                 bool round_bf16) {
  if (!round_bf16) {
    return avx512::wino_grad_output_avx512(dy, plane, ld, channels, L, m, m_xi, m_k, false);
  }
  avx512::grad_output<RoundCvt>(dy, plane, ld, channels, L, m, m_xi, m_k);
}

}  // namespace avx512_bf16
}  // namespace cnnkit
