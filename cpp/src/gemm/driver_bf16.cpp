// The GEMM engine in bf16: the loops of driver.cpp around the bf16 micro-kernel.
//
//   C[M x N] = epilogue(bf16(op(A)) @ bf16(op(B))), products summed in fp32
//
// Blocked for AMX, where the tile unit outruns every cache level below L1 and C traffic costs
// more than anything else (the loops are described at Worker below): K blocks of kc (256 on
// AMX) whose A slices stay in L1, a B chunk of all of K per thread in L2, and a row of C
// blocks that stays in L1/L2 across the K blocks, so C goes to memory once. The bf16 panels
// of gemm_kernels.hpp: A panels of mr rows in 32-deep slices, B panels of 32 columns in k
// pairs, K padded with zeros to a multiple of 32 (zeros add nothing: 0 * 0 = 0). The operands
// round to bf16 as they pack (pack_bf16); the kernels never see fp32 operands. K blocks are
// multiples of 32 except the last, so only the end of K is padded. Threads as in fp32; each
// thread calls the kernel's begin/end hooks around its share (AMX: tile configuration).
#include <algorithm>
#include <cstring>

#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {

// bf16 runs ~8x faster per FLOP than fp32 on AMX: a thread needs more work to pay its wake-up.
constexpr double kMinFlopsPerThread = 8.0e6;
constexpr index_t kBChunkValues = 512 * 1024;  // per-thread packed B chunk (all of K): 1 MB
constexpr int kBPackPanels = 4;                // default B packer: fp32 panels per round

struct Plan {
  int mr = 1;
  Bf16KBlocks kb;
  Bf16MBlocks mb;
  index_t kp_all = 0;  // sum of the K blocks' padded depths
  index_t nb_max = 0;  // per-thread B chunk width (multiple of 32)
  int tm = 1, tn = 1;
  index_t ld_row = 0;  // the per-thread C row buffer: mr x ld_row floats (row kernels only)
  std::size_t a_floats = 0, b_floats = 0, row_floats = 0, scratch_floats = 0;
};

Plan make_plan(const GemmKernels& kt, index_t M, index_t N, index_t K, int threads) {
  Plan p;
  p.mr = kt.bf16_mr;
  p.kb = bf16_k_blocks(K, kt);
  p.mb = bf16_m_blocks(M, K, kt);
  p.kp_all = (p.kb.nkb - 1) * p.kb.kcb + round_up_k32(K - (p.kb.nkb - 1) * p.kb.kcb);
  const index_t row_panels = ceil_div(p.mb.mcb, p.mr);
  const index_t col_panels = ceil_div(N, kBf16Nr);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  index_t nt = std::max(1, threads);
  nt = std::min<index_t>(nt, std::max<index_t>(1, index_t(flops / kMinFlopsPerThread)));
  nt = std::min<index_t>(nt, std::max<index_t>(1, row_panels * col_panels));
  gemm_thread_grid(row_panels, col_panels, nt, p.mr, kBf16Nr, &p.tm, &p.tn);
  const index_t cols_per_thread = ceil_div(col_panels, p.tn) * kBf16Nr;
  const index_t nb_cap = std::max<index_t>(kBf16Nr, kBChunkValues / p.kp_all / kBf16Nr * kBf16Nr);
  const index_t chunks = std::max<index_t>(1, ceil_div(cols_per_thread, nb_cap));
  p.nb_max = ceil_div(ceil_div(cols_per_thread, chunks), kBf16Nr) * kBf16Nr;
  // Sizes in floats (two bf16 values each), rounded to whole cache lines.
  auto floats_of = [](index_t values) { return std::size_t(ceil_div(values, 32) * 16); };
  p.a_floats = floats_of(ceil_div(p.mb.mcb, p.mr) * p.mr * p.kp_all);
  p.b_floats = floats_of(p.nb_max * p.kp_all);
  // + 16: a row stride off multiples of 4 KB (rows 4 KB apart share L1 sets)
  p.ld_row = p.nb_max + 16;
  p.row_floats = kt.bf16_row ? std::size_t(p.mr * p.ld_row) : 0;
  p.scratch_floats =
      std::max(bf16_a_scratch_floats(p.mr, int(p.kb.kcb)), bf16_b_scratch_floats(int(p.kb.kcb)));
  return p;
}

