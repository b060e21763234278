// Winograd F(4x4, 3x3) convolution (stride 1, dilation 1, one group; filters up to 9x9).
//
// Every 4 x 4 block of output pixels (a tile) needs the 6 x 6 input patch d under it; with the
// transforms of winograd_f43.hpp, for each of the 36 transformed positions xi
//   M[xi] (K x tiles) = U[xi] (K x C) @ V[xi] (C x tiles),   U = G g G^T,  V = B^T d B
//   Y tile = A^T M A                                       (forward: 36 small GEMMs)
//   dU[xi] (K x C) = sum over tiles M'[xi] V[xi]^T,  M' = A dY A^T;  dg = G^T dU G
//                                                          (weight gradient)
// i.e. 36 multiplications per tile and channel pair instead of 144 (4 x fewer FLOPs; the
// transforms cost O(tiles x channels)). Backward data of a stride-1 convolution is a forward
// convolution of dY with the rotated weights (transposed_conv.cpp), so it comes here too.
//
// Larger filters are split into 3x3 pieces: an Fh x Fw filter (zero-padded to multiples of 3)
// is sh x sw sub-filters g_ab = g[3a .. 3a+2][3b .. 3b+2], and
//   conv(x, g) = sum_ab conv3x3(x shifted by (3a, 3b), g_ab),
// a 3x3 convolution over sh sw C "virtual" input channels (the shifted copies are only tile
// offsets, never materialised). A 5x5 filter costs 4 x 36 products per tile instead of
// 25 x 16: 2.8 x fewer.
//
// Two schedules. Narrow layers: each thread takes blocks of tiles small enough that V and M
// stay in L2: transform the block's input, run the 36 GEMMs with the SGEMM micro-kernel
// (weights transformed and packed once per call), transform back and store; the weight
// gradient sums per-thread partial dU (added in thread order). Wide layers (whole_pass):
// transform every tile first, then one GEMM per xi over all tiles, xi split over the threads,
// so each 36 x K x C weight transform is streamed once, not once per block. Accuracy: the
// transforms multiply by up to 8 and divide by 24, so results carry a few more float32 roundings
// than the direct sum (relative error ~1e-6..1e-5 on typical data); conv_algorithm("direct") turns
// the path off.
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "conv/conv_kernels.hpp"
#include "conv/winograd_f43.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"
#include "util/bf16.hpp"

