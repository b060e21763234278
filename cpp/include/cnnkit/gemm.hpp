// SGEMM: C = alpha * op(A) @ op(B) + beta * C, and the GEMM engine that convolution and
// linear layers reuse with their own operand packers and epilogues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cnnkit/common.hpp"

namespace cnnkit {

// The left operand op(A), an M x K matrix, as seen by the engine: it is only ever asked to
// pack an m-row micro-panel (m <= MR) of a K block: dst[p * m + i] = op(A)[i0 + i][p0 + p].
class GemmOperandA {
 public:
  virtual ~GemmOperandA() = default;
  virtual void pack(index_t i0, int m, index_t p0, int kc, float* dst) const = 0;
  // An operand packed ahead of time (PrepackedA) hands out its K block kb / M block mb exactly
  // as the engine would have packed it, so the engine skips packing; others return null.
  virtual const float* packed_block(index_t kb, index_t mb) const {
    (void)kb;
    (void)mb;
    return nullptr;
  }
  // bf16: an A panel of mr rows (rows [i0, i0 + m), m <= mr, zeros below), K range
  // [p0, p0 + kc) rounded to bf16 and zero-padded to a multiple of 32, in the layout of
  // gemm/gemm_kernels.hpp. The default packs in fp32 with pack() and rounds; `scratch` holds
  // bf16_a_scratch_floats(mr, kc) floats.
  virtual void pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                         float* scratch) const;
  virtual const std::uint16_t* packed_block_bf16(index_t kb, index_t mb) const {
    (void)kb;
    (void)mb;
    return nullptr;
  }
};

// The right operand op(B), a K x N matrix: packs rows [p0, p0 + kc) x columns [j0, j0 + n) as
// ceil(n / nr) panels of kc x nr floats; panel q at dst + q * kc * nr holds columns
// j0 + q * nr + [0, nr), row p at offset p * nr, zeros past column j0 + n.
class GemmOperandB {
 public:
  virtual ~GemmOperandB() = default;
  virtual void pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const = 0;
  // When op(B) rows are contiguous in memory the engine may read them in place for small
  // problems: returns &op(B)[p0][j0] and the row stride, or null if it must pack.
  virtual const float* direct(index_t p0, index_t j0, index_t* ld) const {
    (void)p0;
    (void)j0;
    (void)ld;
    return nullptr;
  }
  // bf16: ceil(n / 32) B panels of 32 columns (pairs along K, zero-padded to kp, a multiple
  // of 32), panel q at dst + q * kp * 32. The default packs in fp32 with pack() a few panels
  // at a time and rounds; `scratch` holds bf16_b_scratch_floats(kc) floats.
  virtual void pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                         float* scratch) const;
  // An operand packed ahead of time in bf16 (PrepackedB) hands out the panels of K block kb
  // (all columns, panel q at + q * kp * 32); others return null.
  virtual const std::uint16_t* packed_panels_bf16(index_t kb) const {
    (void)kb;
    return nullptr;
  }
};

// A right operand packed once in bf16 for many products with the same B (a linear layer's
// weights at inference): the engine reads its panels instead of packing them per call. Valid
// for the ISA that was active when it was packed.
class PrepackedB final : public GemmOperandB {
 public:
  // bf16 values of storage needed for a K x N operand.
  static std::size_t values(index_t K, index_t N);
  // Packs src (K x N) into storage (values(K, N) bf16 values, owned by the caller).
  static void pack(index_t K, index_t N, const GemmOperandB& src, std::uint16_t* storage);
  // A view of storage packed by pack() for the same K and N.
  PrepackedB(index_t K, index_t N, const std::uint16_t* storage);
  void pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const override;
  void pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                 float* scratch) const override;
  const std::uint16_t* packed_panels_bf16(index_t kb) const override;

 private:
  index_t K_, N_, kcb_;
  const std::uint16_t* data_;
};

// dst[i] = bf16(src[i]) as fp32 (round to nearest even; denormals to signed zero; NaN stays
// NaN): the values the bf16 paths compute with. dst may be src. Threaded for large n.
void round_bf16_f32(const float* src, index_t n, float* dst);

// Scratch the default bf16 packers need (floats).
std::size_t bf16_a_scratch_floats(int mr, int kc);
std::size_t bf16_b_scratch_floats(int kc);

// Where the result goes and what is applied to it (the micro-kernel applies it to each tile on
// the way out).
struct GemmOutput {
  float* c = nullptr;
  index_t ldc = 0;
  float alpha = 1.0f;
  float beta = 0.0f;                // 0: C is written without being read
  const float* bias_row = nullptr;  // M values added to each row (e.g. per output channel)
  const float* bias_col = nullptr;  // N values added to each column (e.g. per linear unit)
  bool relu = false;
};

