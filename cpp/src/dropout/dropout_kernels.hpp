// Dropout kernels registered in the kernel table (DropoutFwd in cnnkit/kernels.hpp).
#pragma once

#include "cnnkit/kernels.hpp"

namespace cnnkit {
namespace ref {
void dropout_fwd_f32_ref(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                         std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                         float scale);
}
namespace avx512 {
void dropout_fwd_f32_avx512(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                            std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                            float scale);
}
}  // namespace cnnkit
