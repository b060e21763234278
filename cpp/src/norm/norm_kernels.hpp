// The normalisation family's kernels (batch norm, LRN, group / layer norm): their contracts,
// every ISA's implementations and the family's sub-table (filled by register_norm_kernels() in
// norm_kernels.cpp: reference first, then ISA overrides). Included by ISA files: declarations,
// plain structs and constants only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// Batch-norm building blocks over n contiguous floats of one channel (see norm.hpp):
//   stats:    sum += sum(x - shift), sumsq += sum((x - shift)^2), accumulated in double
//   apply:    dst = ((x - mean_hi) - mean_lo) * scale + shift  (mean split into two floats so a
//             mean of 1e4 with a std of 1e-2 loses nothing); with relu_mask (fused ReLU):
//             dst = max(dst, 0) and bit i % 16 of relu_mask[i / 16] = (dst > 0)
//   bwd_reduce: sum_dy += sum(dy), sum_dy_xmu += sum(dy * (x - mean)), in double
//   bwd_apply:  diff_src = a * dy + b * (x - mean) + c
//   (both backward kernels read dy as 0 where a non-null relu_mask has a 0 bit: the gradient
//   through the fused ReLU)
using BnStats = void (*)(const float* src, std::int64_t n, float shift, double* sum, double* sumsq);
using BnApply = void (*)(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                         float scale, float shift, std::uint16_t* relu_mask);
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

// Row-norm building blocks (group norm, layer norm: see norm.hpp and row_norm.cpp) over n
// contiguous floats of one normalised row, with a per-element affine w[i], b[i] (null: 1, 0).
// The row's statistics come from bn_stats; a per-segment affine (group norm: one channel's
// plane) uses bn_apply, bn_bwd_reduce and bn_bwd_apply with scalar constants.
//   apply:      dst = ((x - mean_hi) - mean_lo) * inv_std * w + b
//   bwd_reduce: sum_g += sum(g), sum_gx += sum(g * (x - mean)), g = dy * w, in double
//   bwd_apply:  diff_src = a * dy * w + b * (x - mean) + c
//   dwdb:       dw[i] += dy * xhat, db[i] += dy (double accumulators, one per element),
//               xhat = ((x - mean_hi) - mean_lo) * inv_std
using RnApply = void (*)(const float* src, float* dst, std::int64_t n, float mean_hi, float mean_lo,
                         float inv_std, const float* w, const float* b);
using RnBwdReduce = void (*)(const float* diff_dst, const float* src, const float* w,
                             std::int64_t n, float mean, double* sum_g, double* sum_gx);
using RnBwdApply = void (*)(const float* diff_dst, const float* src, const float* w,
                            float* diff_src, std::int64_t n, float mean, float a, float b, float c);
using RnDwDb = void (*)(const float* diff_dst, const float* src, std::int64_t n, float mean_hi,
                        float mean_lo, float inv_std, double* dw, double* db);

struct NormKernels {
  BnStats bn_stats = nullptr;
  BnApply bn_apply = nullptr;
  BnBwdReduce bn_bwd_reduce = nullptr;
  BnBwdApply bn_bwd_apply = nullptr;
  LrnFwd lrn_fwd = nullptr;
  LrnBwd lrn_bwd = nullptr;
  RnApply rn_apply = nullptr;
  RnBwdReduce rn_bwd_reduce = nullptr;
  RnBwdApply rn_bwd_apply = nullptr;
  RnDwDb rn_dwdb = nullptr;
};

void register_norm_kernels(NormKernels& k, Isa isa);

}  // namespace cnnkit

// Every ISA's kernels: ref (batch_norm.cpp, lrn.cpp, row_norm.cpp), avx512, avx2 (kernels/avx2/:
// batch_norm_avx2.cpp, lrn_avx2.cpp, row_norm_avx2.cpp) and neon (the four batch-norm kernels
// only: LRN and the row norms run the reference there).

#define CNNKIT_DECLARE_NORM(ns, isa)                                                             \
  namespace ns {                                                                                 \
  void bn_stats_f32_##isa(const float* src, std::int64_t n, float shift, double* sum,            \
                          double* sumsq);                                                        \
  void bn_apply_f32_##isa(const float* src, float* dst, std::int64_t n, float mean_hi,           \
                          float mean_lo, float scale, float shift, std::uint16_t* relu_mask);    \
  void bn_bwd_reduce_f32_##isa(const float* diff_dst, const float* src, std::int64_t n,          \
                               float mean, const std::uint16_t* relu_mask, double* sum_dy,       \
                               double* sum_dy_xmu);                                              \
  void bn_bwd_apply_f32_##isa(const float* diff_dst, const float* src, float* diff_src,          \
                              std::int64_t n, float mean, float a, float b, float c,             \
                              const std::uint16_t* relu_mask);                                   \
  void lrn_fwd_f32_##isa(const float* src, float* dst, float* scale, const LrnArgs& a);          \
  void lrn_bwd_f32_##isa(const float* diff_dst, const float* src, const float* dst,              \
                         const float* scale, float* diff_src, float* work, const LrnArgs& a);    \
  void rn_apply_f32_##isa(const float* src, float* dst, std::int64_t n, float mean_hi,           \
                          float mean_lo, float inv_std, const float* w, const float* b);         \
  void rn_bwd_reduce_f32_##isa(const float* diff_dst, const float* src, const float* w,          \
                               std::int64_t n, float mean, double* sum_g, double* sum_gx);       \
  void rn_bwd_apply_f32_##isa(const float* diff_dst, const float* src, const float* w,           \
                              float* diff_src, std::int64_t n, float mean, float a, float b,     \
                              float c);                                                          \
  void rn_dwdb_f32_##isa(const float* diff_dst, const float* src, std::int64_t n, float mean_hi, \
                         float mean_lo, float inv_std, double* dw, double* db);                  \
  }

namespace cnnkit {
CNNKIT_DECLARE_NORM(ref, ref)
CNNKIT_DECLARE_NORM(avx512, avx512)
CNNKIT_DECLARE_NORM(avx2, avx2)
CNNKIT_DECLARE_NORM(neon, neon)  // only the bn_* four are defined (kernels/neon/)
}  // namespace cnnkit

#undef CNNKIT_DECLARE_NORM
