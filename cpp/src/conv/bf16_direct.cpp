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
// being gathered into panels 9 times over. A block is 32 output channels x 2 runs of 16
// consecutive pixels: for output rows of >= 16 pixels each run lies in one row (the last run of
// a row shifted left to end at the row's end, recomputing a few pixels); narrower outputs take
// 32 consecutive v of the padded grid and drop the columns ox >= Wo on the way out (Wp / Wo - 1
// extra work).
// A is the weights reordered to the K index (channel chunk of 32, tap, channel in the chunk),
// C padded to a multiple of 32, packed once per call (or ahead of time: conv2d_pack_bf16) into
// the GEMM engine's bf16 A panels of 32 rows. For each panel, K runs chunk by chunk over all
// the image's blocks, the fp32 partial sums of every block kept in a per-thread buffer (a
// chunk's A slices stay in L1 while the blocks go by); then the epilogue kernel adds the bias,
// applies ReLU and writes the runs into Y -- or, for a max pooling fused after the
// convolution (inference: conv2d_max_pool_forward), pools the panel's 32 planes while they are
// in L2, so the unpooled output never goes to memory.
//
// The backward data pass of a stride-1 convolution is a convolution of dY with the rotated
// weights (transposed_conv.cpp): the same algorithm, whenever its padding D(F-1)-P is >= 0.
//
// The weight gradient, per tap t = (fy, fx), is a GEMM over the pixels of the padded grid:
//   dW[k][c][t] = sum_v dYv[k][v] Xp[c][v + off_t],   off_t = fy dh Wp + fx dw,
// with dYv = dY rounded to bf16 on the padded grid (zeros at ox >= Wo), whose rows are the
// A tiles as they are (32 consecutive v), and B = X transposed to pixel pairs x channels
// (XT[w][c] = (Xp[c][2w], Xp[c][2w + 1]), and a copy shifted by one pixel for odd offsets),
// whose 16 x 16 tiles are 64 bytes per pair row. Each thread sums its images into partials
// [tap][k][c] (32 x 32 blocks accumulated in the tiles, the pixels in chunks that stay in L1),
// added in thread order and reordered to [k][c][tap] at the end: bitwise reproducible for a
// thread count.
// Threads: over images (each thread its own padded image); for fewer images than threads,
// over the (panel, block) pairs of one image at a time.
#include <memory>

#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {

constexpr index_t kTile = 32;  // rows of an A panel and columns of a block

index_t round_up_tile(index_t v) { return (v + kTile - 1) / kTile * kTile; }

struct DirectPlan {
  index_t Cpad, slices, Hp, Wp, plane, panels;
  bool rows;                 // runs within output rows (Wo >= 16), else 32 consecutive v per block
  bool planes;               // rows, and the runs tile them exactly (Wo % 16 == 0): a panel's
                             // partial sums are its output planes as they are
  index_t runs, blocks;      // runs of 16 pixels; blocks of two runs
  index_t runs_per_row;      // (rows) ceil(Wo / 16)
  std::vector<index_t> off;  // per slice (tap, channel chunk): offset into Xp (bf16 values)
  std::vector<index_t> block_runs;  // per block: its two runs' offsets into Xp (bf16 values)