// Row-major matrix operands with leading dimensions; op = identity or transpose.
class MatrixOperandA final : public GemmOperandA {
 public:
  MatrixOperandA(const float* a, index_t lda, bool trans) : a_(a), lda_(lda), trans_(trans) {}
  void pack(index_t i0, int m, index_t p0, int kc, float* dst) const override;
  void pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                 float* scratch) const override;

 private:
  const float* a_;
  index_t lda_;
  bool trans_;
};

class MatrixOperandB final : public GemmOperandB {
 public:
  MatrixOperandB(const float* b, index_t ldb, bool trans) : b_(b), ldb_(ldb), trans_(trans) {}
  void pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const override;
  const float* direct(index_t p0, index_t j0, index_t* ld) const override;
  void pack_bf16(index_t p0, int kc, index_t j0, int n, std::uint16_t* dst,
                 float* scratch) const override;

 private:
  const float* b_;
  index_t ldb_;
  bool trans_;
};

// The engine: Goto/BLIS blocking (K blocks of ~KC, shared packed A blocks of <= MC rows,
// per-thread packed B blocks of ~NB columns kept in L2) around the active micro-kernel.
// `threads` <= 0 means get_num_threads(); threads == 1 runs on the calling thread only, so it
// may be called from inside an outer parallel region (e.g. one image per thread); there, pass a
// `workspace` of gemm_workspace_floats(M, N, K, 1) floats owned by that thread, since nothing
// may be allocated (or thrown) inside a parallel region. With workspace == nullptr the engine
// takes the calling thread's scratch memory (it may throw std::bad_alloc before any work).
// With Precision::bf16 both operands are rounded to bf16 as they are packed and the active
// bf16 micro-kernel (AMX, AVX512-BF16 or the reference emulation) accumulates in fp32.
void gemm(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
          const GemmOutput& out, int threads = 0, float* workspace = nullptr,
          Precision precision = Precision::fp32);

// Floats of scratch memory gemm() needs for this problem, thread count and precision.
std::size_t gemm_workspace_floats(index_t M, index_t N, index_t K, int threads,
                                  Precision precision = Precision::fp32);

// A left operand packed once for many products with the same A (convolution weights applied
// to every image): gemm() then reads the packed panels instead of packing them per call.
// Valid for the ISA that was active when it was packed, and for one precision (bf16: the
// rounded panels of the bf16 micro-kernel).
class PrepackedA final : public GemmOperandA {
 public:
  // Floats of storage needed for an M x K operand.
  static std::size_t floats(index_t M, index_t K, Precision precision = Precision::fp32);
  // Packs src (M x K) into storage (at least floats(M, K, precision) floats, owned by the
  // caller).
  PrepackedA(index_t M, index_t K, const GemmOperandA& src, float* storage,
             Precision precision = Precision::fp32);
  void pack(index_t i0, int m, index_t p0, int kc, float* dst) const override;
  const float* packed_block(index_t kb, index_t mb) const override;
  void pack_bf16(index_t i0, int m, index_t p0, int kc, int mr, std::uint16_t* dst,
                 float* scratch) const override;
  const std::uint16_t* packed_block_bf16(index_t kb, index_t mb) const override;

 private:
  const GemmOperandA& src_;
  float* data_;
  Precision precision_;
  index_t nmb_;
  std::vector<std::size_t> offsets_;  // start of block (kb, mb) at kb * nmb + mb (in elements)
};

// The active ISA's micro-kernel tile: the engine computes C in blocks of mr x nr.
struct SgemmTile {
  int mr, nr;
};
SgemmTile sgemm_tile();

// Checks dimensions and leading dimensions; throws std::invalid_argument naming the shapes.
void sgemm_validate(index_t M, index_t N, index_t K, bool trans_a, index_t lda, bool trans_b,
                    index_t ldb, index_t ldc);

// C[M x N] = alpha * op(A) @ op(B) + beta * C, all row-major.
//   op(A) is M x K: A is M x K (lda >= K) or, transposed, K x M (lda >= M).
//   op(B) is K x N: B is K x N (ldb >= N) or, transposed, N x K (ldb >= K).
// bf16: both operands rounded to bf16, fp32 accumulation (autocast).
void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc,
           Precision precision = Precision::fp32);

// ---- int8 (quantized inference) ----
// The int8 micro-kernel of the active table: "amx", "avx512_vnni" or "ref".
const char* i8_path();
// dst[i] = clamp(nearbyint(src[i] * inv_scale) + zero_point, 0, 255) (ties to even; NaN ->
// zero_point): the activations' quantization, exactly as quantize_nchw_to_nhwc_u8 does it.
void quantize_u8(const float* src, index_t n, float inv_scale, int zero_point, std::uint8_t* dst);