// The loops, per M block: its A panels of every K block packed once and shared (or read from
// a PrepackedA); per thread, a chunk of B columns of every K block packed into a buffer that
// stays in L2 (or read from a PrepackedB); then for each A panel of the thread's rows, K block
// by K block, one kernel call for the whole row of the chunk's B panels. The 32-deep slices of
// an A panel's K block (8 KB for AMX's 32 rows x 256) stay in L1 across that row, the chunk's
// B panels stream from L2, and the row of C blocks (mr x nb) stays in L1/L2 from one K block
// to the next, so C travels to memory once.
struct Worker {
  const Plan& p;
  const GemmKernels& kt;
  index_t M, N, K;
  const GemmOperandA& a;
  const GemmOperandB& b;
  const GemmOutput& out;
  std::uint16_t* a_buf;  // shared packed A block (all K blocks)
  float* per_thread;     // nt x (B chunk + scratch)

  // C[m x n] for one A panel and n columns of B panels (all of them full 32-column panels but
  // the last): the row kernel where the ISA has one, else block by block.
  void row(int m, int n, index_t kp, const std::uint16_t* ap, const std::uint16_t* bp, float* c,
           index_t ldc, const UkrEpilogue& ep) const {
    if (kt.bf16_row) {
      kt.bf16_row(m, n, kp, ap, bp, c, ldc, ep);
      return;
    }
    UkrEpilogue e = ep;
    for (int jj = 0; jj < n; jj += kBf16Nr) {
      e.bias_col = ep.bias_col ? ep.bias_col + jj : nullptr;
      kt.bf16_ukr(m, std::min(kBf16Nr, n - jj), kp, ap, bp + (jj / kBf16Nr) * kp * kBf16Nr, c + jj,
                  ldc, e);
    }
  }

