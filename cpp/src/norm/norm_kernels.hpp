// Batch-norm and LRN kernels registered in the kernel table (contracts in cnnkit/kernels.hpp).
#pragma once

#include "cnnkit/kernels.hpp"

#define CNNKIT_DECLARE_NORM(ns, isa)                                                           \
  namespace ns {                                                                               \
  void bn_stats_f32_##isa(const float* src, std::int64_t n, float shift, double* sum,          \
                          double* sumsq);                                                      \
  void bn_apply_f32_##isa(const float* src, float* dst, std::int64_t n, float mean_hi,         \
                          float mean_lo, float scale, float shift, std::uint16_t* relu_mask);  \
  void bn_bwd_reduce_f32_##isa(const float* diff_dst, const float* src, std::int64_t n,        \
                               float mean, const std::uint16_t* relu_mask, double* sum_dy,     \
                               double* sum_dy_xmu);                                            \
  void bn_bwd_apply_f32_##isa(const float* diff_dst, const float* src, float* diff_src,        \
                              std::int64_t n, float mean, float a, float b, float c,           \
                              const std::uint16_t* relu_mask);                                 \
  void lrn_fwd_f32_##isa(const float* src, float* dst, float* scale, const LrnArgs& a);        \
  void lrn_bwd_f32_##isa(const float* diff_dst, const float* src, const float* dst,            \
                         const float* scale, float* diff_src, float* work, const LrnArgs& a);  \
  }

namespace cnnkit {
CNNKIT_DECLARE_NORM(ref, ref)
CNNKIT_DECLARE_NORM(avx512, avx512)
}  // namespace cnnkit

#undef CNNKIT_DECLARE_NORM
