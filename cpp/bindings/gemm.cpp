// Bindings: sgemm.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
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

// int8_pack's array: 64 bytes of slack (line alignment), the panels, then the M row sums.
std::size_t int8_packed_size(index_t M, index_t K) {
  return 64 + gemm_s8u8_packed_bytes(M, K) + 4 * std::size_t(M);
}

// The int8 GEMM's operands from Python: int8 A [M, K]; uint8 B [K, N], or float32 B quantized
// with inv_scale and zero_point while it is packed.
struct I8Args {
  py::array a, b;
  index_t M = 0, N = 0, K = 0;
  bool b_float = false;
};

I8Args i8_args(const char* op, const py::object& a_obj, const py::object& b_obj, float inv_scale,
               int zero_point, bool trans_b = false) {
  I8Args r;
  r.a = typed_c<std::int8_t>(a_obj, op, "a", "int8", 2);
  if (!py::isinstance<py::array>(b_obj)) {
    throw py::type_error(std::string(op) + ": b must be a numpy.ndarray of uint8 or float32, got " +
                         type_name(b_obj));
  }
  r.b_float = py::reinterpret_borrow<py::array>(b_obj).dtype().is(py::dtype::of<float>());
  r.b = r.b_float ? typed_c<float>(b_obj, op, "b", "float32", 2)
                  : typed_c<std::uint8_t>(b_obj, op, "b", "uint8", 2);
  if (trans_b && !r.b_float) throw_invalid(op, ": trans_b is for a float32 b");
  r.M = r.a.shape(0);
  r.K = r.a.shape(1);
  r.N = r.b.shape(trans_b ? 0 : 1);
  if (r.b.shape(trans_b ? 1 : 0) != r.K) {
    throw_invalid(op, ": inner dimensions differ: a is ", shape_of(r.a), " and b is ",
                  shape_of(r.b));
  }
  if (r.K > 65536) throw_invalid(op, ": K must be <= 65536 (int32 sums), got ", r.K);
  if (zero_point < 0 || zero_point > 255) {
    throw_invalid(op, ": zero_point must be in [0, 255], got ", zero_point);
  }
  if (!(inv_scale > 0.0f) || !std::isfinite(inv_scale)) {
    throw_invalid(op, ": inv_scale must be positive and finite, got ", inv_scale);
  }
  return r;
}

// B for the engine: the uint8 matrix, or the float32 one (bf) quantized while packed.
I8OperandB operand_b(const I8Args& r, const MatrixOperandB& bf, float inv_scale, int zero_point) {
  I8OperandB ob;
  if (r.b_float) {
    ob.f32 = &bf;
    ob.inv_scale = inv_scale;
    ob.zero_point = zero_point;
  } else {
    ob.u8 = static_cast<const std::uint8_t*>(r.b.data());
    ob.ld = r.N;
  }
  return ob;
}

// Raw int32 sums.
py::array gemm_s8u8_py(const py::object& a_obj, const py::object& b_obj, float inv_scale,
                       int zero_point) {
  const I8Args r = i8_args("gemm_s8u8", a_obj, b_obj, inv_scale, zero_point);
  py::array_t<std::int32_t> c({r.M, r.N});
  const MatrixOperandB bf(static_cast<const float*>(r.b.data()), r.N, false);
  const I8OperandB ob = operand_b(r, bf, inv_scale, zero_point);
  I8Output out;
  out.c = c.mutable_data();
  out.ldc = r.N;
  const auto* ap = static_cast<const std::int8_t*>(r.a.data());
  {
    py::gil_scoped_release release;
    gemm_s8u8(r.M, r.N, r.K, ap, r.K, ob, out, get_num_threads());
  }
  return c;
}

