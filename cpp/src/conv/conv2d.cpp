// 2-D convolution, NCHW, as three GEMMs over implicit patches (per image n and group g):
//
//   forward          Y[n,g]  [Kg x HoWo]   = W[g] [Kg x CgFF] @ P(X[n,g]) [CgFF x HoWo] + b
//   backward data    dP      [CgFF x HoWo] = W[g]^T @ dY[n,g];   dX[n,g] = col2im(dP)
//                    (stride 1: dX[n,g] = conv(dY[n,g], rot180(W[g]) with K and C swapped,
//                     padding D(F-1)-P), i.e. the forward kernel again, no scatter)
//   backward weights dW[g]   [Kg x CgFF]   = sum_n dY[n,g] [Kg x HoWo] @ P(X[n,g])^T
//                    db[k]                 = sum_{n,oy,ox} dY[n,k,oy,ox]
//
// where P(X)[(c,fy,fx)][(oy,ox)] = X[c][oy S - P + fy D][ox S - P + fx D] (0 outside), which
// the GEMM engine packs straight from the image (image_operands.cpp): no column matrix, so
// memory does not grow with the batch. Output size: Ho = floor((H + 2P - D(F-1) - 1) / S) + 1.
//
// Each direction is an ordered list of algorithms (as oneDNN's cpu_convolution_list.cpp); a
// pass runs the first entry whose applies() accepts the parameters under the policy (the
// set_conv_algorithm() setting, read once per call), and conv2d_algorithm_name() reports the
// name of that same entry. One file per algorithm (declared in conv2d_algorithms.hpp):
//
//   forward:          depthwise     groups == C                        depthwise.cpp
//                     winograd      F(4x4, 3x3), stride 1, see below   winograd.cpp
//                     bf16_direct   bf16 on AMX, stride 1, 1 group     bf16_direct.cpp
//                     gemm          1x1, stride 1, unpadded            gemm_1x1.cpp
//                     implicit_gemm any                                implicit_gemm.cpp
//                     reference     any                                conv2d_ref.cpp
//   backward data:    depthwise     groups == C                        depthwise.cpp
//                     winograd      stride 1, >= 16 channels/group,    winograd.cpp
//                                   Winograd takes the conv of dY
//                     bf16_direct   the same on AMX in bf16            bf16_direct.cpp
//                     implicit_gemm stride 1, >= 16 channels/group:    transposed_conv.cpp
//                                   conv of dY with rotated weights
//                     gemm_col2im   any                                gemm_col2im.cpp
//                     reference     any                                conv2d_ref.cpp
//   backward weights: depthwise     groups == C                        depthwise.cpp
//                     winograd      as forward, enough tiles           winograd.cpp
//                     bf16_direct   as forward                         bf16_direct.cpp
//                     dot           long dot products, <= 640 rows     dot_weight_grad.cpp
//                     gemm          any                                gemm_weight_grad.cpp
//                     reference     any                                conv2d_ref.cpp
//
// Winograd under set_conv_algorithm(): "auto" takes 3x3 and 5x5 stride-1, dilation-1,
// ungrouped layers with >= 16 channels in and out where the active ISA has SIMD transforms;
// "direct" never; "winograd" wherever it can run (filters 2..9, every ISA). The reference is
// never reached while the general entries before it take any shape. Each algorithm computes
// the bias gradient itself (the dot products in their pass over dY, the others with
// bias_grad()); the ReLU is fused into the forward algorithms' output.
//
// Threads: over (image, group) items with a one-thread GEMM each when there are enough items,
// otherwise items in turn with a threaded GEMM. The weight gradient sums per-thread partials
// in thread order, so results are bitwise reproducible for a given thread count.
#include "cnnkit/conv.hpp"

#include <atomic>
#include <vector>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"
#include "runtime/kernel_table.hpp"

