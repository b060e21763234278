// The convolution algorithms and the contract of conv2d.cpp's ordered lists: each algorithm
// is an entry {name, applies, run} of one direction's list; a pass runs the first entry that
// applies. An algorithm is one file under cpp/src/conv/ plus its line in the list (and its
// declarations here). Baseline code only: never include from ISA files.
#pragma once

#include "cnnkit/conv.hpp"
#include "conv/conv_kernels.hpp"
#include "pool/pool_kernels.hpp"

namespace cnnkit {

// What applies() may look at besides the shapes. The list walker reads it once per call and
// hands it to every applies(), so eligibility is a plain function of its arguments and the
// name query and the run see the same values.
struct ConvPolicy {
  ConvAlgorithm algorithm = ConvAlgorithm::automatic;  // set_conv_algorithm()
  int threads = 1;                                     // get_num_threads()
  const ConvKernels* kernels = nullptr;                // the active ISA's conv kernels
};

using ConvApplies = bool (*)(const Conv2dParams& p, const ConvPolicy& policy);

// bf16_native: the algorithm takes p.precision == bf16 itself: it runs the GEMM engine's bf16
// path, or (Winograd) rounds its operands to bf16 as it reads them. Other algorithms that apply
// to bf16 (depthwise, the reference) get operands already rounded to bf16 by the list walker
// and compute in fp32: the same products (exact in fp32) and fp32 sums, in another order.
struct ConvForwardAlgorithm {
  const char* name;
  bool bf16_native;
  ConvApplies applies;
  void (*run)(const Conv2dParams& p, const float* src, const float* weights, const float* bias,
              float* dst, bool relu);
  // dst = max_pool(run's output), pooled while it is in cache (null: conv2d_max_pool_forward
  // runs run() into a temporary and pools that)
  void (*run_pooled)(const Conv2dParams& p, const float* src, const float* weights,
                     const float* bias, bool relu, const Pool2dPlane& pool, float* dst) = nullptr;
};
struct ConvBackwardDataAlgorithm {
  const char* name;
  bool bf16_native;
  ConvApplies applies;
  void (*run)(const Conv2dParams& p, const float* diff_dst, const float* weights, float* diff_src);
};
// run() computes diff_bias too (unless it is null).
struct ConvBackwardWeightsAlgorithm {
  const char* name;
  bool bf16_native;
  ConvApplies applies;
  void (*run)(const Conv2dParams& p, const float* diff_dst, const float* src, float* diff_weights,
              float* diff_bias);
};

// Every run() below gets validated parameters with N >= 1 (forward, backward data) or N >= 0
// (backward weights, which writes zeros for an empty batch).

// conv2d_ref.cpp: always applies (the last entry of every list); runs conv2d_*_ref.
bool reference_applies(const Conv2dParams& p, const ConvPolicy& policy);

// depthwise.cpp: groups == C, filters up to 64 wide; all three directions.
bool depthwise_applies(const Conv2dParams& p, const ConvPolicy& policy);
void depthwise_forward(const Conv2dParams& p, const float* src, const float* weights,
                       const float* bias, float* dst, bool relu);
void depthwise_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                             float* diff_src);
void depthwise_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                                float* diff_weights, float* diff_bias);

// winograd.cpp: stride 1, dilation 1, one group, filters 2..9, under the policy's setting.
bool winograd_forward_applies(const Conv2dParams& p, const ConvPolicy& policy);
void winograd_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu);
bool winograd_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy);
void winograd_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                            float* diff_src);
bool winograd_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy);
void winograd_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                               float* diff_weights, float* diff_bias);

// bf16_direct.cpp: bf16 on AMX, stride 1, one group, >= 16 input channels: B tiles straight
// from a padded bf16 copy of the image; backward data as the forward of dY.
bool bf16_direct_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_direct_forward(const Conv2dParams& p, const float* src, const float* weights,
                         const float* bias, float* dst, bool relu);
void bf16_direct_forward_pooled(const Conv2dParams& p, const float* src, const float* weights,
                                const float* bias, bool relu, const Pool2dPlane& pool, float* dst);
// bf16_s2d.cpp: strided bf16 convolutions with few input channels (AlexNet's conv1) as a
// stride-1 bf16_direct convolution of the s x s phases of the image (space to depth).
bool bf16_s2d_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_s2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu);
void bf16_s2d_forward_pooled(const Conv2dParams& p, const float* src, const float* weights,
                             const float* bias, bool relu, const Pool2dPlane& pool, float* dst);
bool bf16_s2d_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_s2d_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                            float* diff_src);
bool bf16_s2d_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_s2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                               float* diff_weights, float* diff_bias);
bool bf16_direct_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_direct_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                               float* diff_src);
bool bf16_direct_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy);
void bf16_direct_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                                  float* diff_weights, float* diff_bias);

// gemm_1x1.cpp: forward of a 1x1, stride-1, unpadded convolution (the image is the B matrix).
bool gemm_1x1_forward_applies(const Conv2dParams& p, const ConvPolicy& policy);
void gemm_1x1_forward(const Conv2dParams& p, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu);

// implicit_gemm.cpp: forward of any convolution, patches packed straight from the image.
bool implicit_gemm_forward_applies(const Conv2dParams& p, const ConvPolicy& policy);
void implicit_gemm_forward(const Conv2dParams& p, const float* src, const float* weights,
                           const float* bias, float* dst, bool relu);

// transposed_conv.cpp: stride-1 backward data as a forward convolution of dY.
bool transposed_conv_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy);
void transposed_conv_backward_data(const Conv2dParams& p, const float* diff_dst,
                                   const float* weights, float* diff_src);

// gemm_col2im.cpp: backward data of any convolution, GEMM then scatter.
bool gemm_col2im_backward_data_applies(const Conv2dParams& p, const ConvPolicy& policy);
void gemm_col2im_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                               float* diff_src);

// dot_weight_grad.cpp: weight gradient as dot products along the pixels.
bool dot_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy);
void dot_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                          float* diff_weights, float* diff_bias);

// gemm_weight_grad.cpp: weight gradient of any convolution by the GEMM engine.
bool gemm_backward_weights_applies(const Conv2dParams& p, const ConvPolicy& policy);
void gemm_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                           float* diff_weights, float* diff_bias);

}  // namespace cnnkit
