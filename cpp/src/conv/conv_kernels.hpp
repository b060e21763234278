// The convolution family's kernels: the implicit-im2col panel packer, col2im's row add and the
// Winograd F(4x4, 3x3) transforms; their contracts, every ISA's implementations and the
// family's sub-table (filled by register_conv_kernels() in conv_kernels.cpp: reference first,
// then ISA overrides). The GEMM micro-kernels the algorithms run are the GEMM family's.
// Included by ISA files: declarations, plain structs and constants only (no inline code).
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// Implicit im2col (convolution): fill a kc x nr GEMM panel of patches straight from an image.
// Rows p0 .. p0 + kc - 1 are (c, fy, fx) with fx fastest; the panel's columns are described by
// runs of consecutive output pixels on one output row: run r covers panel columns
// [dst, dst + len) = output pixels (oy, ox .. ox + len - 1). Columns not in a run are zero.
struct PatchRun {
  int dst, len;
  std::int64_t oy, ox;
};
struct PatchPanel {
  const float* x;  // image (or group): C planes of H x W
  std::int64_t H, W, Fh, Fw, sh, sw, ph, pw, dh, dw;
  const PatchRun* runs;
  int nruns;
  int covered;  // the runs cover panel columns [0, covered); columns covered..nr-1 are zero
};
using PackPatchPanel = void (*)(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);

// dst[i] += src[i] for i < n (col2im's scatter of a patch row back into an image row).
using AddF32 = void (*)(const float* src, float* dst, std::int64_t n);

// An output epilogue over m rows of n values: y[i * ldy + j] = c[i * ldc + j] + bias[i] (bias
// may be null), then ReLU (max(v, 0), NaN -> 0) if relu.
using BiasReluRows = void (*)(const float* c, std::int64_t ldc, int m, std::int64_t n,
                              const float* bias, bool relu, float* y, std::int64_t ldy);

// Winograd F(4x4, 3x3) transforms (conv/winograd.cpp) over a group of up to 16 tiles, one per
// SIMD lane. Lane l's tile has its element (i, j) at offset off[l] + i * ld + j of a plane, read
// or written only where bit l of rows[i] & cols[j] is set (outside the image it counts as 0).
struct WinoLanes {
  int n = 0;  // tiles in use; lanes n..15 have no bits set
  std::int32_t off[16] = {};
  std::uint16_t rows[6] = {}, cols[6] = {};
};
// V[xi] = (B^T d B)[xi] of each of `channels` planes (plane c at x + c * plane): the 16 lanes
// of element xi of channel c are stored at v + xi * v_xi + c * v_c. A table's three Winograd
// kernels may store the tiles of a group in any fixed order of their own (the AVX-512 ones
// interleave them), so callers treat a group as one unit of 16 columns (zero for lanes >= n).
// round_bf16: each element of d is first rounded to bf16 (util/bf16.hpp's rule), so a bf16
// convolution computed in fp32 needs no rounded copy of its operand.
using WinoInput = void (*)(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c,
                           bool round_bf16);
// Y = A^T M A (+ bias[k], then ReLU if relu) for `channels` output planes, M[xi] of plane k
// read at m + xi * m_xi + k * m_k (16 lanes); the 4 x 4 tiles are stored where the mask says.
using WinoOutput = void (*)(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                            const WinoLanes& lanes, float* y, std::int64_t plane, std::int64_t ld,
                            const float* bias, bool relu);
// M[xi] = (A dY A^T)[xi] of 4 x 4 tiles of `channels` planes of dY (the weight gradient's
// operand), stored like WinoInput's V; round_bf16 as there (dY's elements rounded first).
using WinoGradOutput = void (*)(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                                const WinoLanes& lanes, float* m, std::int64_t m_xi,
                                std::int64_t m_k, bool round_bf16);

