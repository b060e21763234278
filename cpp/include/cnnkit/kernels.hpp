// The kernel table: one function pointer per hot kernel, filled with the reference kernels
// first, then overridden by AVX2/FMA and then AVX-512 kernels when the CPU has them.
// ISA code lives only in cpp/src/kernels/<isa>/, compiled with its own flags.
#pragma once

#include <cstdint>

namespace cnnkit {

// What a GEMM micro-kernel does with its MR x NR accumulator tile on the way out:
//   C = alpha * acc + beta * C   (beta == 0: C is never read, so NaN in C cannot leak)
//   C += bias_row[i] + bias_col[j]; C = max(C, 0) if relu.
struct UkrEpilogue {
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* bias_row = nullptr;  // m values for this tile, or null
  const float* bias_col = nullptr;  // n values for this tile, or null
  bool relu = false;
};

// C[m x n] (row stride ldc) <- epilogue(A_panel @ B_panel) where
//   A panel: k x m packed as a[p * m + i] (exactly m rows, 1 <= m <= MR),
//   B panel: row p at b + p * ldb; only the first n <= NR values of a row are read.
using SgemmUkr = void (*)(int m, int n, std::int64_t k, const float* a, const float* b,
                          std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);

// The peak probe's hot loop: `iters` rounds of independent FMA chains (no memory traffic);
// returns a value derived from the chains so the work cannot be optimised away.
using FmaChains = float (*)(std::int64_t iters);

struct KernelTable {
  const char* isa = "ref";
  int sgemm_mr = 0;
  int sgemm_nr = 0;
  SgemmUkr sgemm_ukr = nullptr;
  FmaChains fma_chains = nullptr;
  double fma_chain_flops = 0;  // FLOPs per iteration of fma_chains
};

// Each fills in what its ISA provides; they are defined in the ISA's own translation units.
void register_ref_kernels(KernelTable& t);
namespace avx2 {
void register_kernels(KernelTable& t);
}
namespace avx512 {
void register_kernels(KernelTable& t);
}

}  // namespace cnnkit
