// The int8 GEMM engine: C (int32) = A (int8) @ B (uint8, or fp32 quantized while packing).
//
//   C[i][j] = sum_k A[i][k] * B[k][j]   exact in int32 for K <= kI8MaxK
//
// A (the weights: few rows) is packed once for all threads, in K blocks of kc values
// (a multiple of 64) and panels of mr rows; the N columns are split over the threads in
// panels of 32, and each thread packs one 32-column B panel of one K block at a time (its own
// workspace: kc x 32 bytes, L1-sized) and runs it against every A panel, so B is read once.
// Integer sums are exact: the result does not depend on the split, the thread count or
// the kernel path.
#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "gemm/engine.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

const char* i8_path() { return kernels().gemm.i8_path; }

void gemm_s8u8(index_t M, index_t N, index_t K, const std::int8_t* a, index_t lda,
               const I8OperandB& b, std::int32_t* c, index_t ldc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K > kI8MaxK) throw_invalid("gemm_s8u8: K ", K, " > ", kI8MaxK, " (int32 sums could overflow)");
  if (K <= 0) {
    for (index_t i = 0; i < M; ++i) std::memset(c + i * ldc, 0, sizeof(std::int32_t) * N);
    return;
  }
  const GemmKernels& kt = kernels().gemm;
  const int mr = kt.i8_mr;
  const index_t kc = std::min<index_t>(kt.i8_kc, ceil_div(K, kI8KStep) * kI8KStep);
  const index_t nkb = ceil_div(K, kc);
  const index_t kp_all = (nkb - 1) * kc + ceil_div(K - (nkb - 1) * kc, kI8KStep) * kI8KStep;
  const index_t row_panels = ceil_div(M, mr);
  // Packed A: for each K block, every row panel (mr x kp_block bytes), blocks one after another.
  const std::size_t a_bytes = std::size_t(row_panels) * mr * std::size_t(kp_all);
  std::int8_t* apack =
      reinterpret_cast<std::int8_t*>(align_to_line(thread_workspace(0, a_bytes / 4 + 32)));
  auto block_of = [&](index_t kb, index_t* k0, index_t* klen, index_t* kp) {
    *k0 = kb * kc;
    *klen = std::min(kc, K - *k0);
    *kp = ceil_div(*klen, kI8KStep) * kI8KStep;
  };
  auto a_panel = [&](index_t kb, index_t pi) {  // block kb starts after kb full blocks
    return apack + std::size_t(row_panels) * mr * std::size_t(kb * kc) +
           std::size_t(pi) * mr * std::size_t(std::min(kc, kp_all - kb * kc));
  };
  parallel_ranges(row_panels * nkb, 1, [&](index_t begin, index_t end) {
    for (index_t it = begin; it < end; ++it) {
      const index_t kb = it / row_panels, pi = it % row_panels;
      index_t k0, klen, kp;
      block_of(kb, &k0, &klen, &kp);
      const index_t i0 = pi * mr;
      kt.pack_i8_a(a + i0 * lda + k0, lda, int(std::min<index_t>(mr, M - i0)), int(klen), mr,
                   a_panel(kb, pi));
    }
  });
  const index_t col_panels = ceil_div(N, kI8Nr);
  const int nt = std::max(1, std::min<int>(threads, int(col_panels)));
  parallel_team(nt, [&](int t, int n) {
    index_t p_begin, p_end;
    balanced_range(col_panels, n, t, &p_begin, &p_end);
    if (p_begin >= p_end) return;
    std::uint8_t* bpack = reinterpret_cast<std::uint8_t*>(
        align_to_line(thread_workspace(1, std::size_t(kc) * kI8Nr / 4 + 32)));
    if (kt.bf16_begin) kt.bf16_begin();  // AMX: the tile configuration (int8 uses its shapes)
    for (index_t cp = p_begin; cp < p_end; ++cp) {
      const index_t j0 = cp * kI8Nr;
      const int nn = int(std::min<index_t>(kI8Nr, N - j0));
      for (index_t kb = 0; kb < nkb; ++kb) {
        index_t k0, klen, kp;
        block_of(kb, &k0, &klen, &kp);
        if (b.u8) {
          kt.pack_u8_b(b.u8 + k0 * b.ld + j0, b.ld, int(klen), nn, bpack);
        } else {
          kt.quantize_pack_b(b.f32 + k0 * b.ld + j0, b.ld, int(klen), nn, b.inv_scale,
                             b.zero_point, bpack);
        }
        for (index_t pi = 0; pi < row_panels; ++pi) {
          const index_t i0 = pi * mr;
          kt.i8_ukr(int(std::min<index_t>(mr, M - i0)), nn, kp, a_panel(kb, pi), bpack,
                    c + i0 * ldc + j0, ldc, kb > 0);
        }
      }
    }
    if (kt.bf16_end) kt.bf16_end();
  });
}

}  // namespace cnnkit
