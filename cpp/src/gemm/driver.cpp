// The GEMM engine: Goto/BLIS loops around a register-blocked micro-kernel.
//
//   C[M x N] = epilogue(op(A)[M x K] @ op(B)[K x N])
//
// Loops, outer to inner (per thread):
//   K blocks of kc (~384)       -- a kc-deep A micro-panel (14 x 384 floats = 21 KB) fits in L1
//   M blocks of mc (<= 1008)    -- packed once per K block, shared by all threads (L3)
//   N chunks of nb              -- packed per thread, kc x nb <= 512 KB stays in L2
//   A micro-panels (m <= MR)    -- stays in L1 while ...
//   B micro-panels (NR wide)    -- ... the chunk's micro-panels stream from L2 through the kernel
// Threads form a tm x tn grid over (rows, columns) so that every thread owns a disjoint block of
// C (no reductions, deterministic). Row panels and K blocks are balanced (e.g. M = 64 is split
// 13+13+13+13+12 rather than 14+14+14+14+8) so no micro-kernel call runs mostly empty.
// The first K block applies beta (beta == 0 never reads C); the last applies bias and ReLU.
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {

constexpr index_t kMC = kGemmMC;
// Below this many FLOPs per thread, waking another thread costs more than it saves.
constexpr double kMinFlopsPerThread = 0.4e6;
// Problems whose B fits in this many floats read B in place (no packing), on any thread count.
constexpr index_t kDirectBFloats = 64 * 1024;

struct Plan {
  int mr = 1, nr = 1;
  index_t nkb = 1, kc_max = 0;  // K blocks
  index_t nmb = 1, mc_max = 0;  // M blocks
  index_t nb_max = 0;           // per-thread B chunk width (multiple of nr)
  int tm = 1, tn = 1;           // thread grid
  bool direct_b = false;
  std::size_t a_floats = 0, b_floats = 0;  // workspace: A block(s), per-thread B chunk
  std::size_t a_thread_floats = 0;         // one thread row's own A panels (tn == 1)
};

// b_in_place: whether B can be read in place (GemmOperandB::direct), which small problems do.
// a_packed: A comes packed ahead of time (PrepackedA), so no thread packs or waits for it.
Plan make_plan(const GemmKernels& kt, index_t M, index_t N, index_t K, int threads, bool b_in_place,
               bool a_packed) {
  Plan p;
  p.mr = kt.sgemm_mr;
  p.nr = kt.sgemm_nr;
  const GemmBlocking blk = gemm_blocking(kt.sgemm_mr);  // K block and B chunk from the caches
  p.nkb = std::max<index_t>(1, ceil_div(K, blk.kc));
  p.kc_max = ceil_div(K, p.nkb);
  p.nmb = std::max<index_t>(1, ceil_div(M, kMC));
  p.mc_max = ceil_div(M, p.nmb);

  const index_t row_panels = ceil_div(p.mc_max, p.mr);
  const index_t col_panels = ceil_div(N, p.nr);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  index_t nt = std::max(1, threads);
  nt = std::min<index_t>(nt, std::max<index_t>(1, index_t(flops / kMinFlopsPerThread)));
  nt = std::min<index_t>(nt, std::max<index_t>(1, row_panels * col_panels));

  p.direct_b = b_in_place && K * N <= kDirectBFloats;
  // Only then do threads split the rows alone: a B that must be packed (a convolution's patch
  // matrix) would be packed whole by every thread, and 3 row panels would split 2 : 1 (AlexNet
  // / cifar_cnn conv1 at batch 1, M = 32 or 64: one thread idle for a third of the call).
  if (p.direct_b && row_panels >= nt) {
    // B is read in place: threads split the rows, each packs only its own A panels and none
    // waits for another (sgemm 256^3 on 2 threads: 311-320 -> 350-364 GFLOP/s, 1 thread 207)
    p.tm = int(nt);
    p.tn = 1;
  } else {
    gemm_thread_grid(row_panels, col_panels, nt, p.mr, p.nr, &p.tm, &p.tn, !a_packed);
  }
  const index_t cols_per_thread = ceil_div(col_panels, p.tn) * p.nr + p.nr;  // + a seam panel
  const index_t nb_cap =
      std::max<index_t>(p.nr, blk.b_chunk_floats / std::max<index_t>(1, p.kc_max));
  const index_t chunks = std::max<index_t>(1, ceil_div(cols_per_thread, nb_cap));
  p.nb_max = ceil_div(ceil_div(cols_per_thread, chunks), p.nr) * p.nr;
  if (p.tn == 1) {
    // Each thread row packs the panels it multiplies into a region of its own, so no thread
    // ever waits for another (a barrier per block made each one wait out the other's stalls).
    const index_t rows = (ceil_div(row_panels, p.tm) + 1) * p.mr;
    p.a_thread_floats = std::size_t(rows) * std::size_t(p.kc_max);
    p.a_floats = p.a_thread_floats * std::size_t(p.tm);
  } else {
    p.a_floats = std::size_t(p.mc_max + p.mr) * std::size_t(p.kc_max);
  }
  // Allocated even when B may be read in place: not every operand can be.
  p.b_floats = std::size_t(p.nb_max) * std::size_t(p.kc_max);
  return p;
}

}  // namespace