  void run(int tid, int nt) const {
    if (kt.bf16_begin) kt.bf16_begin();
    const int tr = tid / p.tn, tc = tid % p.tn;
    index_t cp0, cpn;
    balanced_part(ceil_div(N, kBf16Nr), p.tn, tc, &cp0, &cpn);
    const index_t j_begin = std::min(N, cp0 * kBf16Nr);
    const index_t j_end = std::min(N, (cp0 + cpn) * kBf16Nr);
    float* mine = per_thread + std::size_t(tid) * (p.b_floats + p.row_floats + p.scratch_floats);
    auto* b_buf = reinterpret_cast<std::uint16_t*>(mine);
    float* row_buf = mine + p.b_floats;
    float* scratch = row_buf + p.row_floats;
    // C straight from the tiles where its rows are whole cache lines not 4 KB apart and every
    // panel fills whole tile rows; else the sums go to the row buffer (whole tiles fit there)
    // and out once, after the last K block.
    const bool direct = !kt.bf16_row || (reinterpret_cast<std::uintptr_t>(out.c) % 64 == 0 &&
                                         out.ldc % 16 == 0 && out.ldc % 1024 != 0 && M % 16 == 0);
    const index_t nkb = p.kb.nkb, kcb = p.kb.kcb;
    auto kp_of = [&](index_t kb) { return round_up_k32(std::min(kcb, K - kb * kcb)); };
    const bool b_packed = b.packed_panels_bf16(0) != nullptr;  // a PrepackedB: read in place

    for (index_t mb = 0; mb < p.mb.nmb; ++mb) {
      const index_t m0 = mb * p.mb.mcb, mc = std::min(p.mb.mcb, M - m0);
      const index_t npanels = ceil_div(mc, p.mr);
      // K block kb of this M block: panels of mr x kp at a_block(kb) + q * mr * kp.
      const bool a_packed = a.packed_block_bf16(0, mb) != nullptr;
      if (!a_packed) {
        for (index_t it = tid; it < nkb * npanels; it += nt) {
          const index_t kb = it / npanels, q = it % npanels;
          const index_t p0 = kb * kcb, kc = std::min(kcb, K - p0);
          const index_t r0 = q * p.mr, m = std::min<index_t>(p.mr, mc - r0);
          a.pack_bf16(m0 + r0, int(m), p0, int(kc), p.mr,
                      a_buf + npanels * p.mr * p0 + q * p.mr * round_up_k32(kc), scratch);
        }
        if (nt > 1) team_barrier();
      }
      auto a_block = [&](index_t kb) -> const std::uint16_t* {
        return a_packed ? a.packed_block_bf16(kb, mb) : a_buf + npanels * p.mr * kb * kcb;
      };
      index_t q_begin, q_count;
      balanced_part(npanels, p.tm, tr, &q_begin, &q_count);
      for (index_t j0 = j_begin; j0 < j_end; j0 += p.nb_max) {
        const index_t nb = std::min(p.nb_max, j_end - j0), nbp = round_up_k32(nb);
        // K block kb of this chunk: panels of kp x 32 at b_chunk(kb) + q * kp * 32.
        if (!b_packed) {
          for (index_t kb = 0; kb < nkb; ++kb) {
            const index_t p0 = kb * kcb;
            b.pack_bf16(p0, int(std::min(kcb, K - p0)), j0, int(nb), b_buf + nbp * p0, scratch);
          }
        }
        auto b_chunk = [&](index_t kb) -> const std::uint16_t* {
          return b_packed ? b.packed_panels_bf16(kb) + (j0 / kBf16Nr) * kp_of(kb) * kBf16Nr
                          : b_buf + nbp * kb * kcb;
        };
        for (index_t q = q_begin; q < q_begin + q_count; ++q) {
          const index_t r0 = q * p.mr, m = std::min<index_t>(p.mr, mc - r0);
          const index_t i0 = m0 + r0;
          float* c = out.c + i0 * out.ldc + j0;
          for (index_t kb = 0; kb < nkb; ++kb) {
            const index_t kp = kp_of(kb);
            const bool last = kb + 1 == nkb;
            UkrEpilogue ep;
            if (direct) {
              ep.alpha = out.alpha;
              ep.beta = kb == 0 ? out.beta : 1.0f;
              ep.relu = last && out.relu;
              ep.bias_row = last && out.bias_row ? out.bias_row + i0 : nullptr;
              ep.bias_col = last && out.bias_col ? out.bias_col + j0 : nullptr;
            } else {
              ep.beta = kb == 0 ? 0.0f : 1.0f;
              ep.c_padded = true;  // the row buffer has mr rows
            }
            row(int(m), int(nb), kp, a_block(kb) + q * p.mr * kp, b_chunk(kb), direct ? c : row_buf,
                direct ? out.ldc : p.ld_row, ep);
          }
          if (!direct) {
            UkrEpilogue ep;
            ep.alpha = out.alpha;
            ep.relu = out.relu;
            ep.bias_row = out.bias_row ? out.bias_row + i0 : nullptr;
            ep.bias_col = out.bias_col ? out.bias_col + j0 : nullptr;
            kt.bf16_finish(row_buf, p.ld_row, int(m), int(nb), out.beta, ep, c, out.ldc);
          }
        }
      }
      if (nt > 1 && !a_packed) team_barrier();
    }
    if (kt.bf16_end) kt.bf16_end();
  }
};

std::size_t workspace_of(const Plan& p) {
  return p.a_floats + std::size_t(p.tm) * p.tn * (p.b_floats + p.row_floats + p.scratch_floats);
}

}  // namespace

Bf16KBlocks bf16_k_blocks(index_t K, const GemmKernels& kt) {
  Bf16KBlocks r;
  // Blocks of up to 1.5 kc: a K just above kc (3x3 x 32 channels = 288) stays one block.
  r.nkb = std::max<index_t>(1, ceil_div(K, kt.bf16_kc + kt.bf16_kc / 2));
  r.kcb = round_up_k32(ceil_div(std::max<index_t>(K, 1), r.nkb));
  r.nkb = std::max<index_t>(1, ceil_div(K, r.kcb));
  return r;
}

