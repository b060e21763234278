// Implicit im2col: patch rows gathered from the image into GEMM panels.
#include "conv/image_operands.hpp"

#include <algorithm>
#include <cstring>

namespace cnnkit {

void gather_patch_row(const PatchGeom& g, const float* x, index_t row, index_t j0, index_t n,
                      float* out) {
  const index_t fx = row % g.Fw, fy = (row / g.Fw) % g.Fh, c = row / (g.Fw * g.Fh);
  const float* plane = x + c * g.H * g.W;
  index_t oy = j0 / g.Wo, ox = j0 % g.Wo;
  while (n > 0) {
    const index_t len = std::min(n, g.Wo - ox);
    const index_t iy = oy * g.sh - g.ph + fy * g.dh;
    if (iy < 0 || iy >= g.H) {
      std::memset(out, 0, sizeof(float) * len);
    } else {
      const float* src = plane + iy * g.W;
      const index_t ix0 = ox * g.sw - g.pw + fx * g.dw;
      if (g.sw == 1) {
        // Valid t: 0 <= ix0 + t < W. Zeros, one contiguous copy, zeros.
        const index_t lo = std::clamp<index_t>(-ix0, 0, len);
        const index_t hi = std::clamp<index_t>(g.W - ix0, lo, len);
        for (index_t t = 0; t < lo; ++t) out[t] = 0.0f;
        if (hi > lo) std::memcpy(out + lo, src + ix0 + lo, sizeof(float) * (hi - lo));
        for (index_t t = hi; t < len; ++t) out[t] = 0.0f;
      } else {
        for (index_t t = 0; t < len; ++t) {
          const index_t ix = ix0 + t * g.sw;
          out[t] = (ix >= 0 && ix < g.W) ? src[ix] : 0.0f;
        }
      }
    }
    out += len;
    n -= len;
    ox = 0;
    ++oy;
  }
}

void ImagePatchesB::pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const {
  const index_t panel = index_t(kc) * nr;
  for (int p = 0; p < kc; ++p) {
    for (int q = 0; q * nr < n; ++q) {
      const int count = std::min(nr, n - q * nr);
      float* d = dst + q * panel + index_t(p) * nr;
      gather_patch_row(g_, x_, p0 + p, j0 + index_t(q) * nr, count, d);
      for (int t = count; t < nr; ++t) d[t] = 0.0f;
    }
  }
}

void ImagePatchesTB::pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const {
  // Column j of op(B) is patch row j: gather it along the pixels into a small buffer, then
  // spread it down the panel (stride nr).
  constexpr int kPiece = 512;
  float buf[kPiece];
  const index_t panel = index_t(kc) * nr;
  for (int q = 0; q * nr < n; ++q) {
    const int count = std::min(nr, n - q * nr);
    float* dq = dst + q * panel;
    for (int j = 0; j < count; ++j) {
      for (int s = 0; s < kc; s += kPiece) {
        const int len = std::min(kPiece, kc - s);
        gather_patch_row(g_, x_, j0 + index_t(q) * nr + j, p0 + s, len, buf);
        for (int t = 0; t < len; ++t) dq[index_t(s + t) * nr + j] = buf[t];
      }
    }
    for (int j = count; j < nr; ++j) {
      for (int p = 0; p < kc; ++p) dq[index_t(p) * nr + j] = 0.0f;
    }
  }
}

}  // namespace cnnkit
