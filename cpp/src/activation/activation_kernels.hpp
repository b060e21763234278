// The activation family's kernels: their contracts, every ISA's implementations and the
// family's sub-table (filled by register_activation_kernels() in activation_kernels.cpp:
// reference first, then ISA overrides). Included by ISA files: declarations only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// Element-wise activation kernels over n contiguous floats (the driver splits the tensor into
// per-thread chunks). Forward: dst = f(src; alpha). Backward: diff_src = diff_dst * f'(...),
// where `a` and `b` are the saved tensors the op needs (x and/or y; see activation.hpp):
// relu (y, -), leaky_relu (x, -), elu (x, y), sigmoid (y, -), tanh (y, -).
using EltwiseFwd = void (*)(const float* src, float* dst, std::int64_t n, float alpha);
using EltwiseBwd = void (*)(const float* diff_dst, const float* a, const float* b, float* diff_src,
                            std::int64_t n, float alpha);

struct ActivationKernels {
  EltwiseFwd relu_fwd = nullptr, leaky_relu_fwd = nullptr, elu_fwd = nullptr, sigmoid_fwd = nullptr,
             tanh_fwd = nullptr;
  EltwiseBwd relu_bwd = nullptr, leaky_relu_bwd = nullptr, elu_bwd = nullptr, sigmoid_bwd = nullptr,
             tanh_bwd = nullptr;
};

void register_activation_kernels(ActivationKernels& k, Isa isa);

}  // namespace cnnkit

// Every ISA's kernels: ref (activation.cpp), avx2, avx512, neon.

#define CNNKIT_DECLARE_ELTWISE(ns, isa)                                                     \
  namespace ns {                                                                            \
  void relu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);       \
  void leaky_relu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha); \
  void elu_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);        \
  void sigmoid_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);    \
  void tanh_fwd_f32_##isa(const float* src, float* dst, std::int64_t n, float alpha);       \
  void relu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,       \
                          std::int64_t n, float alpha);                                     \
  void leaky_relu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx, \
                                std::int64_t n, float alpha);                               \
  void elu_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,        \
                         std::int64_t n, float alpha);                                      \
  void sigmoid_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,    \
                             std::int64_t n, float alpha);                                  \
  void tanh_bwd_f32_##isa(const float* dy, const float* a, const float* b, float* dx,       \
                          std::int64_t n, float alpha);                                     \
  }

namespace cnnkit {
CNNKIT_DECLARE_ELTWISE(ref, ref)
CNNKIT_DECLARE_ELTWISE(avx2, avx2)
CNNKIT_DECLARE_ELTWISE(avx512, avx512)
CNNKIT_DECLARE_ELTWISE(neon, neon)
}  // namespace cnnkit

#undef CNNKIT_DECLARE_ELTWISE