namespace cnnkit {

using wino::kA;
using wino::kLanes;
using wino::kM;
using wino::kR;
using wino::kXi;

namespace {

constexpr index_t kMaxFilter = 9;  // 3 x 3 pieces at most

// Tiles of the output: th x tw per image, numbered (n, ty, tx) row-major; the filter as
// sh x sw 3x3 pieces over cv = sh sw C virtual input channels, numbered (a, b, c).
struct Tiling {
  index_t th, tw, per_image, total;
  index_t sh, sw, cv;
  explicit Tiling(const Conv2dParams& p)
      : th((p.Ho + kM - 1) / kM),
        tw((p.Wo + kM - 1) / kM),
        per_image(th * tw),
        total(p.N * th * tw),
        sh((p.Fh + kR - 1) / kR),
        sw((p.Fw + kR - 1) / kR),
        cv(sh * sw * p.C) {}
};

// Lanes for tiles t0 .. t0 + n - 1 read from (input: tile origin at -pad) or written to
// (output) planes of h x w, images `img` floats apart; `size` rows/columns per tile.
WinoLanes make_lanes(const Tiling& tl, index_t t0, int n, index_t img, index_t h, index_t w,
                     index_t pad_h, index_t pad_w, int size) {
  WinoLanes L;
  L.n = n;
  for (int l = 0; l < n; ++l) {
    const index_t t = t0 + l, im = t / tl.per_image, r = t % tl.per_image;
    const index_t y0 = (r / tl.tw) * kM - pad_h, x0 = (r % tl.tw) * kM - pad_w;
    L.off[l] = std::int32_t(im * img + y0 * w + x0);
    for (int i = 0; i < size; ++i) {
      if (y0 + i >= 0 && y0 + i < h) L.rows[i] |= std::uint16_t(1u << l);
      if (x0 + i >= 0 && x0 + i < w) L.cols[i] |= std::uint16_t(1u << l);
    }
  }
  return L;
}

// K split into micro-kernel row panels of near-equal size (<= MR rows each).
struct Panels {
  index_t count, K;
  Panels(index_t K_, int mr) : count((K_ + mr - 1) / mr), K(K_) {}
  void get(index_t i, index_t* k0, index_t* len) const { balanced_part(K, count, i, k0, len); }
};

// Tiles per block: V (cv channels) and M (K) of a block within `budget` bytes, a multiple of
// 32 in [lo, hi] (the weight gradient's GEMMs reduce over the block: it wants longer ones).
index_t block_tiles(index_t cv, index_t K, index_t total, index_t budget, index_t lo, index_t hi) {
  const index_t per_tile = kXi * (cv + K) * index_t(sizeof(float));
  const index_t tb = std::max(lo, std::min(hi, budget / per_tile / 32 * 32));
  return std::min(tb, (total + kLanes - 1) / kLanes * kLanes);
}

// Block i of `count` near-equal blocks of the lane groups [g_begin, g_end): its tiles are
// t0 .. t0 + nb - 1. Work is split in whole groups of 16 tiles, so a group starts on a multiple
// of 16 and its runs of 4 tiles stay in one tile row when the row has a multiple of 4 tiles
// (the AVX-512 transforms then read and write them with one access).
inline void tile_block(index_t total, index_t g_begin, index_t g_end, index_t count, index_t i,
                       index_t* t0, index_t* nb) {
  index_t b0, bl;
  balanced_part(g_end - g_begin, count, i, &b0, &bl);
  *t0 = (g_begin + b0) * kLanes;
  *nb = std::min(total, (g_begin + b0 + bl) * kLanes) - *t0;
}

// Floats between the transformed planes xi and xi + 1 of `rows` rows of ld floats: one cache
// line more than the plane, so that the 36 stores (or loads) of one tile group go to different
// L1 sets (planes of a multiple of 1024 floats put all 36 in one 8-way set: measured, the
// transforms of CIFAR's 32-channel layers ran 2x slower).
inline index_t xi_stride(index_t rows, index_t ld) { return rows * ld + 16; }

// Input transform of tiles t0 .. t0 + nb - 1: V[xi][(a, b, c)][tile], row stride tb.
// (Input channels c0 .. c1 - 1 only, when given: threads split the channels of few tiles.)
void transform_input(const KernelTable& kt, const Conv2dParams& p, const Tiling& tl,
                     const float* src, index_t t0, index_t nb, index_t tb, float* v, index_t c0 = 0,
                     index_t c1 = -1) {
  if (c1 < 0) c1 = p.C;
  for (index_t l0 = 0; l0 < nb; l0 += kLanes) {
    const int n = int(std::min<index_t>(kLanes, nb - l0));
    for (index_t a = 0; a < tl.sh; ++a) {
      for (index_t b = 0; b < tl.sw; ++b) {
        const WinoLanes L = make_lanes(tl, t0 + l0, n, p.C * p.H * p.W, p.H, p.W, p.pad_h - kR * a,
                                       p.pad_w - kR * b, kA);
        kt.conv.wino_input(src + c0 * p.H * p.W, p.H * p.W, p.W, int(c1 - c0), L,
                           v + ((a * tl.sw + b) * p.C + c0) * tb + l0, xi_stride(tl.cv, tb), tb,
                           p.precision != Precision::fp32);
      }
    }
  }
}

// Output transform of tiles t0 .. t0 + nb - 1 from M[xi][k][tile] (row stride ld, m at t0).
// (Output channels k0 .. k1 - 1 only, when given.)
void transform_output(const KernelTable& kt, const Conv2dParams& p, const Tiling& tl,
                      const float* m, index_t ld, index_t t0, index_t nb, float* dst,
                      const float* bias, bool relu, index_t k0 = 0, index_t k1 = -1) {
  if (k1 < 0) k1 = p.K;
  for (index_t l0 = 0; l0 < nb; l0 += kLanes) {
    const WinoLanes L = make_lanes(tl, t0 + l0, int(std::min<index_t>(kLanes, nb - l0)),
                                   p.K * p.Ho * p.Wo, p.Ho, p.Wo, 0, 0, kM);
    kt.conv.wino_output(m + k0 * ld + l0, xi_stride(p.K, ld), ld, int(k1 - k0), L,
                        dst + k0 * p.Ho * p.Wo, p.Ho * p.Wo, p.Wo, bias ? bias + k0 : nullptr,
                        relu);
  }
}

// M'[xi][k][tile] = (A dY A^T)[xi] of tiles t0 .. t0 + nb - 1 (row stride ld, m at t0).
void transform_grad_output(const KernelTable& kt, const Conv2dParams& p, const Tiling& tl,
                           const float* diff_dst, index_t t0, index_t nb, index_t ld, float* m) {
  for (index_t l0 = 0; l0 < nb; l0 += kLanes) {
    const WinoLanes L = make_lanes(tl, t0 + l0, int(std::min<index_t>(kLanes, nb - l0)),
                                   p.K * p.Ho * p.Wo, p.Ho, p.Wo, 0, 0, kM);
    kt.conv.wino_grad_output(diff_dst, p.Ho * p.Wo, p.Wo, int(p.K), L, m + l0, xi_stride(p.K, ld),
                             ld, p.precision != Precision::fp32);
  }
}

// Columns of a group of tiles as the transforms store them: whole groups of 16 (a kernel may
// order the tiles of a group its own way; absent tiles are zero columns).
inline index_t group_cols(index_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// M[xi] (K x n, row stride ld) = U[xi] (packed panels) @ V[xi] (cv x n, row stride ld).
void multiply(const KernelTable& kt, const Panels& panels, const float* u, index_t cv,
              const float* v, index_t ld, index_t n, float* m) {
  const UkrEpilogue ep;
  const int nr = kt.gemm.sgemm_nr;
  for (index_t n0 = 0; n0 < n; n0 += nr) {  // a cv x nr panel of V stays in cache for all K
    for (index_t pi = 0; pi < panels.count; ++pi) {
      index_t k0, len;
      panels.get(pi, &k0, &len);
      kt.gemm.sgemm_ukr(int(len), int(std::min<index_t>(nr, n - n0)), cv, u + k0 * cv, v + n0, ld,
                        m + k0 * ld + n0, ld, ep);
    }
  }
}

// Large channel counts: transform every tile first and run each xi's GEMM over all of them
// (xi split over the threads), so each U[xi] / dU[xi] is read or written once, not once per
// block of tiles. Taken when the 36 weight matrices are far larger than L2 and the
// transformed tensors fit in a bounded workspace: up to 256 MiB for the weight gradient
// (whose blocked scheme also adds per-thread partials of all 36 matrices), about L3's size
// for the forward (measured on AlexNet: conv2 forward, 72 MB of transforms, 41.6 ms whole
// against 37.1 ms blocked, its backward data 51.6 against 46.0; conv3-5 at 13x13, 28-36 MB,
// 14.9-21.9 ms whole against 18.0-24.9 ms blocked for backward data, equal forward).
bool whole_pass(index_t cv, index_t K, index_t tiles, bool weight_grad) {
  const double bytes = double(kXi) * double(cv + K) * double(tiles) * sizeof(float);
  const double limit = (weight_grad ? 256.0 : 40.0) * (1 << 20);
  return cv * K >= 128 * 256 && bytes <= limit;
}
// 16 values, one per filter piece: the filter transforms run on these GCC vectors (baseline
// code: SSE2 registers, four per vector), the same operations in the same order as on one
// piece at a time (the same bits). Transformed one by one, AlexNet's filters took ~9 % of a
// training step. Zen 4, 2 threads, 384 x 384 channels at 13x13, batch 1 (filter-bound), three
// process pairs: forward 8.2-10.1 -> 6.4-7.4 ms, weight gradient 16.6-18.5 -> 4.3-9.2 ms.
using Lanes = float __attribute__((vector_size(kLanes * sizeof(float))));

// U = G g G^T of 16 filter pieces at once (gs[i * kR + j][l]: tap (i, j) of piece l;
// us[xi][l]). Plain arrays in and out: an element of a vector by a run-time lane index costs a
// compare chain, and one large copy a library call; 64-byte copies are inline.
void filter_transform(const float (*gs)[kLanes], float (*us)[kLanes]) {
  Lanes g[kR * kR], t[kA * kR], u[kXi];
  for (int i = 0; i < kR * kR; ++i) std::memcpy(&g[i], gs[i], sizeof(Lanes));
  for (int j = 0; j < kR; ++j) wino::weight_1d(g + j, kR, t + j, kR);  // G g
  for (int i = 0; i < kA; ++i) wino::weight_1d(t + i * kR, 1, u + i * kA, 1);
  for (int xi = 0; xi < kXi; ++xi) std::memcpy(us[xi], &u[xi], sizeof(Lanes));
}

// dg = G^T dU G of 16 filter pieces at once, the same way.
void filter_grad_transform(const float (*ds)[kLanes], float (*gs)[kLanes]) {
  // (G^T dU)[r][j] = sum_i G[i][r] dU[i][j], then the same along j
  Lanes d[kXi], t[kR * kA], g[kR * kR];
  for (int xi = 0; xi < kXi; ++xi) std::memcpy(&d[xi], ds[xi], sizeof(Lanes));
  for (int j = 0; j < kA; ++j) wino::weight_grad_1d(d + j, kA, t + j, kA);
  for (int r = 0; r < kR; ++r) wino::weight_grad_1d(t + r * kA, 1, g + r * kR, 1);
  for (int i = 0; i < kR * kR; ++i) std::memcpy(gs[i], &g[i], sizeof(Lanes));
}

}  // namespace

namespace {

// Whether the table's transforms are an ISA's SIMD kernels rather than the reference loops: a
// fact about the kernels, read from the table itself (not a flag an ISA sets), so an ISA that
// adds the transforms turns automatic Winograd on by registering them. Measured: with SIMD
// transforms Winograd beats the direct path on AVX2 and AVX-512 (1.3-3.3x on AVX2, the
// bench's CIFAR/VGG/AlexNet layers); with the reference loops it does not.
bool simd_transforms(const ConvKernels& k) {
  return k.wino_input != wino_input_ref && k.wino_output != wino_output_ref &&
         k.wino_grad_output != wino_grad_output_ref;
}

// How much faster Winograd runs a backward pass than the direct path, estimated: the direct
// sum's multiplications over Winograd's (per filter pair, Ho Wo Fh Fw per image against 36 per
// tile and 3x3 piece: 4x for 3x3 on whole tiles, less on a 13x13 output's 16x16 of tiles), of
// which the transforms keep 0.725, and less with few tiles T, over which the filter transforms
// of every call are spread: T / (T + 50). Fitted on Zen 4 (2 threads, fp32 direct / Winograd
// time of 16 layers: N 1-128, C 32-512, 7x7 to 56x56 outputs, 3x3 and 5x5 filters); within
// 25 % of the measured ratio except at 32 channels (2.9 predicted, 1.9-2.3 measured), far
// above 1. Below 1 (measured, fp32 direct / Winograd time, data and weight gradient): 512
// channels at 7x7, batch 8 (0.87 predicted): 0.82 / 0.73; 256 x 384 channels at 13x13, batch
// 1 (0.46): 0.58 / 0.25; in bf16 (where the direct path computes in bf16) 0.61 / 0.57 and
// 0.37 / 0.13. The forward pass keeps Winograd: inference caches its filter transform, and a
// forward pass gives the same bits with or without that cache.
double winograd_saving(const Conv2dParams& p, const Tiling& tl) {
  const double T = double(tl.total);
  const double direct = double(p.N) * double(p.Ho * p.Wo) * double(p.Fh * p.Fw);
  const double wino = T * double(kXi) * double(tl.sh * tl.sw);
  return 0.725 * direct / wino * T / (T + 50.0);
}

// The policy's choice: never (direct), wherever the transforms can run (winograd), or where
// they pay (automatic).
bool winograd_applies(const Conv2dParams& p, const ConvPolicy& policy, bool weight_grad,
                      bool backward) {
  // bf16: on the operands rounded to bf16 (as the transforms read them: no rounded copies),
  // with its fp32 transforms and sums, but only where the CPU has no AMX: there bf16_direct is
  // faster, and Winograd's transforms would add fp32 roundings to the bf16 products for no gain.
  if (policy.algorithm == ConvAlgorithm::direct) return false;
  if (p.precision != Precision::fp32 && policy.kernels->bf16_direct_blocks != nullptr) return false;
  const bool fits = p.groups == 1 && p.Fh >= 2 && p.Fw >= 2 && p.Fh <= kMaxFilter &&
                    p.Fw <= kMaxFilter && p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 &&
                    p.dil_w == 1 && p.N > 0 &&
                    // the transforms address planes with 32-bit offsets
                    p.N * p.C * p.H * p.W < (index_t(1) << 31) - 1 &&
                    p.N * p.K * p.Ho * p.Wo < (index_t(1) << 31) - 1;
  if (!fits) return false;
  if (policy.algorithm == ConvAlgorithm::winograd) return true;
  // automatic: 3x3 and 5x5 filters, where the SIMD transforms exist and the GEMMs are wide
  // enough to pay for the transforms.
  const Tiling tl(p);
  if (!simd_transforms(*policy.kernels) || p.Fh != p.Fw || (p.Fh != 3 && p.Fh != 5) || p.C < 16 ||
      p.K < 16 || p.Ho < 4 || p.Wo < 4) {
    return false;
  }
  // The backward passes transform the filters (or their gradient) on every call: with few
  // tiles to spread that over, the direct path is faster.
  if (backward && winograd_saving(p, tl) < 1.0) return false;
  // The weight gradient's blocked scheme reduces over each thread's tiles: it needs many per
  // channel pair (measured: 256 channels at 14x14, batch 8, slower than the direct path; at
  // 28x28 faster); the whole-pass scheme for wide layers does not.
  const index_t tp = group_cols(tl.total);
  return !weight_grad || whole_pass(tl.cv, p.K, tp, true) || tl.total >= std::max(tl.cv, p.K);
}

}  // namespace

bool winograd_forward_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return winograd_applies(p, policy, false, false);
}

// Stride-1 backward data is the forward convolution of dY with the rotated weights
// (transposed_conv.cpp), so Winograd takes it where it would take that forward convolution.
bool winograd_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return backward_data_as_forward(p) &&
         winograd_applies(as_forward_of_diff_dst(p), policy, false, true);
}

