// The GEMM engine's private pieces shared by its fp32 loops (driver.cpp) and its bf16 loops
// (driver_bf16.cpp). Baseline code only.
#pragma once

#include <cstdint>

#include "cnnkit/gemm.hpp"
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// M blocks of the packed A (shared by the threads): at most this many rows.
constexpr index_t kGemmMC = 1008;

// Thread grid tm x tn over (row panels, column panels) for nt threads: least (compute +
// duplicated B packing) per thread; ties favour splitting N, which keeps each thread's packed
// B private and unduplicated. shared_a: several thread columns would pack one shared A block
// and meet at a barrier per block, which costs them ~8 % of the compute (fp32 sgemm 512^3 ..
// 4096^3 and 4096 x 128 x 9216 on Zen 4, 2 threads: 3-10 % faster split by rows alone).
void gemm_thread_grid(index_t row_panels, index_t col_panels, index_t nt, int mr, int nr, int* tm,
                      int* tn, bool shared_a = false);

// C = beta * C + bias, then ReLU: what the product contributes when K == 0.
void gemm_epilogue_only(index_t M, index_t N, const GemmOutput& out);

// The bf16 engine's K blocks: nkb blocks of kcb (a multiple of 32) values, the last one
// shorter; block kb covers [kb * kcb, min(K, (kb + 1) * kcb)).
struct Bf16KBlocks {
  index_t nkb = 1, kcb = 0;
};
Bf16KBlocks bf16_k_blocks(index_t K, const GemmKernels& kt);

// Its M blocks: nmb blocks of mcb rows (a multiple of mr), the last one shorter; panels of mr
// rows, the last one shorter (a full panel is what lets the AMX kernel store C straight from
// the tiles). An M block (all of K) is packed once and shared by the threads: up to 4096 rows
// and 32 MB, so B is packed once for most layers and at most twice for M = K = 4096.
constexpr index_t kGemmMCBf16 = 4096;
constexpr index_t kBf16ABlockValues = 16 * 1024 * 1024;
struct Bf16MBlocks {
  index_t nmb = 1, mcb = 0;
};
Bf16MBlocks bf16_m_blocks(index_t M, index_t K, const GemmKernels& kt);
// p rounded up to the next 64-byte boundary: where packed bf16 panels start in storage that
// the caller allocated (prepacked operands hold 64 bytes more for it).
template <class T>
T* align_to_line(T* p) {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<T*>((at + 63) / 64 * 64);
}
inline index_t round_up_k32(index_t kc) { return ceil_div(kc, kBf16KStep) * kBf16KStep; }

void gemm_bf16(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
               const GemmOutput& out, int threads, float* workspace);
std::size_t gemm_bf16_workspace_floats(index_t M, index_t N, index_t K, int threads);

}  // namespace cnnkit
