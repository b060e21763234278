// int8 convolution on the row engine (gemm/driver_int8_rows.cpp): uint8 NHWC in, uint8 NHWC
// or fp32 NCHW out.
//
//   sum[n][oy][ox][k] = sum_{fy, fx, c} x[n][oy S - P + fy D][ox S - P + fx D][c] *
//   wq[k][c][fy][fx] then the row engine's epilogue (requantize to the next layer's uint8, or
//   dequantize)
//
// Each image is copied once into a padded NHWC buffer (border = the input's zero point: a real
// 0), so every filter tap of every output pixel is in bounds. Then, for one output row, the
// pixels' patches need no copying at all ("direct"): with unit dilation a filter row fy is the
// Fw C contiguous bytes at ((oy S + fy D) Wp + ox S) C, and consecutive pixels are S C bytes
// apart, so an AMX tile of 16 pixels x 64 bytes is one strided load. Each filter row is padded
// to a multiple of the kernel's slice depth L (64 bytes on AMX, 32 on the vector kernels) in
// the packed weights (zeros: whatever bytes the padding meets count 0), so K grows from
// Fh Fw C to Fh round_up(Fw C, L) -- nothing where Fw C is a multiple of L (C = 32, 3x3: 288
// on VNNI, 384 on AMX), much for the 3-channel first layer (27 -> 192 on AMX) -- yet on AMX
// the products cost less than gathering the patches (measured: cifar_cnn's first layer 0.54
// ms direct against 0.9 gathered, batch 128). Where the padding would cost more (4x the
// depth on AMX, 1.25x on VNNI), each block of pixels gathers its patches into rows of
// round_up(Fh Fw C, L) bytes first ("gather"); the packed weights follow the choice. Groups
// and dilation use one segment per filter tap (Cg bytes, padded to L) or the gather.
//
// Threads: one image each at a time when there are at least as many images (the fused
// pooling then reads the image's output while it is in cache), else the blocks of one image.
#include <algorithm>
#include <cstring>

#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/pool.hpp"
#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {

inline index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

struct RowsPlan {
  bool direct = false;
  // A patch is `runs` runs of `run` contiguous bytes: a filter row's Fw C (unit dilation, one
  // group: row_runs) or a tap's Cg.
  bool row_runs = false;
  index_t run = 0, runs = 0;
  index_t Cg = 0, Hp = 0, Wp = 0;                 // the padded image (all C channels)
  index_t step = 0, kp = 0, slices = 0, lda = 0;  // step: the kernel's slice depth
  std::vector<std::int64_t> a_off;    // per slice: from a pixel's origin (direct) or step t
  std::vector<std::int32_t> kmap;     // per packed depth: c Fh Fw + fy Fw + fx, or -1 (with_kmap)
  std::vector<std::int64_t> run_off;  // each run's bytes from a pixel's origin
  std::size_t image_bytes = 0;        // the padded image and the slack its reads may pass
};