bool winograd_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy) {
  return winograd_applies(p, policy, true, true);
}

void winograd_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) {
  const KernelTable& kt = kernels();
  const index_t K = p.K;
  const Tiling tl(p);
  const index_t cv = tl.cv;
  const Panels panels(K, kt.gemm.sgemm_mr);
  constexpr int kMaxMr = 16;  // the largest micro-kernel MR of any ISA (14 on AVX-512)
  static_assert(kMaxMr <= kLanes, "a panel's filters are the lanes of the filter transform");
  if (kt.gemm.sgemm_mr > kMaxMr)
    throw_invalid("winograd: micro-kernel MR ", kt.gemm.sgemm_mr, " > ", kMaxMr);

  // U[xi] packed as micro-kernel A panels: panel (k0, len) at up + xi K cv + k0 cv, [cv][len].
  // The panel's len (<= 16) filters are the lanes: per virtual channel r, each of the 36 U[xi]
  // gets one contiguous run of len values, written in place (r after r: 36 sequential streams).
  // An inference model keeps U across calls (p.weight_cache; at batch 1 its transform took
  // ~70 % of AlexNet's 3x3 layers).
  auto transform_weights = [&](float* up) {
    parallel_ranges(panels.count, 1, [&](index_t p0, index_t p1) {
      const bool round = p.precision != Precision::fp32;
      for (index_t pi = p0; pi < p1; ++pi) {
        index_t k0, len;
        panels.get(pi, &k0, &len);
        float gs[kR * kR][kLanes] = {}, us[kXi][kLanes];  // lanes past len stay zero
        for (index_t r = 0; r < cv; ++r) {
          const index_t piece = r / p.C, c = r % p.C, a = piece / tl.sw, b = piece % tl.sw;
          for (int i = 0; i < kR; ++i) {
            for (int j = 0; j < kR; ++j) {
              const index_t y = kR * a + i, x = kR * b + j;
              float* gt = gs[i * kR + j];
              if (y >= p.Fh || x >= p.Fw) {  // zero beyond the filter
                for (index_t l = 0; l < len; ++l) gt[l] = 0.0f;
                continue;
              }
              const float* w = weights + (k0 * p.C + c) * p.Fh * p.Fw + y * p.Fw + x;
              const index_t step = p.C * p.Fh * p.Fw;  // the next filter
              for (index_t l = 0; l < len; ++l) gt[l] = w[l * step];
              if (round) {
                for (index_t l = 0; l < len; ++l) gt[l] = bf16_round(gt[l]);
              }
            }
          }
          filter_transform(gs, us);
          // all 16 lanes (zeros past len) while the panel has room: the next r overwrites the
          // excess; a fixed-size copy is inline, a variable one a library call
          const bool room = r * len + kLanes <= len * cv;
          for (int xi = 0; xi < kXi; ++xi) {
            float* dst = up + xi * K * cv + k0 * cv + r * len;
            if (room) {
              std::memcpy(dst, us[xi], sizeof(us[xi]));
            } else {
              for (index_t l = 0; l < len; ++l) dst[l] = us[xi][l];
            }
          }
        }
      }
    });
  };
  const float* up = nullptr;
  const std::size_t u_floats = std::size_t(kXi) * K * cv;
  // (bf16: tap() rounds the filters, the same values on every call, so their transform is
  // kept too, under its own key; recomputed per call it made AlexNet's bf16 inference on Zen 4
  // 0.64x its fp32 speed)
  if (p.weight_cache) {
    const char* prec = p.precision == Precision::fp32 ? "" : "bf16/";
    up = p.weight_cache->get("winograd_fwd/" + std::string(isa_name(active_isa())) + "/" + prec +
                                 std::to_string(K) + "x" + std::to_string(p.C) + "x" +
                                 std::to_string(p.Fh) + "x" + std::to_string(p.Fw),
                             u_floats, transform_weights);
  } else {
    float* u = thread_workspace(2, u_floats);
    transform_weights(u);
    up = u;
  }

  const index_t tp = group_cols(tl.total);  // rows padded to whole lanes
  const index_t groups = tp / kLanes;       // threads split tiles at lane-group boundaries
  // Fewer lane groups than threads (a small batch, e.g. one 16x16 image: one group): the whole
  // pass too, its transforms split over channels instead (cifar_cnn's 3x3 layers at batch 1:
  // 26-41 us on one thread or two before).
  const bool few = groups < get_num_threads();
  if (whole_pass(cv, K, tp, false) || few) {
    float* v = thread_workspace(1, std::size_t(kXi) * (xi_stride(cv, tp) + xi_stride(K, tp)));
    float* m = v + std::size_t(kXi) * xi_stride(cv, tp);
    if (few) {
      parallel_ranges(p.C, 4, [&](index_t c0, index_t c1) {
        transform_input(kt, p, tl, src, 0, tl.total, tp, v, c0, c1);
      });
    } else {
      parallel_ranges(groups, 1, [&](index_t g0, index_t g1) {
        const index_t t0 = g0 * kLanes, t1 = std::min(tl.total, g1 * kLanes);
        transform_input(kt, p, tl, src, t0, t1 - t0, tp, v + t0);
      });
    }
    parallel_ranges(kXi, 1, [&](index_t x0, index_t x1) {
      for (index_t xi = x0; xi < x1; ++xi) {
        multiply(kt, panels, up + xi * K * cv, cv, v + xi * xi_stride(cv, tp), tp, tp,
                 m + xi * xi_stride(K, tp));
      }
    });
    if (few) {
      parallel_ranges(K, 4, [&](index_t k0, index_t k1) {
        transform_output(kt, p, tl, m, tp, 0, tl.total, dst, bias, relu, k0, k1);
      });
    } else {
      parallel_ranges(groups, 1, [&](index_t g0, index_t g1) {
        const index_t t0 = g0 * kLanes, t1 = std::min(tl.total, g1 * kLanes);
        transform_output(kt, p, tl, m + t0, tp, t0, t1 - t0, dst, bias, relu);
      });
    }
    return;
  }
  // Otherwise each thread takes a near-equal share of the tiles, in near-equal blocks of
  // <= tb whose V and M stay in L2.
  const index_t tb = block_tiles(cv, K, tl.total, index_t(1) << 20, 32, 128);
  // (groups: the lane groups counted above)
  const int nt = threads_for(groups, 2);
  const std::size_t per = std::size_t(kXi) * (xi_stride(cv, tb) + xi_stride(K, tb));
  float* ws = thread_workspace(1, per * nt);
  parallel_ranges_on(nt, groups, [&](index_t g_begin, index_t g_end) {
    float* v = ws + per * current_thread();
    float* m = v + std::size_t(kXi) * xi_stride(cv, tb);
    const index_t blocks = ((g_end - g_begin) * kLanes + tb - 1) / tb;
    for (index_t bi = 0; bi < blocks; ++bi) {
      index_t t0, nb;
      tile_block(tl.total, g_begin, g_end, blocks, bi, &t0, &nb);
      transform_input(kt, p, tl, src, t0, nb, tb, v);
      for (int xi = 0; xi < kXi; ++xi) {
        multiply(kt, panels, up + xi * K * cv, cv, v + xi * xi_stride(cv, tb), tb, group_cols(nb),
                 m + xi * xi_stride(K, tb));
      }
      transform_output(kt, p, tl, m, tb, t0, nb, dst, bias, relu);
    }
  });
}