// Direct bf16 convolution (conv/bf16_direct.cpp), one block of 32 rows x 2 runs of 16 columns
// of fp32 sums: for h = 0, 1 and j < 16,
//   c[i][16 h + j] (+)= sum_{s < slices} sum_{kk < 32} a[s][i][kk] xh[off[s] + (kk/2) ld + 2 j +
//   kk%2]
// where a[s] is slice s of an A panel of 32 rows (a + s * 1024, row i at i * 32), x0 and x1 the
// starts of the two runs in a bf16 pair matrix (pair row r at + r * ld); c has row stride ldc
// and is added to when `accumulate`, else overwritten. Rows 16..31 are left alone when m <= 16.
// One call computes `blocks` such blocks: block b's runs start at x + runs[2 b] and
// x + runs[2 b + 1] (the x0, x1 above) and its sums at c + 32 b.
// Needs the tile configuration of the GEMM family's bf16_begin(). Null where the ISA has no
// kernel (the algorithm then does not apply).
using Bf16DirectBlocks = void (*)(const std::uint16_t* a, int slices, const std::uint16_t* x,
                                  const std::int64_t* runs, int blocks, const std::int64_t* off,
                                  std::int64_t ld, int m, float* c, std::int64_t ldc,
                                  bool accumulate);

struct ConvKernels {
  PackPatchPanel pack_patch_panel = nullptr;
  AddF32 add_f32 = nullptr;
  BiasReluRows bias_relu_rows = nullptr;
  WinoInput wino_input = nullptr;
  WinoOutput wino_output = nullptr;
  WinoGradOutput wino_grad_output = nullptr;
  Bf16DirectBlocks bf16_direct_blocks = nullptr;
};

void register_conv_kernels(ConvKernels& k, Isa isa);

// Portable C++: image_operands.cpp (packer, add) and winograd_ref.cpp (plain loops over the
// lanes).
void pack_patch_panel_ref(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void add_f32_ref(const float* src, float* dst, std::int64_t n);
void bias_relu_rows_ref(const float* c, std::int64_t ldc, int m, std::int64_t n, const float* bias,
                        bool relu, float* y, std::int64_t ldy);
void wino_input_ref(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                    const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c,
                    bool round_bf16);
void wino_output_ref(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                     const WinoLanes& lanes, float* y, std::int64_t plane, std::int64_t ld,
                     const float* bias, bool relu);
void wino_grad_output_ref(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                          const WinoLanes& lanes, float* m, std::int64_t m_xi, std::int64_t m_k,
                          bool round_bf16);

namespace avx2 {
void add_f32_avx2(const float* src, float* dst, std::int64_t n);  // epilogue_avx2.cpp
void pack_patch_panel_avx2(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void wino_input_avx2(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                     const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c,
                     bool round_bf16);
void wino_output_avx2(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                      const WinoLanes& lanes, float* y, std::int64_t plane, std::int64_t ld,
                      const float* bias, bool relu);
void wino_grad_output_avx2(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& lanes, float* m, std::int64_t m_xi, std::int64_t m_k,
                           bool round_bf16);
}  // namespace avx2

namespace neon {
void pack_patch_panel_neon(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void add_f32_neon(const float* src, float* dst, std::int64_t n);
}  // namespace neon

namespace amx {
void bf16_direct_blocks_amx(const std::uint16_t* a, int slices, const std::uint16_t* x,
                            const std::int64_t* runs, int blocks, const std::int64_t* off,
                            std::int64_t ld, int m, float* c, std::int64_t ldc, bool accumulate);
}  // namespace amx

namespace avx512 {
void bias_relu_rows_avx512(const float* c, std::int64_t ldc, int m, std::int64_t n,
                           const float* bias, bool relu, float* y, std::int64_t ldy);
void pack_patch_panel_avx512(const PatchPanel& pp, std::int64_t p0, int kc, int nr, float* dst);
void add_f32_avx512(const float* src, float* dst, std::int64_t n);
void wino_input_avx512(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                       const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c,
                       bool round_bf16);
void wino_output_avx512(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                        const WinoLanes& lanes, float* y, std::int64_t plane, std::int64_t ld,
                        const float* bias, bool relu);
void wino_grad_output_avx512(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                             const WinoLanes& lanes, float* m, std::int64_t m_xi, std::int64_t m_k,
                             bool round_bf16);
}  // namespace avx512

namespace avx512_bf16 {
void wino_input_avx512bf16(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                           const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c,
                           bool round_bf16);
void wino_grad_output_avx512bf16(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                                 const WinoLanes& lanes, float* m, std::int64_t m_xi,
                                 std::int64_t m_k, bool round_bf16);
}  // namespace avx512_bf16

}  // namespace cnnkit