// with_kmap: also the packed depths' weight indices (for the packing only). The offsets into
// the image (run_off, a_off, image_bytes) only where p has one (H > 0): the packing's params
// have none, and their dilation is not bounded by an image size.
RowsPlan make_plan(const Conv2dParams& p, bool with_kmap = false) {
  RowsPlan r;
  const bool image = p.H > 0 && p.W > 0;
  const index_t step = r.step = i8_rows_kstep();
  const index_t G = p.groups, Cg = p.C / G, taps = p.Fh * p.Fw;
  r.Cg = Cg;
  r.Hp = p.H + 2 * p.pad_h;
  r.Wp = p.W + 2 * p.pad_w;
  const bool row_segments = r.row_runs = p.dil_w == 1 && G == 1;
  const index_t seg_len = r.run = row_segments ? p.Fw * p.C : Cg;
  const index_t segs = r.runs = row_segments ? p.Fh : taps;
  const index_t direct_kp = segs * round_up(seg_len, step);
  const index_t gather_kp = round_up(taps * Cg, step);
  // AMX's products are cheap next to a gather (a few cycles a byte): direct up to 4x the
  // depth; VNNI's cost 8x more, so only up to 1.25x.
  const bool amx = std::strcmp(i8_path(), "amx") == 0;
  r.direct = direct_kp <= gather_kp * (amx ? 4 : 1.25);
  for (index_t s = 0; image && s < segs; ++s) {
    const index_t fy = row_segments ? s : s / p.Fw, fx = row_segments ? 0 : s % p.Fw;
    r.run_off.push_back((fy * p.dil_h * r.Wp + fx * p.dil_w) * p.C);
  }
  if (r.direct) {
    r.kp = direct_kp;
    r.lda = p.stride_w * p.C;
    for (index_t s = 0; s < segs; ++s) {
      const index_t fy = row_segments ? s : s / p.Fw, fx = row_segments ? 0 : s % p.Fw;
      const index_t off = image ? r.run_off[std::size_t(s)] : 0;
      for (index_t u = 0; u < round_up(seg_len, step); ++u) {
        if (image && u % step == 0) r.a_off.push_back(off + u);
        if (!with_kmap) continue;
        std::int32_t k = -1;
        if (u < seg_len) {
          const index_t c = row_segments ? u % p.C : u, x = row_segments ? u / p.C : fx;
          k = std::int32_t(c * taps + fy * p.Fw + x);
        }
        r.kmap.push_back(k);
      }
    }
  } else {
    r.kp = gather_kp;
    r.lda = r.kp;
    for (index_t t = 0; t < r.kp / step; ++t) r.a_off.push_back(t * step);
    for (index_t u = 0; with_kmap && u < r.kp; ++u) {  // gathered rows: (fy, fx, c)
      std::int32_t k = -1;
      if (u < taps * Cg) {
        const index_t tap = u / Cg, c = u % Cg;
        k = std::int32_t(c * taps + tap);
      }
      r.kmap.push_back(k);
    }
  }
  r.slices = r.kp / step;
  if (image) r.image_bytes = std::size_t(r.Hp * r.Wp * p.C + 32 * r.lda + 4 * kI8KStepMax);
  return r;
}

// The padded copy of one NHWC image: border bytes = zp.
void pad_image(const Conv2dParams& p, const RowsPlan& r, const std::uint8_t* src, int zp,
               std::uint8_t* dst) {
  const index_t row = r.Wp * p.C, left = p.pad_w * p.C, width = p.W * p.C;
  for (index_t y = 0; y < r.Hp; ++y) {
    std::uint8_t* d = dst + y * row;
    const index_t iy = y - p.pad_h;
    if (iy < 0 || iy >= p.H) {
      std::memset(d, zp, std::size_t(row));
      continue;
    }
    std::memset(d, zp, std::size_t(left));
    std::memcpy(d + left, src + iy * width, std::size_t(width));
    std::memset(d + left + width, zp, std::size_t(row - left - width));
  }
  // the slack: read by the tiles' rows past the last pixel (their sums are dropped)
  std::memset(dst + r.Hp * row, zp, r.image_bytes - std::size_t(r.Hp * row));
}

