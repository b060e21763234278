// Max pooling's scalar pieces shared by the ISA kernels (kernels/*/maxpool_*.cpp): one output
// with the reference's rule, and the interior columns where a window lies inside the row.
// Everything is in an anonymous namespace (as conv/winograd_f43.hpp), so each ISA translation
// unit compiles its own copy with its own flags and the linker never mixes them.
#pragma once

#include <cstdint>

#include "pool/pool_kernels.hpp"

namespace cnnkit {
namespace {

inline std::int64_t imax(std::int64_t a, std::int64_t b) { return a > b ? a : b; }
inline std::int64_t imin(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

// Output column j of the window rows [h0, h1), as the reference: take v when v > best or v is
// NaN (ties keep the first maximum; the last NaN wins); the index is the flat h * W + w.
inline void maxpool_scalar_output(const float* x, const Pool2dPlane& p, std::int64_t h0,
                                  std::int64_t h1, std::int64_t j, float* y, std::int64_t* id) {
  const std::int64_t w0 = imax(j * p.sw - p.pw, 0), w1 = imin(j * p.sw - p.pw + p.kw, p.W);
  float best = -__builtin_inff();
  std::int64_t arg = h0 * p.W + w0;
  for (std::int64_t h = h0; h < h1; ++h) {
    for (std::int64_t w = w0; w < w1; ++w) {
      const float v = x[h * p.W + w];
      if (v > best || __builtin_isnan(v)) {
        best = v;
        arg = h * p.W + w;
      }
    }
  }
  *y = best;
  if (id) *id = arg;
}

// Interior output columns [*j_lo, *j_hi): window [j sw - pw, j sw - pw + kw) inside [0, W).
inline void maxpool_interior_columns(const Pool2dPlane& p, std::int64_t* j_lo, std::int64_t* j_hi) {
  *j_lo = imin(p.Wo, (p.pw + p.sw - 1) / p.sw);
  *j_hi = p.W + p.pw - p.kw < 0 ? *j_lo : imax(*j_lo, imin(p.Wo, (p.W + p.pw - p.kw) / p.sw + 1));
}

}  // namespace
}  // namespace cnnkit