// Dequantized: y = (sum - zero_point * rowsum(a)) * scale[i] + bias[i], then ReLU (fp32).
py::array qgemm_py(const py::object& a_obj, const py::object& b_obj, const py::object& scale_obj,
                   const py::object& bias_obj, bool relu, float inv_scale, int zero_point,
                   bool trans_b, const py::object& packed_obj) {
  const char* op = "qgemm";
  const I8Args r = i8_args(op, a_obj, b_obj, inv_scale, zero_point, trans_b);
  py::array scale = float32_c(scale_obj, op, "scale");
  if (scale.ndim() != 1 || scale.shape(0) != r.M) {
    throw_invalid(op, ": scale must have shape [", r.M, "] (one per row of a), got ",
                  shape_of(scale));
  }
  py::array bias;
  if (!bias_obj.is_none()) {
    bias = float32_c(bias_obj, op, "bias");
    if (bias.ndim() != 1 || bias.shape(0) != r.M) {
      throw_invalid(op, ": bias must have shape [", r.M, "], got ", shape_of(bias));
    }
  }
  const auto* ap = static_cast<const std::int8_t*>(r.a.data());
  py::array keep_packed;
  const std::int8_t* packed = nullptr;
  std::vector<std::int32_t> own_sums;
  const std::int32_t* row_sums = nullptr;  // from the packed weights, else computed
  if (!packed_obj.is_none()) {
    keep_packed = typed_c<std::int8_t>(packed_obj, op, "packed", "int8", 1);
    const std::size_t want = int8_packed_size(r.M, r.K);
    if (std::size_t(keep_packed.size()) != want) {
      throw_invalid(op, ": packed has ", keep_packed.size(), " bytes, expected ", want,
                    " (packed for another shape or ISA? repack with int8_pack)");
    }
    packed = line_aligned(static_cast<const std::int8_t*>(keep_packed.data()));
    row_sums = reinterpret_cast<const std::int32_t*>(packed + gemm_s8u8_packed_bytes(r.M, r.K));
  } else if (r.b_float && zero_point != 0) {
    own_sums.resize(std::size_t(r.M));
    int8_row_sums(ap, r.M, r.K, own_sums.data());
    row_sums = own_sums.data();
  }
  py::array_t<float> y({r.M, r.N});
  const MatrixOperandB bf(static_cast<const float*>(r.b.data()), trans_b ? r.K : r.N, trans_b);
  const I8OperandB ob = operand_b(r, bf, inv_scale, zero_point);
  const int zp = ob.f32 ? zero_point : 0;  // a uint8 b has no zero point
  I8Output out;
  out.y = y.mutable_data();
  out.ldy = r.N;
  out.row_sums = zp ? row_sums : nullptr;
  out.scale = static_cast<const float*>(scale.data());
  out.bias = bias_obj.is_none() ? nullptr : static_cast<const float*>(bias.data());
  out.relu = relu;
  {
    py::gil_scoped_release release;
    gemm_s8u8(r.M, r.N, r.K, ap, r.K, ob, out, get_num_threads(), packed);
  }
  return y;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm_s8u8", &gemm_s8u8_py, py::arg("a"), py::arg("b"), py::arg("inv_scale") = 1.0f,
        py::arg("zero_point") = 0);
  m.def("qgemm", &qgemm_py, py::arg("a"), py::arg("b"), py::arg("scale"),
        py::arg("bias") = py::none(), py::arg("relu") = false, py::arg("inv_scale") = 1.0f,
        py::arg("zero_point") = 0, py::arg("trans_b") = false, py::arg("packed") = py::none());
  // int8 A [M, K] packed for the active ISA's int8 kernels, for qgemm(packed=...): 1-D int8
  // (64 bytes of slack for line alignment, the panels, then A's row sums as int32).
  m.def(
      "int8_pack",
      [](const py::object& a_obj) {
        py::array a = typed_c<std::int8_t>(a_obj, "int8_pack", "a", "int8", 2);
        const index_t M = a.shape(0), K = a.shape(1);
        if (K > 65536) throw_invalid("int8_pack: K must be <= 65536 (int32 sums), got ", K);
        py::array_t<std::int8_t> out(py::ssize_t(int8_packed_size(M, K)));
        const auto* src = static_cast<const std::int8_t*>(a.data());
        std::int8_t* dst = line_aligned(out.mutable_data());
        {
          py::gil_scoped_release release;
          gemm_s8u8_pack_a(M, K, src, K, dst);
          int8_row_sums(src, M, K,
                        reinterpret_cast<std::int32_t*>(dst + gemm_s8u8_packed_bytes(M, K)));
        }
        return out;
      },
      py::arg("a"));
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
