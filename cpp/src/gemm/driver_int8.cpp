// The int8 GEMM engine: int32 sums of int8 A (weights) x uint8 B (activations, or fp32 ones
// quantized while packing), raw or through the dequantizing epilogue.
//
//   sum[i][j] = sum_k A[i][k] * B[k][j]                 exact in int32 for K <= kI8MaxK
//   y[i][j]   = float(sum[i][j] - zp_b * row_sums[i]) * scale[i] + bias[i], ReLU
//
// A (few rows) is packed once for all threads, in K blocks of kc values (a multiple of 64) and
// panels of mr rows; the N columns are split over the threads in panels of 32 (and the rows
// too when there are fewer column panels than threads). Each thread
// packs one 32-column B panel of one K block at a time (its own workspace, L1/L2-sized;
// fp32 operands are packed in fp32 first unless they can be read in place, then quantized)
// and runs it against every A panel, so B is read once. With the epilogue the sums of a
// 32-column strip (all M rows) stay in the thread's workspace until K is done. Integer sums
// are exact: the result does not depend on the split, the thread count or the kernel path.
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {}  // namespace

const char* i8_path() { return kernels().gemm.i8_path; }

void quantize_u8(const float* src, index_t n, float inv_scale, int zero_point, std::uint8_t* dst) {
  parallel_ranges(n, 1 << 16, [&](index_t begin, index_t end) {
    for (index_t i = begin; i < end; ++i) dst[i] = quantize_u8_ref(src[i], inv_scale, zero_point);
  });
}

namespace {

// The K blocks and A panels of an M x K int8 GEMM for the active table: near-equal K blocks
// (K = 2304 with i8_kc 1024: 3 x 768, not 1024 + 1024 + 256; measured +5-10 % on the VNNI
// path), each a multiple of 64 but the last; A packed as, for each K block, every row panel
// (mr x kp_block bytes), the blocks one after another.
struct I8Blocking {
  index_t M, K, mr, nkb, kc, kp_all, row_panels;
  I8Blocking(index_t M_, index_t K_, const GemmKernels& kt) : M(M_), K(K_), mr(kt.i8_mr) {
    nkb = std::max<index_t>(1, ceil_div(K, kt.i8_kc));
    kc = std::max<index_t>(kI8KStep, ceil_div(ceil_div(K, nkb), kI8KStep) * kI8KStep);
    kp_all = K <= 0 ? 0 : (nkb - 1) * kc + ceil_div(K - (nkb - 1) * kc, kI8KStep) * kI8KStep;
    row_panels = ceil_div(M, mr);
  }
  void block(index_t kb, index_t* k0, index_t* klen, index_t* kp) const {
    *k0 = kb * kc;
    *klen = std::max<index_t>(0, std::min(kc, K - *k0));
    *kp = ceil_div(*klen, kI8KStep) * kI8KStep;
  }
  std::size_t bytes() const { return std::size_t(row_panels) * mr * std::size_t(kp_all); }
  std::size_t panel(index_t kb, index_t pi) const {  // block kb starts after kb full blocks
    return std::size_t(row_panels) * mr * std::size_t(kb * kc) +
           std::size_t(pi) * mr * std::size_t(std::min(kc, kp_all - kb * kc));
  }
};

void pack_a(const I8Blocking& g, const GemmKernels& kt, const std::int8_t* a, index_t lda,
            std::int8_t* dst) {
  if (g.K <= 0) return;
  parallel_ranges(g.row_panels * g.nkb, 1, [&](index_t begin, index_t end) {
    for (index_t it = begin; it < end; ++it) {
      const index_t kb = it / g.row_panels, pi = it % g.row_panels;
      index_t k0, klen, kp;
      g.block(kb, &k0, &klen, &kp);
      const index_t i0 = pi * g.mr;
      kt.pack_i8_a(a + i0 * lda + k0, lda, int(std::min<index_t>(g.mr, g.M - i0)), int(klen),
                   int(g.mr), dst + g.panel(kb, pi));
    }
  });
}

}  // namespace

std::size_t gemm_s8u8_packed_bytes(index_t M, index_t K) {
  return I8Blocking(M, K, kernels().gemm).bytes();
}

void gemm_s8u8_pack_a(index_t M, index_t K, const std::int8_t* a, index_t lda,
                      std::int8_t* packed) {
  const GemmKernels& kt = kernels().gemm;
  pack_a(I8Blocking(M, K, kt), kt, a, lda, packed);
}

