// Micro-kernels of the GEMM engine, one per ISA (contract: SgemmUkr in cnnkit/kernels.hpp).
#pragma once

#include "cnnkit/kernels.hpp"

namespace cnnkit {

// Portable C++ (any x86-64 / any CPU): 4 x 16 tile.
constexpr int kSgemmMrRef = 4, kSgemmNrRef = 16;
void sgemm_ukr_4x16_ref(int m, int n, std::int64_t k, const float* a, const float* b,
                        std::int64_t ldb, float* c, std::int64_t ldc, const UkrEpilogue& ep);

// Packing transpose (TransposeF32), portable.
void transpose_f32_ref(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                       float* dst, std::int64_t ldd, std::int64_t rows_out);

// Dot-product tile (DotNtTile): 4 x 4 portable.
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
