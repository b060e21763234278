// The GEMM family's kernels: the micro-kernel, the packing transpose and the dot-product tile;
// their contracts, every ISA's implementations and the family's sub-table (filled by
// register_gemm_kernels() in gemm_kernels.cpp: reference first, then ISA overrides).
// Included by ISA files: declarations, plain structs and constants only (no inline code).
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// What a GEMM micro-kernel does with its MR x NR accumulator tile on the way out:
//   C = alpha * acc + beta * C   (beta == 0: C is never read, so NaN in C cannot leak)
//   C += bias_row[i] + bias_col[j]; C = max(C, 0) if relu.
struct UkrEpilogue {
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* bias_row = nullptr;  // m values for this tile, or null
  const float* bias_col = nullptr;  // n values for this tile, or null
  bool relu = false;
  // bf16 row kernels: C has room for whole tile rows (the driver's row buffer: mr rows), so a
  // panel of fewer rows may load and store whole 16-row tiles (the extra rows are scratch)
  bool c_padded = false;
};

// C[m x n] (row stride ldc) <- epilogue(A_panel @ B_panel) where
//   A panel: k x m packed as a[p * m + i] (exactly m rows, 1 <= m <= MR),
//   B panel: row p at b + p * ldb; only the first n <= NR values of a row are read.
using SgemmUkr = void (*)(int m, int n, std::int64_t k, const float* a, const float* b,
                          std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);

// Few-row GEMMs with B read in place along its rows: C[m x n] = A panel @ B rows (accumulate:
// C +=), A panel k x m packed as a[p * m + i] (1 <= m <= kSgemmRowsM, 1 <= k <= kSgemmRowsK),
// B row p at b + p * ldb (n values, any n). The caller applies the GEMM's epilogue. Null where
// an ISA has none: the engine's packed path then.
using SgemmRowsUkr = void (*)(int m, int k, std::int64_t n, const float* a, const float* b,
                              std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate);
constexpr int kSgemmRowsM = 4, kSgemmRowsK = 8;

// Transpose for packing: dst[c * ldd + r] = src[r * lds + c] for c < cols, r < rows_out, with
// zeros for rows <= r < rows_out (zero-padded panel columns). rows_out <= ldd.
using TransposeF32 = void (*)(const float* src, std::int64_t lds, std::int64_t rows,
                              std::int64_t cols, float* dst, std::int64_t ldd,
                              std::int64_t rows_out);

// C[m x n] += A[m x k] . B[n x k]^T with rows of A and B contiguous along k (dot products
// along k, reduced once at the end): the weight-gradient kernel, where k runs over output
// pixels and both dY rows and patch rows lie along them. m <= dot_mr, n <= dot_nr.
using DotNtTile = void (*)(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                           const float* b, std::int64_t ldb, float* c, std::int64_t ldc);

// ---- bf16 (autocast): operands rounded to bf16 while packing, fp32 accumulation ----
//
// A bf16 value is the top half of an fp32 one. Rounding: to nearest, ties to even; fp32
// denormals become zeros of the same sign (as VCVTNE2PS2BF16 does, so every path rounds alike);
// NaN stays a (quiet) NaN, infinities stay infinite.
using bf16_t = std::uint16_t;

// Packed bf16 panels; K is zero-padded to kp, a multiple of kBf16KStep (one AMX tile's depth):
//   A panel of mr rows (rows past m are zeros):  (i, p) at a[(p / 32) * mr * 32 + i * 32 + p % 32]
//   B panel of 32 columns (zeros past n):        (p, j) at b[(p / 2) * 64 + j * 2 + p % 2]
// so each 32-deep slice of an A panel is mr rows of 64 bytes (an AMX A tile per 16 rows) and
// B holds pairs of consecutive k side by side (the layout of VDPBF16PS and TDPBF16PS).
constexpr int kBf16KStep = 32, kBf16Nr = 32;

