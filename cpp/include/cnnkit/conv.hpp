// 2-D convolution (NCHW, float32): forward, backward data, backward weights; and the locally
// connected / tiled variants with unshared weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cnnkit/common.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/pool.hpp"

namespace cnnkit {

// Forms of one weight tensor that a forward algorithm derives from the weights alone
// (Winograd's transformed filters, packed GEMM panels), kept across the calls of an inference
// model (Conv2dParams::weight_cache) so batch-1 calls do not redo them: the owner (the Python
// Conv2d of a fused model) drops it when the weights change. Safe for concurrent callers.
class ConvWeightCache {
 public:
  ConvWeightCache();
  ~ConvWeightCache();
  ConvWeightCache(const ConvWeightCache&) = delete;
  ConvWeightCache& operator=(const ConvWeightCache&) = delete;
  // The `floats` floats stored under `key` (algorithm, ISA, shape), made by fill(buffer) on
  // first use; 64-byte aligned.
  template <typename Fill>
  const float* get(const std::string& key, std::size_t floats, Fill&& fill) {
    FillRef f{
        [](void* ctx, float* out) { (*static_cast<std::remove_reference_t<Fill>*>(ctx))(out); },
        const_cast<void*>(static_cast<const void*>(&fill))};
    return get_or_fill(key, floats, f);
  }
  std::size_t bytes() const;  // held in all
  std::size_t entries() const;

 private:
  struct FillRef {
    void (*call)(void* ctx, float* out);
    void* ctx;
  };
  const float* get_or_fill(const std::string& key, std::size_t floats, FillRef fill);
  struct Impl;
  Impl* impl_;
};

struct Conv2dParams {
  index_t N = 0, C = 0, H = 0, W = 0;  // input [N, C, H, W]
  index_t K = 0, Fh = 0, Fw = 0;       // weight [K, C / groups, Fh, Fw]
  index_t stride_h = 1, stride_w = 1;
  index_t pad_h = 0, pad_w = 0;
  index_t dil_h = 1, dil_w = 1;
  index_t groups = 1;
  index_t Ho = 0, Wo = 0;  // output [N, K, Ho, Wo], filled by conv2d_params()
  // bf16 (autocast): the two operands of each pass (x and W; dY and W; dY and x) rounded to
  // bf16, products summed in fp32; the bias is added in fp32.
  Precision precision = Precision::fp32;
  // bf16 forward only: the weights packed ahead of time by conv2d_pack_bf16 (an inference
  // cache), read by the bf16_direct algorithm instead of packing them per call; the other
  // algorithms read `weights` (the same values). Null: pack them.
  const std::uint16_t* packed_weights = nullptr;
  // fp32 forward only: where the algorithm keeps what it derives from the weights (see
  // ConvWeightCache); null: derive it per call. Never used for the other passes.
  ConvWeightCache* weight_cache = nullptr;
};

// The weights [K, C, Fh, Fw] (one group) as bf16_direct's A panels: conv2d_packed_values(p)
// bf16 values (a function of K, C, Fh, Fw only).
std::size_t conv2d_packed_values(const Conv2dParams& p);
void conv2d_pack_bf16(const Conv2dParams& p, const float* weights, std::uint16_t* packed);

// Validates the configuration (names every offending value) and computes Ho, Wo:
//   Ho = floor((H + 2 P - D (F - 1) - 1) / S) + 1, as PyTorch.
// `weight_in_channels` is the weight's second dimension (must equal C / groups).
Conv2dParams conv2d_params(index_t N, index_t C, index_t H, index_t W, index_t K,
                           index_t weight_in_channels, index_t Fh, index_t Fw, index_t stride_h,
                           index_t stride_w, index_t pad_h, index_t pad_w, index_t dil_h,
                           index_t dil_w, index_t groups);

// dst[N, K, Ho, Wo] = conv(src, weights) + bias (bias may be null), then ReLU if relu.
void conv2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                    const float* bias, float* dst, bool relu = false);

// int8 on the row engine (conv/conv2d_int8_rows.cpp): src uint8 NHWC [N, H, W, C] (on the
// grid s.x_scale, s.x_zp), weights wq [K, C / groups, Fh, Fw] packed by conv2d_int8_rows_pack,
// output uint8 NHWC [N, Ho, Wo, K] (yq, s.y_scale > 0) or fp32 NCHW [N, K, Ho, Wo] (yf). pool
// (may be null): a max pooling of each image's output (planes = K), the output then pooled
// ([N, Hq, Wq, K] or [N, K, Hq, Wq]).
struct Int8RowsLayout {
  std::size_t bytes = 0;  // conv2d_int8_rows_pack's output
  bool direct = false;    // the patches read in place (else gathered): the packed layout
  int kstep = 0;          // depends on it and on the slice depth, both chosen by the ISA
};
Int8RowsLayout conv2d_int8_rows_layout(const Conv2dParams& p);
void conv2d_int8_rows_pack(const Conv2dParams& p, const std::int8_t* wq, std::int8_t* packed);
void conv2d_forward_int8_rows(const Conv2dParams& p, const std::uint8_t* src,
                              const std::int8_t* packed, const I8RowsScales& s, std::uint8_t* yq,
                              float* yf, const Pool2dParams* pool = nullptr);

