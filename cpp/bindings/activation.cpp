// Bindings: element-wise activations (any rank >= 1) and maxout.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "cnnkit/activation.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

// The result array: a new one, or `out` (float32, C-contiguous, writable, of `like`'s shape; it
// may be an input itself, since every element is read before its own output is written). Reusing
// buffers skips the page faults of a fresh large array, which cost as much as the op itself.
py::array result_array(const py::object& out_obj, const py::array& like, const char* op) {
  if (out_obj.is_none()) return py::array_t<float>(dims_of(like));
  py::array out = float32_c(out_obj, op, "out", 1);
  require_writable(out, op, "out");
  require_same_shape(like, "the input", out, "out", op);
  return out;
}

// An element-wise kernel may write into one of its inputs (each element is read before its own
// output is written), but not into memory that overlaps an input at an offset: a shifted view
// would read values the kernel has already overwritten.
void require_same_or_disjoint(const py::array& out, const py::array& in, const char* op,
                              const char* name) {
  if (out.data() != in.data() && overlaps(out, in)) {
    throw_invalid(op, ": out overlaps ", name,
                  " without being the same array; pass the array "
                  "itself for an in-place update, or separate memory");
  }
}

template <typename F>
py::array unary(const py::object& x_obj, const py::object& out_obj, const char* op, F&& f) {
  py::array x = float32_c(x_obj, op, "x", 1);
  py::array y = result_array(out_obj, x, op);
  require_same_or_disjoint(y, x, op, "x");
  {
    py::gil_scoped_release release;
    f(cptr<float>(x), static_cast<float*>(y.mutable_data()), index_t(x.size()));
  }
  return y;
}

// dx from dy and one or two saved tensors of dy's shape (b_obj may be None when unused).
template <typename F>
py::array backward(const py::object& dy_obj, const py::object& a_obj, const char* a_name,
                   const py::object* b_obj, const char* b_name, const py::object& out_obj,
                   const char* op, F&& f) {
  py::array dy = float32_c(dy_obj, op, "dy", 1);
  py::array a = float32_c(a_obj, op, a_name, 1);
  require_same_shape(dy, "dy", a, a_name, op);
  py::array b;
  if (b_obj) {
    b = float32_c(*b_obj, op, b_name, 1);
    require_same_shape(dy, "dy", b, b_name, op);
  }
  py::array dx = result_array(out_obj, dy, op);
  require_same_or_disjoint(dx, dy, op, "dy");
  require_same_or_disjoint(dx, a, op, a_name);
  if (b_obj) require_same_or_disjoint(dx, b, op, b_name);
  {
    py::gil_scoped_release release;
    f(cptr<float>(dy), cptr<float>(a), b_obj ? cptr<float>(b) : nullptr,
      static_cast<float*>(dx.mutable_data()), index_t(dy.size()));
  }
  return dx;
}

py::tuple maxout_forward_py(const py::object& x_obj, index_t pieces) {
  const char* op = "maxout_forward";
  py::array x = float32_c(x_obj, op, "x", 2);
  MaxoutParams p;
  p.N = x.shape(0);
  p.C = x.shape(1);
  for (py::ssize_t i = 2; i < x.ndim(); ++i) p.S *= x.shape(i);
  p.pieces = pieces;
  validate(p);
  auto d = dims_of(x);
  d[1] = p.C / pieces;
  py::array_t<float> y(d);
  py::array_t<std::uint8_t> am(d);
  {
    py::gil_scoped_release release;
    maxout_forward(p, cptr<float>(x), y.mutable_data(), am.mutable_data());
  }
  return py::make_tuple(y, am);
}

py::array maxout_backward_py(const py::object& dy_obj, const py::object& am_obj, index_t pieces) {
  const char* op = "maxout_backward";
  py::array dy = float32_c(dy_obj, op, "dy", 2);
  py::array am = uint8_c(am_obj, op, "argmax");
  require_same_shape(dy, "dy", am, "argmax", op);
  if (pieces < 1 || pieces > 255) throw_invalid("maxout: pieces must be in [1, 255], got ", pieces);
  MaxoutParams p;
  p.N = dy.shape(0);
  p.C = dy.shape(1) * pieces;
  for (py::ssize_t i = 2; i < dy.ndim(); ++i) p.S *= dy.shape(i);
  p.pieces = pieces;
  auto d = dims_of(dy);
  d[1] = p.C;
  py::array_t<float> dx(d);
  {
    py::gil_scoped_release release;
    maxout_backward(p, cptr<float>(dy), cptr<std::uint8_t>(am), dx.mutable_data());
  }
  return dx;
}

}  // namespace

