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

// Implicit im2col (convolution): fill a kc x nr GEMM panel of patches straight from an image.
// Rows p0 .. p0 + kc - 1 are (c, fy, fx) with fx fastest; the panel's columns are described by
// runs of consecutive output pixels on one output row: run r covers panel columns
// [dst, dst + len) = output pixels (oy, ox .. ox + len - 1). Columns not in a run are zero.
struct PatchRun {
  int dst, len;
  std::int64_t oy, ox;
};
struct PatchPanel {
  const float* x;                                 // image (or group): C planes of H x W
  std::int64_t H, W, Fh, Fw, sh, sw, ph, pw, dh, dw;
  const PatchRun* runs;
  int nruns;
  int covered;  // the runs cover panel columns [0, covered); columns covered..nr-1 are zero
};
using PackPatchPanel = void (*)(const PatchPanel& pp, std::int64_t p0, int kc, int nr,
                                float* dst);

// C[m x n] += A[m x k] . B[n x k]^T with rows of A and B contiguous along k (dot products
// along k, reduced once at the end): the weight-gradient kernel, where k runs over output
// pixels and both dY rows and patch rows lie along them. m <= dot_mr, n <= dot_nr.
using DotNtTile = void (*)(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                           const float* b, std::int64_t ldb, float* c, std::int64_t ldc);

struct KernelTable {
  const char* isa = "ref";
  int sgemm_mr = 0;
  int sgemm_nr = 0;
  SgemmUkr sgemm_ukr = nullptr;
  PackPatchPanel pack_patch_panel = nullptr;
  int dot_mr = 0, dot_nr = 0;
  DotNtTile dot_nt_tile = nullptr;
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
