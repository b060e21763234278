// Bindings: int8 inference on the row engine (uint8 NHWC activations between int8 layers):
// convolution and linear layers with requantizing / dequantizing epilogues, their weight
// packing, the activations' quantization (elementwise, and NCHW fp32 -> NHWC uint8) and uint8
// max pooling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/pool.hpp"
#include "cnnkit/runtime.hpp"

namespace cnnkit::bind {

namespace py = pybind11;
using Pair = std::pair<index_t, index_t>;

namespace {

// Packed weights: 64 bytes of slack (line alignment), the engine's bytes, then a trailer of
// four int32 (groups, horizontal dilation, patches read in place, the kernel's slice depth)
// that, with the weight's shape, fixes the layout.
constexpr int kTrailerInts = 4;
constexpr std::size_t kTrailer = kTrailerInts * sizeof(std::int32_t);

void check_zero_point(int zp, const char* op, const char* name) {
  if (zp < 0 || zp > 255) throw_invalid(op, ": ", name, " must be in [0, 255], got ", zp);
}

void check_scale(float s, const char* op, const char* name) {
  if (!(s > 0.0f) || !std::isfinite(s)) {
    throw_invalid(op, ": ", name, " must be positive and finite, got ", s);
  }
}

const float* vector_arg(const py::object& obj, index_t n, const char* op, const char* name,
                        py::array* keep) {
  if (obj.is_none()) return nullptr;
  *keep = float32_contiguous(obj, op, name, 1);
  if (keep->shape(0) != n) {
    throw_invalid(op, ": ", name, " must have shape [", n, "], got ", shape_of(*keep));
  }
  return static_cast<const float*>(keep->data());
}

// A call's quantization arguments, checked; the arrays kept alive with it.
struct ScalesArg {
  py::array keep_scale, keep_bias;
  I8RowsScales s;
};

void scales_arg(ScalesArg* out, const char* op, index_t N, float x_scale, int x_zp,
                const py::object& w_scale_obj, const py::object& b_obj,
                const std::optional<float>& y_scale, int y_zp, bool relu) {
  check_scale(x_scale, op, "x_scale");
  check_zero_point(x_zp, op, "x_zero_point");
  if (y_scale) {
    check_scale(*y_scale, op, "y_scale");
    check_zero_point(y_zp, op, "y_zero_point");
  }
  I8RowsScales& s = out->s;
  s.w_scale = vector_arg(w_scale_obj, N, op, "weight_scale", &out->keep_scale);
  if (!s.w_scale) throw py::type_error(std::string(op) + ": weight_scale must be an array");
  s.bias = vector_arg(b_obj, N, op, "bias", &out->keep_bias);
  s.x_scale = x_scale;
  s.x_zp = x_zp;
  s.y_scale = y_scale ? *y_scale : 0.0f;
  s.y_zp = y_zp;
  s.relu = relu;
}

// The packed array's engine bytes, checked against what this call expects.
const std::int8_t* packed_arg(const py::object& obj, std::size_t bytes, index_t groups,
                              index_t dil_w, bool direct, int kstep, const char* op,
                              py::array* keep) {
  *keep = typed_c<std::int8_t>(obj, op, "packed", "int8", 1);
  const std::size_t have = std::size_t(keep->size()), want = 64 + bytes + kTrailer;
  if (have != want) {
    throw_invalid(op, ": packed has ", have, " bytes, expected ", want,
                  " (packed for another weight shape, groups, dilation or ISA? repack it)");
  }
  const auto* base = static_cast<const std::int8_t*>(keep->data());
  std::int32_t trailer[kTrailerInts];
  std::memcpy(trailer, base + 64 + bytes, kTrailer);
  if (trailer[0] != groups || trailer[1] != dil_w) {
    throw_invalid(op, ": packed was made for groups=", trailer[0], ", dilation (.., ", trailer[1],
                  "), this call has groups=", groups, ", dilation (.., ", dil_w, ")");
  }
  if (trailer[2] != int(direct) || trailer[3] != kstep) {
    throw_invalid(op, ": packed was made for another ISA's layout (repack it after set_isa)");
  }
  return line_aligned(base);
}

py::array_t<std::int8_t> packed_array(std::size_t bytes, index_t groups, index_t dil_w, bool direct,
                                      int kstep, std::int8_t** engine) {
  py::array_t<std::int8_t> out(py::ssize_t(64 + bytes + kTrailer));
  std::int8_t* base = out.mutable_data();
  std::memset(base, 0, 64);  // the alignment slack: a pack's bytes are the same on every call
  const std::int32_t trailer[kTrailerInts] = {std::int32_t(groups), std::int32_t(dil_w),
                                              int(direct), kstep};
  std::memcpy(base + 64 + bytes, trailer, kTrailer);
  *engine = line_aligned(base);
  return out;
}

Conv2dParams weight_params(const py::array& wq, index_t groups, Pair dilation, const char* op) {
  if (groups < 1 || wq.shape(0) % groups != 0) {
    throw_invalid(op, ": groups must be >= 1 and divide the ", wq.shape(0),
                  " output channels, got ", groups);
  }
  const index_t max_dil = std::numeric_limits<std::int32_t>::max();  // the trailer's int32
  if (dilation.first < 1 || dilation.second < 1 || dilation.first > max_dil ||
      dilation.second > max_dil) {
    throw_invalid(op, ": dilation must be in [1, ", max_dil, "], got (", dilation.first, ", ",
                  dilation.second, ")");
  }
  const index_t depth = wq.shape(1) * wq.shape(2) * wq.shape(3);
  if (depth > 65536) throw_invalid(op, ": C / groups * Fh * Fw must be <= 65536, got ", depth);
  Conv2dParams p;
  p.K = wq.shape(0);
  p.C = wq.shape(1) * groups;
  p.Fh = wq.shape(2);
  p.Fw = wq.shape(3);
  p.groups = groups;
  p.dil_h = dilation.first;
  p.dil_w = dilation.second;
  return p;
}

py::object conv2d_int8_rows_py(const py::object& x_obj, const py::object& wq_obj,
                               const py::object& packed_obj, const py::object& w_scale_obj,
                               const py::object& b_obj, Pair stride, Pair padding, Pair dilation,
                               index_t groups, bool relu, float x_scale, int x_zp,
                               const std::optional<float>& y_scale, int y_zp,
                               const py::object& pool_obj) {
  const char* op = "conv2d_int8_rows";
  py::array x = uint8_c(x_obj, op, "x", 4);  // NHWC
  py::array wq = typed_c<std::int8_t>(wq_obj, op, "weight", "int8", 4);
  weight_params(wq, groups, dilation, op);
  Conv2dParams p =
      conv2d_params(x.shape(0), x.shape(3), x.shape(1), x.shape(2), wq.shape(0), wq.shape(1),
                    wq.shape(2), wq.shape(3), stride.first, stride.second, padding.first,
                    padding.second, dilation.first, dilation.second, groups);
  ScalesArg scales;
  scales_arg(&scales, op, p.K, x_scale, x_zp, w_scale_obj, b_obj, y_scale, y_zp, relu);
  py::array keep_packed;
  const Int8RowsLayout layout = conv2d_int8_rows_layout(p);
  const std::int8_t* packed = packed_arg(packed_obj, layout.bytes, groups, p.dil_w, layout.direct,
                                         layout.kstep, op, &keep_packed);
  Pool2dParams q;
  const bool pooled = !pool_obj.is_none();
  index_t Hq = p.Ho, Wq = p.Wo;
  if (pooled) {
    q = fused_pool_arg(pool_obj, op, p.K, p.Ho, p.Wo);
    Hq = pool_out_h(q);
    Wq = pool_out_w(q);
  }
  const auto* xp = static_cast<const std::uint8_t*>(x.data());
  if (y_scale) {
    auto y = output_array<std::uint8_t>(op, {p.N, Hq, Wq, p.K});
    std::uint8_t* yp = y.mutable_data();
    py::gil_scoped_release release;
    conv2d_forward_int8_rows(p, xp, packed, scales.s, yp, nullptr, pooled ? &q : nullptr);
    return std::move(y);
  }
  auto y = output_array<float>(op, {p.N, p.K, Hq, Wq});
  float* yp = y.mutable_data();
  py::gil_scoped_release release;
  conv2d_forward_int8_rows(p, xp, packed, scales.s, nullptr, yp, pooled ? &q : nullptr);
  return std::move(y);
}

// The linear layer's packed depth order: x's own (kmap[p] = p), or, for x an NHWC image
// flattened as (h, w, c) while the weight's columns are (c, h, w), the permutation.
std::vector<std::int32_t> linear_kmap(index_t K, index_t kp, const py::object& chw_obj,
                                      const char* op) {
  std::vector<std::int32_t> kmap(std::size_t(kp), -1);
  if (chw_obj.is_none()) {
    for (index_t k = 0; k < K; ++k) kmap[k] = std::int32_t(k);
    return kmap;
  }
  std::tuple<index_t, index_t, index_t> chw;
  try {
    chw = chw_obj.cast<std::tuple<index_t, index_t, index_t>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(op) + ": chw must be None or (C, H, W) ints, got " +
                         py::str(chw_obj).cast<std::string>());
  }
  const index_t C = std::get<0>(chw), H = std::get<1>(chw), W = std::get<2>(chw);
  if (C < 1 || H < 1 || W < 1 || C * H * W != K) {
    throw_invalid(op, ": chw (", C, ", ", H, ", ", W, ") must multiply to the ", K,
                  " input features");
  }
  for (index_t h = 0; h < H; ++h) {
    for (index_t w = 0; w < W; ++w) {
      for (index_t c = 0; c < C; ++c) kmap[(h * W + w) * C + c] = std::int32_t((c * H + h) * W + w);
    }
  }
  return kmap;
}

py::object linear_int8_rows_py(const py::object& x_obj, const py::object& wq_obj,
                               const py::object& packed_obj, const py::object& w_scale_obj,
                               const py::object& b_obj, bool relu, float x_scale, int x_zp,
                               const std::optional<float>& y_scale, int y_zp) {
  const char* op = "linear_int8_rows";
  py::array x = uint8_c(x_obj, op, "x", 2);
  py::array wq = typed_c<std::int8_t>(wq_obj, op, "weight", "int8", 2);
  const index_t M = x.shape(0), K = x.shape(1), N = wq.shape(0);
  if (wq.shape(1) != K) {
    throw_invalid(op, ": x has ", K, " features, the weight ", wq.shape(1), " (shape ",
                  shape_of(wq), ")");
  }
  if (K > 65536) throw_invalid(op, ": in_features must be <= 65536, got ", K);
  ScalesArg scales;
  scales_arg(&scales, op, N, x_scale, x_zp, w_scale_obj, b_obj, y_scale, y_zp, relu);
  py::array keep_packed;
  const index_t kp = linear_int8_rows_depth(K);
  const std::int8_t* packed = packed_arg(packed_obj, i8_rows_packed_bytes(N, kp), 1, 1, true,
                                         i8_rows_kstep(), op, &keep_packed);
  const auto* xp = static_cast<const std::uint8_t*>(x.data());
  const int threads = get_num_threads();
  if (y_scale) {
    auto y = output_array<std::uint8_t>(op, {M, N});
    std::uint8_t* yp = y.mutable_data();
    py::gil_scoped_release release;
    linear_int8_rows(M, N, K, xp, packed, scales.s, yp, nullptr, threads);
    return std::move(y);
  }
  auto y = output_array<float>(op, {M, N});
  float* yp = y.mutable_data();
  py::gil_scoped_release release;
  linear_int8_rows(M, N, K, xp, packed, scales.s, nullptr, yp, threads);
  return std::move(y);
}

}  // namespace

