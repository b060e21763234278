// Winograd F(4x4, 3x3) convolution (winograd.cpp): 3x3, stride 1, dilation 1, one group.
#pragma once

#include "cnnkit/conv.hpp"
#include "cnnkit/kernels.hpp"

namespace cnnkit {

// Whether conv2d_forward (and, through it, the stride-1 backward data) or, with weight_grad,
// the weight gradient takes the Winograd path for these parameters under conv_algorithm().
bool winograd_selected(const Conv2dParams& p, bool weight_grad = false);

void winograd_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu);
void winograd_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                               float* diff_weights);

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
