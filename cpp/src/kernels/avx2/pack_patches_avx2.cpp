// AVX2 implicit-im2col panel packer (contract: PackPatchPanel in conv/conv_kernels.hpp), the
// AVX-512 packer's design with 8-lane vmaskmovps (masked-off lanes do not fault) for stride 1.
#include <immintrin.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

constexpr int kMaxRows = 512;

// Lanes l with lo <= l < hi.
inline __m256i lane_range(std::int64_t lo, std::int64_t hi) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i l = _mm256_set1_epi32(int(lo < -1 ? -1 : lo > 8 ? 8 : lo));
  const __m256i h = _mm256_set1_epi32(int(hi < 0 ? 0 : hi > 8 ? 8 : hi));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(l, iota), _mm256_cmpgt_epi32(h, iota));
}

}  // namespace

void pack_patch_panel_avx2(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst) {
  if (kc > kMaxRows) {
    pack_patch_panel_avx2(pp, p0, kMaxRows, nr, dst);
    pack_patch_panel_avx2(pp, p0 + kMaxRows, kc - kMaxRows, nr, dst + std::int64_t(kMaxRows) * nr);
    return;
  }
  std::int64_t off[kMaxRows], dy[kMaxRows], dx[kMaxRows];
  {
    std::int64_t fx = p0 % pp.Fw, fy = (p0 / pp.Fw) % pp.Fh, c = p0 / (pp.Fw * pp.Fh);
    for (int p = 0; p < kc; ++p) {
      dy[p] = fy * pp.dh;
      dx[p] = fx * pp.dw;
      off[p] = c * pp.H * pp.W + dy[p] * pp.W + dx[p];
      if (++fx == pp.Fw) {
        fx = 0;
        if (++fy == pp.Fh) {
          fy = 0;
          ++c;
        }
      }
    }
  }
  const std::int64_t H = pp.H, W = pp.W;
  for (int r = 0; r < pp.nruns; ++r) {
    const PatchRun run = pp.runs[r];
    const std::int64_t iy0 = run.oy * pp.sh - pp.ph, ix0 = run.ox * pp.sw - pp.pw;
    float* out = dst + run.dst;
    for (int p = 0; p < kc; ++p, out += nr) {
      const std::int64_t iy = iy0 + dy[p], ix = ix0 + dx[p];
      const bool row_ok = iy >= 0 && iy < H;
      const float* src = pp.x + off[p] + iy0 * W + ix0;  // element (iy, ix) of the plane
      if (pp.sw == 1) {
        for (int t = 0; t < run.len; t += 8) {
          const __m256i lanes = lane_range(0, run.len - t);
          const __m256i valid = row_ok ? _mm256_and_si256(lanes, lane_range(-ix - t, W - ix - t))
                                       : _mm256_setzero_si256();
          _mm256_maskstore_ps(out + t, lanes, _mm256_maskload_ps(src + t, valid));
        }
      } else {
        for (int t = 0; t < run.len; ++t) {
          const std::int64_t x = ix + t * pp.sw;
          out[t] = (row_ok && x >= 0 && x < W) ? src[t * pp.sw] : 0.0f;
        }
      }
    }
  }
  for (int p = 0; p < kc; ++p) {
    for (int t = pp.covered; t < nr; ++t) dst[std::int64_t(p) * nr + t] = 0.0f;
  }
}

}  // namespace avx2
}  // namespace cnnkit