// Gathered patch rows of m pixels j0 .. j0 + m - 1 (group g) from the padded image. Runs of
// contiguous bytes (a filter row Fw C with unit dilation and one group, else a tap's Cg) are
// copied in 16-byte pieces: a piece may run past its run, into bytes the next run writes
// afterwards (or the next row: the buffer has a piece of slack), and may read past it, inside
// the image's slack. A row's depths past its patch meet zero weights, so they only need to be
// defined: where the last piece does not reach the row's end they are zeroed, and so are the
// rows past m (read by AMX only; their sums are dropped).
void gather_rows(const Conv2dParams& p, const RowsPlan& r, const std::uint8_t* img, index_t g,
                 index_t j0, int m, std::uint8_t* rows) {
  const index_t run = r.run, runs = r.runs, pieces = ceil_div(run, 16);
  const index_t written = (runs - 1) * run + 16 * pieces;  // bytes the pieces define
  const std::int64_t* off = r.run_off.data();
  index_t oy = j0 / p.Wo, ox = j0 % p.Wo;
  for (int i = 0; i < m; ++i) {
    std::uint8_t* row = rows + std::size_t(i) * r.kp;
    const std::uint8_t* origin =
        img + ((oy * p.stride_h) * r.Wp + ox * p.stride_w) * p.C + g * r.Cg;
    if (pieces == 1) {  // short runs (the 3-channel first layer: 3 runs of 9 bytes)
      for (index_t s = 0; s < runs; ++s) std::memcpy(row + s * run, origin + off[s], 16);
    } else {
      for (index_t s = 0; s < runs; ++s) {
        for (index_t u = 0; u < pieces; ++u) {
          std::memcpy(row + s * run + 16 * u, origin + off[s] + 16 * u, 16);
        }
      }
    }
    if (written < r.kp) std::memset(row + written, 0, std::size_t(r.kp - written));
    if (++ox == p.Wo) {
      ox = 0;
      ++oy;
    }
  }
  if (m < 32) std::memset(rows + std::size_t(m) * r.kp, 0, std::size_t(32 - m) * r.kp);
}

}  // namespace

Int8RowsLayout conv2d_int8_rows_layout(const Conv2dParams& p) {
  const RowsPlan r = make_plan(p);
  return {std::size_t(p.groups) * i8_rows_packed_bytes(p.K / p.groups, r.kp), r.direct,
          int(r.step)};
}

void conv2d_int8_rows_pack(const Conv2dParams& p, const std::int8_t* wq, std::int8_t* packed) {
  const RowsPlan r = make_plan(p, true);
  const index_t G = p.groups, Kg = p.K / G, per_k = r.Cg * p.Fh * p.Fw;
  const std::size_t per = i8_rows_packed_bytes(Kg, r.kp);
  for (index_t g = 0; g < G; ++g) {
    i8_rows_pack(wq + g * Kg * per_k, per_k, Kg, r.kmap.data(), r.kp, packed + g * per);
  }
}

