// The int8 row engine: the activations are the rows (pixels of an NHWC image, samples of a
// batch), uint8, read where they lie; the weights are int8 panels packed once.
//
//   sum[i][j] = sum_p x[i][p] * w[j][p]                            exact in int32
//   v[i][j]   = fma(float(sum - x_zp * colsum[j]), mult[j], add[j])   (add: bias, + y_zp)
//   y[i][j]   = nearbyint(clamp(v, relu ? y_zp : 0, 255))   (uint8 out)  or v, ReLU (fp32)
//
// A block is at most i8r_mr rows (an AMX block of 32 pixels, 14 on VNNI) against every
// 32-column panel of the weights, the whole depth in one micro-kernel call, so the sums leave
// the accumulators once, into the block's int32 strip, and the epilogue writes the outputs
// straight from there: the next layer's uint8 input (NHWC: a row per pixel, every channel
// contiguous) or fp32. No packing of the activations at all: this is what makes int8 layers
// chain at the matrix engine's speed (the engine it replaced, weights as rows and fp32
// patches packed and quantized per call, ran cifar_cnn at a quarter of this speed).
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

namespace {
constexpr index_t panel_bytes(index_t kp) { return kp * kI8Nr; }
}  // namespace

const char* i8_path() { return kernels().gemm.i8_path; }

void quantize_u8(const float* src, index_t n, float inv_scale, int zero_point, std::uint8_t* dst) {
  parallel_ranges(n, 1 << 16, [&](index_t begin, index_t end) {
    for (index_t i = begin; i < end; ++i) dst[i] = quantize_u8_ref(src[i], inv_scale, zero_point);
  });
}

std::size_t i8_rows_packed_bytes(index_t N, index_t kp) {
  return std::size_t(ceil_div(N, kI8Nr)) * std::size_t(panel_bytes(kp)) +
         std::size_t(N) * sizeof(std::int32_t);
}

const std::int32_t* i8_rows_col_sums(const std::int8_t* packed, index_t N, index_t kp) {
  return reinterpret_cast<const std::int32_t*>(packed + ceil_div(N, kI8Nr) * panel_bytes(kp));
}

void i8_rows_pack(const std::int8_t* w, index_t ldw, index_t N, const std::int32_t* kmap,
                  index_t kp, std::int8_t* packed) {
  if (kp % i8_rows_kstep() != 0) {
    throw_invalid("i8_rows_pack: kp ", kp, " is not a multiple of ", i8_rows_kstep());
  }
  std::int32_t* sums = const_cast<std::int32_t*>(i8_rows_col_sums(packed, N, kp));
  for (index_t j0 = 0; j0 < N; j0 += kI8Nr) {
    std::int8_t* panel = packed + (j0 / kI8Nr) * panel_bytes(kp);
    for (index_t j = 0; j < kI8Nr; ++j) {
      const bool live = j0 + j < N;
      std::int32_t s = 0;
      for (index_t p = 0; p < kp; ++p) {
        const std::int8_t v = live && kmap[p] >= 0 ? w[(j0 + j) * ldw + kmap[p]] : 0;
        panel[(p / 4) * 4 * kI8Nr + j * 4 + p % 4] = v;
        s += v;
      }
      if (live) sums[j0 + j] = s;
    }
  }
}

I8RowsQuant::I8RowsQuant(index_t N, const std::int32_t* col_sums, const I8RowsScales& s)
    : comp(std::size_t(N)),
      mult(std::size_t(N)),
      add(std::size_t(N)),
      y_zp(s.y_zp),
      relu(s.relu),
      to_u8(s.y_scale > 0.0f) {
  const double out = to_u8 ? double(s.y_scale) : 1.0;
  for (index_t j = 0; j < N; ++j) {
    comp[j] = -s.x_zp * col_sums[j];  // |x_zp * colsum| <= 255 * 127 * 65536 < 2^31
    mult[j] = float(double(s.x_scale) * double(s.w_scale[j]) / out);
    add[j] = float((s.bias ? double(s.bias[j]) / out : 0.0) + (to_u8 ? s.y_zp : 0));
  }
}

