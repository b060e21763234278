// Kernels of the loss family (contract: ExpShiftSum in cnnkit/kernels.hpp).
#pragma once

#include <cstdint>

namespace cnnkit {

double exp_shift_sum_ref(const float* x, float* y, std::int64_t n, float shift);

namespace avx512 {
double exp_shift_sum_avx512(const float* x, float* y, std::int64_t n, float shift);
}

}  // namespace cnnkit