void conv2d_forward_int8_rows(const Conv2dParams& p, const std::uint8_t* src,
                              const std::int8_t* packed, const I8RowsScales& s, std::uint8_t* yq,
                              float* yf, const Pool2dParams* pool) {
  if ((yq == nullptr) == (yf == nullptr) || (yq != nullptr) != (s.y_scale > 0.0f)) {
    throw_invalid("conv2d_forward_int8_rows: one output, uint8 (requantized) or fp32");
  }
  if (p.C / p.groups * p.Fh * p.Fw > kI8MaxK) {
    throw_invalid("conv2d_forward_int8_rows: C / groups * Fh * Fw > ", kI8MaxK);
  }
  const RowsPlan r = make_plan(p);
  const index_t G = p.groups, Kg = p.K / G, HWo = p.Ho * p.Wo, mr = i8_rows_mr();
  const std::size_t per = i8_rows_packed_bytes(Kg, r.kp);
  // the epilogue's constants, from every group's column sums
  std::vector<std::int32_t> sums(std::size_t(p.K));
  for (index_t g = 0; g < G; ++g) {
    const std::int32_t* from = i8_rows_col_sums(packed + g * per, Kg, r.kp);
    std::copy(from, from + Kg, sums.begin() + g * Kg);
  }
  const I8RowsQuant q(p.K, sums.data(), s);
  const index_t in_image = p.H * p.W * p.C;
  const index_t pooled = pool ? pool_out_h(*pool) * pool_out_w(*pool) : 0;
  const index_t out_image = pool ? pooled * p.K : HWo * p.K;
  const int threads = get_num_threads();
  // blocks of an image: direct, per output row in equal pieces of at most mr pixels (16 as
  // 8 + 8 on VNNI, not 14 + 2: 2 rows are too few accumulator chains to hide VPDPBUSD's
  // latency); gather, mr pixels of the flattened output
  const index_t row_pieces = ceil_div(p.Wo, mr), piece = ceil_div(p.Wo, row_pieces);
  const index_t blocks = r.direct ? p.Ho * row_pieces : ceil_div(HWo, mr);
  const index_t lds = ceil_div(Kg, kI8Nr) * kI8Nr;
  // one block of an image (its padded copy img) into the image's unpooled output oq / of
  auto block = [&](const std::uint8_t* img, index_t b, std::uint8_t* oq, float* of) {
    float* ws = thread_workspace(5, std::size_t(32) * lds + std::size_t(8) * r.kp + 80);
    std::int32_t* strip = reinterpret_cast<std::int32_t*>(align_to_line(ws));
    std::uint8_t* rows = reinterpret_cast<std::uint8_t*>(strip + 32 * lds);
    index_t j0;
    int m;
    if (r.direct) {
      const index_t oy = b / row_pieces, ox0 = (b % row_pieces) * piece;
      j0 = oy * p.Wo + ox0;
      m = int(std::min<index_t>(piece, p.Wo - ox0));
    } else {
      j0 = b * mr;
      m = int(std::min<index_t>(mr, HWo - j0));
    }
    for (index_t g = 0; g < G; ++g) {
      const std::uint8_t* a;
      if (r.direct) {
        const index_t oy = j0 / p.Wo, ox = j0 % p.Wo;
        a = img + ((oy * p.stride_h) * r.Wp + ox * p.stride_w) * p.C + g * r.Cg;
      } else {
        gather_rows(p, r, img, g, j0, m, rows);
        a = rows;
      }
      I8RowsOut out;
      if (oq) {
        out.q = oq + j0 * p.K + g * Kg;
        out.ldy = p.K;
      } else {
        out.f = of + g * Kg * HWo + j0;
        out.ldy = 1;
        out.col_stride = HWo;
      }
      i8_rows_block(m, Kg, r.slices, a, r.lda, r.a_off.data(), packed + g * per, q.at(g * Kg), out,
                    strip);
    }
  };
  // Image n: its padded copy (the calling thread's slot 4), its blocks on this thread or
  // shared by all, into its output in place or, for the pooling, into the calling thread's
  // slot 3 and pooled from there while in cache.
  auto image = [&](index_t n, bool share) {
    std::uint8_t* img =
        reinterpret_cast<std::uint8_t*>(thread_workspace(4, r.image_bytes / 4 + 16));
    pad_image(p, r, src + n * in_image, s.x_zp, img);
    std::uint8_t* oq = yq ? yq + n * out_image : nullptr;
    float* of = yf ? yf + n * out_image : nullptr;
    if (pool) {
      float* ws = thread_workspace(3, std::size_t(HWo * p.K) * (yq ? 1 : 4) / 4 + 16);
      oq = yq ? reinterpret_cast<std::uint8_t*>(ws) : nullptr;
      of = yf ? ws : nullptr;
    }
    auto span = [&](index_t begin, index_t end) {
      i8_rows_begin();
      for (index_t b = begin; b < end; ++b) block(img, b, oq, of);
      i8_rows_end();
    };
    if (share) {
      parallel_ranges(blocks, 1, span);
    } else {
      span(0, blocks);
    }
    if (pool && yq) max_pool2d_nhwc_u8(*pool, 1, oq, yq + n * out_image);
    if (pool && yf) max_pool2d_forward(*pool, of, yf + n * out_image, nullptr);
  };
  // At least as many images as threads: one image per thread at a time; else the threads
  // share each image's blocks.
  if (p.N >= threads && threads > 1) {
    parallel_for(threads, p.N, [&](index_t n) { image(n, false); });
  } else {
    for (index_t n = 0; n < p.N; ++n) image(n, true);
  }
}

}  // namespace cnnkit
