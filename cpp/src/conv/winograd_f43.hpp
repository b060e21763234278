// Winograd F(4x4, 3x3): the 1-D transforms as templates over the value type (float in the
// reference kernels, a SIMD vector in the ISA kernels, where GCC's vector arithmetic applies).
// A 6x6 input tile d and a 3x3 filter g give the 4x4 output tile
//   Y = A^T [ (G g G^T) . (B^T d B) ] A            (. = element-wise)
// and, by the chain rule through the same formula, the weight gradient of one tile is
//   dg = G^T [ (A dY A^T) . (B^T d B) ] G.
// Interpolation points 0, 1, -1, 2, -2, infinity (Lavin & Gray 2016):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Each function reads its inputs at in[i * is] and writes out[i * os].
//
// Included by the reference code and by the ISA files, so everything here is in an anonymous
// namespace: every translation unit compiles its own internal copy with its own flags. Shared
// inline templates would be weak symbols the linker merges, and it may keep an AVX-512 copy
// (say of input_1d<__m256>, which an AVX-512 file could instantiate too) for an AVX2 caller.
#pragma once

namespace cnnkit {
namespace wino {
namespace {

constexpr int kM = 4;       // output tile
constexpr int kR = 3;       // filter
constexpr int kA = 6;       // input tile, kM + kR - 1
constexpr int kXi = 36;     // transformed elements per tile, kA * kA
constexpr int kLanes = 16;  // tiles handled together (one per SIMD lane)

// out = B^T in (6 -> 6)
template <typename V>
inline void input_1d(const V* in, int is, V* out, int os) {
  const V d0 = in[0], d1 = in[is], d2 = in[2 * is], d3 = in[3 * is], d4 = in[4 * is],
          d5 = in[5 * is];
  const V t1 = d4 - d2 * 4.0f, t2 = d3 - d1 * 4.0f;
  const V t3 = d4 - d2, t4 = (d3 - d1) * 2.0f;
  out[0] = d0 * 4.0f - d2 * 5.0f + d4;
  out[os] = t1 + t2;
  out[2 * os] = t1 - t2;
  out[3 * os] = t3 + t4;
  out[4 * os] = t3 - t4;
  out[5 * os] = d1 * 4.0f - d3 * 5.0f + d5;
}

// out = A^T in (6 -> 4)
template <typename V>
inline void output_1d(const V* in, int is, V* out, int os) {
  const V m0 = in[0], m1 = in[is], m2 = in[2 * is], m3 = in[3 * is], m4 = in[4 * is],
          m5 = in[5 * is];
  const V s = m1 + m2, d = m1 - m2, s2 = m3 + m4, d2 = m3 - m4;
  out[0] = m0 + s + s2;
  out[os] = d + d2 * 2.0f;
  out[2 * os] = s + s2 * 4.0f;
  out[3 * os] = d + d2 * 8.0f + m5;
}

// out = A in (4 -> 6): the output transform's transpose, for the weight gradient
template <typename V>
inline void grad_output_1d(const V* in, int is, V* out, int os) {
  const V g0 = in[0], g1 = in[is], g2 = in[2 * is], g3 = in[3 * is];
  const V e = g0 + g2, f = g1 + g3, e4 = g0 + g2 * 4.0f, f4 = g1 * 2.0f + g3 * 8.0f;
  out[0] = g0;
  out[os] = e + f;
  out[2 * os] = e - f;
  out[3 * os] = e4 + f4;
  out[4 * os] = e4 - f4;
  out[5 * os] = g3;
}

// out = G in (3 -> 6): the filter transform
template <typename V>
inline void weight_1d(const V* in, int is, V* out, int os) {
  const V g0 = in[0], g1 = in[is], g2 = in[2 * is];
  const V s = g0 + g2, e = g0 * (1.0f / 24) + g2 * (1.0f / 6), f = g1 * (1.0f / 12);
  out[0] = g0 * 0.25f;
  out[os] = (s + g1) * (-1.0f / 6);
  out[2 * os] = (s - g1) * (-1.0f / 6);
  out[3 * os] = e + f;
  out[4 * os] = e - f;
  out[5 * os] = g2;
}

// out = G^T in (6 -> 3): the filter gradient's back-transform
template <typename V>
inline void weight_grad_1d(const V* in, int is, V* out, int os) {
  const V d0 = in[0], d1 = in[is], d2 = in[2 * is], d3 = in[3 * is], d4 = in[4 * is],
          d5 = in[5 * is];
  const V s12 = d1 + d2, m12 = d2 - d1, s34 = d3 + d4, m34 = d3 - d4;
  out[0] = d0 * 0.25f - s12 * (1.0f / 6) + s34 * (1.0f / 24);
  out[os] = m12 * (1.0f / 6) + m34 * (1.0f / 12);
  out[2 * os] = (s34 - s12) * (1.0f / 6) + d5;
}

}  // namespace
}  // namespace wino
}  // namespace cnnkit
