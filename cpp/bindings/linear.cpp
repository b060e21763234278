// Bindings: linear layer forward and backward.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "cnnkit/linear.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

LinearParams params(const py::array& x, const py::array& w, const char* op) {
  LinearParams p;
  p.N = x.shape(0);
  p.in = x.shape(1);
  p.out = w.shape(0);
  if (w.shape(1) != p.in) {
    throw_invalid(op, ": weight has ", w.shape(1), " input features but x has ", p.in,
                  " (x: ", shape_of(x), ", weight: ", shape_of(w), ")");
  }
  return p;
}

py::array linear_forward_py(const py::object& x_obj, const py::object& w_obj,
                            const py::object& b_obj, const std::string& precision,
                            const py::object& packed_obj) {
  const char* op = "linear_forward";
  py::array x = float32_contiguous(x_obj, op, "x", 2);
  py::array w = float32_contiguous(w_obj, op, "weight", 2);
  LinearParams p = params(x, w, op);
  p.precision = precision_arg(precision, op);
  py::array keep;
  p.packed_weights = packed_arg(packed_obj, linear_packed_values(p), op, &keep);
  if (p.packed_weights && p.precision != Precision::bf16) {
    throw_invalid(op, ": packed weights are bf16; they need precision='bf16'");
  }
  py::array b;
  const float* bp = nullptr;
  if (!b_obj.is_none()) {
    b = float32_c(b_obj, op, "bias");
    require_vector(b, p.out, "bias", op);
    bp = cptr<float>(b);
  }
  py::array_t<float> y = output_array<float>(op, {p.N, p.out});
  {
    py::gil_scoped_release release;
    linear_forward(p, cptr<float>(x), cptr<float>(w), bp, y.mutable_data());
  }
  return y;
}

py::tuple linear_backward_py(const py::object& dy_obj, const py::object& x_obj,
                             const py::object& w_obj, bool need_dx, const std::string& precision) {
  const char* op = "linear_backward";
  py::array dy = float32_contiguous(dy_obj, op, "dy", 2);
  py::array x = float32_contiguous(x_obj, op, "x", 2);
  py::array w = float32_contiguous(w_obj, op, "weight", 2);
  LinearParams p = params(x, w, op);
  p.precision = precision_arg(precision, op);
  if (dy.shape(0) != p.N || dy.shape(1) != p.out) {
    throw_invalid(op, ": dy must have shape ", shape_str({p.N, p.out}), ", got ", shape_of(dy));
  }
  py::object dx = py::none();
  py::array_t<float> dw = output_array<float>(op, {p.out, p.in}), db(p.out);
  float* dxp = nullptr;
  if (need_dx) {
    py::array_t<float> a = output_array<float>(op, {p.N, p.in});
    dxp = a.mutable_data();
    dx = a;
  }
  {
    py::gil_scoped_release release;
    linear_backward(p, cptr<float>(dy), cptr<float>(x), cptr<float>(w), dxp, dw.mutable_data(),
                    db.mutable_data());
  }
  return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward_py, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("precision") = "fp32",
        py::arg("packed") = py::none());
  m.def(
      "linear_pack_bf16",
      [](const py::object& w_obj) {
        const char* op = "linear_pack_bf16";
        py::array w = float32_contiguous(w_obj, op, "weight", 2);
        LinearParams p;
        p.in = w.shape(1);
        p.out = w.shape(0);
        py::array_t<std::uint16_t> packed(py::ssize_t(linear_packed_values(p)));
        std::uint16_t* dst = packed.mutable_data();
        {
          py::gil_scoped_release release;
          linear_pack_bf16(p, cptr<float>(w), dst);
        }
        return packed;
      },
      py::arg("weight"),
      "The weights [out, in] packed for linear_forward(..., precision='bf16', packed=...).");
  m.def("linear_backward", &linear_backward_py, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("need_dx") = true, py::arg("precision") = "fp32");
}

}  // namespace cnnkit::bind