namespace cnnkit {
namespace {

constexpr ConvForwardAlgorithm kForwardAlgorithms[] = {
    {"depthwise", false, depthwise_applies, depthwise_forward},
    {"winograd", true, winograd_forward_applies, winograd_forward},
    {"bf16_direct", true, bf16_direct_applies, bf16_direct_forward, bf16_direct_forward_pooled},
    {"bf16_s2d", true, bf16_s2d_applies, bf16_s2d_forward, bf16_s2d_forward_pooled},
    {"gemm", true, gemm_1x1_forward_applies, gemm_1x1_forward},
    {"implicit_gemm", true, implicit_gemm_forward_applies, implicit_gemm_forward},
    {"reference", false, reference_applies, conv2d_forward_ref},
};

constexpr ConvBackwardDataAlgorithm kBackwardDataAlgorithms[] = {
    {"depthwise", false, depthwise_applies, depthwise_backward_data},
    {"winograd", true, winograd_backward_data_applies, winograd_backward_data},
    {"bf16_direct", true, bf16_direct_backward_data_applies, bf16_direct_backward_data},
    {"bf16_s2d", true, bf16_s2d_backward_data_applies, bf16_s2d_backward_data},
    {"implicit_gemm", true, transposed_conv_backward_data_applies, transposed_conv_backward_data},
    {"gemm_col2im", true, gemm_col2im_backward_data_applies, gemm_col2im_backward_data},
    {"reference", false, reference_applies, conv2d_backward_data_ref},
};

constexpr ConvBackwardWeightsAlgorithm kBackwardWeightsAlgorithms[] = {
    {"depthwise", false, depthwise_applies, depthwise_backward_weights},
    {"winograd", true, winograd_backward_weights_applies, winograd_backward_weights},
    {"bf16_direct", true, bf16_direct_backward_weights_applies, bf16_direct_backward_weights},
    {"bf16_s2d", true, bf16_s2d_backward_weights_applies, bf16_s2d_backward_weights},
    {"dot", true, dot_backward_weights_applies, dot_backward_weights},
    {"gemm", true, gemm_backward_weights_applies, gemm_backward_weights},
    {"reference", false, reference_applies, conv2d_backward_weights_ref},
};

std::atomic<int> g_algorithm{int(ConvAlgorithm::automatic)};

// Per calling thread, the entry each direction ran last (conv2d_last_algorithm()).
thread_local const char* t_last[3] = {nullptr, nullptr, nullptr};

void check_params(const Conv2dParams& p) {
  if (p.Ho <= 0 || p.Wo <= 0) throw_invalid("conv2d: parameters were not validated");
}

ConvPolicy current_policy() {
  ConvPolicy policy;
  policy.algorithm = conv_algorithm();
  policy.threads = get_num_threads();
  policy.kernels = &kernels().conv;
  return policy;
}

// The first entry that applies (the reference, last, applies to everything).
template <typename Entry, std::size_t Count>
const Entry& first_applicable(const Entry (&list)[Count], const Conv2dParams& p,
                              const ConvPolicy& policy) {
  static_assert(Count > 0, "an algorithm list ends with the reference");
  for (const Entry& e : list) {
    if (e.applies(p, policy)) return e;
  }
  return list[Count - 1];
}

void record(ConvDirection d, const char* name) { t_last[int(d)] = name; }

// The forward list's algorithm for p, recorded for conv2d_last_algorithm(); null for N == 0.
const ConvForwardAlgorithm* forward_algorithm(const Conv2dParams& p) {
  record(ConvDirection::forward, nullptr);
  if (p.N == 0) return nullptr;
  const ConvForwardAlgorithm& a = first_applicable(kForwardAlgorithms, p, current_policy());
  record(ConvDirection::forward, a.name);
  return &a;
}

// The bf16 operands of an algorithm that computes in fp32: copies rounded to bf16 (the caller's
// arrays are never changed), in the calling thread's workspace slots 6 and 7, kept from call
// to call: fresh arrays page-faulted on every pass (a bf16 cifar_cnn training step on Zen 4
// spent ~6 % of its time in the kernel zeroing their pages). No algorithm calls back into a
// pass, so one pair is alive per thread. Empty for fp32 or for a bf16-native algorithm.
struct RoundedOperands {
  float *a = nullptr, *b = nullptr;
  RoundedOperands(bool round, const float* x, index_t nx, const float* y, index_t ny) {
    if (!round) return;
    a = thread_workspace(6, std::size_t(nx));
    b = thread_workspace(7, std::size_t(ny));
    round_bf16_f32(x, nx, a);
    round_bf16_f32(y, ny, b);
  }
  const float* first(const float* x) const { return a ? a : x; }
  const float* second(const float* y) const { return b ? b : y; }
};

index_t src_size(const Conv2dParams& p) { return p.N * p.C * p.H * p.W; }
index_t dst_size(const Conv2dParams& p) { return p.N * p.K * p.Ho * p.Wo; }
index_t weight_size(const Conv2dParams& p) { return p.K * (p.C / p.groups) * p.Fh * p.Fw; }

}  // namespace

void set_conv_algorithm(ConvAlgorithm a) { g_algorithm.store(int(a)); }
ConvAlgorithm conv_algorithm() { return ConvAlgorithm(g_algorithm.load()); }

Conv2dParams conv2d_params(index_t N, index_t C, index_t H, index_t W, index_t K,
                           index_t weight_in_channels, index_t Fh, index_t Fw, index_t stride_h,
                           index_t stride_w, index_t pad_h, index_t pad_w, index_t dil_h,
                           index_t dil_w, index_t groups) {
  const char* op = "conv2d";
  if (N < 0 || C < 1 || H < 1 || W < 1) {
    throw_invalid(op, ": input must be [N, C, H, W] with C, H, W >= 1, got ",
                  shape_str({N, C, H, W}));
  }
  if (K < 1 || Fh < 1 || Fw < 1) {
    throw_invalid(op, ": weight must be [K, C/groups, Fh, Fw] with K, Fh, Fw >= 1, got ",
                  shape_str({K, weight_in_channels, Fh, Fw}));
  }
  if (stride_h < 1 || stride_w < 1) {
    throw_invalid(op, ": stride must be >= 1, got (", stride_h, ", ", stride_w, ")");
  }
  if (pad_h < 0 || pad_w < 0) {
    throw_invalid(op, ": padding must be >= 0, got (", pad_h, ", ", pad_w, ")");
  }
  if (dil_h < 1 || dil_w < 1) {
    throw_invalid(op, ": dilation must be >= 1, got (", dil_h, ", ", dil_w, ")");
  }
  if (groups < 1) throw_invalid(op, ": groups must be >= 1, got ", groups);
  if (C % groups != 0) {
    throw_invalid(op, ": input channels (", C, ") must be divisible by groups (", groups, ")");
  }
  if (K % groups != 0) {
    throw_invalid(op, ": output channels (", K, ") must be divisible by groups (", groups, ")");
  }
  if (weight_in_channels != C / groups) {
    throw_invalid(op, ": weight has ", weight_in_channels, " input channels but x has ", C,
                  " channels / ", groups, " groups = ", C / groups,
                  " (x: ", shape_str({N, C, H, W}),
                  ", weight: ", shape_str({K, weight_in_channels, Fh, Fw}), ")");
  }
  // checked: padding and dilation are user-given and may be huge (issue 9)
  const index_t eh = checked_add(checked_mul(dil_h, Fh - 1, op, "dilation"), 1, op, "dilation");
  const index_t ew = checked_add(checked_mul(dil_w, Fw - 1, op, "dilation"), 1, op, "dilation");
  const index_t padded_h = checked_add(H, checked_mul(2, pad_h, op, "padding"), op, "padding");
  const index_t padded_w = checked_add(W, checked_mul(2, pad_w, op, "padding"), op, "padding");
  if (eh > padded_h || ew > padded_w) {
    throw_invalid(op, ": kernel (", eh, " x ", ew,
                  " with dilation) is larger than the padded input (", padded_h, " x ", padded_w,
                  ")");
  }
  Conv2dParams p;
  p.N = N;
  p.C = C;
  p.H = H;
  p.W = W;
  p.K = K;
  p.Fh = Fh;
  p.Fw = Fw;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.dil_h = dil_h;
  p.dil_w = dil_w;
  p.groups = groups;
  p.Ho = (padded_h - eh) / stride_h + 1;
  p.Wo = (padded_w - ew) / stride_w + 1;
  return p;
}

void conv2d_forward(const Conv2dParams& p, const float* src, const float* weights,
                    const float* bias, float* dst, bool relu) {
  check_params(p);
  const ConvForwardAlgorithm* a = forward_algorithm(p);
  if (a == nullptr) return;
  const RoundedOperands r(p.precision == Precision::bf16 && !a->bf16_native, src, src_size(p),
                          weights, weight_size(p));
  a->run(p, r.first(src), r.second(weights), bias, dst, relu);
}

void conv2d_max_pool_forward(const Conv2dParams& p, const float* src, const float* weights,
                             const float* bias, bool relu, const Pool2dParams& pool, float* dst) {
  check_params(p);
  const char* op = "conv2d max_pool";
  validate(pool, op);
  if (pool.planes != p.N * p.K || pool.H != p.Ho || pool.W != p.Wo) {
    throw_invalid(op, ": the pooling is over ", pool.planes, " planes of ", pool.H, " x ", pool.W,
                  " but the convolution's output is ", p.N * p.K, " planes of ", p.Ho, " x ", p.Wo);
  }
  const ConvForwardAlgorithm* a = forward_algorithm(p);
  if (a == nullptr) return;
  const RoundedOperands r(p.precision == Precision::bf16 && !a->bf16_native, src, src_size(p),
                          weights, weight_size(p));
  if (a->run_pooled) {
    a->run_pooled(p, r.first(src), r.second(weights), bias, relu, pool2d_plane(pool), dst);
    return;
  }
  // Images in groups whose unpooled output (about 4 MB, at least a thread's worth of images)
  // stays in cache between the convolution and the pooling.
  const index_t img_out = p.K * p.Ho * p.Wo, img_in = p.C * p.H * p.W;
  // a multiple of the thread count: algorithms that give each thread whole images stay balanced
  const index_t nt = get_num_threads();
  const index_t per = std::max<index_t>(1, (index_t(1) << 20) / std::max<index_t>(img_out, 1));
  const index_t group = std::min(p.N, (per + nt - 1) / nt * nt);
  const index_t pooled = p.K * pool_out_h(pool) * pool_out_w(pool);
  // (kept per thread: a fresh 4 MB array per call was 1.6 % of cifar_cnn's pooled layer, in
  // page faults)
  float* y = thread_workspace(4, std::size_t(group * img_out));
  for (index_t n0 = 0; n0 < p.N; n0 += group) {
    Conv2dParams g = p;
    g.N = std::min(group, p.N - n0);
    Pool2dParams gp = pool;
    gp.planes = g.N * p.K;
    a->run(g, r.first(src) + n0 * img_in, r.second(weights), bias, y, relu);
    max_pool2d_forward(gp, y, dst + n0 * pooled, nullptr);
  }
}

void conv2d_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                          float* diff_src) {
  check_params(p);
  record(ConvDirection::backward_data, nullptr);
  if (p.N == 0) return;
  const ConvBackwardDataAlgorithm& a =
      first_applicable(kBackwardDataAlgorithms, p, current_policy());
  record(ConvDirection::backward_data, a.name);
  const bool round = p.precision == Precision::bf16 && !a.bf16_native;
  const RoundedOperands r(round, diff_dst, dst_size(p), weights, weight_size(p));
  a.run(p, r.first(diff_dst), r.second(weights), diff_src);
}

