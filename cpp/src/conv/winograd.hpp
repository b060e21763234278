// Winograd F(4x4, 3x3) transforms (the algorithm itself: winograd.cpp, declared in
// conv2d_algorithms.hpp).
#pragma once

#include "cnnkit/kernels.hpp"

namespace cnnkit {

// The reference transforms (plain loops over the lanes), registered for every ISA.
void wino_input_ref(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                    const WinoLanes& lanes, float* v, std::int64_t v_xi, std::int64_t v_c);
void wino_output_ref(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                     const WinoLanes& lanes, float* y, std::int64_t plane, std::int64_t ld,
                     const float* bias, bool relu);
void wino_grad_output_ref(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                          const WinoLanes& lanes, float* m, std::int64_t m_xi,
                          std::int64_t m_k);

}  // namespace cnnkit
