/* Linear (fully connected) layer, x [N, in], W [out, in], b [out]:
 *   y  = x W^T + b        one GEMM, bias added in the micro-kernel epilogue (bias_col)
 *   dx = dy W             [N, out] x [out, in]
 *   dW = dy^T x           [out, N] x [N, in]
 *   db = sum_n dy[n, :]   (column sums, each in a fixed order: deterministic)
 * All three products go through the same GEMM engine and micro-kernels as convolution, except
 * the forward product of a small batch (N <= 16, fp32): there each y[n][j] is the dot product of
 * the x row with W's row j, read in place (W's rows are contiguous along `in`), with the
 * dot-product tile of the weight gradients: W streams from memory once, with no packing (a GEMM
 * would pack all of W into panels on every call, for a handful of rows).
 */
#include "cnnkit/linear.hpp"

#include <algorithm>
#include <cstring>

#include "cnnkit/gemm.hpp"
#include "gemm/gemm_kernels.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

void validate(const LinearParams& p) {
  if (p.N < 0 || p.in < 0 || p.out < 0) {
    throw_invalid("linear: sizes must be >= 0, got N = ", p.N, ", in = ", p.in, ", out = ", p.out);
  }
}

namespace {

constexpr index_t kStreamRows = 16;  // batches up to this many rows stream W

// y = bias + x W^T for a small batch: threads over blocks of dot_nr rows of W (whole blocks, at
// least ~64 KB of W each); per block, dot_mr rows of x at a time (W's block is then in L2).
// tile(mb, nb, i, j) adds rows i.. of x times rows j.. of W into y (the dot-product tile).
template <typename Tile>
void stream_rows(const LinearParams& p, const float* bias, float* dst, const Tile& tile) {
  const GemmKernels& kt = kernels().gemm;
  const index_t mr = kt.dot_mr, nr = kt.dot_nr, K = p.in;
  const index_t blocks = (p.out + nr - 1) / nr;
  const index_t min_blocks =
      std::max<index_t>(1, (index_t(1) << 14) / std::max<index_t>(1, nr * K));
  parallel_ranges(blocks, min_blocks, [&](index_t b0, index_t b1) {
    const index_t j0 = b0 * nr, j1 = std::min(p.out, b1 * nr);
    for (index_t i = 0; i < p.N; ++i) {
      float* y = dst + i * p.out;
      for (index_t j = j0; j < j1; ++j) y[j] = bias ? bias[j] : 0.0f;
    }
    for (index_t j = j0; j < j1; j += nr) {
      const int nb = int(std::min(nr, j1 - j));
      for (index_t i = 0; i < p.N; i += mr) tile(int(std::min(mr, p.N - i)), nb, i, j);
    }
  });
}

void linear_forward_stream(const LinearParams& p, const float* src, const float* weights,
                           const float* bias, float* dst) {
  const GemmKernels& kt = kernels().gemm;
  const index_t K = p.in;
  stream_rows(p, bias, dst, [&](int mb, int nb, index_t i, index_t j) {
    kt.dot_nt_tile(mb, nb, K, src + i * K, K, weights + j * K, K, dst + i * p.out + j, p.out);
  });
}

// The same in bf16 where the CPU has a bf16 dot-product tile: x rounded once into rows of bf16
// (the calling thread's workspace slot 6; zero-padded to a multiple of 32), W rounded as the
// tile reads it (fp32 W streams once, as above; a bf16 GEMM would pack a rounded, transposed
// copy of all of W on every call: AlexNet's FC6 at batch 16 on Zen 4, 2 threads, 12.6-17.5
// -> 8.7-10.4 ms; fp32 streaming 11.6-13.7).
void linear_forward_stream_bf16(const LinearParams& p, const float* src, const float* weights,
                                const float* bias, float* dst) {
  const GemmKernels& kt = kernels().gemm;
  const index_t K = p.in, lda = (K + 31) / 32 * 32;
  auto* xr = reinterpret_cast<bf16_t*>(thread_workspace(6, std::size_t(p.N * lda + 1) / 2));
  for (index_t i = 0; i < p.N; ++i) {
    kt.round_bf16(src + i * K, K, xr + i * lda);
    std::fill(xr + i * lda + K, xr + (i + 1) * lda, bf16_t(0));
  }
  stream_rows(p, bias, dst, [&](int mb, int nb, index_t i, index_t j) {
    kt.bf16_dot_nt_tile(mb, nb, K, xr + i * lda, lda, weights + j * K, K, dst + i * p.out + j,
                        p.out);
  });
}

}  // namespace

void linear_forward(const LinearParams& p, const float* src, const float* weights,
                    const float* bias, float* dst) {
  validate(p);
  if (p.N == 0 || p.out == 0) return;
  if (p.precision == Precision::fp32 && p.N <= kStreamRows && p.in >= 32) {
    linear_forward_stream(p, src, weights, bias, dst);
    return;
  }
  if (p.precision == Precision::bf16 && !p.packed_weights && p.N <= kStreamRows && p.in >= 32 &&
      kernels().gemm.bf16_dot_nt_tile != nullptr) {
    linear_forward_stream_bf16(p, src, weights, bias, dst);
    return;
  }
  GemmOutput out;
  out.c = dst;
  out.ldc = p.out;
  out.bias_col = bias;
  const index_t ld = std::max<index_t>(1, p.in);
  if (p.packed_weights && p.precision == Precision::bf16) {
    gemm(p.N, p.out, p.in, MatrixOperandA(src, ld, false),
         PrepackedB(p.in, p.out, p.packed_weights), out, 0, nullptr, p.precision);
    return;
  }
  gemm(p.N, p.out, p.in, MatrixOperandA(src, ld, false), MatrixOperandB(weights, ld, true), out, 0,
       nullptr, p.precision);
}

std::size_t linear_packed_values(const LinearParams& p) { return PrepackedB::values(p.in, p.out); }

void linear_pack_bf16(const LinearParams& p, const float* weights, std::uint16_t* packed) {
  validate(p);
  const index_t ld = std::max<index_t>(1, p.in);
  PrepackedB::pack(p.in, p.out, MatrixOperandB(weights, ld, true), packed);
}

void linear_backward(const LinearParams& p, const float* diff_dst, const float* src,
                     const float* weights, float* diff_src, float* diff_weights, float* diff_bias) {
  validate(p);
  const index_t ldo = std::max<index_t>(1, p.out), ldi = std::max<index_t>(1, p.in);
  if (diff_src && p.N > 0 && p.in > 0) {
    sgemm(false, false, p.N, p.in, p.out, 1.0f, diff_dst, ldo, weights, ldi, 0.0f, diff_src, ldi,
          p.precision);
  }
  if (p.out > 0 && p.in > 0) {
    sgemm(true, false, p.out, p.in, p.N, 1.0f, diff_dst, ldo, src, ldi, 0.0f, diff_weights, ldi,
          p.precision);
  }
  if (diff_bias && p.out > 0) {
    parallel_ranges(p.out, 1024, [&](index_t b, index_t e) {
      for (index_t j = b; j < e; ++j) diff_bias[j] = 0.0f;
      for (index_t n = 0; n < p.N; ++n) {
        const float* dy = diff_dst + n * p.out;
        for (index_t j = b; j < e; ++j) diff_bias[j] += dy[j];
      }
    });
  }
}

}  // namespace cnnkit
