// NEON implicit-im2col panel packer (contract: PackPatchPanel in conv/conv_kernels.hpp) and
// col2im's row add.
//
// Panel row p = (c, fy, fx) of a run of output pixels (oy, ox .. ox + len - 1) holds
//   x[c][oy * sh - ph + fy * dh][(ox + t) * sw - pw + fx * dw],  t < len  (0 outside the image).
// NEON has no masked loads, so each row is cut into the columns left of the image (zeros), the
// columns inside it (a vector copy for stride 1, a de-interleaving VLD2 for stride 2, scalar
// otherwise) and those right of it (zeros): no lane ever reads outside the image.
#include <arm_neon.h>

#include "conv/conv_kernels.hpp"

namespace cnnkit {
namespace neon {
namespace {

constexpr int kMaxRows = 512;

inline void zeros(float* out, std::int64_t n) {
  std::int64_t t = 0;
  for (; t + 4 <= n; t += 4) vst1q_f32(out + t, vdupq_n_f32(0.0f));
  for (; t < n; ++t) out[t] = 0.0f;
}

// out[t] = row[x0 + t * sw] for t in [t0, t1) (all inside the row).
inline void gather(const float* row, std::int64_t x0, std::int64_t sw, std::int64_t t0,
                   std::int64_t t1, float* out) {
  std::int64_t t = t0;
  if (sw == 1) {
    const float* s = row + x0;
    for (; t + 4 <= t1; t += 4) vst1q_f32(out + t, vld1q_f32(s + t));
  } else if (sw == 2) {  // VLD2 reads 8 floats, the even ones are the 4 wanted
    const float* s = row + x0;
    for (; t + 4 < t1; t += 4) vst1q_f32(out + t, vld2q_f32(s + 2 * t).val[0]);
  }
  for (; t < t1; ++t) out[t] = row[x0 + t * sw];
}

}  // namespace

void pack_patch_panel_neon(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst) {
  if (kc > kMaxRows) {  // the engine's K blocks are far smaller; split just in case
    pack_patch_panel_neon(pp, p0, kMaxRows, nr, dst);
    pack_patch_panel_neon(pp, p0 + kMaxRows, kc - kMaxRows, nr, dst + std::int64_t(kMaxRows) * nr);
    return;
  }
  // Per panel row: its plane's offset and its tap's row and column shifts.
  std::int64_t plane[kMaxRows], dy[kMaxRows], dx[kMaxRows];
  {
    std::int64_t fx = p0 % pp.Fw, fy = (p0 / pp.Fw) % pp.Fh, c = p0 / (pp.Fw * pp.Fh);
    for (int p = 0; p < kc; ++p) {
      plane[p] = c * pp.H * pp.W;
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
  const std::int64_t H = pp.H, W = pp.W, sw = pp.sw;
  for (int r = 0; r < pp.nruns; ++r) {
    const PatchRun run = pp.runs[r];
    const std::int64_t iy0 = run.oy * pp.sh - pp.ph, ix0 = run.ox * sw - pp.pw;
    float* out = dst + run.dst;
    for (int p = 0; p < kc; ++p, out += nr) {
      const std::int64_t iy = iy0 + dy[p], ix = ix0 + dx[p];
      if (iy < 0 || iy >= H) {
        zeros(out, run.len);
        continue;
      }
      // Columns t with 0 <= ix + t * sw < W: [t0, t1).
      std::int64_t t0 = ix >= 0 ? 0 : (-ix + sw - 1) / sw;
      std::int64_t t1 = W - ix <= 0 ? 0 : (W - ix + sw - 1) / sw;
      if (t0 > run.len) t0 = run.len;
      if (t1 > run.len) t1 = run.len;
      if (t1 < t0) t1 = t0;
      zeros(out, t0);
      gather(pp.x + plane[p] + iy * W, ix, sw, t0, t1, out);
      zeros(out + t1, run.len - t1);
    }
  }
  if (pp.covered < nr) {
    for (int p = 0; p < kc; ++p) zeros(dst + std::int64_t(p) * nr + pp.covered, nr - pp.covered);
  }
}

void add_f32_neon(const float* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vaddq_f32(vld1q_f32(dst + i), vld1q_f32(src + i)));
  for (; i < n; ++i) dst[i] += src[i];
}

}  // namespace neon
}  // namespace cnnkit
