// 2-D pooling over NCHW float32 tensors: max (with argmax indices), average, adaptive average.
// Semantics as PyTorch's torch.nn.functional (see the maths at the top of src/pool/pool.cpp).
#pragma once

#include "cnnkit/common.hpp"

namespace cnnkit {

// `planes` = N * C independent [H, W] planes.
struct Pool2dParams {
  index_t planes = 0, H = 0, W = 0;
  index_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
};

// PyTorch's pooling output size: floor (or ceil) of (in + 2p - k) / s + 1, where with ceil_mode
// a last window that would start inside the right padding is dropped.
index_t pool_output_size(index_t in, index_t k, index_t s, index_t p, bool ceil_mode);

// Throws std::invalid_argument naming `op` ("max_pool2d", "avg_pool2d") and the bad value:
// kernel and stride >= 1, 0 <= padding <= kernel / 2, output size >= 1.
void validate(const Pool2dParams& p, const char* op);
index_t pool_out_h(const Pool2dParams& p);
index_t pool_out_w(const Pool2dParams& p);

// dst, indices: [planes, Ho, Wo]; indices hold h * W + w of the first maximum of each window
// (nullptr: none are written, for inference).
void max_pool2d_forward(const Pool2dParams& p, const float* src, float* dst, index_t* indices);
// uint8 NHWC max pooling (int8 inference): src [N, H, W, planes] -> dst [N, Ho, Wo, planes],
// the maximum byte of each window (padding never wins: it is not read). Threads over the
// images (N = 1: the calling thread only).
void max_pool2d_nhwc_u8(const Pool2dParams& p, index_t N, const std::uint8_t* src,
                        std::uint8_t* dst);
// diff_src[planes, H, W] = sum of diff_dst routed to indices. Throws std::invalid_argument if
// an index is outside [0, H * W) (diff_src is then partly written).
void max_pool2d_backward(index_t planes, index_t H, index_t W, index_t Ho, index_t Wo,
                         const float* diff_dst, const index_t* indices, float* diff_src);

void avg_pool2d_forward(const Pool2dParams& p, const float* src, float* dst);
void avg_pool2d_backward(const Pool2dParams& p, const float* diff_dst, float* diff_src);

// Adaptive average pooling: output cell i averages input [floor(i*H/Ho), ceil((i+1)*H/Ho)).
struct AdaptivePool2dParams {
  index_t planes = 0, H = 0, W = 0, Ho = 1, Wo = 1;
};
void validate(const AdaptivePool2dParams& p);
void adaptive_avg_pool2d_forward(const AdaptivePool2dParams& p, const float* src, float* dst);
void adaptive_avg_pool2d_backward(const AdaptivePool2dParams& p, const float* diff_dst,
                                  float* diff_src);

}  // namespace cnnkit
