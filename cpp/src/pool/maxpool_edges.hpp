// Max pooling's pieces shared by the ISA kernels (kernels/*/maxpool_*.cpp): one output with the
// reference's rule, the interior columns where a window lies inside the row, and the plane
// loop that takes the scalar output at the borders and the ISA's vector code inside.
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

// Every output of `planes` planes: the interior columns of each output row through
// vector(x, h0, h1, j, m, y, id) -- m (1..kLanes) outputs from column j, stride 1 or 2 -- the
// rest, and strides the vector code does not take, through the scalar output. kPartial: the
// vector code takes a last piece of fewer than kLanes columns (masked loads); else those
// columns are scalar too.
template <int kLanes, bool kPartial, bool kIndices, class Vector>
inline void maxpool_planes(const float* src, float* dst, std::int64_t* indices,
                           const Pool2dPlane& p, std::int64_t planes, Vector vector) {
  const std::int64_t HW = p.H * p.W, HWo = p.Ho * p.Wo;
  const bool vec = (p.sw == 1 || p.sw == 2) && HW < (std::int64_t(1) << 31) - 64;
  std::int64_t j_lo, j_hi;
  maxpool_interior_columns(p, &j_lo, &j_hi);
  for (std::int64_t c = 0; c < planes; ++c) {
    const float* x = src + c * HW;
    float* y = dst + c * HWo;
    for (std::int64_t i = 0; i < p.Ho; ++i) {
      const std::int64_t h0 = imax(i * p.sh - p.ph, 0), h1 = imin(i * p.sh - p.ph + p.kh, p.H);
      float* yr = y + i * p.Wo;
      std::int64_t* ir = kIndices ? indices + c * HWo + i * p.Wo : nullptr;
      auto at = [&](std::int64_t j) { return kIndices ? ir + j : nullptr; };
      std::int64_t j = 0;
      if (vec) {
        for (; j < j_lo; ++j) maxpool_scalar_output(x, p, h0, h1, j, yr + j, at(j));
        for (; j + (kPartial ? 1 : kLanes) <= j_hi; j += kLanes) {
          vector(x, h0, h1, j, int(imin(kLanes, j_hi - j)), yr + j, at(j));
        }
        if (kPartial) j = j_hi;
      }
      for (; j < p.Wo; ++j) maxpool_scalar_output(x, p, h0, h1, j, yr + j, at(j));
    }
  }
}

}  // namespace
}  // namespace cnnkit
