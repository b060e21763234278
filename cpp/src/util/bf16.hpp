// bf16 rounding of one float, the rule every path follows (gemm/bf16_ref.cpp's header):
// nearest, ties to even (add 0x7fff plus the lowest kept bit, then truncate); NaN -> quiet
// NaN; denormals (exponent field 0) -> zero of the same sign, as VCVTNE2PS2BF16 does.
// In an anonymous namespace: ISA files include it too, each gets its own internal copy.
#pragma once

#include <cstdint>
#include <cstring>

namespace cnnkit {
namespace {

inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) {                                // inf or NaN
    return std::uint16_t((u >> 16) | ((u & 0x007fffffu) ? 0x40u : 0u));  // NaN stays quiet
  }
  if ((u & 0x7f800000u) == 0) return std::uint16_t((u >> 16) & 0x8000u);  // zero / denormal
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_widen(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// x rounded to the nearest bf16, as a float
inline float bf16_round(float x) { return bf16_widen(bf16_bits(x)); }

}  // namespace
}  // namespace cnnkit
