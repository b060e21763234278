// Bindings: sgemm.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "arrays.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

std::string op_shape(const MatrixArg& x, bool trans) {
  return trans ? shape_str({x.cols, x.rows}) : shape_str({x.rows, x.cols});
}

py::array sgemm_py(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
                   float alpha, float beta, const py::object& c_obj, bool overwrite_c,
                   const std::string& precision_name) {
  const Precision precision = precision_arg(precision_name, "sgemm");
  MatrixArg a = matrix_arg(a_obj, "sgemm", "a");
  MatrixArg b = matrix_arg(b_obj, "sgemm", "b");
  const index_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const index_t Kb = trans_b ? b.cols : b.rows, N = trans_b ? b.rows : b.cols;
  if (K != Kb) {
    throw_invalid("sgemm: inner dimensions differ: op(a) is ", op_shape(a, trans_a),
                  " and op(b) is ", op_shape(b, trans_b), " (a: ", shape_of(a.array),
                  ", trans_a=", trans_a ? "True" : "False", "; b: ", shape_of(b.array),
                  ", trans_b=", trans_b ? "True" : "False", ")");
  }
  py::array_t<float> result;
  float* c = nullptr;
  index_t ldc = std::max<index_t>(1, N);
  if (c_obj.is_none()) {
    if (beta != 0.0f) {
      throw_invalid("sgemm: beta=", beta, " scales c, but no c was given");
    }
    result = py::array_t<float>({M, N});
    c = result.mutable_data();
  } else {
    MatrixArg ca = matrix_arg(c_obj, "sgemm", "c");
    if (ca.rows != M || ca.cols != N) {
      throw_invalid("sgemm: c must have shape ", shape_str({M, N}), " = op(a) ",
                    op_shape(a, trans_a), " @ op(b) ", op_shape(b, trans_b), ", got ",
                    shape_of(ca.array));
    }
    if (overwrite_c) {
      require_writable(ca.array, "sgemm", "c");
      if (ca.transposed && M > 1 && N > 1) {
        throw py::type_error("sgemm: overwrite_c=True needs c with contiguous rows, got strides (" +
                             std::to_string(ca.array.strides(0)) + ", " +
                             std::to_string(ca.array.strides(1)) + ")");
      }
      if (overlaps(ca.array, a.array) || overlaps(ca.array, b.array)) {
        throw_invalid("sgemm: c shares memory with a or b; it cannot be overwritten in place");
      }
      result = py::reinterpret_borrow<py::array_t<float>>(ca.array);
      c = ca.data;
      ldc = ca.transposed ? std::max<index_t>(1, N) : ca.ld;
    } else {
      // Documented copy: c is an input here and is left untouched.
      result = py::array_t<float>({M, N});
      c = result.mutable_data();
      if (beta != 0.0f) {
        for (index_t i = 0; i < M; ++i) {
          for (index_t j = 0; j < N; ++j) {
            c[i * ldc + j] = ca.transposed ? ca.data[j * ca.ld + i] : ca.data[i * ca.ld + j];
          }
        }
      }
    }
  }
  // A transposed storage flips the op: op(a) over a column-major a is op'(storage).
  const bool ta = trans_a != a.transposed, tb = trans_b != b.transposed;
  {
    py::gil_scoped_release release;
    sgemm(ta, tb, M, N, K, alpha, a.data, a.ld, b.data, b.ld, beta, c, ldc, precision);
  }
  return result;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("sgemm", &sgemm_py, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
        py::arg("c") = py::none(), py::arg("overwrite_c") = false, py::arg("precision") = "fp32");
  // x rounded to bf16 (nearest even, denormals to zero) and back: the values the bf16 paths
  // compute with.
  m.def(
      "round_bf16",
      [](const py::object& x_obj) {
        py::array x = float32_c(x_obj, "round_bf16", "x");
        py::array_t<float> out(dims_of(x));
        const index_t n = index_t(x.size());
        const float* src = cptr<float>(x);
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          round_bf16_f32(src, n, dst);
        }
        return out;
      },
      py::arg("x"));
}

}  // namespace cnnkit::bind
