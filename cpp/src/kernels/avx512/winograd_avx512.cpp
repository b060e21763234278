// AVX-512 Winograd F(4x4, 3x3) transforms: 16 tiles at once, one per lane.
//
// Each tile's rows are contiguous in the image, so a row of several tiles is read with masked
// loads (the mask drops columns outside the image; masked-off elements are never touched) and
// turned into "one column of every tile per vector" with in-lane 4x4 transposes; the output
// goes the opposite way. This works for any tiles in the lanes (several tile rows or images in
// one group). Four consecutive tiles of one tile row share a 16-float window, so they are
// read (or written) by one masked access instead of four: measured 2x faster input transforms
// (Zen 4; the loads are what costs). Gathers and scatters were ~4x slower; a vpermt2ps tree
// instead of the in-lane transposes measured the same.
// The transforms themselves are the shared templates of conv/winograd_f43.hpp on __m512; the
// kernels' loops are in winograd_avx512.hpp, shared with the AVX512-BF16 file, which rounds
// a bf16 convolution's operands with VCVTNEPS2BF16 (3 instructions a vector against ~15 for
// the integer rounding here). Measured on Zen 4, one thread, CIFAR's 32-channel 32x32 layer,
// batch 64, bf16 time / fp32 time: forward 1.11-1.19 with rounded copies made before,
// 1.26-1.29 rounding here with integers, 0.95-1.02 with VCVTNEPS2BF16.
#include "kernels/avx512/winograd_avx512.hpp"

#include "kernels/avx512/vmath_avx512.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

struct RoundInt {  // bf16 rounding with AVX-512F integer operations (vmath_avx512.hpp)
  static void apply2(__m512& a, __m512& b) {
    a = bf16_round_ps(a);
    b = bf16_round_ps(b);
  }
};

}  // namespace

void wino_input_avx512(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                       const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c,
                       bool round_bf16) {
  if (round_bf16) return input<RoundInt>(x, plane, ld, channels, L, v, v_xi, v_c);
  input<NoRound>(x, plane, ld, channels, L, v, v_xi, v_c);
}

void wino_output_avx512(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                        const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                        const float* bias, bool relu) {
  const RowMasks rm(L, kM);
  if (rm.single) return output_impl<true>(m, m_xi, m_k, channels, rm, y, plane, ld, bias, relu);
  output_impl<false>(m, m_xi, m_k, channels, rm, y, plane, ld, bias, relu);
}

void wino_grad_output_avx512(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                             const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k,
                             bool round_bf16) {
  if (round_bf16) return grad_output<RoundInt>(dy, plane, ld, channels, L, m, m_xi, m_k);
  grad_output<NoRound>(dy, plane, ld, channels, L, m, m_xi, m_k);
}

}  // namespace avx512
}  // namespace cnnkit