void gemm_thread_grid(index_t row_panels, index_t col_panels, index_t nt, int mr, int nr, int* tm,
                      int* tn, bool shared_a) {
  double best = 0;
  for (index_t n = nt; n >= 1; --n) {
    if (nt % n) continue;
    const index_t m = nt / n;
    const double tiles = double(ceil_div(row_panels, m)) * double(ceil_div(col_panels, n));
    const double waits = shared_a && n > 1 ? 1.08 : 1.0;
    const double cost = tiles * mr * nr / 16.0 * waits + double(ceil_div(col_panels, n)) * nr / 4.0;
    if (n == nt || cost < best) {
      best = cost;
      *tm = int(m);
      *tn = int(n);
    }
  }
}

void gemm_epilogue_only(index_t M, index_t N, const GemmOutput& out) {
  for (index_t i = 0; i < M; ++i) {
    float* c = out.c + i * out.ldc;
    for (index_t j = 0; j < N; ++j) {
      float v = out.beta == 0.0f ? 0.0f : out.beta * c[j];
      if (out.bias_row) v += out.bias_row[i];
      if (out.bias_col) v += out.bias_col[j];
      if (out.relu) v = std::max(v, 0.0f);
      c[j] = v;
    }
  }
}

namespace {

struct Worker {
  const Plan& p;
  const GemmKernels& kt;
  index_t M, N, K;
  const GemmOperandA& a;
  const GemmOperandB& b;
  const GemmOutput& out;
  float* a_buf;   // packed A: one shared block (tn > 1) or tm private regions (tn == 1)
  float* b_bufs;  // nt private B chunks of p.b_floats each

