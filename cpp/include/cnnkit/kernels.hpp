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
// Element-wise activation kernels over n contiguous floats (the driver splits the tensor into
// per-thread chunks). Forward: dst = f(src; alpha). Backward: diff_src = diff_dst * f'(...),
// where `a` and `b` are the saved tensors the op needs (x and/or y; see activation.hpp).
using EltwiseFwd = void (*)(const float* src, float* dst, std::int64_t n, float alpha);
using EltwiseBwd = void (*)(const float* diff_dst, const float* a, const float* b, float* diff_src,
                            std::int64_t n, float alpha);

// One [H, W] plane of 2-D pooling (see pool.hpp for the output-size rules).
struct Pool2dPlane {
  std::int64_t H = 0, W = 0, Ho = 0, Wo = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};
// Max pooling over `planes` consecutive planes: dst/indices are [planes, Ho, Wo]; an index is the
// flat offset h * W + w of the (first) maximum inside its plane.
using MaxPool2dFwd = void (*)(const float* src, float* dst, std::int64_t* indices,
                              const Pool2dPlane& p, std::int64_t planes);

// Batch-norm building blocks over n contiguous floats of one channel (see norm.hpp):
//   stats:    sum += sum(x - shift), sumsq += sum((x - shift)^2), accumulated in double
//   apply:    dst = ((x - mean_hi) - mean_lo) * scale + shift  (mean split into two floats so a
//             mean of 1e4 with a std of 1e-2 loses nothing); with relu_mask (fused ReLU):
//             dst = max(dst, 0) and bit i % 16 of relu_mask[i / 16] = (dst > 0)
//   bwd_reduce: sum_dy += sum(dy), sum_dy_xmu += sum(dy * (x - mean)), in double
//   bwd_apply:  diff_src = a * dy + b * (x - mean) + c
//   (both backward kernels read dy as 0 where a non-null relu_mask has a 0 bit: the gradient
//   through the fused ReLU)
using BnStats = void (*)(const float* src, std::int64_t n, float shift, double* sum,
                         double* sumsq);
using BnApply = void (*)(const float* src, float* dst, std::int64_t n, float mean_hi,
                         float mean_lo, float scale, float shift, std::uint16_t* relu_mask);
using BnBwdReduce = void (*)(const float* diff_dst, const float* src, std::int64_t n, float mean,
                             const std::uint16_t* relu_mask, double* sum_dy, double* sum_dy_xmu);
using BnBwdApply = void (*)(const float* diff_dst, const float* src, float* diff_src,
                            std::int64_t n, float mean, float a, float b, float c,
                            const std::uint16_t* relu_mask);

// Local response normalisation of one image over a range of spatial positions: channel c of
// the range starts at offset c * hw_stride; `len` positions, all C channels (see norm.hpp).
struct LrnArgs {
  std::int64_t C = 0, hw_stride = 0, len = 0;
  int size = 1;
  float alpha = 1e-4f, beta = 0.75f, k = 1.0f;
};
using LrnFwd = void (*)(const float* src, float* dst, float* scale, const LrnArgs& a);
// `work` holds size * len floats of scratch owned by the calling thread.
using LrnBwd = void (*)(const float* diff_dst, const float* src, const float* dst,
                        const float* scale, float* diff_src, float* work, const LrnArgs& a);

// Dropout over n elements whose global indices start at `first`: keep element i when
// hash(seed, i) >= threshold (32-bit), dst = keep ? x * scale : 0, mask = keep.
using DropoutFwd = void (*)(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                            std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                            float scale);

// Transpose for packing: dst[c * ldd + r] = src[r * lds + c] for c < cols, r < rows_out, with
// zeros for rows <= r < rows_out (zero-padded panel columns). rows_out <= ldd.
using TransposeF32 = void (*)(const float* src, std::int64_t lds, std::int64_t rows,
                              std::int64_t cols, float* dst, std::int64_t ldd,
                              std::int64_t rows_out);