void bind_int8_rows(py::module_& m) {
  m.def(
      "quantize_u8",
      [](const py::object& x_obj, float inv_scale, int zero_point) {
        py::array x = float32_c(x_obj, "quantize_u8", "x");
        if (zero_point < 0 || zero_point > 255) {
          throw_invalid("quantize_u8: zero_point must be in [0, 255], got ", zero_point);
        }
        if (!(inv_scale > 0.0f) || !std::isfinite(inv_scale)) {
          throw_invalid("quantize_u8: inv_scale must be positive and finite, got ", inv_scale);
        }
        py::array_t<std::uint8_t> out(dims_of(x));
        const float* src = static_cast<const float*>(x.data());
        std::uint8_t* dst = out.mutable_data();
        const index_t n = index_t(x.size());
        {
          py::gil_scoped_release release;
          quantize_u8(src, n, inv_scale, zero_point, dst);
        }
        return out;
      },
      py::arg("x"), py::arg("inv_scale"), py::arg("zero_point"));
  m.def("conv2d_int8_rows", &conv2d_int8_rows_py, py::arg("x"), py::arg("weight"),
        py::arg("packed"), py::arg("weight_scale"), py::arg("bias") = py::none(),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("relu") = false,
        py::arg("x_scale") = 1.0f, py::arg("x_zero_point") = 0,
        py::arg("y_scale") = std::optional<float>(), py::arg("y_zero_point") = 0,
        py::arg("pool") = py::none());
  m.def(
      "conv2d_int8_rows_pack",
      [](const py::object& wq_obj, index_t groups, Pair dilation) {
        const char* op = "conv2d_int8_rows_pack";
        py::array wq = typed_c<std::int8_t>(wq_obj, op, "weight", "int8", 4);
        const Conv2dParams p = weight_params(wq, groups, dilation, op);
        const Int8RowsLayout layout = conv2d_int8_rows_layout(p);
        std::int8_t* dst;
        auto out = packed_array(layout.bytes, groups, p.dil_w, layout.direct, layout.kstep, &dst);
        const auto* src = static_cast<const std::int8_t*>(wq.data());
        py::gil_scoped_release release;
        conv2d_int8_rows_pack(p, src, dst);
        return out;
      },
      py::arg("weight"), py::arg("groups") = 1, py::arg("dilation") = Pair{1, 1});
  m.def("linear_int8_rows", &linear_int8_rows_py, py::arg("x"), py::arg("weight"),
        py::arg("packed"), py::arg("weight_scale"), py::arg("bias") = py::none(),
        py::arg("relu") = false, py::arg("x_scale") = 1.0f, py::arg("x_zero_point") = 0,
        py::arg("y_scale") = std::optional<float>(), py::arg("y_zero_point") = 0);
  m.def(
      "linear_int8_rows_pack",
      [](const py::object& wq_obj, const py::object& chw) {
        const char* op = "linear_int8_rows_pack";
        py::array wq = typed_c<std::int8_t>(wq_obj, op, "weight", "int8", 2);
        const index_t N = wq.shape(0), K = wq.shape(1);
        if (K > 65536) throw_invalid(op, ": in_features must be <= 65536, got ", K);
        const index_t kp = linear_int8_rows_depth(K);
        const std::vector<std::int32_t> kmap = linear_kmap(K, kp, chw, op);
        std::int8_t* dst;
        auto out = packed_array(i8_rows_packed_bytes(N, kp), 1, 1, true, i8_rows_kstep(), &dst);
        const auto* src = static_cast<const std::int8_t*>(wq.data());
        py::gil_scoped_release release;
        i8_rows_pack(src, K, N, kmap.data(), kp, dst);
        return out;
      },
      py::arg("weight"), py::arg("chw") = py::none());
  m.def(
      "quantize_nhwc",
      [](const py::object& x_obj, float inv_scale, int zero_point) {
        const char* op = "quantize_nhwc";
        py::array x = float32_array(x_obj, op, "x");
        if (x.ndim() != 4 && x.ndim() != 2) {
          throw_invalid(op, ": x must be 4-D NCHW or 2-D [N, F], got shape ", shape_of(x));
        }
        if (!(x.flags() & py::array::c_style)) {
          throw py::type_error(std::string(op) + ": x must be C-contiguous");
        }
        check_scale(inv_scale, op, "inv_scale");
        check_zero_point(zero_point, op, "zero_point");
        const bool image = x.ndim() == 4;
        const index_t N = x.shape(0), C = image ? x.shape(1) : 1;
        const index_t HW = image ? x.shape(2) * x.shape(3) : x.shape(1);
        auto y = image ? output_array<std::uint8_t>(op, {N, x.shape(2), x.shape(3), C})
                       : output_array<std::uint8_t>(op, {N, HW});
        std::uint8_t* yp = y.mutable_data();
        const auto* xp = static_cast<const float*>(x.data());
        py::gil_scoped_release release;
        quantize_nchw_to_nhwc_u8(xp, N, C, HW, inv_scale, zero_point, yp);
        return y;
      },
      py::arg("x"), py::arg("inv_scale"), py::arg("zero_point"));
  m.def(
      "max_pool2d_nhwc_u8",
      [](const py::object& x_obj, Pair kernel, Pair stride, Pair padding, bool ceil_mode) {
        const char* op = "max_pool2d_nhwc_u8";
        py::array x = uint8_c(x_obj, op, "x", 4);
        Pool2dParams p;
        p.planes = x.shape(3);
        p.H = x.shape(1);
        p.W = x.shape(2);
        std::tie(p.kh, p.kw) = kernel;
        std::tie(p.sh, p.sw) = stride;
        std::tie(p.ph, p.pw) = padding;
        p.ceil_mode = ceil_mode;
        validate(p, op);
        const index_t N = x.shape(0), Ho = pool_out_h(p), Wo = pool_out_w(p);
        auto y = output_array<std::uint8_t>(op, {N, Ho, Wo, p.planes});
        std::uint8_t* yp = y.mutable_data();
        const auto* xp = static_cast<const std::uint8_t*>(x.data());
        py::gil_scoped_release release;
        max_pool2d_nhwc_u8(p, N, xp, yp);
        return y;
      },
      py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding") = Pair{0, 0},
      py::arg("ceil_mode") = false);
}

}  // namespace cnnkit::bind
