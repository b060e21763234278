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
};

// C[m x n] (row stride ldc) <- epilogue(A_panel @ B_panel) where
//   A panel: k x m packed as a[p * m + i] (exactly m rows, 1 <= m <= MR),
//   B panel: row p at b + p * ldb; only the first n <= NR values of a row are read.
using SgemmUkr = void (*)(int m, int n, std::int64_t k, const float* a, const float* b,
                          std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);

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

struct GemmKernels {
  int sgemm_mr = 0, sgemm_nr = 0;  // the micro-kernel's tile
  SgemmUkr sgemm_ukr = nullptr;
  TransposeF32 transpose = nullptr;
  int dot_mr = 0, dot_nr = 0;  // the dot-product tile
  DotNtTile dot_nt_tile = nullptr;
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

namespace avx2 {
// 6 x 16: 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers.
constexpr int kSgemmMr = 6, kSgemmNr = 16;
void sgemm_ukr_6x16_avx2(int m, int n, std::int64_t k, const float* a, const float* b,
                         std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
void transpose_f32_avx2(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                        float* dst, std::int64_t ldd, std::int64_t rows_out);
constexpr int kDotMr = 3, kDotNr = 4;
void dot_nt_tile_avx2(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
}  // namespace avx2

namespace avx512 {
// 14 x 32: 28 zmm accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers.
constexpr int kSgemmMr = 14, kSgemmNr = 32;
void sgemm_ukr_14x32_avx512(int m, int n, std::int64_t k, const float* a, const float* b,
                            std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);
// Packing transpose in 16 x 16 register blocks.
void transpose_f32_avx512(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                          float* dst, std::int64_t ldd, std::int64_t rows_out);
// 4 x 6 dot-product tile: 24 zmm accumulators + 4 A vectors + 1 B vector.
constexpr int kDotMr = 4, kDotNr = 6;
void dot_nt_tile_avx512(int m, int n, std::int64_t k, const float* a, std::int64_t lda,
                        const float* b, std::int64_t ldb, float* c, std::int64_t ldc);
}  // namespace avx512

}  // namespace cnnkit
