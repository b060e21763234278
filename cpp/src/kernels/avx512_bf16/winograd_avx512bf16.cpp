// The AVX-512 Winograd input and weight-gradient transforms of a bf16 convolution
// (kernels/avx512/winograd_avx512.hpp) with the operand rounded by VCVTNE2PS2BF16 as it is read:
// nearest even, denormal inputs as zero, NaN quiet (util/bf16.hpp's rule), then widened back
// to fp32. The fp32 transforms are the AVX-512 file's.
//
// Only intrinsics and functions with internal linkage here (see sgemm_ukr_avx512.cpp).
#include "kernels/avx512/winograd_avx512.hpp"

namespace cnnkit {
namespace avx512_bf16 {
namespace {

// Two vectors per VCVTNE2PS2BF16 (words 0-15: a's, 16-31: b's), each widened back by one
// two-source word permute that puts a bf16 into the high half of every lane and a zero word
// from the second source into the low half: 3 shuffle-pipe instructions per pair instead of 6
// (convert, zero-extend, shift each).
struct RoundCvt {
  static void apply2(__m512& a, __m512& b) {
    // Word 2i of a lane pair: index 32 (the zero vector's word 0); word 2i + 1: word i (a) or
    // 16 + i (b) of the converted pair.
    const __m512i lo = _mm512_set_epi16(15, 32, 14, 32, 13, 32, 12, 32, 11, 32, 10, 32, 9, 32, 8,
                                        32, 7, 32, 6, 32, 5, 32, 4, 32, 3, 32, 2, 32, 1, 32, 0, 32);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi32(16 << 16));  // odd words + 16
    const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(b, a);
    const __m512i zero = _mm512_setzero_si512();
    a = _mm512_castsi512_ps(_mm512_permutex2var_epi16(w, lo, zero));
    b = _mm512_castsi512_ps(_mm512_permutex2var_epi16(w, hi, zero));
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
