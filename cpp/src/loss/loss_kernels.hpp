// The loss family's kernel (softmax's exponentials): its contract, every ISA's implementation
// and the family's sub-table (filled by register_loss_kernels() in loss_kernels.cpp: reference
// first, then ISA overrides). Included by ISA files: declarations only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// Softmax building block over one row: y[j] = exp(x[j] - shift), returns sum_j y[j].
using ExpShiftSum = double (*)(const float* x, float* y, std::int64_t n, float shift);

struct LossKernels {
  ExpShiftSum exp_shift_sum = nullptr;
};

void register_loss_kernels(LossKernels& k, Isa isa);

double exp_shift_sum_ref(const float* x, float* y, std::int64_t n, float shift);  // loss.cpp

namespace avx2 {
double exp_shift_sum_avx2(const float* x, float* y, std::int64_t n, float shift);
}

namespace avx512 {
double exp_shift_sum_avx512(const float* x, float* y, std::int64_t n, float shift);
}

}  // namespace cnnkit
