// Bindings: conv2d (forward / backward data / backward weights), locally connected and tiled.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <utility>
#include <vector>

#include "arrays.hpp"
#include "cnnkit/conv.hpp"

namespace cnnkit::bind {

namespace py = pybind11;
using Pair = std::pair<index_t, index_t>;

namespace {

py::array_t<float> new_array(const char* op, std::initializer_list<index_t> shape) {
  return output_array<float>(op, std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

void expect_shape(const py::array& a, const char* op, const char* name,
                  std::initializer_list<index_t> want) {
  bool ok = a.ndim() == py::ssize_t(want.size());
  if (ok) {
    py::ssize_t i = 0;
    for (index_t d : want) ok = ok && a.shape(i++) == d;
  }
  if (!ok)
    throw_invalid(op, ": ", name, " must have shape ", shape_str(want), ", got ", shape_of(a));
}

const float* ptr(const py::array& a) { return static_cast<const float*>(a.data()); }
float* mut(py::array_t<float>& a) { return a.mutable_data(); }

const float* optional_bias(const py::object& b, const char* op, std::initializer_list<index_t> want,
                           py::array* keep) {
  if (b.is_none()) return nullptr;
  *keep = float32_contiguous(b, op, "bias", int(want.size()));
  expect_shape(*keep, op, "bias", want);
  return ptr(*keep);
}

Conv2dParams params_from(const char* op, const py::array& x, const py::array& w, Pair stride,
                         Pair padding, Pair dilation, index_t groups) {
  (void)op;
  return conv2d_params(x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(1),
                       w.shape(2), w.shape(3), stride.first, stride.second, padding.first,
                       padding.second, dilation.first, dilation.second, groups);
}

// A fused max pooling ((kh, kw), (sh, sw), (ph, pw), ceil_mode) of the K output planes of one
// image of p, validated.
Pool2dParams pool_of(const py::object& pool_obj, const char* op, const Conv2dParams& p) {
  return fused_pool_arg(pool_obj, op, p.K, p.Ho, p.Wo);
}

py::array_t<float> conv2d_forward_py(const py::object& x_obj, const py::object& w_obj,
                                     const py::object& b_obj, Pair stride, Pair padding,
                                     Pair dilation, index_t groups, bool relu, bool reference,
                                     const std::string& precision,
                                     const py::object& packed_obj = py::none(),
                                     const py::object& pool_obj = py::none(),
                                     const py::object& cache_obj = py::none()) {
  const char* op = "conv2d";
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  py::array w = float32_contiguous(w_obj, op, "weight", 4);
  Conv2dParams p = params_from(op, x, w, stride, padding, dilation, groups);
  p.precision = precision_arg(precision, op);
  if (!cache_obj.is_none()) {
    if (!py::isinstance<ConvWeightCache>(cache_obj)) {
      throw py::type_error(std::string(op) + ": cache must be a ConvWeightCache or None, got " +
                           py::str(py::type::of(cache_obj).attr("__name__")).cast<std::string>());
    }
    p.weight_cache = cache_obj.cast<ConvWeightCache*>();
  }
  py::array keep_packed;
  p.packed_weights = packed_arg(packed_obj, conv2d_packed_values(p), op, &keep_packed);
  if (p.packed_weights && (p.precision != Precision::bf16 || p.groups != 1)) {
    throw_invalid(op,
                  ": packed weights are bf16 for one group; they need precision='bf16' "
                  "and groups=1");
  }
  py::array keep;
  const float* bias = optional_bias(b_obj, op, {p.K}, &keep);
  if (!pool_obj.is_none()) {
    // inference: max pooling (kernel, stride, padding, ceil_mode) of the output planes
    Pool2dParams q = pool_of(pool_obj, op, p);
    q.planes = p.N * p.K;
    auto y = new_array(op, {p.N, p.K, pool_out_h(q), pool_out_w(q)});
    float* yp = mut(y);
    py::array_t<float> full;  // the reference: the unpooled output, then the pooling
    if (reference) full = new_array(op, {p.N, p.K, p.Ho, p.Wo});
    {
      py::gil_scoped_release release;
      if (reference) {
        conv2d_forward_ref(p, ptr(x), ptr(w), bias, mut(full), relu);
        max_pool2d_forward(q, ptr(full), yp, nullptr);
      } else {
        conv2d_max_pool_forward(p, ptr(x), ptr(w), bias, relu, q, yp);
      }
    }
    return y;
  }
  auto y = new_array(op, {p.N, p.K, p.Ho, p.Wo});
  float* yp = mut(y);
  {
    py::gil_scoped_release release;
    if (reference) {
      conv2d_forward_ref(p, ptr(x), ptr(w), bias, yp, relu);
    } else {
      conv2d_forward(p, ptr(x), ptr(w), bias, yp, relu);
    }
  }
  return y;
}

py::array_t<float> conv2d_backward_data_py(const py::object& dy_obj, const py::object& w_obj,
                                           Pair input_hw, Pair stride, Pair padding, Pair dilation,
                                           index_t groups, bool reference,
                                           const std::string& precision) {
  const char* op = "conv2d_backward_data";
  py::array dy = float32_contiguous(dy_obj, op, "diff_dst", 4);
  py::array w = float32_contiguous(w_obj, op, "weight", 4);
  if (groups < 1) throw_invalid(op, ": groups must be >= 1, got ", groups);
  // checked: groups is user-given (UBSan caught 2^62 * 2 here, issue 9)
  const index_t C = checked_mul(w.shape(1), groups, op, "groups x weight input channels");
  Conv2dParams p =
      conv2d_params(dy.shape(0), C, input_hw.first, input_hw.second, w.shape(0), w.shape(1),
                    w.shape(2), w.shape(3), stride.first, stride.second, padding.first,
                    padding.second, dilation.first, dilation.second, groups);
  p.precision = precision_arg(precision, op);
  expect_shape(dy, op, "diff_dst", {p.N, p.K, p.Ho, p.Wo});
  auto dx = new_array(op, {p.N, p.C, p.H, p.W});
  float* dxp = mut(dx);
  {
    py::gil_scoped_release release;
    if (reference) {
      conv2d_backward_data_ref(p, ptr(dy), ptr(w), dxp);
    } else {
      conv2d_backward_data(p, ptr(dy), ptr(w), dxp);
    }
  }
  return dx;
}

py::tuple conv2d_backward_weights_py(const py::object& dy_obj, const py::object& x_obj,
                                     Pair kernel_hw, Pair stride, Pair padding, Pair dilation,
                                     index_t groups, bool need_bias, bool reference,
                                     const std::string& precision) {
  const char* op = "conv2d_backward_weights";
  py::array dy = float32_contiguous(dy_obj, op, "diff_dst", 4);
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  if (groups < 1) throw_invalid(op, ": groups must be >= 1, got ", groups);
  Conv2dParams p = conv2d_params(x.shape(0), x.shape(1), x.shape(2), x.shape(3), dy.shape(1),
                                 x.shape(1) / groups, kernel_hw.first, kernel_hw.second,
                                 stride.first, stride.second, padding.first, padding.second,
                                 dilation.first, dilation.second, groups);
  p.precision = precision_arg(precision, op);
  expect_shape(dy, op, "diff_dst", {p.N, p.K, p.Ho, p.Wo});
  auto dw = new_array(op, {p.K, p.C / groups, p.Fh, p.Fw});
  py::object db = py::none();
  float* dbp = nullptr;
  if (need_bias) {
    auto b = new_array(op, {p.K});
    dbp = mut(b);
    db = b;
  }
  float* dwp = mut(dw);
  {
    py::gil_scoped_release release;
    if (reference) {
      conv2d_backward_weights_ref(p, ptr(dy), ptr(x), dwp, dbp);
    } else {
      conv2d_backward_weights(p, ptr(dy), ptr(x), dwp, dbp);
    }
  }
  return py::make_tuple(dw, db);
}

TiledConv2dParams tiled_params(const char* op, const py::array& x, const py::array& w, Pair stride,
                               Pair padding, bool local) {
  return tiled_conv2d_params(op, x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0),
                             w.shape(1), w.shape(2), w.shape(3), w.shape(4), w.shape(5),
                             stride.first, stride.second, padding.first, padding.second, local);
}

py::array_t<float> tiled_forward_py(const char* op, bool local, const py::object& x_obj,
                                    const py::object& w_obj, const py::object& b_obj, Pair stride,
                                    Pair padding) {
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  py::array w = float32_contiguous(w_obj, op, "weight", 6);
  const TiledConv2dParams tp = tiled_params(op, x, w, stride, padding, local);
  const Conv2dParams& p = tp.conv;
  py::array keep;
  const float* bias = local ? optional_bias(b_obj, op, {p.K, p.Ho, p.Wo}, &keep)
                            : optional_bias(b_obj, op, {p.K}, &keep);
  auto y = new_array(op, {p.N, p.K, p.Ho, p.Wo});
  float* yp = mut(y);
  {
    py::gil_scoped_release release;
    tiled_conv2d_forward(tp, ptr(x), ptr(w), bias, yp);
  }
  return y;
}

py::tuple tiled_backward_py(const char* op, bool local, const py::object& dy_obj,
                            const py::object& x_obj, const py::object& w_obj, Pair stride,
                            Pair padding, bool need_dx, bool need_bias) {
  py::array dy = float32_contiguous(dy_obj, op, "diff_dst", 4);
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  py::array w = float32_contiguous(w_obj, op, "weight", 6);
  const TiledConv2dParams tp = tiled_params(op, x, w, stride, padding, local);
  const Conv2dParams& p = tp.conv;
  expect_shape(dy, op, "diff_dst", {p.N, p.K, p.Ho, p.Wo});
  py::object dx = py::none(), db = py::none();
  float *dxp = nullptr, *dbp = nullptr;
  if (need_dx) {
    auto a = new_array(op, {p.N, p.C, p.H, p.W});
    dxp = mut(a);
    dx = a;
  }
  if (need_bias) {
    auto a = local ? new_array(op, {p.K, p.Ho, p.Wo}) : new_array(op, {p.K});
    dbp = mut(a);
    db = a;
  }
  auto dw = new_array(op, {tp.Th, tp.Tw, p.K, p.C, p.Fh, p.Fw});
  float* dwp = mut(dw);
  {
    py::gil_scoped_release release;
    tiled_conv2d_backward(tp, ptr(dy), ptr(x), ptr(w), dxp, dwp, dbp);
  }
  return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "_conv2d_algorithms",
      [](const std::vector<index_t>& x_shape, const std::vector<index_t>& w_shape, Pair s, Pair pad,
         Pair d, index_t g, const std::string& precision) {
        const char* op = "_conv2d_algorithms";
        if (x_shape.size() != 4 || w_shape.size() != 4) {
          throw_invalid(op, ": x and weight shapes must have 4 dimensions");
        }
        Conv2dParams p = conv2d_params(x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0],
                                       w_shape[1], w_shape[2], w_shape[3], s.first, s.second,
                                       pad.first, pad.second, d.first, d.second, g);
        p.precision = precision_arg(precision, op);
        return py::make_tuple(conv2d_algorithm_name(p, ConvDirection::forward),
                              conv2d_algorithm_name(p, ConvDirection::backward_data),
                              conv2d_algorithm_name(p, ConvDirection::backward_weights));
      },
      py::arg("x_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("precision") = "fp32",
      "Which algorithm forward / backward data / backward weights take for these shapes.");
  m.def(
      "_conv2d_last_algorithms",
      []() {
        auto name = [](ConvDirection d) -> py::object {
          const char* s = conv2d_last_algorithm(d);
          return s ? py::object(py::str(s)) : py::object(py::none());
        };
        return py::make_tuple(name(ConvDirection::forward), name(ConvDirection::backward_data),
                              name(ConvDirection::backward_weights));
      },
      "The algorithms the last conv2d forward / backward data / backward weights call on this "
      "thread ran (None before any, or after an empty batch's forward or backward data).");
  m.def(
      "conv2d_forward",
      [](const py::object& x, const py::object& w, const py::object& b, Pair s, Pair pad, Pair d,
         index_t g, bool relu, const std::string& precision, const py::object& packed,
         const py::object& pool, const py::object& cache) {
        return conv2d_forward_py(x, w, b, s, pad, d, g, relu, false, precision, packed, pool,
                                 cache);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("relu") = false,
      py::arg("precision") = "fp32", py::arg("packed") = py::none(), py::arg("pool") = py::none(),
      py::arg("cache") = py::none());
  py::class_<ConvWeightCache>(m, "ConvWeightCache",
                              "What the fp32 forward algorithms derive from one weight tensor "
                              "(Winograd's transformed filters, ...), kept across calls: pass as "
                              "conv2d_forward(..., cache=c) and drop it when the weights change.")
      .def(py::init<>())
      .def_property_readonly("nbytes", &ConvWeightCache::bytes)
      .def_property_readonly("entries", &ConvWeightCache::entries);
  m.def(
      "conv2d_pack_bf16",
      [](const py::object& w_obj) {
        const char* op = "conv2d_pack_bf16";
        py::array w = float32_contiguous(w_obj, op, "weight", 4);
        Conv2dParams p;
        p.K = w.shape(0);
        p.C = w.shape(1);
        p.Fh = w.shape(2);
        p.Fw = w.shape(3);
        if (p.K < 1 || p.C < 1 || p.Fh < 1 || p.Fw < 1) {
          throw_invalid(op, ": weight must be [K, C, Fh, Fw] with every size >= 1, got ",
                        shape_of(w));
        }
        py::array_t<std::uint16_t> packed(py::ssize_t(conv2d_packed_values(p)));
        std::uint16_t* dst = packed.mutable_data();
        {
          py::gil_scoped_release release;
          conv2d_pack_bf16(p, cptr<float>(w), dst);
        }
        return packed;
      },
      py::arg("weight"),
      "The weights [K, C, Fh, Fw] (one group) packed for conv2d_forward(..., precision='bf16', "
      "packed=...).");
  m.def(
      "_conv2d_forward_ref",
      [](const py::object& x, const py::object& w, const py::object& b, Pair s, Pair pad, Pair d,
         index_t g, bool relu, const py::object& pool) {
        return conv2d_forward_py(x, w, b, s, pad, d, g, relu, true, "fp32", py::none(), pool);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("relu") = false,
      py::arg("pool") = py::none());
  m.def(
      "conv2d_backward_data",
      [](const py::object& dy, const py::object& w, Pair hw, Pair s, Pair pad, Pair d, index_t g,
         const std::string& precision) {
        return conv2d_backward_data_py(dy, w, hw, s, pad, d, g, false, precision);
      },
      py::arg("diff_dst"), py::arg("weight"), py::arg("input_hw"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("precision") = "fp32");
  m.def(
      "_conv2d_backward_data_ref",
      [](const py::object& dy, const py::object& w, Pair hw, Pair s, Pair pad, Pair d, index_t g) {
        return conv2d_backward_data_py(dy, w, hw, s, pad, d, g, true, "fp32");
      },
      py::arg("diff_dst"), py::arg("weight"), py::arg("input_hw"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def(
      "conv2d_backward_weights",
      [](const py::object& dy, const py::object& x, Pair khw, Pair s, Pair pad, Pair d, index_t g,
         bool need_bias, const std::string& precision) {
        return conv2d_backward_weights_py(dy, x, khw, s, pad, d, g, need_bias, false, precision);
      },
      py::arg("diff_dst"), py::arg("x"), py::arg("kernel_hw"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("need_bias"),
      py::arg("precision") = "fp32");
  m.def(
      "_conv2d_backward_weights_ref",
      [](const py::object& dy, const py::object& x, Pair khw, Pair s, Pair pad, Pair d, index_t g,
         bool need_bias) {
        return conv2d_backward_weights_py(dy, x, khw, s, pad, d, g, need_bias, true, "fp32");
      },
      py::arg("diff_dst"), py::arg("x"), py::arg("kernel_hw"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("need_bias"));
  m.def(
      "local_conv2d_forward",
      [](const py::object& x, const py::object& w, const py::object& b, Pair s, Pair pad) {
        return tiled_forward_py("local_conv2d", true, x, w, b, s, pad);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"));
  m.def(
      "local_conv2d_backward",
      [](const py::object& dy, const py::object& x, const py::object& w, Pair s, Pair pad,
         bool need_dx, bool need_bias) {
        return tiled_backward_py("local_conv2d", true, dy, x, w, s, pad, need_dx, need_bias);
      },
      py::arg("diff_dst"), py::arg("x"), py::arg("weight"), py::arg("stride"), py::arg("padding"),
      py::arg("need_dx"), py::arg("need_bias"));
  m.def(
      "tiled_conv2d_forward",
      [](const py::object& x, const py::object& w, const py::object& b, Pair s, Pair pad) {
        return tiled_forward_py("tiled_conv2d", false, x, w, b, s, pad);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"));
  m.def(
      "tiled_conv2d_backward",
      [](const py::object& dy, const py::object& x, const py::object& w, Pair s, Pair pad,
         bool need_dx, bool need_bias) {
        return tiled_backward_py("tiled_conv2d", false, dy, x, w, s, pad, need_dx, need_bias);
      },
      py::arg("diff_dst"), py::arg("x"), py::arg("weight"), py::arg("stride"), py::arg("padding"),
      py::arg("need_dx"), py::arg("need_bias"));
}

}  // namespace cnnkit::bind