// dst[i] += src[i] for i < n (col2im's scatter of a patch row back into an image row).
using AddF32 = void (*)(const float* src, float* dst, std::int64_t n);

// Softmax building block over one row: y[j] = exp(x[j] - shift), returns sum_j y[j].
using ExpShiftSum = double (*)(const float* x, float* y, std::int64_t n, float shift);

// Winograd F(4x4, 3x3) transforms (conv/winograd.cpp) over a group of up to 16 tiles, one per
// SIMD lane. Lane l's tile has its element (i, j) at offset off[l] + i * ld + j of a plane, read
// or written only where bit l of rows[i] & cols[j] is set (outside the image it counts as 0).
struct WinoLanes {
  int n = 0;                          // tiles in use; lanes n..15 have no bits set
  std::int32_t off[16] = {};
  std::uint16_t rows[6] = {}, cols[6] = {};
};
// V[xi] = (B^T d B)[xi] of each of `channels` planes (plane c at x + c * plane): the 16 lanes
// of element xi of channel c are stored at v + xi * v_xi + c * v_c. A table's three Winograd
// kernels may store the tiles of a group in any fixed order of their own (the AVX-512 ones
// interleave them), so callers treat a group as one unit of 16 columns (zero for lanes >= n).
using WinoInput = void (*)(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& lanes, float* v, std::int64_t v_xi,
                           std::int64_t v_c);
// Y = A^T M A (+ bias[k], then ReLU if relu) for `channels` output planes, M[xi] of plane k
// read at m + xi * m_xi + k * m_k (16 lanes); the 4 x 4 tiles are stored where the mask says.
using WinoOutput = void (*)(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                            const WinoLanes& lanes, float* y, std::int64_t plane,
                            std::int64_t ld, const float* bias, bool relu);
// M[xi] = (A dY A^T)[xi] of 4 x 4 tiles of `channels` planes of dY (the weight gradient's
// operand), stored like WinoInput's V.
using WinoGradOutput = void (*)(const float* dy, std::int64_t plane, std::int64_t ld,
                                int channels, const WinoLanes& lanes, float* m,
                                std::int64_t m_xi, std::int64_t m_k);

struct KernelTable {
  const char* isa = "ref";
  int sgemm_mr = 0;
  int sgemm_nr = 0;
  SgemmUkr sgemm_ukr = nullptr;
  TransposeF32 transpose = nullptr;
  PackPatchPanel pack_patch_panel = nullptr;
  int dot_mr = 0, dot_nr = 0;
  DotNtTile dot_nt_tile = nullptr;
  FmaChains fma_chains = nullptr;
  double fma_chain_flops = 0;  // FLOPs per iteration of fma_chains

  EltwiseFwd relu_fwd = nullptr, leaky_relu_fwd = nullptr, elu_fwd = nullptr,
             sigmoid_fwd = nullptr, tanh_fwd = nullptr;
  EltwiseBwd relu_bwd = nullptr, leaky_relu_bwd = nullptr, elu_bwd = nullptr,
             sigmoid_bwd = nullptr, tanh_bwd = nullptr;
  MaxPool2dFwd max_pool2d_fwd = nullptr;
  BnStats bn_stats = nullptr;
  BnApply bn_apply = nullptr;
  BnBwdReduce bn_bwd_reduce = nullptr;
  BnBwdApply bn_bwd_apply = nullptr;
  LrnFwd lrn_fwd = nullptr;
  LrnBwd lrn_bwd = nullptr;
  DropoutFwd dropout_fwd = nullptr;
  ExpShiftSum exp_shift_sum = nullptr;
  AddF32 add_f32 = nullptr;
  WinoInput wino_input = nullptr;
  WinoOutput wino_output = nullptr;
  WinoGradOutput wino_grad_output = nullptr;
  bool wino_fast = false;  // SIMD transforms: Winograd beats the direct path (conv_algorithm auto)
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