namespace {

// diff_weights from dU = the sum of `count` partial dU arrays (added in order): each piece's
// gradient is G^T dU[.][k][(a, b, c)] G, and its taps inside the filter are the filter's
// (pieces never overlap).
void weight_grad_from(const Conv2dParams& p, const Tiling& tl, const float* partial, int count,
                      float* diff_weights) {
  const index_t K = p.K, cv = tl.cv, cblocks = (p.C + kLanes - 1) / kLanes;
  const std::size_t du_floats = std::size_t(kXi) * K * cv;
  // 16 input channels of one filter at a time, one per lane
  parallel_ranges(K * cblocks, 1, [&](index_t e0, index_t e1) {
    for (index_t e = e0; e < e1; ++e) {
      const index_t k = e / cblocks, c0 = (e % cblocks) * kLanes;
      const index_t n = std::min<index_t>(kLanes, p.C - c0);
      for (index_t a = 0; a < tl.sh; ++a) {
        for (index_t b = 0; b < tl.sw; ++b) {
          const std::size_t at = std::size_t(k) * cv + (a * tl.sw + b) * p.C + c0;
          float ds[kXi][kLanes], gs[kR * kR][kLanes];
          for (int xi = 0; xi < kXi; ++xi) {
            const float* src = partial + std::size_t(xi) * K * cv + at;
            if (n == kLanes) {
              std::memcpy(ds[xi], src, sizeof(ds[xi]));  // fixed size: inline
            } else {
              for (index_t l = 0; l < kLanes; ++l) ds[xi][l] = l < n ? src[l] : 0.0f;
            }
            for (int i = 1; i < count; ++i) {
              for (index_t l = 0; l < n; ++l) ds[xi][l] += src[du_floats * i + l];
            }
          }
          filter_grad_transform(ds, gs);
          for (index_t l = 0; l < n; ++l) {
            float* dw = diff_weights + (k * p.C + c0 + l) * p.Fh * p.Fw;
            for (int i = 0; i < kR; ++i) {
              for (int j = 0; j < kR; ++j) {
                const index_t y = kR * a + i, x = kR * b + j;
                if (y < p.Fh && x < p.Fw) dw[y * p.Fw + x] = gs[i * kR + j][l];
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace

void winograd_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                            float* diff_src) {
  const std::vector<float> wt = rotated_weights(p, weights);
  winograd_forward(as_forward_of_diff_dst(p), diff_dst, wt.data(), nullptr, diff_src, false);
}

void winograd_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                               float* diff_weights, float* diff_bias) {
  if (diff_bias) bias_grad(p, diff_dst, diff_bias);
  const KernelTable& kt = kernels();
  const index_t K = p.K;
  const Tiling tl(p);
  const index_t cv = tl.cv;
  const std::size_t du_floats = std::size_t(kXi) * K * cv;
  const index_t tp = group_cols(tl.total);
  if (whole_pass(cv, K, tp, true)) {
    // every tile's V and M' first, then dU[xi] = M'[xi] V[xi]^T by the GEMM engine, one xi
    // per thread at a time (no partial sums: the result does not depend on the thread count)
    float* v = thread_workspace(1, std::size_t(kXi) * (xi_stride(cv, tp) + xi_stride(K, tp)));
    float* m = v + std::size_t(kXi) * xi_stride(cv, tp);
    const index_t groups = tp / kLanes;
    parallel_ranges(groups, 1, [&](index_t g0, index_t g1) {
      const index_t t0 = g0 * kLanes, t1 = std::min(tl.total, g1 * kLanes);
      transform_input(kt, p, tl, src, t0, t1 - t0, tp, v + t0);
      transform_grad_output(kt, p, tl, diff_dst, t0, t1 - t0, tp, m + t0);
    });
    float* du = thread_workspace(3, du_floats);
    const int nt = threads_for(kXi, 1);
    const std::size_t gws = gemm_workspace_floats(K, cv, tp, 1);
    float* gw = thread_workspace(2, gws * nt);
    parallel_ranges_on(nt, kXi, [&](index_t x0, index_t x1) {
      for (index_t xi = x0; xi < x1; ++xi) {
        GemmOutput out;
        out.c = du + xi * K * cv;
        out.ldc = cv;
        gemm(K, cv, tp, MatrixOperandA(m + xi * xi_stride(K, tp), tp, false),
             MatrixOperandB(v + xi * xi_stride(cv, tp), tp, true), out, 1,
             gw + gws * current_thread());
      }
    });
    weight_grad_from(p, tl, du, 1, diff_weights);
    return;
  }
  // Otherwise each thread sums its share of the tiles into its own dU (blocks of tb tiles),
  // and the partials are added in thread order (bitwise reproducible per thread count).
  const Panels panels(K, kt.gemm.sgemm_mr);
  const int mr = kt.gemm.sgemm_mr, nr = kt.gemm.sgemm_nr;
  const index_t tb = block_tiles(cv, K, tl.total, index_t(2) << 20, 64, 256);
  const index_t groups = group_cols(tl.total) / kLanes;
  const int nt = threads_for(groups, 2);
  // per thread: V, M' of a block, one transposed A panel (tiles x mr) and V^T (tiles x cv)
  const std::size_t per =
      std::size_t(kXi) * (xi_stride(cv, tb) + xi_stride(K, tb)) + std::size_t(tb) * (mr + cv);
  float* ws = thread_workspace(1, per * nt);
  float* partial = thread_workspace(3, du_floats * nt);
  parallel_ranges_on(nt, groups, [&](index_t g_begin, index_t g_end) {
    const int me = current_thread();
    float* v = ws + per * me;
    float* m = v + std::size_t(kXi) * xi_stride(cv, tb);
    float* apack = m + std::size_t(kXi) * xi_stride(K, tb);
    float* vt = apack + std::size_t(tb) * mr;
    float* du = partial + du_floats * me;
    std::memset(du, 0, sizeof(float) * du_floats);
    UkrEpilogue ep;
    ep.beta = 1.0f;
    const index_t blocks = ((g_end - g_begin) * kLanes + tb - 1) / tb;
    for (index_t bi = 0; bi < blocks; ++bi) {
      index_t t0, nb;
      tile_block(tl.total, g_begin, g_end, blocks, bi, &t0, &nb);
      transform_input(kt, p, tl, src, t0, nb, tb, v);
      transform_grad_output(kt, p, tl, diff_dst, t0, nb, tb, m);
      const index_t cols = group_cols(nb);
      for (int xi = 0; xi < kXi; ++xi) {
        // vt[tile][channel]
        kt.gemm.transpose(v + xi * xi_stride(cv, tb), tb, cv, cols, vt, cv, cv);
        for (index_t pi = 0; pi < panels.count; ++pi) {
          index_t k0, len;
          panels.get(pi, &k0, &len);
          kt.gemm.transpose(m + xi * xi_stride(K, tb) + k0 * tb, tb, len, cols, apack, len,
                            len);  // [tile][k]
          for (index_t c0 = 0; c0 < cv; c0 += nr) {
            kt.gemm.sgemm_ukr(int(len), int(std::min<index_t>(nr, cv - c0)), cols, apack, vt + c0,
                              cv, du + xi * K * cv + k0 * cv + c0, cv, ep);
          }
        }
      }
    }
  });
  weight_grad_from(p, tl, partial, nt, diff_weights);
}

}  // namespace cnnkit