  explicit DirectPlan(const Conv2dParams& p) {
    Cpad = round_up_tile(p.C);
    const index_t taps = p.Fh * p.Fw, chunks = Cpad / kTile;
    slices = taps * chunks;
    Hp = p.H + 2 * p.pad_h;
    Wp = p.W + 2 * p.pad_w;
    rows = p.Wo >= kTile / 2;
    planes = rows && p.Wo % (kTile / 2) == 0;
    runs_per_row = (p.Wo + kTile / 2 - 1) / (kTile / 2);
    runs = rows ? p.Ho * runs_per_row : (p.Ho * Wp + kTile / 2 - 1) / (kTile / 2);
    blocks = (runs + 1) / 2;
    const index_t reach = (p.Fh - 1) * p.dil_h * Wp + (p.Fw - 1) * p.dil_w;
    // every tile row read stays inside the plane: the last run's 16 columns plus the reach
    plane = std::max(Hp * Wp, runs * kTile / 2 + reach) + kTile;
    panels = (p.K + kTile - 1) / kTile;
    // slice (q, t): channel chunk q (pairs 16 q .. 16 q + 15, one plane of 2 values per v
    // each) at tap t, ordered so that a chunk's taps are consecutive
    off.resize(std::size_t(slices));
    for (index_t q = 0; q < chunks; ++q) {
      for (index_t t = 0; t < taps; ++t) {
        const index_t fy = t / p.Fw, fx = t % p.Fw;
        off[std::size_t(q * taps + t)] =
            q * (kTile / 2) * 2 * plane + 2 * (fy * p.dil_h * Wp + fx * p.dil_w);
      }
    }
    block_runs.resize(std::size_t(2 * blocks));
    for (index_t b = 0; b < blocks; ++b) {
      block_runs[std::size_t(2 * b)] = 2 * run_v(p, 2 * b);
      block_runs[std::size_t(2 * b + 1)] = 2 * run_v(p, std::min(2 * b + 1, runs - 1));
    }
  }
  index_t taps(const Conv2dParams& p) const { return p.Fh * p.Fw; }
  index_t chunks() const { return Cpad / kTile; }
  // Run r (r < runs): its first v on the padded grid, and (rows) its first output pixel.
  index_t run_v(const Conv2dParams& p, index_t r) const {
    if (!rows) return r * (kTile / 2);
    const index_t oy = r / runs_per_row;
    return oy * Wp + run_ox(p, r);
  }
  index_t run_ox(const Conv2dParams& p, index_t r) const {
    return std::min((r % runs_per_row) * (kTile / 2), p.Wo - kTile / 2);
  }
  index_t pair_stride() const { return 2 * plane; }  // bf16 values per channel pair
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
      std::fill(at(y) + 2 * p.W, y + 1 < p.H ? at(y + 1) : dst + d.pair_stride(), std::uint16_t(0));
    }
  }
}

// Panel `panel` (32 output channels) x runs [2 b0, 2 b1) of one image into partial sums c
// (row i at c + i * ldc, run r's 16 columns at 16 (r - 2 b0)), channel chunk by channel chunk:
// a chunk's A slices (one per tap) stay in L1 while the blocks go by. The last run is computed
// twice when the count is odd.
void accumulate_blocks(const Conv2dParams& p, const DirectPlan& d, const std::uint16_t* a,
                       const std::uint16_t* xp, index_t panel, index_t b0, index_t b1, float* c,
                       index_t ldc) {
  const int m = int(std::min(kTile, p.K - panel * kTile));
  const index_t taps = d.taps(p);
  const Bf16DirectBlocks blocks = kernels().conv.bf16_direct_blocks;
  for (index_t q = 0; q < d.chunks(); ++q) {
    const std::uint16_t* ap = a + (panel * d.slices + q * taps) * kTile * kTile;
    blocks(ap, int(taps), xp, d.block_runs.data() + 2 * b0, int(b1 - b0), d.off.data() + q * taps,
           d.pair_stride(), m, c, ldc, q > 0);
  }
}

// Runs [r0, r1) of panel `panel` from the partial sums c (as accumulate_blocks left them) into
// the panel's output planes yk (Ho x Wo each, channel k0 = 32 panel first), plus bias, then
// ReLU: a run in a row is 16 output pixels; a run of the padded grid keeps its columns with
// ox < Wo.
void store_runs(const Conv2dParams& p, const DirectPlan& d, const float* c, index_t ldc,
                index_t panel, index_t r0, index_t r1, const float* bias, bool relu, float* yk) {
  const index_t k0 = panel * kTile, m = std::min(kTile, p.K - k0), HoWo = p.Ho * p.Wo;
  const BiasReluRows rows = kernels().conv.bias_relu_rows;
  auto segment = [&](index_t col, index_t dst, index_t len) {
    rows(c + col, ldc, int(m), len, bias ? bias + k0 : nullptr, relu, yk + dst, HoWo);
  };
  if (d.planes) {
    segment((r0 % 2) * (kTile / 2), r0 * (kTile / 2), (r1 - r0) * (kTile / 2));
    return;
  }
  for (index_t r = r0; r < r1; ++r) {
    const index_t col = (r - 2 * (r0 / 2)) * (kTile / 2);
    if (d.rows) {
      segment(col, (r / d.runs_per_row) * p.Wo + d.run_ox(p, r), kTile / 2);
      continue;
    }
    const index_t v_begin = r * (kTile / 2), v_stop = std::min(p.Ho * d.Wp, v_begin + kTile / 2);
    for (index_t v = v_begin; v < v_stop;) {
      const index_t oy = v / d.Wp, ox = v % d.Wp;
      const index_t row_end = std::min(v_stop, (oy + 1) * d.Wp);
      const index_t len = std::min(row_end - v, p.Wo - ox);
      if (len > 0) segment(col + (v - v_begin), oy * p.Wo + ox, len);
      v = row_end;
    }
  }
}