void gemm_s8u8(index_t M, index_t N, index_t K, const std::int8_t* a, index_t lda,
               const I8OperandB& b, const I8Output& out, int threads, const std::int8_t* packed_a) {
  if (M <= 0 || N <= 0) return;
  if (K > kI8MaxK)
    throw_invalid("gemm_s8u8: K ", K, " > ", kI8MaxK, " (int32 sums could overflow)");
  if ((b.u8 == nullptr) == (b.f32 == nullptr)) throw_invalid("gemm_s8u8: B must be u8 or f32");
  if ((out.c == nullptr) == (out.y == nullptr)) throw_invalid("gemm_s8u8: one output: c or y");
  if (out.y && !out.scale) throw_invalid("gemm_s8u8: the epilogue needs the row scales");
  const int zp_b = b.f32 ? b.zero_point : 0;
  const GemmKernels& kt = kernels().gemm;
  const I8Blocking g(M, K, kt);
  const index_t mr = g.mr, nkb = g.nkb, kc = g.kc, row_panels = g.row_panels;
  const std::int8_t* apack = packed_a;
  if (!apack) {
    std::int8_t* dst =
        reinterpret_cast<std::int8_t*>(align_to_line(thread_workspace(0, g.bytes() / 4 + 32)));
    pack_a(g, kt, a, lda, dst);
    apack = dst;
  }
  auto a_panel = [&](index_t kb, index_t pi) { return apack + g.panel(kb, pi); };
  auto block_of = [&](index_t kb, index_t* k0, index_t* klen, index_t* kp) {
    g.block(kb, k0, klen, kp);
  };
  // Threads: over the column panels, and over the row panels as well when there are fewer
  // column panels than threads (batch-1 linear layers, small images): tm x tn.
  const index_t col_panels = ceil_div(N, kI8Nr);
  const int tn = int(std::max<index_t>(1, std::min<index_t>(std::max(threads, 1), col_panels)));
  const int tm = int(
      std::max<index_t>(1, std::min<index_t>(std::max(threads, 1) / tn, ceil_div(row_panels, 2))));
  parallel_team(tm * tn, [&](int t, int) {
    index_t p_begin, p_end, r_begin, r_end;
    balanced_range(col_panels, tn, t % tn, &p_begin, &p_end);
    balanced_range(row_panels, tm, t / tn, &r_begin, &r_end);
    if (p_begin >= p_end || r_begin >= r_end) return;
    const index_t row0 = r_begin * mr, rows = std::min<index_t>(M, r_end * mr) - row0;
    // this thread's B panel (bytes), fp32 staging panel and, with the epilogue, its strip
    const std::size_t b_floats = std::size_t(kc) * kI8Nr / 4 + 16;
    const std::size_t f_floats = b.f32 ? std::size_t(kc) * kI8Nr + 16 : 0;
    const std::size_t s_floats = out.y ? std::size_t(row_panels) * mr * kI8Nr + 16 : 0;
    float* ws = thread_workspace(1, b_floats + f_floats + s_floats + 48);
    std::uint8_t* bpack = reinterpret_cast<std::uint8_t*>(align_to_line(ws));
    float* fpanel = align_to_line(ws + b_floats + 16);
    std::int32_t* strip = reinterpret_cast<std::int32_t*>(align_to_line(fpanel + f_floats + 16));
    if (kt.bf16_begin) kt.bf16_begin();  // AMX: the tile configuration (int8 uses its shapes)
    for (index_t cp = p_begin; cp < p_end; ++cp) {
      const index_t j0 = cp * kI8Nr;
      const int nn = int(std::min<index_t>(kI8Nr, N - j0));
      std::int32_t* c = out.y ? strip : out.c + j0;
      const index_t ldc = out.y ? kI8Nr : out.ldc;
      if (K <= 0) {
        for (index_t i = row0; i < row0 + rows; ++i) {
          std::memset(c + i * ldc, 0, sizeof(std::int32_t) * nn);
        }
      }
      for (index_t kb = 0; K > 0 && kb < nkb; ++kb) {
        index_t k0, klen, kp;
        block_of(kb, &k0, &klen, &kp);
        if (b.u8) {
          kt.pack_u8_b(b.u8 + k0 * b.ld + j0, b.ld, int(klen), nn, bpack);
        } else {
          index_t ld = 0;
          const float* src = b.f32->direct(k0, j0, &ld);
          if (!src) {
            b.f32->pack(k0, int(klen), j0, nn, kI8Nr, fpanel);
            src = fpanel;
            ld = kI8Nr;
          }
          kt.quantize_pack_b(src, ld, int(klen), nn, b.inv_scale, b.zero_point, bpack);
        }
        for (index_t pi = r_begin; pi < r_end; ++pi) {
          const index_t i0 = pi * mr;
          kt.i8_ukr(int(std::min<index_t>(mr, M - i0)), nn, kp, a_panel(kb, pi), bpack,
                    c + i0 * ldc, ldc, kb > 0);
        }
      }
      if (out.y) {
        kt.i8_dequantize(strip + row0 * kI8Nr, kI8Nr, int(rows), nn,
                         out.row_sums ? out.row_sums + row0 : nullptr, zp_b, out.scale + row0,
                         out.bias ? out.bias + row0 : nullptr, out.relu,
                         out.y + row0 * out.ldy + j0, out.ldy);
      }
    }
    if (kt.bf16_end) kt.bf16_end();
  });
}

}  // namespace cnnkit