index_t linear_int8_rows_depth(index_t K) {
  const index_t step = i8_rows_kstep();
  return std::max<index_t>(step, ceil_div(K, step) * step);
}

int i8_rows_mr() { return kernels().gemm.i8r_mr; }

int i8_rows_kstep() { return kernels().gemm.i8_kstep; }

void i8_rows_begin() {
  if (kernels().gemm.bf16_begin) kernels().gemm.bf16_begin();
}

void i8_rows_end() {
  if (kernels().gemm.bf16_end) kernels().gemm.bf16_end();
}

void i8_rows_block(int m, index_t N, index_t slices, const std::uint8_t* a, index_t lda,
                   const std::int64_t* a_off, const std::int8_t* packed, const I8RowsEpi& q,
                   const I8RowsOut& out, std::int32_t* strip) {
  const GemmKernels& kt = kernels().gemm;
  const index_t kp = slices * kt.i8_kstep, lds = ceil_div(N, kI8Nr) * kI8Nr;
  for (index_t j0 = 0; j0 < N; j0 += kI8Nr) {
    kt.u8s8_ukr(m, int(std::min<index_t>(kI8Nr, N - j0)), slices, a, lda, a_off,
                packed + (j0 / kI8Nr) * panel_bytes(kp), strip + j0, lds);
  }
  if (q.to_u8) {
    kt.i8_requantize(strip, lds, m, int(N), q.comp, q.mult, q.add, q.y_zp, q.relu, out.q, out.ldy);
  } else {
    kt.i8_dequantize_cols(strip, lds, m, int(N), q.comp, q.mult, q.add, q.relu, out.f, out.ldy,
                          out.col_stride);
  }
}

