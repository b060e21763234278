// The dropout family's kernel: its contract, every ISA's implementation and the family's
// sub-table (filled by register_dropout_kernels() in dropout_kernels.cpp: reference first,
// then ISA overrides). Included by ISA files: declarations only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// Dropout over n elements whose global indices start at `first`: keep element i when
// hash(seed, i) >= threshold (32-bit), dst = keep ? x * scale : 0, mask = keep.
using DropoutFwd = void (*)(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                            std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                            float scale);

struct DropoutKernels {
  DropoutFwd dropout_fwd = nullptr;
};

void register_dropout_kernels(DropoutKernels& k, Isa isa);

namespace ref {  // dropout.cpp
void dropout_fwd_f32_ref(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                         std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                         float scale);
}
namespace avx2 {
void dropout_fwd_f32_avx2(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                          std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                          float scale);
}
namespace avx512 {
void dropout_fwd_f32_avx512(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                            std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                            float scale);
}
}  // namespace cnnkit
