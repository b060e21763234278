// Inverted dropout with a counter-based RNG (see src/dropout/dropout.cpp).
#pragma once

#include <cstdint>

#include "cnnkit/common.hpp"

namespace cnnkit {

// Throws std::invalid_argument unless 0 <= p < 1.
void validate_dropout(float p);
// mask[i] = keep(seed, i) (probability 1 - p), dst[i] = mask[i] ? src[i] / (1 - p) : 0.
// The mask depends only on (seed, i): the same for any thread count or ISA.
void dropout_forward(const float* src, float* dst, std::uint8_t* mask, index_t n, float p,
                     std::uint64_t seed);
void dropout_backward(const float* diff_dst, const std::uint8_t* mask, float* diff_src, index_t n,
                      float p);

// The 64-bit hash behind the mask (splitmix64's finaliser of seed + (i + 1) * golden ratio).
inline std::uint64_t dropout_hash(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace cnnkit