Bf16MBlocks bf16_m_blocks(index_t M, index_t K, const GemmKernels& kt) {
  // At most kGemmMCBf16 rows, and an A block (all of K) of at most kBf16ABlockValues.
  const int mr = kt.bf16_mr;
  const index_t kp_all =
      round_up_k32(std::max<index_t>(K, 1)) + kBf16KStep * bf16_k_blocks(K, kt).nkb;
  const index_t cap =
      std::max<index_t>(mr, std::min<index_t>(kGemmMCBf16, kBf16ABlockValues / kp_all));
  Bf16MBlocks r;
  r.nmb = std::max<index_t>(1, ceil_div(M, cap));
  r.mcb = ceil_div(ceil_div(std::max<index_t>(M, 1), r.nmb), mr) * mr;
  r.nmb = std::max<index_t>(1, ceil_div(M, r.mcb));
  return r;
}

std::size_t bf16_a_scratch_floats(int mr, int kc) {
  // The fp32 panel (kc x m) and its transpose (m x kp).
  return std::size_t(mr) * std::size_t(kc + round_up_k32(kc)) + 16;
}

std::size_t bf16_b_scratch_floats(int kc) { return std::size_t(kc) * kBf16Nr * kBPackPanels + 16; }

void GemmOperandA::pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                             float* scratch) const {
  // fp32 panel scratch[p * m + i], transposed to rows of kp (zeros past kc), then rounded.
  const int kp = int(round_up_k32(kc));
  float* rows = scratch + index_t(kc) * m;
  pack(i0, m, p0, kc, scratch);
  kernels().gemm.transpose(scratch, m, kc, m, rows, kp, kp);
  kernels().gemm.pack_bf16_a(rows, kp, m, kp, mr, dst);
}

void GemmOperandB::pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                             float* scratch) const {
  const GemmKernels& kt = kernels().gemm;
  const index_t panel = round_up_k32(kc) * kBf16Nr;
  for (int q0 = 0; q0 * kBf16Nr < n; q0 += kBPackPanels) {
    const int n0 = q0 * kBf16Nr, nq = std::min(kBPackPanels * kBf16Nr, n - n0);
    pack(p0, kc, j0 + n0, nq, kBf16Nr, scratch);
    for (int q = 0; q * kBf16Nr < nq; ++q) {
      kt.pack_bf16_b(scratch + index_t(q) * kc * kBf16Nr, kBf16Nr, kc,
                     std::min(kBf16Nr, nq - q * kBf16Nr), dst + (q0 + q) * panel);
    }
  }
}

void MatrixOperandA::pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                               float* scratch) const {
  if (trans_) {
    GemmOperandA::pack_bf16(i0, m, p0, kc, mr, dst, scratch);
    return;
  }
  kernels().gemm.pack_bf16_a(a_ + i0 * lda_ + p0, lda_, m, kc, mr, dst);
}

void MatrixOperandB::pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                               float* scratch) const {
  if (trans_) {
    GemmOperandB::pack_bf16(p0, kc, j0, n, dst, scratch);
    return;
  }
  // 32 rows at a time across all the panels: each row is read left to right (a panel's
  // 128 bytes per row, rows a page apart, would leave the hardware prefetcher nothing to
  // follow when N is large).
  const PackBf16B pack_b = kernels().gemm.pack_bf16_b;
  const index_t panel = round_up_k32(kc) * kBf16Nr;
  for (int p = 0; p < kc; p += kBf16KStep) {
    const int rows = std::min(kBf16KStep, kc - p);
    for (int q = 0; q * kBf16Nr < n; ++q) {
      pack_b(b_ + (p0 + p) * ldb_ + j0 + q * kBf16Nr, ldb_, rows,
             std::min(kBf16Nr, n - q * kBf16Nr), dst + q * panel + index_t(p) * kBf16Nr);
    }
  }
}

// PrepackedB: K block kb's panels at kb * kcb * round_up(N, 32) (the last block's panels are
// padded to its own kp), panel q of block kb at + q * kp * 32.
// The panels start at the first cache line of the storage (tile loads that split lines run at
// half speed), so values() holds 32 more.
std::size_t PrepackedB::values(index_t K, index_t N) {
  const Bf16KBlocks kbs = bf16_k_blocks(K, kernels().gemm);
  return std::size_t(kbs.nkb * kbs.kcb) * std::size_t(ceil_div(N, kBf16Nr) * kBf16Nr) + 64;
}

