// AVX-512 implicit-im2col panel packer (contract: PackPatchPanel in cnnkit/kernels.hpp).
// Stride 1: each run is a shifted copy of an image row; the border (padding) lanes are masked
// off in the load, so zeros come for free and no lane reads outside the image. Masked-off
// lanes of AVX-512 loads do not fault, even when their addresses lie outside the array.
// Loop order: runs outer, panel rows inner, with each row's (plane, fy, fx) offsets tabulated
// once, so the inner loop is an add, two compares and one masked load/store per 16 floats.
#include <immintrin.h>

#include "cnnkit/kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

inline __mmask16 bits_below(std::int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

constexpr int kMaxRows = 512;

}  // namespace

void pack_patch_panel_avx512(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst) {
  if (kc > kMaxRows) {  // the engine's K blocks are far smaller; split just in case
    pack_patch_panel_avx512(pp, p0, kMaxRows, nr, dst);
    pack_patch_panel_avx512(pp, p0 + kMaxRows, kc - kMaxRows, nr, dst + std::int64_t(kMaxRows) * nr);
    return;
  }
  std::int64_t plane_off[kMaxRows], dy[kMaxRows], dx[kMaxRows];
  {
    std::int64_t fx = p0 % pp.Fw, fy = (p0 / pp.Fw) % pp.Fh, c = p0 / (pp.Fw * pp.Fh);
    for (int p = 0; p < kc; ++p) {
      plane_off[p] = c * pp.H * pp.W;
      dy[p] = fy * pp.dh;
      dx[p] = fx * pp.dw;
      if (++fx == pp.Fw) {
        fx = 0;
        if (++fy == pp.Fh) {
          fy = 0;
          ++c;
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  const std::int64_t H = pp.H, W = pp.W;
  for (int r = 0; r < pp.nruns; ++r) {
    const PatchRun run = pp.runs[r];
    const std::int64_t iy0 = run.oy * pp.sh - pp.ph, ix0 = run.ox * pp.sw - pp.pw;
    float* out = dst + run.dst;
    if (pp.sw == 1 && run.len <= 16) {
      const __mmask16 lanes = bits_below(run.len);
      for (int p = 0; p < kc; ++p, out += nr) {
        const std::int64_t iy = iy0 + dy[p], ix = ix0 + dx[p];
        __mmask16 valid = lanes & bits_below(W - ix) & __mmask16(~bits_below(-ix));
        if (iy < 0 || iy >= H) valid = 0;
        const float* src = pp.x + plane_off[p] + iy * W + ix;
        _mm512_mask_storeu_ps(out, lanes, _mm512_maskz_loadu_ps(valid, src));
      }
    } else if (pp.sw == 1) {
      for (int p = 0; p < kc; ++p, out += nr) {
        const std::int64_t iy = iy0 + dy[p], ix = ix0 + dx[p];
        const bool row_ok = iy >= 0 && iy < H;
        const float* src = pp.x + plane_off[p] + iy * W + ix;
        for (int t = 0; t < run.len; t += 16) {
          const __mmask16 lanes = bits_below(run.len - t);
          __mmask16 valid = lanes & bits_below(W - ix - t) & __mmask16(~bits_below(-ix - t));
          if (!row_ok) valid = 0;
          _mm512_mask_storeu_ps(out + t, lanes, _mm512_maskz_loadu_ps(valid, src + t));
        }
      }
    } else {
      for (int p = 0; p < kc; ++p, out += nr) {
        const std::int64_t iy = iy0 + dy[p], ix = ix0 + dx[p];
        if (iy < 0 || iy >= H) {
          for (int t = 0; t < run.len; ++t) out[t] = 0.0f;
          continue;
        }
        const float* src = pp.x + plane_off[p] + iy * W;
        for (int t = 0; t < run.len; ++t) {
          const std::int64_t x = ix + t * pp.sw;
          out[t] = (x >= 0 && x < W) ? src[x] : 0.0f;
        }
      }
    }
  }
  if (pp.covered < nr) {
    for (int p = 0; p < kc; ++p) {
      for (int t = pp.covered; t < nr; t += 16) {
        _mm512_mask_storeu_ps(dst + std::int64_t(p) * nr + t, bits_below(nr - t), zero);
      }
    }
  }
}

}  // namespace avx512
}  // namespace cnnkit
