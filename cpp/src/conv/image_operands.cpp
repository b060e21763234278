// Implicit im2col: patch rows gathered from the image into GEMM panels.
#include "conv/image_operands.hpp"

#include "conv/conv_kernels.hpp"
#include "runtime/kernel_table.hpp"

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

void add_f32_ref(const float* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void bias_relu_rows_ref(const float* c, std::int64_t ldc, int m, std::int64_t n, const float* bias,
                        bool relu, float* y, std::int64_t ldy) {
  for (int i = 0; i < m; ++i) {
    const float b = bias ? bias[i] : 0.0f;
    for (std::int64_t j = 0; j < n; ++j) {
      const float v = c[i * ldc + j] + b;
      y[i * ldy + j] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
  }
}

void scatter_add_patch_row(const PatchGeom& g, float* x, index_t row, index_t j0, index_t n,
                           const float* in) {
  const AddF32 add = kernels().conv.add_f32;
  const index_t fx = row % g.Fw, fy = (row / g.Fw) % g.Fh, c = row / (g.Fw * g.Fh);
  float* plane = x + c * g.H * g.W;
  index_t oy = j0 / g.Wo, ox = j0 % g.Wo;
  while (n > 0) {
    const index_t len = std::min(n, g.Wo - ox);
    const index_t iy = oy * g.sh - g.ph + fy * g.dh;
    if (iy >= 0 && iy < g.H) {
      float* dst = plane + iy * g.W;
      const index_t ix0 = ox * g.sw - g.pw + fx * g.dw;
      // Valid t: 0 <= ix0 + t * sw < W, i.e. ceil(-ix0 / sw) <= t < ceil((W - ix0) / sw)
      // (ceilings without "+ sw - 1", which overflows for a stride near 2^63).
      auto ceil_div = [](index_t a, index_t b) {
        return a <= 0 ? -((-a) / b) : a / b + (a % b != 0);
      };
      const index_t lo = std::clamp<index_t>(ceil_div(-ix0, g.sw), 0, len);
      const index_t hi = std::clamp<index_t>(ceil_div(g.W - ix0, g.sw), lo, len);
      if (g.sw == 1) {
        add(in + lo, dst + ix0 + lo, hi - lo);
      } else {
        for (index_t t = lo; t < hi; ++t) dst[ix0 + t * g.sw] += in[t];
      }
    }
    in += len;
    n -= len;
    ox = 0;
    ++oy;
  }
}

void ImagePatchesB::pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const {
  // Per panel, describe its columns once as runs along output rows; the kernel then fills all
  // kc rows of the panel from those runs (SIMD copies with border masks for stride 1).
  constexpr int kMaxRuns = 64;
  PatchRun runs[kMaxRuns];
  PatchPanel pp{x_, g_.H, g_.W, g_.Fh, g_.Fw, g_.sh, g_.sw, g_.ph, g_.pw, g_.dh, g_.dw, runs, 0, 0};
  const PackPatchPanel kernel = kernels().conv.pack_patch_panel;
  const index_t panel = index_t(kc) * nr;
  for (int q = 0; q * nr < n; ++q) {
    const int count = std::min(nr, n - q * nr);
    index_t j = j0 + index_t(q) * nr;
    index_t oy = j / g_.Wo, ox = j % g_.Wo;
    int nruns = 0, at = 0;
    while (at < count && nruns < kMaxRuns) {
      const int len = int(std::min<index_t>(count - at, g_.Wo - ox));
      runs[nruns++] = PatchRun{at, len, oy, ox};
      at += len;
      ox = 0;
      ++oy;
    }
    pp.nruns = nruns;
    pp.covered = at;
    kernel(pp, p0, kc, nr, dst + q * panel);
  }
}

void pack_patch_panel_ref(const PatchPanel& pp, index_t p0, int kc, int nr, float* dst) {
  index_t fx = p0 % pp.Fw, fy = (p0 / pp.Fw) % pp.Fh, c = p0 / (pp.Fw * pp.Fh);
  for (int p = 0; p < kc; ++p) {
    const float* plane = pp.x + c * pp.H * pp.W;
    float* d = dst + index_t(p) * nr;
    for (int r = 0; r < pp.nruns; ++r) {
      const PatchRun& run = pp.runs[r];
      float* out = d + run.dst;
      const index_t iy = run.oy * pp.sh - pp.ph + fy * pp.dh;
      if (iy < 0 || iy >= pp.H) {
        for (int t = 0; t < run.len; ++t) out[t] = 0.0f;
        continue;
      }
      const float* src = plane + iy * pp.W;
      const index_t ix0 = run.ox * pp.sw - pp.pw + fx * pp.dw;
      for (int t = 0; t < run.len; ++t) {
        const index_t ix = ix0 + t * pp.sw;
        out[t] = (ix >= 0 && ix < pp.W) ? src[ix] : 0.0f;
      }
    }
    for (int t = pp.covered; t < nr; ++t) d[t] = 0.0f;
    if (++fx == pp.Fw) {
      fx = 0;
      if (++fy == pp.Fh) {
        fy = 0;
        ++c;
      }
    }
  }
}

void ImagePatchesTB::pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const {
  // Column j of op(B) is patch row j along the pixels: gather up to nr patch rows (contiguous
  // copies) into a small buffer, then transpose it into the panel.
  constexpr int kRows = 32, kPiece = 256;
  float buf[kRows * kPiece];
  const TransposeF32 transpose = kernels().gemm.transpose;
  const index_t panel = index_t(kc) * nr;
  for (int q = 0; q * nr < n; ++q) {
    const int count = std::min(nr, n - q * nr);
    for (int j = 0; j < count; j += kRows) {
      const int rows = std::min(kRows, count - j);
      for (int s = 0; s < kc; s += kPiece) {
        const int len = std::min(kPiece, kc - s);
        for (int r = 0; r < rows; ++r) {
          gather_patch_row(g_, x_, j0 + index_t(q) * nr + j + r, p0 + s, len, buf + r * kPiece);
        }
        // Rows past `count` (the panel's zero padding) come out as zeros.
        const int rows_out = j + kRows >= nr ? nr - j : rows;
        transpose(buf, kPiece, rows, len, dst + q * panel + index_t(s) * nr + j, nr, rows_out);
      }
    }
  }
}

}  // namespace cnnkit