  void run(int tid, int nt) const {
    const int tr = tid / p.tn, tc = tid % p.tn;
    // This thread's columns: a balanced share in units of half a panel. Whole panels would
    // split 23 panels 12 / 11 between two threads (4 % idle); a half-width panel at the seam
    // costs the micro-kernel about half a full one, so half units balance the work better.
    const index_t unit = std::max(1, p.nr / 2);
    index_t cp0, cpn;
    balanced_part(ceil_div(N, unit), p.tn, tc, &cp0, &cpn);
    const index_t j_begin = std::min(N, cp0 * unit), j_end = std::min(N, (cp0 + cpn) * unit);
    float* b_buf = b_bufs + std::size_t(tid) * p.b_floats;

    for (index_t kb = 0; kb < p.nkb; ++kb) {
      index_t p0, kc;
      balanced_part(K, p.nkb, kb, &p0, &kc);
      UkrEpilogue ep;
      ep.alpha = out.alpha;
      ep.beta = kb == 0 ? out.beta : 1.0f;
      const bool last = kb + 1 == p.nkb;
      ep.relu = last && out.relu;

      for (index_t mb = 0; mb < p.nmb; ++mb) {
        index_t m0, mc;
        balanced_part(M, p.nmb, mb, &m0, &mc);
        const index_t npanels = ceil_div(mc, p.mr);
        // The A block: packed ahead of time (panel q at r0 * kc: it holds rows [r0, r0 + m)),
        // or packed now. With several thread columns all threads pack the shared block (same
        // layout) and meet at a barrier; with one (tn == 1) each thread packs just the panels
        // it multiplies into its own region (from its first row) and never waits.
        const float* a_blk = a.packed_block(kb, mb);
        index_t q_begin, q_count;
        balanced_part(npanels, p.tm, tr, &q_begin, &q_count);
        const bool shared_a = a_blk == nullptr && p.tn > 1;
        index_t row_base = 0;  // the first row of a_blk
        if (a_blk == nullptr) {
          float* dst = a_buf;
          if (!shared_a) {
            index_t m_unused;
            balanced_part(mc, npanels, q_begin, &row_base, &m_unused);
            dst = a_buf + std::size_t(tr) * p.a_thread_floats;
          }
          const index_t q0 = shared_a ? tid : q_begin, q1 = shared_a ? npanels : q_begin + q_count;
          for (index_t q = q0; q < q1; q += shared_a ? nt : 1) {
            index_t r0, m;
            balanced_part(mc, npanels, q, &r0, &m);
            a.pack(m0 + r0, int(m), p0, int(kc), dst + (r0 - row_base) * kc);
          }
          if (shared_a) team_barrier();
          a_blk = dst;
        }
        for (index_t j0 = j_begin; j0 < j_end; j0 += p.nb_max) {
          const index_t nb = std::min(p.nb_max, j_end - j0);
          const float* bp = nullptr;
          index_t ldb = p.nr;
          if (p.direct_b) {
            bp = b.direct(p0, j0, &ldb);
          }
          if (bp == nullptr) b.pack(p0, int(kc), j0, int(nb), p.nr, b_buf);
          for (index_t q = q_begin; q < q_begin + q_count; ++q) {
            index_t r0, m;
            balanced_part(mc, npanels, q, &r0, &m);
            const index_t i0 = m0 + r0;
            const float* ap = a_blk + (r0 - row_base) * kc;
            ep.bias_row = last && out.bias_row ? out.bias_row + i0 : nullptr;
            for (index_t jj = 0; jj < nb; jj += p.nr) {
              const int n = int(std::min<index_t>(p.nr, nb - jj));
              const index_t j = j0 + jj;
              ep.bias_col = last && out.bias_col ? out.bias_col + j : nullptr;
              const float* bpanel = bp ? bp + jj : b_buf + jj * kc;
              const index_t ld = bp ? ldb : p.nr;
              kt.sgemm_ukr(int(m), n, kc, ap, bpanel, ld, out.c + i0 * out.ldc + j, out.ldc, ep);
            }
          }
        }
        // Before the next block overwrites the shared A block.
        if (shared_a) team_barrier();
      }
    }
  }
};

// Few rows (M <= 4) times a large B read in place (a linear layer's dX = dY W at batch <= 4, a
// vector-matrix product): threads split the columns; per block of up to 8 rows of B, the rows
// kernel reads those rows along their length once and adds their products into the M rows of
// a sum buffer (A packed whole, k-major; both in the calling thread's workspace); the
// epilogue then writes C. The buffer's rows are 16 floats longer than N: rows a multiple of
// 4 KiB apart (N = 9216) would fall in the same L1 sets. Each C element is summed in k order
// by one thread: the same bits for every thread count. Measured on Zen 4, 2 threads, dY W with
// W 4096 x 9216 (AlexNet's FC6), ms through packed panels -> rows: M = 1 20.2 -> 5.9-7.0,
// M = 4 17.0-21.2 -> 6.9-12.3; at M = 16 no better than the panels (19.8-36 against 18-26:
// the kernel's 16 B vectors and 8 accumulators spill), so the panels stay from 5 rows on.
bool gemm_rows(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
               const GemmOutput& out, int threads) {
  const GemmKernels& kt = kernels().gemm;
  index_t ldb = 0;
  if (kt.sgemm_rows == nullptr || M > kSgemmRowsM || K * N <= kDirectBFloats) return false;
  if (b.direct(0, 0, &ldb) == nullptr) return false;
  const index_t lds = N + 16;
  float* ap = thread_workspace(0, std::size_t(M) * std::size_t(K + lds) + 16);
  float* sums = ap + M * K;
  for (index_t p0 = 0; p0 < K; p0 += 1024) {  // a.pack takes an int depth
    const int kc = int(std::min<index_t>(1024, K - p0));
    a.pack(0, int(M), p0, kc, ap + p0 * M);
  }
  constexpr index_t kCols = 32;  // the kernel's column step: threads split whole steps
  const index_t steps = ceil_div(N, kCols);
  parallel_ranges_on(int(std::min<index_t>(threads, steps)), steps, [&](index_t s0, index_t s1) {
    const index_t j0 = s0 * kCols, j1 = std::min(N, s1 * kCols);
    for (index_t p0 = 0; p0 < K; p0 += kSgemmRowsK) {
      const int kk = int(std::min<index_t>(kSgemmRowsK, K - p0));
      kt.sgemm_rows(int(M), kk, j1 - j0, ap + p0 * M, b.direct(p0, j0, &ldb), ldb, sums + j0, lds,
                    p0 > 0);
    }
    for (index_t i = 0; i < M; ++i) {
      const float* sp = sums + i * lds;
      float* cp = out.c + i * out.ldc;
      for (index_t j = j0; j < j1; ++j) {
        float v = out.alpha * sp[j];
        if (out.beta != 0.0f) v += out.beta * cp[j];
        if (out.bias_row) v += out.bias_row[i];
        if (out.bias_col) v += out.bias_col[j];
        cp[j] = out.relu ? std::max(v, 0.0f) : v;
      }
    }
  });
  return true;
}

}  // namespace