void PrepackedB::pack(index_t K, index_t N, const GemmOperandB& src, std::uint16_t* storage) {
  storage = align_to_line(storage);
  const Bf16KBlocks kbs = bf16_k_blocks(K, kernels().gemm);
  const index_t cols = ceil_div(N, kBf16Nr) * kBf16Nr, panels = cols / kBf16Nr;
  // Threads over (K block, group of 4 panels): a large layer's weights pack at memory speed.
  constexpr index_t kGroup = 4;
  const index_t groups = ceil_div(panels, kGroup), items = kbs.nkb * groups;
  const int nt = threads_for(items * kbs.kcb * kGroup * kBf16Nr, 1 << 16);
  const std::size_t per = bf16_b_scratch_floats(int(kbs.kcb));
  float* ws = thread_workspace(0, per * std::size_t(nt));
  parallel_for(nt, items, [&](index_t it) {
    const index_t kb = it / groups, q0 = (it % groups) * kGroup;
    const index_t p0 = kb * kbs.kcb, kc = std::min(kbs.kcb, K - p0), kp = round_up_k32(kc);
    const index_t j0 = q0 * kBf16Nr, n = std::min(kGroup * kBf16Nr, N - j0);
    src.pack_bf16(p0, int(kc), j0, int(n), storage + p0 * cols + q0 * kp * kBf16Nr,
                  ws + per * std::size_t(current_thread()));
  });
}

PrepackedB::PrepackedB(index_t K, index_t N, const std::uint16_t* storage)
    : K_(K),
      N_(N),
      kcb_(bf16_k_blocks(K, kernels().gemm).kcb),
      data_(align_to_line(const_cast<std::uint16_t*>(storage))) {}

// Never called: gemm() refuses a bf16-packed B in fp32 before any work.
void PrepackedB::pack(index_t, int, index_t, int, int, float*) const {}

void PrepackedB::pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                           float*) const {
  // a copy of the stored panels (the engine reads them in place instead)
  const index_t kp = round_up_k32(kc);
  const std::uint16_t* src = packed_panels_bf16(p0 / kcb_) + (j0 / kBf16Nr) * kp * kBf16Nr;
  std::copy(src, src + ceil_div(n, kBf16Nr) * kp * kBf16Nr, dst);
}

const std::uint16_t* PrepackedB::packed_panels_bf16(index_t kb) const {
  return data_ + kb * kcb_ * ceil_div(N_, kBf16Nr) * kBf16Nr;
}

void round_bf16_f32(const float* src, index_t n, float* dst) {
  const RoundBf16F32 round = kernels().gemm.round_bf16_f32;
  parallel_ranges(n, 1 << 16, [&](index_t b, index_t e) { round(src + b, e - b, dst + b); });
}

std::size_t gemm_bf16_workspace_floats(index_t M, index_t N, index_t K, int threads) {
  const GemmKernels& kt = kernels().gemm;
  return std::max(workspace_of(make_plan(kt, M, N, K, threads)),
                  workspace_of(make_plan(kt, M, N, K, 1)));
}

void gemm_bf16(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
               const GemmOutput& out, int threads, float* workspace) {
  const GemmKernels& kt = kernels().gemm;
  const Plan p = make_plan(kt, M, N, K, threads);
  const int nt = p.tm * p.tn;
  const Plan p1 = make_plan(kt, M, N, K, 1);
  if (workspace == nullptr) {
    workspace = thread_workspace(0, std::max(workspace_of(p), workspace_of(p1)));
  }
  auto* a_buf = reinterpret_cast<std::uint16_t*>(workspace);
  const Worker w{p, kt, M, N, K, a, b, out, a_buf, workspace + p.a_floats};
  if (nt == 1) {
    w.run(0, 1);
    return;
  }
  parallel_team(nt, [&](int t, int n) {
    // A team of one (a region nested in another): the one-thread plan.
    if (n == nt) {
      w.run(t, nt);
    } else {
      const Worker w1{p1, kt, M, N, K, a, b, out, a_buf, workspace + p1.a_floats};
      w1.run(0, 1);
    }
  });
}

}  // namespace cnnkit