// ---- int8 row engine (the activations as rows, NHWC; gemm/driver_int8_rows.cpp) ----
// y[i][j] = epilogue(sum_p x[i][p] * w[j][p]): x uint8 rows (pixels or samples) read in place,
// w int8 (N output channels) packed once; the sums are exact (every kernel path gives the
// same bits) and the epilogue requantizes to uint8 or dequantizes to fp32:
//   v = fma(float(sum - x_zp * colsum[j]), mult[j], add[j]),  mult = x_scale * w_scale[j] / s,
//   add = bias[j] / s (+ y_zp for uint8 output) with s = y_scale for uint8 output, 1 for fp32;
//   uint8: y = nearbyint(clamp(v, relu ? y_zp : 0, 255)); fp32: y = v, then ReLU.
// Packed weights: i8_rows_packed_bytes(N, kp) bytes: ceil(N / 32) panels of kp x 32 int8 (kp a
// multiple of i8_rows_kstep(), the GEMM's padded depth), then the N int32 column sums.
std::size_t i8_rows_packed_bytes(index_t N, index_t kp);
// Packed depth p of output j is w[j * ldw + kmap[p]], or 0 where kmap[p] < 0 (p < kp).
void i8_rows_pack(const std::int8_t* w, index_t ldw, index_t N, const std::int32_t* kmap,
                  index_t kp, std::int8_t* packed);
const std::int32_t* i8_rows_col_sums(const std::int8_t* packed, index_t N, index_t kp);
// The packed depth of a fully connected layer of K inputs (K rounded up to i8_rows_kstep()).
index_t linear_int8_rows_depth(index_t K);
// The epilogue's per-channel constants as a block reads them (channel 0 of the block first).
struct I8RowsEpi {
  const std::int32_t* comp = nullptr;
  const float *mult = nullptr, *add = nullptr;
  int y_zp = 0;
  bool relu = false, to_u8 = false;
};
// One call's quantization: the input's grid, the weights' per-channel scales, the bias and
// the output's grid (y_scale > 0: uint8 out; else fp32), as the layer holds them.
struct I8RowsScales {
  float x_scale = 1.0f;
  int x_zp = 0;
  const float* w_scale = nullptr;  // [N]
  const float* bias = nullptr;     // [N] or null
  float y_scale = 0.0f;
  int y_zp = 0;
  bool relu = false;
};
// The epilogue's per-channel constants for one call, from the scales and the packed weights'
// column sums.
struct I8RowsQuant {
  std::vector<std::int32_t> comp;
  std::vector<float> mult, add;
  int y_zp = 0;
  bool relu = false, to_u8 = false;
  I8RowsQuant(index_t N, const std::int32_t* col_sums, const I8RowsScales& s);
  I8RowsEpi at(index_t j0) const {  // channels j0, j0 + 1, ...
    return {comp.data() + j0, mult.data() + j0, add.data() + j0, y_zp, relu, to_u8};
  }
};
// A block's outputs: row i, channel j at q[i * ldy + j] (uint8) or f[i * ldy + j * col_stride].
struct I8RowsOut {
  std::uint8_t* q = nullptr;
  float* f = nullptr;
  index_t ldy = 0, col_stride = 1;
};
// Rows per block of the active kernel (i8_rows_block's m <= this).
int i8_rows_mr();
// The depth of the active kernel's slices: 64 bytes on AMX, 32 elsewhere. Packed depths are
// multiples of it, so the packed layout depends on the ISA.
int i8_rows_kstep();
// One block of m rows, all N channels: A as U8S8Ukr reads it (row i's slice t at
// a + i * lda + a_off[t]; rows up to 32 readable), `slices` = kp / i8_rows_kstep(). strip: m x
// round_up(N, 32) int32 of the caller's (the raw sums). Needs the tile hook (i8_rows_begin).
void i8_rows_block(int m, index_t N, index_t slices, const std::uint8_t* a, index_t lda,
                   const std::int64_t* a_off, const std::int8_t* packed, const I8RowsEpi& q,
                   const I8RowsOut& out, std::int32_t* strip);
void i8_rows_begin();  // per thread, around its blocks (AMX: the tile configuration)
void i8_rows_end();
// A fully connected layer on the row engine: y[M, N] from x[M, K] uint8 (row-major),
// weights packed by i8_rows_pack to depth linear_int8_rows_depth(K) (kmap: the input's
// feature order); yq (uint8, s.y_scale > 0) or yf (fp32).
void linear_int8_rows(index_t M, index_t N, index_t K, const std::uint8_t* x,
                      const std::int8_t* packed, const I8RowsScales& s, std::uint8_t* yq, float* yf,
                      int threads);
// dst[n][i][c] = quantize_u8(src[n][c][i]) for i < HW (NCHW fp32 -> NHWC uint8).
void quantize_nchw_to_nhwc_u8(const float* src, index_t N, index_t C, index_t HW, float inv_scale,
                              int zero_point, std::uint8_t* dst);

}  // namespace cnnkit