std::size_t PrepackedA::floats(index_t M, index_t K, Precision precision) {
  M = std::max<index_t>(M, 0);
  K = std::max<index_t>(K, 0);
  if (precision == Precision::bf16) {
    // Each M block's panels padded to mr rows, each K block to a multiple of 32 (bf16 values,
    // two per float).
    const GemmKernels& kt = kernels().gemm;
    const Bf16KBlocks kb = bf16_k_blocks(K, kt);
    const index_t rows = (ceil_div(M, kt.bf16_mr) + bf16_m_blocks(M, K, kt).nmb) * kt.bf16_mr;
    // + 16 floats: the panels start at the storage's first cache line (align_to_line).
    return std::size_t(rows) * std::size_t(round_up_k32(K) + kb.nkb * kBf16KStep) / 2 + 32;
  }
  // The blocks tile M x K exactly; + 16 lets kernels over-read the last panel by a vector.
  return std::size_t(M) * std::size_t(K) + 16;
}

PrepackedA::PrepackedA(index_t M, index_t K, const GemmOperandA& src, float* storage,
                       Precision precision)
    : src_(src), data_(storage), precision_(precision) {
  if (precision == Precision::bf16) {
    // Same blocking as the bf16 engine: K blocks of kcb, M blocks of mcb, panels of mr rows.
    const GemmKernels& kt = kernels().gemm;
    const Bf16KBlocks kbs = bf16_k_blocks(K, kt);
    const int mr = kt.bf16_mr;
    const Bf16MBlocks mbs = bf16_m_blocks(M, K, kt);
    nmb_ = mbs.nmb;
    offsets_.resize(std::size_t(kbs.nkb * nmb_));
    std::vector<float> scratch(bf16_a_scratch_floats(mr, int(kbs.kcb)));
    data_ = align_to_line(storage);
    auto* data = reinterpret_cast<std::uint16_t*>(data_);
    std::size_t at = 0;
    for (index_t kb = 0; kb < kbs.nkb; ++kb) {
      const index_t p0 = kb * kbs.kcb, kc = std::min(kbs.kcb, K - p0), kp = round_up_k32(kc);
      for (index_t mb = 0; mb < nmb_; ++mb) {
        const index_t m0 = mb * mbs.mcb, mc = std::min(mbs.mcb, M - m0);
        offsets_[std::size_t(kb * nmb_ + mb)] = at;
        const index_t npanels = ceil_div(mc, mr);
        for (index_t q = 0; q < npanels; ++q) {
          const index_t r0 = q * mr;
          src.pack_bf16(m0 + r0, int(std::min<index_t>(mr, mc - r0)), p0, int(kc), mr,
                        data + at + q * mr * kp, scratch.data());
        }
        at += std::size_t(npanels * mr * kp);
      }
    }
    return;
  }
  // Same blocking as make_plan(): K blocks, M blocks, balanced row panels of <= MR rows.
  const int mr = kernels().gemm.sgemm_mr;
  const index_t nkb = std::max<index_t>(1, ceil_div(K, gemm_blocking(mr).kc));
  nmb_ = std::max<index_t>(1, ceil_div(M, kMC));
  offsets_.resize(std::size_t(nkb * nmb_));
  std::size_t at = 0;
  for (index_t kb = 0; kb < nkb; ++kb) {
    index_t p0, kc;
    balanced_part(K, nkb, kb, &p0, &kc);
    for (index_t mb = 0; mb < nmb_; ++mb) {
      index_t m0, mc;
      balanced_part(M, nmb_, mb, &m0, &mc);
      offsets_[std::size_t(kb * nmb_ + mb)] = at;
      const index_t npanels = ceil_div(mc, mr);
      for (index_t q = 0; q < npanels; ++q) {
        index_t r0, m;
        balanced_part(mc, npanels, q, &r0, &m);
        src.pack(m0 + r0, int(m), p0, int(kc), data_ + at + r0 * kc);
      }
      at += std::size_t(mc) * kc;
    }
  }
}

