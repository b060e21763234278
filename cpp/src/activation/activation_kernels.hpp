// Activation kernels registered in the kernel table (EltwiseFwd / EltwiseBwd in kernels.hpp).
// Backward argument order (a, b): relu (y, -), leaky_relu (x, -), elu (x, y), sigmoid (y, -),
// tanh (y, -).
#pragma once

#include "cnnkit/kernels.hpp"

#define CNNKIT_DECLARE_ELTWISE(ns, isa)                                                      \
  namespace ns {                                                                             \
  void relu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);        \
  void leaky_relu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);  \
  void elu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);         \
  void sigmoid_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);     \
  void tanh_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);        \
  void relu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,        \
                          std::int64_t n, float alpha);                                      \
  void leaky_relu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,  \
                                std::int64_t n, float alpha);                                \
  void elu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,         \
                         std::int64_t n, float alpha);                                       \
  void sigmoid_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,     \
                             std::int64_t n, float alpha);                                   \
  void tanh_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,        \
                          std::int64_t n, float alpha);                                      \
  }

namespace cnnkit {
CNNKIT_DECLARE_ELTWISE(ref, ref)
CNNKIT_DECLARE_ELTWISE(avx2, avx2)
CNNKIT_DECLARE_ELTWISE(avx512, avx512)
}  // namespace cnnkit

#undef CNNKIT_DECLARE_ELTWISE
