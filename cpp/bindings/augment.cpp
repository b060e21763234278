// Bindings: data augmentation (resampling of per-image windows, colour jitter).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "arrays.hpp"
#include "cnnkit/augment.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

using Pair = std::array<index_t, 2>;

py::array float64_c(const py::handle& obj, const char* op, const char* name, int ndim) {
  return typed_c<double>(obj, op, name, "float64", ndim);
}

// a is [N, cols] (cols < 0: any number of columns).
void require_rows(const py::array& a, index_t N, index_t cols, const char* name, const char* op,
                  const char* what) {
  if (a.shape(0) != N || (cols >= 0 && a.shape(1) != cols)) {
    throw_invalid(op, ": ", name, " must have shape ", what, " with N = ", N, " (x.shape[0]), got ",
                  shape_of(a));
  }
}

py::array resize_boxes_py(const py::object& x_obj, const py::object& boxes_obj, Pair size,
                          int threads) {
  const char* op = "resize_boxes";
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  py::array boxes = float64_c(boxes_obj, op, "boxes", 2);
  ResizeBoxesParams p;
  p.N = x.shape(0);
  p.C = x.shape(1);
  p.H = x.shape(2);
  p.W = x.shape(3);
  p.h = size[0];
  p.w = size[1];
  p.threads = threads;
  require_rows(boxes, p.N, 4, "boxes", op, "[N, 4] (top, left, height, width)");
  validate(p, cptr<double>(boxes));
  auto y = output_array<float>(op, {p.N, p.C, p.h, p.w});
  {
    py::gil_scoped_release release;
    resize_boxes(p, cptr<float>(x), cptr<double>(boxes), y.mutable_data());
  }
  return y;
}

py::array color_jitter_py(const py::object& x_obj, const py::object& factors_obj,
                          const py::object& order_obj, int threads) {
  const char* op = "color_jitter";
  py::array x = float32_contiguous(x_obj, op, "x", 4);
  py::array factors = float64_c(factors_obj, op, "factors", 2);
  py::array order = int64_c(order_obj, op, "order", 2);
  ColorJitterParams p;
  p.N = x.shape(0);
  p.C = x.shape(1);
  p.H = x.shape(2);
  p.W = x.shape(3);
  p.K = order.shape(1);
  p.threads = threads;
  require_rows(factors, p.N, 3, "factors", op, "[N, 3] (brightness, contrast, saturation)");
  require_rows(order, p.N, -1, "order", op, "[N, K]");
  validate(p, cptr<double>(factors), cptr<std::int64_t>(order));
  auto y = output_array<float>(op, dims_of(x));
  {
    py::gil_scoped_release release;
    color_jitter(p, cptr<float>(x), cptr<double>(factors), cptr<std::int64_t>(order),
                 y.mutable_data());
  }
  return y;
}

}  // namespace

void bind_augment(py::module_& m) {
  m.def("resize_boxes", &resize_boxes_py, py::arg("x"), py::arg("boxes"), py::arg("size"),
        py::arg("threads") = 0,
        "x [N, C, H, W] float32, boxes [N, 4] float64 (top, left, height, width; whole pixels), "
        "size (h, w), threads (0: cnnkit's count) -> [N, C, h, w]: each window resized with "
        "PIL's antialiased bilinear");
  m.def("color_jitter", &color_jitter_py, py::arg("x"), py::arg("factors"), py::arg("order"),
        py::arg("threads") = 0,
        "x [N, C, H, W] float32, factors [N, 3] float64 (brightness, contrast, saturation), "
        "order [N, K] int64 (0, 1, 2 or -1 = skip), threads (0: cnnkit's count) -> a new array, "
        "the ops in order per image");
}

}  // namespace cnnkit::bind
