// Pooling kernels registered in the kernel table (contract: MaxPool2dFwd in cnnkit/kernels.hpp).
#pragma once

#include "cnnkit/kernels.hpp"

namespace cnnkit {
void maxpool2d_fwd_f32_ref(const float* src, float* dst, std::int64_t* indices,
                           const Pool2dPlane& p, std::int64_t planes);
namespace avx512 {
void maxpool2d_fwd_f32_avx512(const float* src, float* dst, std::int64_t* indices,
                              const Pool2dPlane& p, std::int64_t planes);
}
}  // namespace cnnkit