// N == 0 runs too: the weight and bias gradients of an empty batch are zeros.
void conv2d_backward_weights(const Conv2dParams& p, const float* diff_dst, const float* src,
                             float* diff_weights, float* diff_bias) {
  check_params(p);
  const ConvBackwardWeightsAlgorithm& a =
      first_applicable(kBackwardWeightsAlgorithms, p, current_policy());
  record(ConvDirection::backward_weights, a.name);
  // The bias gradient sums dY unrounded (it is no product); the rest sees rounded operands.
  const bool round = p.precision == Precision::bf16 && !a.bf16_native && p.N > 0;
  const RoundedOperands r(round, diff_dst, dst_size(p), src, src_size(p));
  if (round && diff_bias) {
    a.run(p, r.first(diff_dst), r.second(src), diff_weights, nullptr);
    bias_grad(p, diff_dst, diff_bias);
    return;
  }
  a.run(p, r.first(diff_dst), r.second(src), diff_weights, diff_bias);
}

const char* conv2d_algorithm_name(const Conv2dParams& p, ConvDirection direction) {
  check_params(p);
  const ConvPolicy policy = current_policy();
  switch (direction) {
    case ConvDirection::forward:
      return first_applicable(kForwardAlgorithms, p, policy).name;
    case ConvDirection::backward_data:
      return first_applicable(kBackwardDataAlgorithms, p, policy).name;
    case ConvDirection::backward_weights:
      return first_applicable(kBackwardWeightsAlgorithms, p, policy).name;
  }
  throw_invalid("conv2d_algorithm_name: unknown direction ", int(direction));
}

const char* conv2d_last_algorithm(ConvDirection direction) {
  const int d = int(direction);
  if (d < 0 || d > 2) throw_invalid("conv2d_last_algorithm: unknown direction ", d);
  return t_last[d];
}

}  // namespace cnnkit