void bind_activation(py::module_& m) {
  m.def(
      "relu_forward",
      [](const py::object& x, const py::object& out) {
        return unary(x, out, "relu_forward",
                     [](const float* s, float* d, index_t n) { relu_forward(s, d, n); });
      },
      py::arg("x"), py::arg("out") = py::none());
  m.def(
      "relu_backward",
      [](const py::object& dy, const py::object& y, const py::object& out) {
        return backward(dy, y, "y", nullptr, "", out, "relu_backward",
                        [](const float* g, const float* a, const float*, float* dx, index_t n) {
                          relu_backward(g, a, dx, n);
                        });
      },
      py::arg("dy"), py::arg("y"), py::arg("out") = py::none());
  m.def(
      "leaky_relu_forward",
      [](const py::object& x, float slope, const py::object& out) {
        return unary(x, out, "leaky_relu_forward", [slope](const float* s, float* d, index_t n) {
          leaky_relu_forward(s, d, n, slope);
        });
      },
      py::arg("x"), py::arg("slope"), py::arg("out") = py::none());
  m.def(
      "leaky_relu_backward",
      [](const py::object& dy, const py::object& x, float slope, const py::object& out) {
        return backward(dy, x, "x", nullptr, "", out, "leaky_relu_backward",
                        [slope](const float* g, const float* a, const float*, float* dx,
                                index_t n) { leaky_relu_backward(g, a, dx, n, slope); });
      },
      py::arg("dy"), py::arg("x"), py::arg("slope"), py::arg("out") = py::none());
  m.def(
      "elu_forward",
      [](const py::object& x, float alpha, const py::object& out) {
        return unary(x, out, "elu_forward",
                     [alpha](const float* s, float* d, index_t n) { elu_forward(s, d, n, alpha); });
      },
      py::arg("x"), py::arg("alpha"), py::arg("out") = py::none());
  m.def(
      "elu_backward",
      [](const py::object& dy, const py::object& x, const py::object& y, float alpha,
         const py::object& out) {
        return backward(dy, x, "x", &y, "y", out, "elu_backward",
                        [alpha](const float* g, const float* a, const float* b, float* dx,
                                index_t n) { elu_backward(g, a, b, dx, n, alpha); });
      },
      py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("alpha"), py::arg("out") = py::none());
  m.def(
      "sigmoid_forward",
      [](const py::object& x, const py::object& out) {
        return unary(x, out, "sigmoid_forward",
                     [](const float* s, float* d, index_t n) { sigmoid_forward(s, d, n); });
      },
      py::arg("x"), py::arg("out") = py::none());
  m.def(
      "sigmoid_backward",
      [](const py::object& dy, const py::object& y, const py::object& out) {
        return backward(dy, y, "y", nullptr, "", out, "sigmoid_backward",
                        [](const float* g, const float* a, const float*, float* dx, index_t n) {
                          sigmoid_backward(g, a, dx, n);
                        });
      },
      py::arg("dy"), py::arg("y"), py::arg("out") = py::none());
  m.def(
      "tanh_forward",
      [](const py::object& x, const py::object& out) {
        return unary(x, out, "tanh_forward",
                     [](const float* s, float* d, index_t n) { tanh_forward(s, d, n); });
      },
      py::arg("x"), py::arg("out") = py::none());
  m.def(
      "tanh_backward",
      [](const py::object& dy, const py::object& y, const py::object& out) {
        return backward(dy, y, "y", nullptr, "", out, "tanh_backward",
                        [](const float* g, const float* a, const float*, float* dx, index_t n) {
                          tanh_backward(g, a, dx, n);
                        });
      },
      py::arg("dy"), py::arg("y"), py::arg("out") = py::none());
  m.def("maxout_forward", &maxout_forward_py, py::arg("x"), py::arg("pieces"));
  m.def("maxout_backward", &maxout_backward_py, py::arg("dy"), py::arg("argmax"),
        py::arg("pieces"));
}

}  // namespace cnnkit::bind