// Panel `panel` of one image, max-pooled: its output planes (as store_runs writes them) pooled
// into yq (the pooled image), through `plane` (32 Ho Wo floats of scratch) unless the partial
// sums already are the planes (runs tiling the rows), which then take the bias and ReLU in place.
void pool_panel(const Conv2dParams& p, const DirectPlan& d, float* c, index_t ldc, index_t panel,
                const float* bias, bool relu, const Pool2dPlane& pool, float* plane, float* yq) {
  const index_t k0 = panel * kTile, m = std::min(kTile, p.K - k0), HoWo = p.Ho * p.Wo;
  const MaxPool2dFwd max_pool = kernels().pool.max_pool2d_fwd;
  float* out = yq + k0 * pool.Ho * pool.Wo;
  if (d.planes) {
    kernels().conv.bias_relu_rows(c, ldc, int(m), HoWo, bias ? bias + k0 : nullptr, relu, c, ldc);
    for (index_t i = 0; i < m; ++i)
      max_pool(c + i * ldc, out + i * pool.Ho * pool.Wo, nullptr, pool, 1);
    return;
  }
  store_runs(p, d, c, ldc, panel, 0, d.runs, bias, relu, plane);
  max_pool(plane, out, nullptr, pool, m);
}

// The forward pass, and (pool != null) the max pooling of its output planes after it.
void direct_forward(const Conv2dParams& p, const float* src, const float* weights,
                    const float* bias, bool relu, const Pool2dPlane* pool, float* dst) {
  const DirectPlan d(p);
  const GemmKernels& gk = kernels().gemm;
  // The A panels: packed by the caller ahead of time (an inference cache) or now.
  std::vector<std::uint16_t> own;
  const std::uint16_t* a = p.packed_weights;
  if (a == nullptr) {
    own.resize(conv2d_packed_values(p));
    conv2d_pack_bf16(p, weights, own.data());
    a = own.data();
  }
  const int nt = get_num_threads();
  const index_t HoWo = p.Ho * p.Wo, x_img = p.C * p.H * p.W, y_img = p.K * HoWo;
  const index_t q_img = pool ? p.K * pool->Ho * pool->Wo : 0;  // a pooled image
  const index_t ldc = d.blocks * kTile;  // partial sums of a panel: 32 rows x all runs
  if (p.N >= nt || nt == 1) {
    const std::size_t plane = pool && !d.planes ? std::size_t(kTile * HoWo) : 0;
    const std::size_t per =
        std::size_t(d.image_values()) / 2 + std::size_t(kTile * ldc) + plane + 16;
    float* ws = thread_workspace(1, per * std::size_t(nt));
    parallel_team(nt, [&](int, int) {
      float* c = ws + per * std::size_t(current_thread());
      float* pl = c + kTile * ldc;
      auto* xp = reinterpret_cast<std::uint16_t*>(pl + plane);
      if (gk.bf16_begin) gk.bf16_begin();
      index_t n_begin, n_end;
      team_range(p.N, &n_begin, &n_end);
      for (index_t n = n_begin; n < n_end; ++n) {
        fill_padded(p, d, src + n * x_img, 0, d.Cpad / 2, xp);
        for (index_t q = 0; q < d.panels; ++q) {
          accumulate_blocks(p, d, a, xp, q, 0, d.blocks, c, ldc);
          if (pool) {
            pool_panel(p, d, c, ldc, q, bias, relu, *pool, pl, dst + n * q_img);
          } else {
            store_runs(p, d, c, ldc, q, 0, d.runs, bias, relu, dst + n * y_img + q * kTile * HoWo);
          }
        }
      }
      if (gk.bf16_end) gk.bf16_end();
    });
    return;
  }
  // Fewer images than threads: one shared padded image at a time, threads over its blocks
  // (and, pooled, over its planes once the image is done).
  float* ws =
      thread_workspace(1, std::size_t(d.image_values()) / 2 + 16 + std::size_t(nt) * kTile * kTile);
  auto* xp = reinterpret_cast<std::uint16_t*>(ws + std::size_t(nt) * kTile * kTile);
  std::unique_ptr<float[]> image(pool ? new float[std::size_t(y_img)] : nullptr);
  const index_t items = d.panels * d.blocks;
  for (index_t n = 0; n < p.N; ++n) {
    float* y = pool ? image.get() : dst + n * y_img;
    parallel_ranges(d.Cpad / 2, 4,
                    [&](index_t b, index_t e) { fill_padded(p, d, src + n * x_img, b, e, xp); });
    parallel_team(nt, [&](int, int) {
      float* c = ws + std::size_t(current_thread()) * kTile * kTile;
      if (gk.bf16_begin) gk.bf16_begin();
      index_t it_begin, it_end;
      team_range(items, &it_begin, &it_end);
      for (index_t it = it_begin; it < it_end; ++it) {
        const index_t q = it / d.blocks, blk = it % d.blocks;
        accumulate_blocks(p, d, a, xp, q, blk, blk + 1, c, kTile);
        store_runs(p, d, c, kTile, q, 2 * blk, std::min(2 * blk + 2, d.runs), bias, relu,
                   y + q * kTile * HoWo);
      }
      if (gk.bf16_end) gk.bf16_end();
    });
    if (pool) {
      const MaxPool2dFwd max_pool = kernels().pool.max_pool2d_fwd;
      const index_t HqWq = pool->Ho * pool->Wo;
      parallel_ranges(p.K, 1, [&](index_t b, index_t e) {
        max_pool(y + b * HoWo, dst + n * q_img + b * HqWq, nullptr, *pool, e - b);
      });
    }
  }
}

}  // namespace

