// AVX-512 implicit-im2col panel packer (contract: PackPatchPanel in conv/conv_kernels.hpp).
// Stride 1: each run is a shifted copy of an image row; the border (padding) lanes are masked
// off in the load, so zeros come for free and no lane reads outside the image. Masked-off
// lanes of AVX-512 loads do not fault, even when their addresses lie outside the array.
// Loop order: runs outer, panel rows inner, with each row's (plane, fy, fx) offsets tabulated
// once, so the inner loop is an add, two compares and one masked load/store per 16 floats.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

inline __mmask16 bits_below(std::int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

constexpr int kMaxRows = 512;
constexpr int kMaxTapsX = 16;  // filter widths up to this use tabulated masks

}  // namespace

void pack_patch_panel_avx512(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst) {
  if (kc > kMaxRows) {  // the engine's K blocks are far smaller; split just in case
    pack_patch_panel_avx512(pp, p0, kMaxRows, nr, dst);
    pack_patch_panel_avx512(pp, p0 + kMaxRows, kc - kMaxRows, nr,
                            dst + std::int64_t(kMaxRows) * nr);
    return;
  }
  // Per panel row p = (c, fy, fx): the offset of its tap (c, fy * dh, fx * dw) in the image,
  // its row shift and its column tap index.
  std::int64_t off[kMaxRows], dy[kMaxRows];
  int fxi[kMaxRows];
  {
    std::int64_t fx = p0 % pp.Fw, fy = (p0 / pp.Fw) % pp.Fh, c = p0 / (pp.Fw * pp.Fh);
    for (int p = 0; p < kc; ++p) {
      dy[p] = fy * pp.dh;
      fxi[p] = int(fx);
      off[p] = c * pp.H * pp.W + dy[p] * pp.W + fx * pp.dw;
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
    if (pp.sw == 1 && run.len <= 32 && pp.Fw <= kMaxTapsX) {
      // Masks depend only on the column tap: tabulate them (two 16-lane halves).
      __mmask16 m0[kMaxTapsX], m1[kMaxTapsX];
      for (int f = 0; f < pp.Fw; ++f) {
        const std::int64_t ix = ix0 + f * pp.dw;
        m0[f] = bits_below(run.len) & bits_below(W - ix) & __mmask16(~bits_below(-ix));
        m1[f] =
            bits_below(run.len - 16) & bits_below(W - ix - 16) & __mmask16(~bits_below(-ix - 16));
      }
      const __mmask16 lanes0 = bits_below(run.len), lanes1 = bits_below(run.len - 16);
      const float* base = pp.x + iy0 * W + ix0;
      if (run.len <= 16) {
        for (int p = 0; p < kc; ++p, out += nr) {
          const bool row_ok = std::uint64_t(iy0 + dy[p]) < std::uint64_t(H);
          const __mmask16 v0 = row_ok ? m0[fxi[p]] : __mmask16(0);
          _mm512_mask_storeu_ps(out, lanes0, _mm512_maskz_loadu_ps(v0, base + off[p]));
        }
      } else {
        if (run.len == 32) {  // a full panel row: plain stores (masked stores are slow)
          for (int p = 0; p < kc; ++p, out += nr) {
            const bool row_ok = std::uint64_t(iy0 + dy[p]) < std::uint64_t(H);
            const __mmask16 v0 = row_ok ? m0[fxi[p]] : __mmask16(0);
            const __mmask16 v1 = row_ok ? m1[fxi[p]] : __mmask16(0);
            const float* src = base + off[p];
            _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(v0, src));
            _mm512_storeu_ps(out + 16, _mm512_maskz_loadu_ps(v1, src + 16));
          }
          continue;
        }
        for (int p = 0; p < kc; ++p, out += nr) {
          const bool row_ok = std::uint64_t(iy0 + dy[p]) < std::uint64_t(H);
          const __mmask16 v0 = row_ok ? m0[fxi[p]] : __mmask16(0);
          const __mmask16 v1 = row_ok ? m1[fxi[p]] : __mmask16(0);
          const float* src = base + off[p];
          _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(v0, src));
          _mm512_mask_storeu_ps(out + 16, lanes1, _mm512_maskz_loadu_ps(v1, src + 16));
        }
      }
    } else {
      for (int p = 0; p < kc; ++p, out += nr) {
        const std::int64_t iy = iy0 + dy[p];
        const std::int64_t ix = ix0 + fxi[p] * pp.dw;
        const float* row =
            pp.x + off[p] - dy[p] * W - fxi[p] * pp.dw + iy * W;  // row iy of the plane
        if (iy < 0 || iy >= H) {
          for (int t = 0; t < run.len; t += 16) {
            _mm512_mask_storeu_ps(out + t, bits_below(run.len - t), zero);
          }
          continue;
        }
        if (pp.sw == 1) {
          for (int t = 0; t < run.len; t += 16) {
            const __mmask16 lanes = bits_below(run.len - t);
            const __mmask16 valid =
                lanes & bits_below(W - ix - t) & __mmask16(~bits_below(-ix - t));
            _mm512_mask_storeu_ps(out + t, lanes, _mm512_maskz_loadu_ps(valid, row + ix + t));
          }
        } else {
          for (int t = 0; t < run.len; ++t) {
            const std::int64_t x = ix + t * pp.sw;
            out[t] = (x >= 0 && x < W) ? row[x] : 0.0f;
          }
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

void add_f32_avx512(const float* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i)));
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(
        dst + i, m,
        _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i), _mm512_maskz_loadu_ps(m, src + i)));
  }
}

}  // namespace avx512
}  // namespace cnnkit
