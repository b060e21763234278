// Direct bf16 convolution on the matrix unit (AMX): stride 1, one group, any padding and
// dilation, per image n:
//
//   Y[k][oy][ox] = sum_{fy, fx, c} W[k][c][fy][fx] X[c][oy - ph + fy dh][ox - pw + fx dw] + b[k]
//
// The image is rounded to bf16 once into a zero-padded plane of Hp x Wp = (H + 2 ph) x
// (W + 2 pw) per channel, channels interleaved in pairs (Xp[c / 2][v][c % 2], v = y Wp + x).
// On that flattened grid, output (oy, ox) sits at v = oy Wp + ox and reads tap (fy, fx) at
// v + fy dh Wp + fx dw: every tap is the same pair matrix shifted by a constant, so the tile
// unit loads its B tiles straight from Xp (16 channel pairs at a stride of one plane, 16
// consecutive v) -- no patch matrix, the image is read in bf16 once per output block instead of
// being gathered into panels 9 times over. The columns v with ox >= Wo (the padding's width)
// are computed and dropped: Wp / Wo - 1 extra work (6 % at 32 x 32 with padding 1).
// A is the weights reordered to the K index (tap, c), C padded to a multiple of 32, packed once
// into the GEMM engine's bf16 A panels of 32 rows. The fp32 sums of a 32 x 32 block run over
// all of K in the tile accumulators (no K blocks, C is written once), then the block goes
// through the epilogue (bias, ReLU) into Y.
//
// The backward data pass of a stride-1 convolution is a convolution of dY with the rotated
// weights (transposed_conv.cpp): the same algorithm, whenever its padding D(F-1)-P is >= 0.
// Threads: over images (each thread its own padded image); for fewer images than threads,
// over the (panel, block) pairs of one image at a time.
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "runtime/kernel_table.hpp"

namespace cnnkit {
namespace {

constexpr index_t kTile = 32;  // rows of an A panel and columns of a block

struct DirectPlan {
  index_t Cpad, slices, Hp, Wp, V, blocks, plane, panels;
  std::vector<index_t> off;  // per slice (tap, channel chunk): offset into Xp (bf16 values)

  explicit DirectPlan(const Conv2dParams& p) {
    Cpad = (p.C + kTile - 1) / kTile * kTile;
    const index_t taps = p.Fh * p.Fw, chunks = Cpad / kTile;
    slices = taps * chunks;
    Hp = p.H + 2 * p.pad_h;
    Wp = p.W + 2 * p.pad_w;
    V = p.Ho * Wp;
    blocks = (V + kTile - 1) / kTile;
    const index_t reach = (p.Fh - 1) * p.dil_h * Wp + (p.Fw - 1) * p.dil_w;
    // every tile row read stays inside the plane: the last block's 32 columns plus the reach
    plane = std::max(Hp * Wp, blocks * kTile + reach) + kTile;
    panels = (p.K + kTile - 1) / kTile;
    off.resize(std::size_t(slices));
    for (index_t t = 0; t < taps; ++t) {
      const index_t fy = t / p.Fw, fx = t % p.Fw;
      for (index_t q = 0; q < chunks; ++q) {
        // chunk q: channel pairs 16 q .. 16 q + 15, one plane of 2 values per v each
        off[std::size_t(t * chunks + q)] =
            q * (kTile / 2) * 2 * plane + 2 * (fy * p.dil_h * Wp + fx * p.dil_w);
      }
    }
  }
  index_t pair_stride() const { return 2 * plane; }            // bf16 values per channel pair
  index_t image_values() const { return Cpad / 2 * pair_stride(); }
};

// Xp for one image: channel pairs [cp0, cp1) of the padded bf16 planes.
void fill_padded(const Conv2dParams& p, const DirectPlan& d, const float* x, index_t cp0,
                 index_t cp1, std::uint16_t* xp) {
  const InterleaveBf16 interleave = kernels().gemm.interleave_bf16;
  const index_t HW = p.H * p.W;
  for (index_t cp = cp0; cp < cp1; ++cp) {
    std::uint16_t* dst = xp + cp * d.pair_stride();
    const index_t c0 = 2 * cp, c1 = 2 * cp + 1;
    if (c0 >= p.C) {
      std::fill(dst, dst + d.pair_stride(), std::uint16_t(0));
      continue;
    }
    const float* r0 = x + c0 * HW;
    const float* r1 = c1 < p.C ? x + c1 * HW : nullptr;
    // zeros up to the first pixel, each row's pixels, zeros from there to the next row's
    // first pixel (right and left padding), and after the last row to the plane's end
    auto at = [&](index_t y) { return dst + 2 * ((y + p.pad_h) * d.Wp + p.pad_w); };
    std::fill(dst, at(0), std::uint16_t(0));
    for (index_t y = 0; y < p.H; ++y) {
      interleave(r0 + y * p.W, r1 ? r1 + y * p.W : nullptr, p.W, at(y));
      std::fill(at(y) + 2 * p.W, y + 1 < p.H ? at(y + 1) : dst + d.pair_stride(),
                std::uint16_t(0));
    }
  }
}

// The block (panel, blk) of one image: 32 output channels x 32 columns of the padded grid.
void run_block(const Conv2dParams& p, const DirectPlan& d, const std::uint16_t* a,
               const std::uint16_t* xp, index_t panel, index_t blk, const float* bias, bool relu,
               float* y, float* buf) {
  kernels().conv.bf16_direct_block(a + panel * d.slices * kTile * kTile, int(d.slices),
                                   xp + 2 * blk * kTile, d.off.data(), d.pair_stride(), buf);
  const index_t k0 = panel * kTile, m = std::min(kTile, p.K - k0), HoWo = p.Ho * p.Wo;
  // the block's columns, row by row of the output: [v, v_end) on output row oy
  for (index_t v = blk * kTile, v_end = std::min(d.V, v + kTile); v < v_end;) {
    const index_t oy = v / d.Wp, ox = v % d.Wp;
    const index_t run_end = std::min(v_end, (oy + 1) * d.Wp);
    const index_t len = std::max<index_t>(0, std::min(run_end - v, p.Wo - ox));
    const index_t j = v - blk * kTile;
    for (index_t i = 0; i < m && len > 0; ++i) {
      const float* src = buf + i * kTile + j;
      float* dst = y + (k0 + i) * HoWo + oy * p.Wo + ox;
      const float b = bias ? bias[k0 + i] : 0.0f;
      for (index_t t = 0; t < len; ++t) {
        const float val = src[t] + b;
        dst[t] = relu && val < 0.0f ? 0.0f : val;
      }
    }
    v = run_end;
  }
}

}  // namespace

bool bf16_direct_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return p.precision == Precision::bf16 && policy.kernels->bf16_direct_block != nullptr &&
         p.groups == 1 && p.stride_h == 1 && p.stride_w == 1 &&
         p.C >= kMinRowsForTransposedConv && p.pad_h >= 0 && p.pad_w >= 0 &&
         // the tile loads take 32-bit strides comfortably; an image plane beyond that is rare
         (p.H + 2 * p.pad_h) * (p.W + 2 * p.pad_w) < (index_t(1) << 26);
}

