// The pooling family's kernels: their contracts, every ISA's implementations and the family's
// sub-table (filled by register_pool_kernels() in pool_kernels.cpp: reference first, then ISA
// overrides). Included by ISA files: declarations, plain structs and constants only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// One [H, W] plane of 2-D pooling (see pool.hpp for the output-size rules).
struct Pool2dPlane {
  std::int64_t H = 0, W = 0, Ho = 0, Wo = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};
// Max pooling over `planes` consecutive planes: dst/indices are [planes, Ho, Wo]; an index is the
// flat offset h * W + w of the (first) maximum inside its plane; indices == nullptr: not written
// (inference).
using MaxPool2dFwd = void (*)(const float* src, float* dst, std::int64_t* indices,
                              const Pool2dPlane& p, std::int64_t planes);

struct Pool2dParams;
// The plane geometry of p (its output size computed): what the kernels take. pool.cpp.
Pool2dPlane pool2d_plane(const Pool2dParams& p);

struct PoolKernels {
  MaxPool2dFwd max_pool2d_fwd = nullptr;
};

void register_pool_kernels(PoolKernels& k, Isa isa);

// pool.cpp
void maxpool2d_fwd_f32_ref(const float* src, float* dst, std::int64_t* indices,
                           const Pool2dPlane& p, std::int64_t planes);
namespace avx2 {
void maxpool2d_fwd_f32_avx2(const float* src, float* dst, std::int64_t* indices,
                            const Pool2dPlane& p, std::int64_t planes);
}
namespace avx512 {
void maxpool2d_fwd_f32_avx512(const float* src, float* dst, std::int64_t* indices,
                              const Pool2dPlane& p, std::int64_t planes);
}
namespace neon {
void maxpool2d_fwd_f32_neon(const float* src, float* dst, std::int64_t* indices,
                            const Pool2dPlane& p, std::int64_t planes);
}
}  // namespace cnnkit
