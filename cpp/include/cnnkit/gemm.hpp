// SGEMM: C = alpha * op(A) @ op(B) + beta * C, and the GEMM engine that convolution and
// linear layers reuse with their own operand packers and epilogues.
#pragma once

#include <cstddef>
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
};

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

 private:
  const float* b_;
  index_t ldb_;
  bool trans_;
};

// The engine: Goto/BLIS blocking (K blocks of ~KC, shared packed A blocks of <= MC rows,
// per-thread packed B blocks of ~NB columns kept in L2) around the active micro-kernel.
// `threads` <= 0 means get_num_threads(); threads == 1 runs on the calling thread only, so it
// may be called from inside an outer OpenMP region (e.g. one image per thread); there, pass a
// `workspace` of gemm_workspace_floats(M, N, K, 1) floats owned by that thread, since nothing
// may be allocated (or thrown) inside a parallel region. With workspace == nullptr the engine
// takes the calling thread's scratch memory (it may throw std::bad_alloc before any work).
void gemm(index_t M, index_t N, index_t K, const GemmOperandA& a, const GemmOperandB& b,
          const GemmOutput& out, int threads = 0, float* workspace = nullptr);

// Floats of scratch memory gemm() needs for this problem and thread count.
std::size_t gemm_workspace_floats(index_t M, index_t N, index_t K, int threads);

// A left operand packed once for many products with the same A (convolution weights applied
// to every image): gemm() then reads the packed panels instead of packing them per call.
// Valid for the ISA that was active when it was packed.
class PrepackedA final : public GemmOperandA {
 public:
  // Floats of storage needed for an M x K operand.
  static std::size_t floats(index_t M, index_t K);
  // Packs src (M x K) into storage (at least floats(M, K) floats, owned by the caller).
  PrepackedA(index_t M, index_t K, const GemmOperandA& src, float* storage);
  void pack(index_t i0, int m, index_t p0, int kc, float* dst) const override;
  const float* packed_block(index_t kb, index_t mb) const override;

 private:
  const GemmOperandA& src_;
  float* data_;
  index_t nmb_;
  std::vector<std::size_t> offsets_;  // start of block (kb, mb) at kb * nmb + mb
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
void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc);

}  // namespace cnnkit
