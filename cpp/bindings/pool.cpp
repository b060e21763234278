// Bindings: max/avg/adaptive-avg 2-D pooling over [N, C, H, W] (or [C, H, W]) float32 arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "arrays.hpp"
#include "cnnkit/pool.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

using Pair = std::array<index_t, 2>;

// x is [..., H, W] with 3 or 4 dims; returns the number of planes.
index_t planes_of(const py::array& x, const char* op, const char* name) {
  if (x.ndim() != 3 && x.ndim() != 4) {
    throw_invalid(op, ": ", name, " must be 4-D [N, C, H, W] (or 3-D [C, H, W]), got shape ",
                  shape_of(x));
  }
  index_t planes = 1;
  for (py::ssize_t i = 0; i + 2 < x.ndim(); ++i) planes *= x.shape(i);
  return planes;
}

std::vector<py::ssize_t> with_hw(const py::array& x, index_t h, index_t w) {
  std::vector<py::ssize_t> d = dims_of(x);
  d[d.size() - 2] = h;
  d[d.size() - 1] = w;
  return d;
}

Pool2dParams params(const py::array& x, index_t planes, index_t H, index_t W, Pair k, Pair s,
                    Pair pad, bool ceil_mode, bool count_include_pad) {
  Pool2dParams p;
  p.planes = planes;
  p.H = H;
  p.W = W;
  p.kh = k[0];
  p.kw = k[1];
  p.sh = s[0];
  p.sw = s[1];
  p.ph = pad[0];
  p.pw = pad[1];
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

// (y, indices); indices=False (inference): (y, None), no argmax written.
py::tuple max_pool2d_forward_py(const py::object& x_obj, Pair k, Pair s, Pair pad, bool ceil_mode,
                                bool want_indices) {
  const char* op = "max_pool2d_forward";
  py::array x = float32_c(x_obj, op, "x");
  const index_t planes = planes_of(x, op, "x");
  Pool2dParams p =
      params(x, planes, x.shape(x.ndim() - 2), x.shape(x.ndim() - 1), k, s, pad, ceil_mode, true);
  validate(p, "max_pool2d");
  const auto shape = with_hw(x, pool_out_h(p), pool_out_w(p));
  auto y = output_array<float>(op, shape);
  if (!want_indices) {
    {
      py::gil_scoped_release release;
      max_pool2d_forward(p, cptr<float>(x), y.mutable_data(), nullptr);
    }
    return py::make_tuple(y, py::none());
  }
  auto idx = output_array<std::int64_t>(op, shape);
  {
    py::gil_scoped_release release;
    max_pool2d_forward(p, cptr<float>(x), y.mutable_data(), idx.mutable_data());
  }
  return py::make_tuple(y, idx);
}

py::array max_pool2d_backward_py(const py::object& dy_obj, const py::object& idx_obj,
                                 Pair input_hw) {
  const char* op = "max_pool2d_backward";
  py::array dy = float32_c(dy_obj, op, "dy");
  py::array idx = int64_c(idx_obj, op, "indices");
  const index_t planes = planes_of(dy, op, "dy");
  require_same_shape(dy, "dy", idx, "indices", op);
  if (input_hw[0] < 1 || input_hw[1] < 1) {
    throw_invalid(op, ": input_hw must be positive, got (", input_hw[0], ", ", input_hw[1], ")");
  }
  auto dx = output_array<float>(op, with_hw(dy, input_hw[0], input_hw[1]));
  {
    py::gil_scoped_release release;
    max_pool2d_backward(planes, input_hw[0], input_hw[1], dy.shape(dy.ndim() - 2),
                        dy.shape(dy.ndim() - 1), cptr<float>(dy), cptr<std::int64_t>(idx),
                        dx.mutable_data());
  }
  return dx;
}

py::array avg_pool2d_forward_py(const py::object& x_obj, Pair k, Pair s, Pair pad, bool ceil_mode,
                                bool count_include_pad) {
  const char* op = "avg_pool2d_forward";
  py::array x = float32_c(x_obj, op, "x");
  const index_t planes = planes_of(x, op, "x");
  Pool2dParams p = params(x, planes, x.shape(x.ndim() - 2), x.shape(x.ndim() - 1), k, s, pad,
                          ceil_mode, count_include_pad);
  validate(p, "avg_pool2d");
  auto y = output_array<float>(op, with_hw(x, pool_out_h(p), pool_out_w(p)));
  {
    py::gil_scoped_release release;
    avg_pool2d_forward(p, cptr<float>(x), y.mutable_data());
  }
  return y;
}

py::array avg_pool2d_backward_py(const py::object& dy_obj, Pair input_hw, Pair k, Pair s, Pair pad,
                                 bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  py::array dy = float32_c(dy_obj, op, "dy");
  const index_t planes = planes_of(dy, op, "dy");
  Pool2dParams p =
      params(dy, planes, input_hw[0], input_hw[1], k, s, pad, ceil_mode, count_include_pad);
  validate(p, "avg_pool2d");
  const index_t ho = pool_out_h(p), wo = pool_out_w(p);
  if (dy.shape(dy.ndim() - 2) != ho || dy.shape(dy.ndim() - 1) != wo) {
    throw_invalid(op, ": dy must end in (", ho, ", ", wo, ") for input_hw (", input_hw[0], ", ",
                  input_hw[1], "), got shape ", shape_of(dy));
  }
  auto dx = output_array<float>(op, with_hw(dy, input_hw[0], input_hw[1]));
  {
    py::gil_scoped_release release;
    avg_pool2d_backward(p, cptr<float>(dy), dx.mutable_data());
  }
  return dx;
}

py::array adaptive_avg_pool2d_forward_py(const py::object& x_obj, Pair out_hw) {
  const char* op = "adaptive_avg_pool2d_forward";
  py::array x = float32_c(x_obj, op, "x");
  AdaptivePool2dParams p;
  p.planes = planes_of(x, op, "x");
  p.H = x.shape(x.ndim() - 2);
  p.W = x.shape(x.ndim() - 1);
  p.Ho = out_hw[0];
  p.Wo = out_hw[1];
  validate(p);
  auto y = output_array<float>(op, with_hw(x, p.Ho, p.Wo));
  {
    py::gil_scoped_release release;
    adaptive_avg_pool2d_forward(p, cptr<float>(x), y.mutable_data());
  }
  return y;
}

py::array adaptive_avg_pool2d_backward_py(const py::object& dy_obj, Pair input_hw) {
  const char* op = "adaptive_avg_pool2d_backward";
  py::array dy = float32_c(dy_obj, op, "dy");
  AdaptivePool2dParams p;
  p.planes = planes_of(dy, op, "dy");
  p.H = input_hw[0];
  p.W = input_hw[1];
  p.Ho = dy.shape(dy.ndim() - 2);
  p.Wo = dy.shape(dy.ndim() - 1);
  validate(p);
  auto dx = output_array<float>(op, with_hw(dy, p.H, p.W));
  {
    py::gil_scoped_release release;
    adaptive_avg_pool2d_backward(p, cptr<float>(dy), dx.mutable_data());
  }
  return dx;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("x"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("indices") = true);
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("dy"), py::arg("indices"),
        py::arg("input_hw"));
  m.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("x"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("dy"), py::arg("input_hw"),
        py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"));
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, py::arg("x"),
        py::arg("output_hw"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py, py::arg("dy"),
        py::arg("input_hw"));
}

}  // namespace cnnkit::bind