bool bf16_direct_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return p.precision == Precision::bf16 && policy.kernels->bf16_direct_blocks != nullptr &&
         p.groups == 1 && p.stride_h == 1 && p.stride_w == 1 && p.C >= kMinRowsForTransposedConv &&
         p.pad_h >= 0 && p.pad_w >= 0 &&
         // the tile loads take 32-bit strides comfortably; an image plane beyond that is rare
         (p.H + 2 * p.pad_h) * (p.W + 2 * p.pad_w) < (index_t(1) << 26);
}

std::size_t conv2d_packed_values(const Conv2dParams& p) {
  return std::size_t(round_up_tile(p.K)) * std::size_t(p.Fh * p.Fw * round_up_tile(p.C / p.groups));
}

void conv2d_pack_bf16(const Conv2dParams& p, const float* weights, std::uint16_t* a) {
  const GemmKernels& gk = kernels().gemm;
  const index_t taps = p.Fh * p.Fw, Cpad = round_up_tile(p.C);
  const index_t kdim = taps * Cpad, slices = kdim / kTile, panels = (p.K + kTile - 1) / kTile;
  // Weights as K x (chunk, tap, c % 32) in fp32 (zeros for c >= C), then the bf16 A panels.
  std::vector<float> wr(std::size_t(p.K * kdim), 0.0f);
  for (index_t k = 0; k < p.K; ++k) {
    for (index_t c = 0; c < p.C; ++c) {
      for (index_t t = 0; t < taps; ++t) {
        const index_t col = ((c / kTile) * taps + t) * kTile + c % kTile;
        wr[std::size_t(k * kdim + col)] = weights[(k * p.C + c) * taps + t];
      }
    }
  }
  const int nt = threads_for(panels * kdim * kTile, 1 << 16);
  parallel_for(nt, panels, [&](index_t q) {
    const index_t k0 = q * kTile;
    gk.pack_bf16_a(wr.data() + k0 * kdim, kdim, int(std::min(kTile, p.K - k0)), int(kdim),
                   int(kTile), a + q * slices * kTile * kTile);
  });
}

void bf16_direct_forward(const Conv2dParams& p, const float* src, const float* weights,
                         const float* bias, float* dst, bool relu) {
  direct_forward(p, src, weights, bias, relu, nullptr, dst);
}