void linear_int8_rows(index_t M, index_t N, index_t K, const std::uint8_t* x,
                      const std::int8_t* packed, const I8RowsScales& s, std::uint8_t* yq, float* yf,
                      int threads) {
  if (M <= 0 || N <= 0) return;
  if (K > kI8MaxK) throw_invalid("linear_int8_rows: K ", K, " > ", kI8MaxK);
  const index_t kp = linear_int8_rows_depth(K);
  const I8RowsQuant q(N, i8_rows_col_sums(packed, N, kp), s);
  const index_t step = i8_rows_kstep(), slices = kp / step, mr = i8_rows_mr();
  const index_t lds = ceil_div(N, kI8Nr) * kI8Nr;
  std::vector<std::int64_t> a_off(static_cast<std::size_t>(slices));
  for (index_t t = 0; t < slices; ++t) a_off[t] = t * step;
  // Row blocks of equal size (128 rows on VNNI: 10 of 12-13, not 9 of 14 and one of 2, which
  // ran at a fraction of the rate and left one thread 12 rows more). Threads: over the row
  // blocks and, when there are fewer blocks than threads (small batches: the weights
  // dominate), over the 32-column panels too (each thread its own panels).
  const index_t row_blocks = ceil_div(M, mr), piece = ceil_div(M, row_blocks);
  const index_t col_panels = ceil_div(N, kI8Nr);
  const int tm = int(std::max<index_t>(1, std::min<index_t>(threads, row_blocks)));
  const int tn = int(std::max<index_t>(1, std::min<index_t>(threads / tm, col_panels)));
  // A thread's panels in chunks of about a quarter of a core's L2, each chunk against all the
  // thread's row blocks in turn: the chunk then comes from memory once per call and from L2
  // after that. (Block by block over all panels, a 4096-deep layer streamed its whole weight
  // matrix from L3 for every block of rows: 128 KB per panel.)
  const index_t l2 = index_t(cpu_features().l2_bytes);
  const index_t chunk = std::max<index_t>(1, l2 / 4 / std::max<index_t>(1, panel_bytes(kp)));
  // Rows read in place are K bytes apart. Where K is a multiple of 2 KiB, the 14 rows a VNNI
  // block broadcasts from fall into one or two of L1's sets (8 ways): every quad missed L1
  // (FC 4096 -> 512, batch 128, 2 Zen 4 threads: 156 GMAC/s at K = 4096 against 222 at 4032).
  // Those rows, rows whose depth is not a multiple of the slice, and the last rows (whose
  // 32-row reads would pass the end of x) are copied into a stage, ldst apart: the blocks of
  // a group (at most a quarter of L2 of rows) once per call, before the group's chunks.
  const bool alias = K % 2048 == 0, ragged = K % step != 0;
  const index_t ldst = kp % 2048 == 0 ? kp + 64 : kp;
  const index_t group = std::max<index_t>(1, l2 / 4 / (piece * ldst));
  parallel_team(tm * tn, [&](int t, int) {
    index_t b_begin, b_end, p_begin, p_end;
    balanced_range(row_blocks, tm, t % tm, &b_begin, &b_end);
    balanced_range(col_panels, tn, t / tm, &p_begin, &p_end);
    if (b_begin >= b_end || p_begin >= p_end) return;
    // the strip, then the stage: a group's rows and 32 rows of zeros after them
    const index_t stage_rows = std::min<index_t>(group, b_end - b_begin) * piece + 32;
    float* ws =
        thread_workspace(5, std::size_t(32) * lds + std::size_t(stage_rows * ldst) / 4 + 64);
    std::int32_t* strip = reinterpret_cast<std::int32_t*>(align_to_line(ws));
    std::uint8_t* stage = reinterpret_cast<std::uint8_t*>(strip + 32 * lds);
    i8_rows_begin();
    for (index_t g0 = b_begin; g0 < b_end; g0 += group) {
      const index_t g1 = std::min(b_end, g0 + group);
      const index_t r_lo = g0 * piece, r_hi = std::min(M, g1 * piece);
      const bool staged = alias || ragged || (g1 - 1) * piece + 32 > M;
      if (staged) {
        for (index_t r = r_lo; r < r_hi + 32; ++r) {
          std::uint8_t* row = stage + (r - r_lo) * ldst;
          const bool live = r < r_hi;
          if (live) std::memcpy(row, x + r * K, std::size_t(K));
          std::memset(row + (live ? K : 0), 0, std::size_t(live ? kp - K : kp));
        }
      }
      for (index_t c0 = p_begin; c0 < p_end; c0 += chunk) {
        // this chunk's channels: their epilogue constants and packed panels
        const index_t c1 = std::min(p_end, c0 + chunk);
        const index_t n0 = c0 * kI8Nr, nn = std::min<index_t>(N, c1 * kI8Nr) - n0;
        const I8RowsEpi part = q.at(n0);
        const std::int8_t* panels = packed + c0 * panel_bytes(kp);
        for (index_t b = g0; b < g1; ++b) {
          const index_t r0 = b * piece;
          const int m = int(std::min<index_t>(piece, M - r0));
          const std::uint8_t* a = staged ? stage + (r0 - r_lo) * ldst : x + r0 * K;
          I8RowsOut out;
          out.ldy = N;
          if (yq) out.q = yq + r0 * N + n0;
          if (yf) out.f = yf + r0 * N + n0;
          i8_rows_block(m, nn, slices, a, staged ? ldst : K, a_off.data(), panels, part, out,
                        strip);
        }
      }
    }
    i8_rows_end();
  });
}

void quantize_nchw_to_nhwc_u8(const float* src, index_t N, index_t C, index_t HW, float inv_scale,
                              int zero_point, std::uint8_t* dst) {
  const GemmKernels& kt = kernels().gemm;
  const index_t chunk = 256, per_image = ceil_div(HW, chunk);
  parallel_ranges(N * per_image, 4, [&](index_t begin, index_t end) {
    for (index_t it = begin; it < end; ++it) {
      const index_t n = it / per_image, i0 = (it % per_image) * chunk;
      kt.quantize_u8_nhwc(src + n * C * HW + i0, HW, C, std::min(chunk, HW - i0), inv_scale,
                          zero_point, dst + (n * HW + i0) * C);
    }
  });
}

}  // namespace cnnkit