// dst[i] = bf16(src[i]) for i < n.
using RoundBf16 = void (*)(const float* src, std::int64_t n, bf16_t* dst);
// dst[i] = float(bf16(src[i])): the value the bf16 kernels see, kept as fp32 (dst may be src).
using RoundBf16F32 = void (*)(const float* src, std::int64_t n, float* dst);
// One B panel from fp32 rows: row p (p < kc) at src + p * ld, columns [0, n), n <= 32;
// writes round_up(kc, 32) / 2 pair rows of 64 values.
using PackBf16B = void (*)(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst);
// One A panel of mr rows from fp32 rows: row i (i < m) at src + i * ld, k in [0, kc); rows
// m..mr-1 and k in [kc, round_up(kc, 32)) are zeros.
using PackBf16A = void (*)(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst);
// C[m x n] += A[m x k] . bf16(B[n x k])^T, m <= dot_mr, n <= dot_nr: A rounded already (bf16
// rows lda values apart, zero past k up to a multiple of 32), B fp32 rows rounded to bf16 as
// they are read; fp32 sums (pairs per lane, then a horizontal tree per call). The linear
// layer's bf16 streaming path (small batches) where the CPU has a bf16 dot instruction.
using Bf16DotNtTile = void (*)(int m, int n, std::int64_t k, const bf16_t* a, std::int64_t lda,
                               const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
// dst[2 i] = bf16(r0[i]), dst[2 i + 1] = bf16(r1[i]) for i < n (r1 null: zeros): two fp32
// rows into one row of bf16 pairs.
using InterleaveBf16 = void (*)(const float* r0, const float* r1, std::int64_t n, bf16_t* dst);
// C[m x n] <- epilogue(A panel @ B panel), kp a multiple of 32, m <= bf16_mr, n <= 32.
using Bf16Ukr = void (*)(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                         std::int64_t ldc, const UkrEpilogue& ep);
// The same for a row of C blocks: n > 32 columns, B panels at b + q * kp * 32 (every panel
// full but the last), bias_col covering the n columns. Null where the ISA has none (the engine
// then calls Bf16Ukr panel by panel).
using Bf16RowUkr = Bf16Ukr;
// C[m x n] = alpha * acc + beta * C (beta 0: C is not read) + bias_row[i] + bias_col[j], then
// ReLU if asked: a row of C blocks that the row kernel summed into an aligned buffer (tile
// loads and stores run at half speed on C rows that split cache lines or alias in L1).
using Bf16Finish = void (*)(const float* acc, std::int64_t lda, int m, int n, float beta,
                            const UkrEpilogue& ep, float* c, std::int64_t ldc);
// A 32 x 32 fp32 block accumulated over strided bf16 operands in place (no packing):
//   C[i][j] += sum_{s < slices} sum_{kk < 32} A[i][32 s + kk] * B[32 s + kk][j]
// with A[i][p] at a[i * lda + p] (rows contiguous along k) and B as k pairs: (p, j) at
// b[(p / 2) * ldb + 2 j + p % 2]; C[i][j] at c[i * ldc + j]. All 32 rows and columns are read
// and written (the caller pads). Null where the ISA has none (AMX only).
using Bf16AccumulateBlock = void (*)(const bf16_t* a, std::int64_t lda, const bf16_t* b,
                                     std::int64_t ldb, int slices, float* c, std::int64_t ldc);
// Called by each thread before its first / after its last bf16 micro-kernel call of a GEMM
// (AMX: load / release the tile configuration); null when the kernel needs neither.
using Bf16Hook = void (*)();

// ---- int8 (quantized inference): the row engine (gemm/driver_int8_rows.cpp) ----
//
// The activations are the rows (uint8: pixels or samples), the weights the columns (int8:
// output channels); each C element is the exact sum_p a[i][p] * b[p][j] in int32 (no rounding
// anywhere, so every path gives the same bits; |a b| <= 255 * 128, so a depth up to kI8MaxK
// cannot overflow). The depth is zero-padded to kp, a multiple of the table's slice depth i8_kstep
// (64 bytes on AMX, one tile row; 32 on the reference and the vector kernels, which step by
// quads: a 3x3 filter row over 32 channels, 96 bytes, then needs no padding, where 64-byte
// slices pad it to 128). A weight panel of 32 columns (zeros past the last channel) holds quads
// of consecutive depths side by side:
//   (p, j) at b[(p / 4) * 128 + j * 4 + p % 4]
// the layout of VPDPBUSD's 32-bit lanes and of an AMX B tile (a 16-column tile is every other
// 64 bytes of a quad row, row stride 128).
//
// With L = i8_kstep: C[i][j] = sum_{t < slices} sum_{kk < L} A[i][L t + kk] * B[L t + kk][j],
// A read in place: (i, L t + kk) at a[i * lda + a_off[t] + kk] (each L-deep slice of a row is L
// contiguous bytes: the pixels of an output row in a padded NHWC image, the rows lda = stride
// * C apart and a_off the filter taps, or plain rows with a_off[t] = L t), B a weight panel
// slices * L deep. C[m x n] (row stride ldc) is written, m <= i8r_mr, n <= 32. The kernel may
// read A rows i < 32 whatever m is (AMX loads whole tiles; those rows' sums are dropped): the
// caller keeps them readable. Zero rows of B (padding) make the bytes they meet irrelevant.
// Needs the bf16_begin() hook's tile configuration where the ISA has one (AMX: the same tile
// shapes serve both).
constexpr int kI8Nr = 32;
constexpr int kI8KStepAmx = 64, kI8KStepVec = 32;  // i8_kstep of AMX / of every other path
constexpr int kI8KStepMax = kI8KStepAmx;           // the deepest slice of any path
constexpr std::int64_t kI8MaxK = 65536;            // 65536 * 128 * 255 < 2^31
using U8S8Ukr = void (*)(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                         const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                         std::int64_t ldc);
// The row engine's epilogue over m rows of n sums (row stride lds), per column j:
//   v = fma(float(sums[i][j] + comp[j]), mult[j], add[j])      (comp = -x_zp * column sum)
//   uint8 out: y = nearbyint(min(max(v, relu ? y_zp : 0), 255)) at yq[i * ldy + j] (ties to
//              even; add already holds the output zero point, so one rounding before the
//              clamp; NaN -> relu ? y_zp : 0);
//   fp32 out:  y = relu ? (v > 0 ? v : 0) : v at yf[i * ldy + j * col_stride].
// For a depth <= kI8MaxK, sum + comp = sum_p (a - x_zp) b lies within 255 * 128 * K < 2^31,
// and so do both terms: SIMD kernels may add them with wrapping int32 arithmetic (the
// reference uses int64: no signed overflow in C++).
using I8Requantize = void (*)(const std::int32_t* sums, std::int64_t lds, int m, int n,
                              const std::int32_t* comp, const float* mult, const float* add,
                              int y_zp, bool relu, std::uint8_t* yq, std::int64_t ldy);
using I8DequantizeCols = void (*)(const std::int32_t* sums, std::int64_t lds, int m, int n,
                                  const std::int32_t* comp, const float* mult, const float* add,
                                  bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride);

// The activations' quantization (asymmetric, per tensor):
//   q = min(max(nearbyint(x * inv_scale) + zero_point, 0), 255)
// with x * inv_scale one fp32 product, nearbyint rounding to nearest, ties to even; NaN ->
// zero_point (as 0.0 would be). n pixels of C planes (plane stride ld), interleaved:
//   dst[i * C + c] = q(src[c * ld + i])   (NCHW fp32 -> NHWC uint8)
using QuantizeU8Nhwc = void (*)(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                                float inv_scale, int zero_point, std::uint8_t* dst);

struct GemmKernels {
  int sgemm_mr = 0, sgemm_nr = 0;  // the micro-kernel's tile
  SgemmUkr sgemm_ukr = nullptr;
  SgemmRowsUkr sgemm_rows = nullptr;  // few-row GEMMs streaming B (null: the packed path)
  TransposeF32 transpose = nullptr;
  int dot_mr = 0, dot_nr = 0;  // the dot-product tile
  DotNtTile dot_nt_tile = nullptr;
  // bf16
  const char* bf16_path = "ref";  // "ref", "avx2", "avx512_bf16" or "amx"
  int bf16_mr = 0;                // rows of the bf16 micro-kernel (columns: kBf16Nr)
  int bf16_kc = 0;                // K block of the bf16 engine (a multiple of kBf16KStep)
  Bf16Ukr bf16_ukr = nullptr;
  Bf16RowUkr bf16_row = nullptr;
  Bf16Finish bf16_finish = nullptr;  // with bf16_row
  Bf16Hook bf16_begin = nullptr, bf16_end = nullptr;
  RoundBf16 round_bf16 = nullptr;
  RoundBf16F32 round_bf16_f32 = nullptr;
  PackBf16A pack_bf16_a = nullptr;
  PackBf16B pack_bf16_b = nullptr;
  InterleaveBf16 interleave_bf16 = nullptr;
  Bf16AccumulateBlock bf16_accumulate_block = nullptr;
  Bf16DotNtTile bf16_dot_nt_tile = nullptr;  // null: the bf16 GEMM engine instead
  // int8
  const char* i8_path = "ref";  // "ref", "avx2", "avx512_vnni" or "amx"
  int i8r_mr = 0;               // rows (pixels) per call of the row engine's micro-kernel
  int i8_kstep = kI8KStepVec;   // the depth of its slices (bytes)
  U8S8Ukr u8s8_ukr = nullptr;
  I8Requantize i8_requantize = nullptr;
  I8DequantizeCols i8_dequantize_cols = nullptr;
  QuantizeU8Nhwc quantize_u8_nhwc = nullptr;
};

void register_gemm_kernels(GemmKernels& k, Isa isa);

// Portable C++ (any x86-64 / any CPU): 4 x 16 tile.
constexpr int kSgemmMrRef = 4, kSgemmNrRef = 16;
void sgemm_ukr_4x16_ref(int m, int n, std::int64_t k, const float* a, const float* b,
                        std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
void transpose_f32_ref(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                       float* dst, std::int64_t ldd, std::int64_t rows_out);
// 4 x 4 dot-product tile.
constexpr int kDotMrRef = 4, kDotNrRef = 4;
void dot_nt_tile_ref(int m, int n, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                     std::int64_t ldb, float* c, std::int64_t ldc);

// bf16 reference (gemm/bf16_ref.cpp): the exact emulation. Each C element is one fp32 sum,
// k = 0, 1, ..., kp - 1 in order, of the products of the rounded operands (exact in fp32: 8-bit
// by 8-bit significands), added to C by the epilogue once per K block.
constexpr int kBf16MrRef = 8, kBf16KcRef = 512;
void bf16_ukr_ref(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                  std::int64_t ldc, const UkrEpilogue& ep);
void round_bf16_ref(const float* src, std::int64_t n, bf16_t* dst);
void round_bf16_f32_ref(const float* src, std::int64_t n, float* dst);
void pack_bf16_a_ref(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst);
void pack_bf16_b_ref(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst);
void interleave_bf16_ref(const float* r0, const float* r1, std::int64_t n, bf16_t* dst);

// int8 reference (gemm/int8_ref.cpp): plain integer loops, the exact result every path gives.
constexpr int kI8RowsMrRef = 8;
void u8s8_ukr_ref(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                  const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                  std::int64_t ldc);
void i8_requantize_ref(const std::int32_t* sums, std::int64_t lds, int m, int n,
                       const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                       bool relu, std::uint8_t* yq, std::int64_t ldy);
void i8_dequantize_cols_ref(const std::int32_t* sums, std::int64_t lds, int m, int n,
                            const std::int32_t* comp, const float* mult, const float* add,
                            bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride);
void quantize_u8_nhwc_ref(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                          float inv_scale, int zero_point, std::uint8_t* dst);
// One value, quantized as QuantizeU8Nhwc says.
std::uint8_t quantize_u8_ref(float x, float inv_scale, int zero_point);

namespace avx2 {
// 6 x 16: 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers.
constexpr int kSgemmMr = 6, kSgemmNr = 16;
void sgemm_ukr_6x16_avx2(int m, int n, std::int64_t k, const float* a, const float* b,
                         std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
void transpose_f32_avx2(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                        float* dst, std::int64_t ldd, std::int64_t rows_out);
constexpr int kDotMr = 3, kDotNr = 4;
// The bf16 Bf16Ukr without bf16 dot products: operands widened to fp32, FMA in the reference's
// order (its bits); 8-row panels computed as blocks of 4 rows x 16 columns.
constexpr int kBf16MrAvx2 = 8, kBf16KcAvx2 = 256;
void bf16_ukr_avx2(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                   std::int64_t ldc, const UkrEpilogue& ep);
// The reference's rounding and packing, 8 lanes at a time (kernels/avx2/bf16_convert_avx2.cpp).
void round_bf16_avx2(const float* src, std::int64_t n, bf16_t* dst);
void round_bf16_f32_avx2(const float* src, std::int64_t n, float* dst);
void pack_bf16_a_avx2(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst);
void pack_bf16_b_avx2(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst);
void interleave_bf16_avx2(const float* r0, const float* r1, std::int64_t n, bf16_t* dst);
// The int8 row engine's U8S8Ukr without VNNI: both operands widened to int16, VPMADDWD into
// int32 (exact), blocks of 3 rows x 16 channels; up to 16 rows a call.
constexpr int kI8RowsMr = 16;
void u8s8_ukr_avx2(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                   const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                   std::int64_t ldc);
// Its epilogues, 8 channels a step, and the activations' quantization, 8 pixels a step
// (kernels/avx2/epilogue_i8_avx2.cpp).
void quantize_u8_nhwc_avx2(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                           float inv_scale, int zero_point, std::uint8_t* dst);
void i8_requantize_avx2(const std::int32_t* sums, std::int64_t lds, int m, int n,
                        const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                        bool relu, std::uint8_t* yq, std::int64_t ldy);
void i8_dequantize_cols_avx2(const std::int32_t* sums, std::int64_t lds, int m, int n,
                             const std::int32_t* comp, const float* mult, const float* add,
                             bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride);
void dot_nt_tile_avx2(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
}  // namespace avx2

namespace avx512 {
void i8_requantize_avx512(const std::int32_t* sums, std::int64_t lds, int m, int n,
                          const std::int32_t* comp, const float* mult, const float* add, int y_zp,
                          bool relu, std::uint8_t* yq, std::int64_t ldy);
void i8_dequantize_cols_avx512(const std::int32_t* sums, std::int64_t lds, int m, int n,
                               const std::int32_t* comp, const float* mult, const float* add,
                               bool relu, float* yf, std::int64_t ldy, std::int64_t col_stride);
// 14 x 32: 28 zmm accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers.
constexpr int kSgemmMr = 14, kSgemmNr = 32;
void sgemm_ukr_14x32_avx512(int m, int n, std::int64_t k, const float* a, const float* b,
                            std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
// Few rows, B streamed along its rows: k <= 8 rows of B (2 x 8 zmm) held per 32 columns.
void sgemm_rows_avx512(int m, int k, std::int64_t n, const float* a, const float* b,
                       std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate);
// Packing transpose in 16 x 16 register blocks.
void transpose_f32_avx512(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                          float* dst, std::int64_t ldd, std::int64_t rows_out);
// 4 x 6 dot-product tile: 24 zmm accumulators + 4 A vectors + 1 B vector.
constexpr int kDotMr = 4, kDotNr = 6;
void dot_nt_tile_avx512(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                        const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
}  // namespace avx512

namespace neon {
// 8 x 12: 24 accumulators + 3 B vectors + 2 A vectors of the 32 128-bit registers, FMLA by
// element (kernels/neon/).
constexpr int kSgemmMr = 8, kSgemmNr = 12;
void sgemm_ukr_8x12_neon(int m, int n, std::int64_t k, const float* a, const float* b,
                         std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
// Packing transpose in 4 x 4 register blocks.
void transpose_f32_neon(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                        float* dst, std::int64_t ldd, std::int64_t rows_out);
// 4 x 6 dot-product tile: 24 accumulators + 4 A vectors + 1 B vector.
constexpr int kDotMr = 4, kDotNr = 6;
void dot_nt_tile_neon(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
}  // namespace neon

namespace avx512_bf16 {
// 14 x 32 with VDPBF16PS: 28 zmm accumulators of 16 fp32 lanes, each instruction one k pair;
// conversions with VCVTNEPS2BF16 (kernels/avx512_bf16/).
constexpr int kBf16Mr = 14, kBf16Kc = 512;
void bf16_ukr_14x32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                    std::int64_t ldc, const UkrEpilogue& ep);
// 4 x 6 dot-product tile with VDPBF16PS (the fp32 tile's shape: kDotMr x kDotNr).
void bf16_dot_nt_tile(int m, int n, std::int64_t k, const bf16_t* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
void round_bf16(const float* src, std::int64_t n, bf16_t* dst);
void round_bf16_f32(const float* src, std::int64_t n, float* dst);
void pack_bf16_a(const float* src, std::int64_t ld, int m, int kc, int mr, bf16_t* dst);
void pack_bf16_b(const float* src, std::int64_t ld, int kc, int n, bf16_t* dst);
void interleave_bf16(const float* r0, const float* r1, std::int64_t n, bf16_t* dst);
}  // namespace avx512_bf16

namespace avx512_vnni {
// The row engine's 14 x 32 (U8S8Ukr): VPDPBUSD of 14 broadcast uint8 quads of A (pixels) by
// two int8 vectors of B (32 output channels), 28 zmm accumulators; the activations'
// quantization with AVX-512 (kernels/avx512_vnni/).
constexpr int kI8RowsMr = 14;
void quantize_u8_nhwc(const float* src, std::int64_t ld, std::int64_t C, std::int64_t n,
                      float inv_scale, int zero_point, std::uint8_t* dst);
void u8s8_ukr_14x32(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                    const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                    std::int64_t ldc);
}  // namespace avx512_vnni

namespace amx {
// 32 x 32 with TDPBF16PS: a 2 x 2 block of 16 x 16 fp32 tile accumulators, 2 A and 2 B tiles
// per 32-deep step (kernels/amx/). begin() loads the tile configuration on the calling thread,
// end() releases the tiles.
constexpr int kBf16Mr = 32, kBf16Kc = 256;
void bf16_ukr_32x32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                    std::int64_t ldc, const UkrEpilogue& ep);
void bf16_row_32(int m, int n, std::int64_t kp, const bf16_t* a, const bf16_t* b, float* c,
                 std::int64_t ldc, const UkrEpilogue& ep);
void bf16_finish(const float* acc, std::int64_t lda, int m, int n, float beta,
                 const UkrEpilogue& ep, float* c, std::int64_t ldc);
void tiles_begin();
void tiles_end();
void bf16_accumulate_block(const bf16_t* a, std::int64_t lda, const bf16_t* b, std::int64_t ldb,
                           int slices, float* c, std::int64_t ldc);
// int8, the row engine's 32 x 32 (U8S8Ukr): TDPBUSD of uint8 A tiles loaded in place (row
// stride lda) by int8 B tiles, 2 x 2 int32 tile accumulators; needs tiles_begin()'s
// configuration.
constexpr int kI8RowsMr = 32;
void u8s8_ukr_32x32(int m, int n, std::int64_t slices, const std::uint8_t* a, std::int64_t lda,
                    const std::int64_t* a_off, const std::int8_t* b, std::int32_t* c,
                    std::int64_t ldc);
}  // namespace amx

}  // namespace cnnkit