void PrepackedA::pack(index_t i0, int m, index_t p0, int kc, float* dst) const {
  src_.pack(i0, m, p0, kc, dst);
}

const float* PrepackedA::packed_block(index_t kb, index_t mb) const {
  if (precision_ != Precision::fp32) return nullptr;
  return data_ + offsets_[std::size_t(kb * nmb_ + mb)];
}

void PrepackedA::pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                           float* scratch) const {
  src_.pack_bf16(i0, m, p0, kc, mr, dst, scratch);
}

const std::uint16_t* PrepackedA::packed_block_bf16(index_t kb, index_t mb) const {
  if (precision_ != Precision::bf16) return nullptr;
  return reinterpret_cast<const std::uint16_t*>(data_) + offsets_[std::size_t(kb * nmb_ + mb)];
}

SgemmTile sgemm_tile() {
  const GemmKernels& kt = kernels().gemm;
  return SgemmTile{kt.sgemm_mr, kt.sgemm_nr};
}

std::size_t gemm_workspace_floats(index_t M, index_t N, index_t K, int threads,
                                  Precision precision) {
  if (threads <= 0) threads = get_num_threads();
  if (precision == Precision::bf16) return gemm_bf16_workspace_floats(M, N, K, threads);
  const GemmKernels& kt = kernels().gemm;
  std::size_t floats = 0;
  for (const bool b_in_place : {false, true}) {  // enough for every kind of operand
    for (const bool a_packed : {false, true}) {
      const Plan p = make_plan(kt, M, N, K, threads, b_in_place, a_packed);
      const Plan p1 = make_plan(kt, M, N, K, 1, b_in_place, a_packed);
      floats = std::max(
          {floats, p.a_floats + std::size_t(p.tm) * p.tn * p.b_floats, p1.a_floats + p1.b_floats});
    }
  }
  return floats;
}

void gemm(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
          const GemmOutput& out, int threads, float* workspace, Precision precision) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    gemm_epilogue_only(M, N, out);
    return;
  }
  if (threads <= 0) threads = get_num_threads();
  if (precision == Precision::bf16) {
    gemm_bf16(M, N, K, a, b, out, threads, workspace);
    return;
  }
  if (b.packed_panels_bf16(0) != nullptr) {
    throw_invalid("gemm: a B operand packed in bf16 needs precision bf16");
  }
  if (workspace == nullptr && gemm_rows(M, N, K, a, b, out, threads)) return;
  const GemmKernels& kt = kernels().gemm;
  index_t ld_probe = 0;
  const bool b_in_place = b.direct(0, 0, &ld_probe) != nullptr;
  const bool a_packed = a.packed_block(0, 0) != nullptr;
  const Plan p = make_plan(kt, M, N, K, threads, b_in_place, a_packed);
  const int nt = p.tm * p.tn;
  if (workspace == nullptr) {
    // Enough for the plan and for the one-thread fallback below.
    const Plan p1 = make_plan(kt, M, N, K, 1, b_in_place, a_packed);
    workspace = thread_workspace(
        0, std::max(p.a_floats + std::size_t(nt) * p.b_floats, p1.a_floats + p1.b_floats));
  }
  const Worker w{p, kt, M, N, K, a, b, out, workspace, workspace + p.a_floats};
  if (nt == 1) {
    w.run(0, 1);
    return;
  }
  parallel_team(nt, [&](int t, int n) {
    // A team of one (a region nested in another): the one-thread plan.
    if (n == nt) {
      w.run(t, nt);
    } else {
      const Plan p1 = make_plan(kt, M, N, K, 1, b_in_place, a_packed);
      const Worker w1{p1, kt, M, N, K, a, b, out, workspace, workspace + p1.a_floats};
      w1.run(0, 1);
    }
  });
}

}  // namespace cnnkit