void bf16_direct_forward_pooled(const Conv2dParams& p, const float* src, const float* weights,
                                const float* bias, bool relu, const Pool2dPlane& pool, float* dst) {
  direct_forward(p, src, weights, bias, relu, &pool, dst);
}

namespace {

// Channel plane c of the padded image as bf16: Hp x Wp values (zero padding), then zeros to
// `len` values.
void fill_plane(const Conv2dParams& p, index_t Wp, const float* x, index_t len,
                std::uint16_t* dst) {
  const RoundBf16 round = kernels().gemm.round_bf16;
  auto at = [&](index_t y) { return dst + (y + p.pad_h) * Wp + p.pad_w; };
  std::fill(dst, at(0), std::uint16_t(0));
  for (index_t y = 0; y < p.H; ++y) {
    round(x + y * p.W, p.W, at(y));
    std::fill(at(y) + p.W, y + 1 < p.H ? at(y + 1) : dst + len, std::uint16_t(0));
  }
}

struct WeightGradPlan {
  index_t Kpad, Cpad, taps, Wp, Vs, slices, len, pairs;
  std::vector<index_t> off;  // per tap

  explicit WeightGradPlan(const Conv2dParams& p) {
    Kpad = round_up_tile(p.K);
    Cpad = round_up_tile(p.C);
    taps = p.Fh * p.Fw;
    Wp = p.W + 2 * p.pad_w;
    const index_t Hp = p.H + 2 * p.pad_h;
    Vs = round_up_tile(p.Ho * Wp);
    slices = Vs / kTile;
    const index_t reach = (p.Fh - 1) * p.dil_h * Wp + (p.Fw - 1) * p.dil_w;
    pairs = (Vs + reach) / 2 + 2;            // XT rows any tap reads
    len = std::max(Hp * Wp, 2 * pairs + 2);  // plane length (bf16 values)
    len += len % 2;
    off.resize(std::size_t(taps));
    for (index_t t = 0; t < taps; ++t)
      off[std::size_t(t)] = (t / p.Fw) * p.dil_h * Wp + (t % p.Fw) * p.dil_w;
  }
  // per-thread scratch in floats: partials, dYv, the planes, two XT
  std::size_t partial_floats() const { return std::size_t(taps * Kpad * Cpad); }
  std::size_t dyv_floats() const { return std::size_t(Kpad * Vs) / 2; }
  std::size_t planes_floats() const { return std::size_t(Cpad * len) / 2; }
  std::size_t xt_floats() const { return std::size_t((pairs + 1) * Cpad); }  // + 1: see below
  std::size_t per_thread() const {
    return partial_floats() + dyv_floats() + planes_floats() + 2 * xt_floats() + 64;
  }
};

constexpr index_t kVChunk = 8;  // pixel slices per pass: A and B chunks stay in L1

// One image's contribution to the partials P[tap][k][c].
void weight_grad_image(const Conv2dParams& p, const WeightGradPlan& w, const float* dy,
                       const float* x, float* P, float* scratch) {
  const GemmKernels& gk = kernels().gemm;
  auto* dyv = reinterpret_cast<std::uint16_t*>(scratch);
  auto* even = reinterpret_cast<std::uint16_t*>(scratch + w.dyv_floats());
  float* xt_even = scratch + w.dyv_floats() + w.planes_floats();
  float* xt_odd = xt_even + w.xt_floats();
  const index_t HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  // dY on the padded grid
  for (index_t k = 0; k < w.Kpad; ++k) {
    std::uint16_t* row = dyv + k * w.Vs;
    if (k >= p.K) {
      std::fill(row, row + w.Vs, std::uint16_t(0));
      continue;
    }
    for (index_t oy = 0; oy < p.Ho; ++oy) {
      gk.round_bf16(dy + k * HoWo + oy * p.Wo, p.Wo, row + oy * w.Wp);
      std::fill(row + oy * w.Wp + p.Wo, row + (oy + 1) * w.Wp, std::uint16_t(0));
    }
    std::fill(row + p.Ho * w.Wp, row + w.Vs, std::uint16_t(0));
  }
  // the padded planes, transposed to [pair][channel] (a pair of bf16 values moved as one 32-bit
  // word; pairs + 1 rows), and from that the transpose of the planes shifted by one value:
  // pair (v + 1, v + 2) is the high half of pair (v, v + 1) and the low half of the next
  for (index_t c = 0; c < w.Cpad; ++c) {
    std::uint16_t* e = even + c * w.len;
    if (c < p.C) {
      fill_plane(p, w.Wp, x + c * HW, w.len, e);
    } else {
      std::fill(e, e + w.len, std::uint16_t(0));
    }
  }
  gk.transpose(reinterpret_cast<const float*>(even), w.len / 2, w.Cpad, w.pairs + 1, xt_even,
               w.Cpad, w.Cpad);
  const auto* e32 = reinterpret_cast<const std::uint32_t*>(xt_even);
  auto* o32 = reinterpret_cast<std::uint32_t*>(xt_odd);
  for (index_t i = 0; i < w.pairs * w.Cpad; ++i) o32[i] = (e32[i] >> 16) | (e32[i + w.Cpad] << 16);
  const index_t ldb = 2 * w.Cpad;  // bf16 values per pair row of XT
  for (index_t s0 = 0; s0 < w.slices; s0 += kVChunk) {
    const int ns = int(std::min(kVChunk, w.slices - s0));
    for (index_t t = 0; t < w.taps; ++t) {
      const index_t off = w.off[std::size_t(t)] + s0 * kTile, par = off % 2;
      const auto* xt =
          reinterpret_cast<const std::uint16_t*>(par ? xt_odd : xt_even) + (off - par) / 2 * ldb;
      for (index_t kb = 0; kb < w.Kpad; kb += kTile) {
        for (index_t cb = 0; cb < w.Cpad; cb += kTile) {
          gk.bf16_accumulate_block(dyv + kb * w.Vs + s0 * kTile, w.Vs, xt + 2 * cb, ldb, ns,
                                   P + (t * w.Kpad + kb) * w.Cpad + cb, w.Cpad);
        }
      }
    }
  }
}

}  // namespace