void bf16_direct_forward(const Conv2dParams& p, const float* src, const float* weights,
                         const float* bias, float* dst, bool relu) {
  const DirectPlan d(p);
  const GemmKernels& gk = kernels().gemm;
  const index_t taps = p.Fh * p.Fw, kdim = taps * d.Cpad;
  // Weights as K x (tap, c) in fp32 (zeros for c >= C), then the bf16 A panels.
  std::vector<float> wr(std::size_t(p.K * kdim), 0.0f);
  for (index_t k = 0; k < p.K; ++k) {
    for (index_t c = 0; c < p.C; ++c) {
      for (index_t t = 0; t < taps; ++t) {
        wr[std::size_t(k * kdim + t * d.Cpad + c)] = weights[(k * p.C + c) * taps + t];
      }
    }
  }
  std::vector<std::uint16_t> a(std::size_t(d.panels * d.slices * kTile * kTile));
  for (index_t q = 0; q < d.panels; ++q) {
    const index_t k0 = q * kTile;
    gk.pack_bf16_a(wr.data() + k0 * kdim, kdim, int(std::min(kTile, p.K - k0)), int(kdim),
                   int(kTile), a.data() + q * d.slices * kTile * kTile);
  }
  const int nt = get_num_threads();
  const index_t x_img = p.C * p.H * p.W, y_img = p.K * p.Ho * p.Wo;
  const std::size_t per = std::size_t(d.image_values()) / 2 + kTile * kTile + 16;  // floats
  if (p.N >= nt || nt == 1) {
    float* ws = thread_workspace(1, per * std::size_t(nt));
#pragma omp parallel num_threads(nt)
    {
      float* mine = ws + per * std::size_t(current_thread());
      auto* xp = reinterpret_cast<std::uint16_t*>(mine + kTile * kTile);
      if (gk.bf16_begin) gk.bf16_begin();
#pragma omp for schedule(static)
      for (index_t n = 0; n < p.N; ++n) {
        fill_padded(p, d, src + n * x_img, 0, d.Cpad / 2, xp);
        for (index_t q = 0; q < d.panels; ++q) {
          for (index_t blk = 0; blk < d.blocks; ++blk) {
            run_block(p, d, a.data(), xp, q, blk, bias, relu, dst + n * y_img, mine);
          }
        }
      }
      if (gk.bf16_end) gk.bf16_end();
    }
    return;
  }
  // Fewer images than threads: one shared padded image at a time, threads over its blocks.
  float* ws = thread_workspace(1, std::size_t(d.image_values()) / 2 + 16 +
                                      std::size_t(nt) * kTile * kTile);
  auto* xp = reinterpret_cast<std::uint16_t*>(ws + std::size_t(nt) * kTile * kTile);
  const index_t items = d.panels * d.blocks;
  for (index_t n = 0; n < p.N; ++n) {
    parallel_ranges(d.Cpad / 2, 4, [&](index_t b, index_t e) {
      fill_padded(p, d, src + n * x_img, b, e, xp);
    });
#pragma omp parallel num_threads(nt)
    {
      float* buf = ws + std::size_t(current_thread()) * kTile * kTile;
      if (gk.bf16_begin) gk.bf16_begin();
#pragma omp for schedule(static)
      for (index_t it = 0; it < items; ++it) {
        run_block(p, d, a.data(), xp, it / d.blocks, it % d.blocks, bias, relu, dst + n * y_img,
                  buf);
      }
      if (gk.bf16_end) gk.bf16_end();
    }
  }
}

bool bf16_direct_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return backward_data_as_forward(p) && bf16_direct_applies(as_forward_of_diff_dst(p), policy);
}

void bf16_direct_backward_data(const Conv2dParams& p, const float* diff_dst,
                               const float* weights, float* diff_src) {
  const std::vector<float> wt = rotated_weights(p, weights);
  bf16_direct_forward(as_forward_of_diff_dst(p), diff_dst, wt.data(), nullptr, diff_src, false);
}

}  // namespace cnnkit
