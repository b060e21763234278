// Vectorisable, deterministic sums for baseline code (never include from ISA files).
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

// Sum of x[0..n) with 16 interleaved float partial sums (the compiler keeps them in vector
// registers; a single running sum would be one long dependent chain), combined in double.
inline double sum_floats(const float* x, index_t n) {
  float acc[16] = {};
  index_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l];
  }
  double s = 0;
  for (int l = 0; l < 16; ++l) s += acc[l];
  for (; i < n; ++i) s += x[i];
  return s;
}

}  // namespace cnnkit