bool bf16_direct_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return bf16_direct_applies(p, policy) && p.N > 0;
}

void bf16_direct_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                                  float* diff_weights, float* diff_bias) {
  if (diff_bias) bias_grad(p, diff_dst, diff_bias);
  const WeightGradPlan w(p);
  const GemmKernels& gk = kernels().gemm;
  const int nt = std::max<int>(1, int(std::min<index_t>(get_num_threads(), p.N)));
  const std::size_t per = w.per_thread();
  float* ws = thread_workspace(1, per * std::size_t(nt));
  for (int u = 0; u < nt; ++u) std::fill(ws + per * u, ws + per * u + w.partial_floats(), 0.0f);
  const index_t x_img = p.C * p.H * p.W, y_img = p.K * p.Ho * p.Wo;
  parallel_team(nt, [&](int, int) {
    float* mine = ws + per * std::size_t(current_thread());
    if (gk.bf16_begin) gk.bf16_begin();
    index_t n_begin, n_end;
    team_range(p.N, &n_begin, &n_end);
    for (index_t n = n_begin; n < n_end; ++n) {
      weight_grad_image(p, w, diff_dst + n * y_img, src + n * x_img, mine,
                        mine + w.partial_floats());
    }
    if (gk.bf16_end) gk.bf16_end();
  });
  // partials in thread order, [tap][k][c] -> [k][c][tap]
  for (index_t k = 0; k < p.K; ++k) {
    for (index_t c = 0; c < p.C; ++c) {
      for (index_t t = 0; t < w.taps; ++t) {
        const std::size_t at = std::size_t((t * w.Kpad + k) * w.Cpad + c);
        float sum = 0.0f;
        for (int u = 0; u < nt; ++u) sum += ws[per * u + at];
        diff_weights[(k * p.C + c) * w.taps + t] = sum;
      }
    }
  }
}

bool bf16_direct_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return backward_data_as_forward(p) && bf16_direct_applies(as_forward_of_diff_dst(p), policy);
}

void bf16_direct_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                               float* diff_src) {
  const std::vector<float> wt = rotated_weights(p, weights);
  bf16_direct_forward(as_forward_of_diff_dst(p), diff_dst, wt.data(), nullptr, diff_src, false);
}

}  // namespace cnnkit