// Inference: dst[N, K, Hq, Wq] = max_pool(conv2d_forward's output), the max pooling `pool`
// (planes = N K, H = Ho, W = Wo; validated, ValueError otherwise) of each output plane: the
// values of max_pool2d_forward on conv2d_forward's output, bit for bit, without the argmax.
// bf16_direct pools each image's planes while they are in cache (the unpooled output is never
// written); the other algorithms write it to a temporary first.
void conv2d_max_pool_forward(const Conv2dParams& p, const float* src, const float* weights,
                             const float* bias, bool relu, const Pool2dParams& pool, float* dst);

// diff_src[N, C, H, W] = gradient of the loss w.r.t. the input, given diff_dst[N, K, Ho, Wo].
void conv2d_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                          float* diff_src);

// diff_weights[K, C/groups, Fh, Fw] (and diff_bias[K] unless null) from diff_dst and src.
void conv2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                             float* diff_weights, float* diff_bias);

// Which algorithm 3x3 stride-1 convolutions use: automatic (Winograd F(4x4, 3x3) where this
// CPU has its SIMD transforms and the layer has >= 16 input and output channels, otherwise the
// direct implicit GEMM), direct (always the implicit GEMM: the last bit of accuracy), or
// winograd (wherever it applies, on every ISA). Process-wide.
enum class ConvAlgorithm { automatic = 0, direct = 1, winograd = 2 };
void set_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm conv_algorithm();

// The three passes of a convolution, each with its own ordered list of algorithms.
enum class ConvDirection { forward = 0, backward_data = 1, backward_weights = 2 };

// The algorithm conv2d_forward, conv2d_backward_data or conv2d_backward_weights takes for p
// right now (the first entry of that direction's list that applies): "winograd",
// "implicit_gemm", "gemm" (1x1 forward; the GEMM weight gradient), "gemm_col2im", "dot",
// "depthwise". For benchmarks and tests.
const char* conv2d_algorithm_name(const Conv2dParams& p, ConvDirection direction);

// The algorithm the last call of that direction on this thread ran (null before the first
// call and after a call with N == 0, which runs none). For tests: it must be the one
// conv2d_algorithm_name() reported.
const char* conv2d_last_algorithm(ConvDirection direction);

// Plain-loop reference kernels (the oracle; also what the tests compare the fast paths with).
void conv2d_forward_ref(const Conv2dParams& p, const float* src, const float* weights,
                        const float* bias, float* dst, bool relu = false);
void conv2d_backward_data_ref(const Conv2dParams& p, const float* diff_dst, const float* weights,
                              float* diff_src);
void conv2d_backward_weights_ref(const Conv2dParams& p, const float* diff_dst, const float* src,
                                 float* diff_weights, float* diff_bias);

// Tiled convolution: output position (i, j) uses filter bank (i mod Th, j mod Tw);
// weight [Th, Tw, K, C, Fh, Fw]. Locally connected is Th = Ho, Tw = Wo (bias per position).
// groups and dilation are 1 here; the rest of Conv2dParams applies.
struct TiledConv2dParams {
  Conv2dParams conv;
  index_t Th = 1, Tw = 1;
  bool bias_per_position = false;  // bias [K, Ho, Wo] (locally connected) instead of [K]
};

TiledConv2dParams tiled_conv2d_params(const char* op, index_t N, index_t C, index_t H, index_t W,
                                      index_t Th, index_t Tw, index_t K, index_t Cw, index_t Fh,
                                      index_t Fw, index_t stride_h, index_t stride_w, index_t pad_h,
                                      index_t pad_w, bool local);

void tiled_conv2d_forward(const TiledConv2dParams& p, const float* src, const float* weights,
                          const float* bias, float* dst);
// Any of diff_src / diff_weights / diff_bias may be null (not computed).
void tiled_conv2d_backward(const TiledConv2dParams& p, const float* diff_dst, const float* src,
                           const float* weights, float* diff_src, float* diff_weights,
                           float* diff_bias);

}  // namespace cnnkit
