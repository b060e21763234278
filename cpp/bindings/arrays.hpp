// Argument checking for the bindings: numpy arrays are taken as they are (never copied or
// converted behind the caller's back); a wrong type, dtype or layout raises TypeError naming
// the op and the argument, a wrong shape raises ValueError (std::invalid_argument).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cnnkit/common.hpp"
#include "cnnkit/pool.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

inline std::string shape_of(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + "]";
}

inline std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__"));
}

// A float32 numpy array (any layout); TypeError otherwise.
inline py::array float32_array(const py::handle& obj, const char* op, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(op) + ": " + name +
                         " must be a numpy.ndarray of float32, got " + type_name(obj));
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<float>())) {
    throw py::type_error(std::string(op) + ": " + name + " must have dtype float32, got " +
                         std::string(py::str(arr.dtype())) +
                         " (convert explicitly, e.g. x.astype(np.float32))");
  }
  return arr;
}

// A float32, C-contiguous array of the given rank.
inline py::array float32_contiguous(const py::handle& obj, const char* op, const char* name,
                                    int ndim) {
  py::array arr = float32_array(obj, op, name);
  if (arr.ndim() != ndim) {
    throw_invalid(op, ": ", name, " must be ", ndim, "-D, got shape ", shape_of(arr));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::type_error(std::string(op) + ": " + name +
                         " must be C-contiguous (use np.ascontiguousarray)");
  }
  return arr;
}

inline void require_writable(const py::array& arr, const char* op, const char* name) {
  if (!arr.writeable()) {
    throw py::type_error(std::string(op) + ": " + name + " is read-only");
  }
}

// Whether two arrays (positive strides) share any byte of memory.
inline bool overlaps(const py::array& x, const py::array& y) {
  if (x.size() == 0 || y.size() == 0) return false;
  auto extent = [](const py::array& a) {
    const char* lo = static_cast<const char*>(a.data());
    const char* hi = lo;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) hi += (a.shape(i) - 1) * a.strides(i);
    return std::make_pair(lo, hi + a.itemsize());
  };
  auto [xl, xh] = extent(x);
  auto [yl, yh] = extent(y);
  return xl < yh && yl < xh;
}

// A 2-D float32 matrix with unit stride along one axis, seen without copying as a row-major
// matrix (`data`, leading dimension `ld`) that is possibly transposed: a Fortran-ordered
// array or a `.T` view is the transpose of a row-major one, and a slice keeps its row stride.
struct MatrixArg {
  py::array array;
  float* data = nullptr;
  index_t rows = 0, cols = 0;  // logical shape of the numpy array
  index_t ld = 1;              // row stride of the row-major storage, in floats
  bool transposed = false;     // storage is row-major [cols x rows]
};

inline MatrixArg matrix_arg(const py::handle& obj, const char* op, const char* name) {
  MatrixArg m;
  m.array = float32_array(obj, op, name);
  const py::array& a = m.array;
  if (a.ndim() != 2) {
    throw_invalid(op, ": ", name, " must be 2-D, got shape ", shape_of(a));
  }
  m.rows = a.shape(0);
  m.cols = a.shape(1);
  m.data = static_cast<float*>(const_cast<void*>(a.data()));
  const py::ssize_t s0 = a.strides(0), s1 = a.strides(1), fs = sizeof(float);
  auto fits = [](py::ssize_t stride, index_t min_floats) {
    return stride > 0 && stride % sizeof(float) == 0 &&
           stride / index_t(sizeof(float)) >= min_floats;
  };
  if (m.rows == 0 || m.cols == 0) {  // nothing is read or written
    m.ld = std::max<index_t>(1, m.cols);
    return m;
  }
  const bool row_major = (s1 == fs || m.cols <= 1) && (m.rows <= 1 || fits(s0, m.cols));
  const bool col_major = (s0 == fs || m.rows <= 1) && (m.cols <= 1 || fits(s1, m.rows));
  if (row_major) {
    m.ld = m.rows <= 1 ? std::max<index_t>(1, m.cols) : s0 / fs;
  } else if (col_major) {
    m.transposed = true;
    m.ld = m.cols <= 1 ? std::max<index_t>(1, m.rows) : s1 / fs;
  } else {
    throw py::type_error(std::string(op) + ": " + name + " of shape " + shape_of(a) +
                         " has strides (" + std::to_string(s0) + ", " + std::to_string(s1) +
                         ") bytes; one axis must be contiguous and strides positive "
                         "(use np.ascontiguousarray)");
  }
  return m;
}

// A float32, C-contiguous array of any rank (ndim >= min_ndim).
inline py::array float32_c(const py::handle& obj, const char* op, const char* name,
                           int min_ndim = 0) {
  py::array arr = float32_array(obj, op, name);
  if (arr.ndim() < min_ndim) {
    throw_invalid(op, ": ", name, " must have at least ", min_ndim, " dimensions, got shape ",
                  shape_of(arr));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::type_error(std::string(op) + ": " + name +
                         " must be C-contiguous (use np.ascontiguousarray)");
  }
  return arr;
}

// p rounded up to the next 64-byte boundary (packed weights held in numpy arrays with 64 bytes
// of slack: the same array always gives the same aligned start).
template <class T>
T* line_aligned(T* p) {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<T*>((at + 63) / 64 * 64);
}

// A C-contiguous array of dtype T (int64 labels/indices, uint8 masks); ndim < 0: any rank.
template <typename T>
py::array typed_c(const py::handle& obj, const char* op, const char* name, const char* dtype,
                  int ndim = -1) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(op) + ": " + name + " must be a numpy.ndarray of " + dtype +
                         ", got " + type_name(obj));
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(op) + ": " + name + " must have dtype " + dtype + ", got " +
                         std::string(py::str(arr.dtype())) +
                         " (convert explicitly, e.g. x.astype(np." + dtype + "))");
  }
  if (ndim >= 0 && arr.ndim() != ndim) {
    throw_invalid(op, ": ", name, " must be ", ndim, "-D, got shape ", shape_of(arr));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::type_error(std::string(op) + ": " + name +
                         " must be C-contiguous (use np.ascontiguousarray)");
  }
  return arr;
}
inline py::array int64_c(const py::handle& obj, const char* op, const char* name, int ndim = -1) {
  return typed_c<std::int64_t>(obj, op, name, "int64", ndim);
}
inline py::array uint8_c(const py::handle& obj, const char* op, const char* name, int ndim = -1) {
  return typed_c<std::uint8_t>(obj, op, name, "uint8", ndim);
}

// Weights packed for the bf16 kernels (linear_pack_bf16 / conv2d_pack_bf16): a 1-D uint16 array
// of exactly `values` values, or None (null).
inline const std::uint16_t* packed_arg(const py::object& obj, std::size_t values, const char* op,
                                       py::array* keep) {
  if (obj.is_none()) return nullptr;
  *keep = typed_c<std::uint16_t>(obj, op, "packed", "uint16", 1);
  if (std::size_t(keep->size()) != values) {
    throw_invalid(op, ": packed must hold ", values,
                  " values (packed from a weight of this shape, on this ISA), got ", keep->size());
  }
  return static_cast<const std::uint16_t*>(keep->data());
}

inline std::vector<py::ssize_t> dims_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// Raises ValueError unless a and b have the same shape.
inline void require_same_shape(const py::array& a, const char* a_name, const py::array& b,
                               const char* b_name, const char* op) {
  if (dims_of(a) != dims_of(b)) {
    throw_invalid(op, ": ", b_name, " must have the shape of ", a_name, " ", shape_of(a), ", got ",
                  shape_of(b));
  }
}

// Raises ValueError unless `a` is 1-D of length n.
inline void require_vector(const py::array& a, index_t n, const char* name, const char* op) {
  if (a.ndim() != 1 || a.shape(0) != n) {
    throw_invalid(op, ": ", name, " must have shape [", n, "], got ", shape_of(a));
  }
}

// "fp32" / "bf16" (the precision= argument of the GEMM-shaped ops).
inline Precision precision_arg(const std::string& name, const char* op) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw_invalid(op, ": precision must be 'fp32' or 'bf16', got '", name, "'");
}

inline std::string shape_of(const std::vector<py::ssize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// A new output array whose shape comes from the arguments (padding, stride, input_hw, ...).
// A shape whose byte count does not fit in 63 bits raises ValueError, and one the allocator
// cannot satisfy raises MemoryError, both naming the op and the shape (numpy's own errors name
// neither; and no kernel ever runs on a half-made output).
// Outputs of at least kBigBlock (128 KiB, glibc's smallest mmap threshold) bytes are allocated
// by block_cache.cpp, which keeps freed blocks of twice L2 and more for reuse, so a training step
// does not page-fault them in again every time; glibc's own settings are left as they are.
// big_block_acquire returns nullptr when out of memory; big_block_release is the deallocator.
// CNNKIT_KEEP_MALLOC=1 turns the caching off (blocks are then freed at once).
constexpr index_t kBigBlock = index_t(1) << 17;
void* big_block_acquire(std::size_t bytes);
void big_block_release(void* data);

template <typename T = float>
py::array_t<T> output_array(const char* op, const std::vector<py::ssize_t>& shape) {
  for (py::ssize_t d : shape) {
    if (d < 0) throw_invalid(op, ": output shape ", shape_of(shape), " has a negative size");
  }
  // Checked even when a dimension is 0: the strides (products of the other dimensions) must
  // still be representable (found by UBSan in pybind11's stride computation).
  index_t bytes = sizeof(T);
  for (py::ssize_t d : shape) {
    if (__builtin_mul_overflow(bytes, std::max<index_t>(index_t(d), 1), &bytes)) {
      throw_invalid(op, ": output of shape ", shape_of(shape),
                    " is too large (more than 2^63 bytes); check padding, stride and sizes");
    }
  }
  try {
    index_t exact = sizeof(T);
    for (py::ssize_t d : shape) exact *= index_t(d);  // no overflow: bounded by `bytes`
    if (exact >= kBigBlock) {
      void* data = big_block_acquire(std::size_t(exact));
      if (data == nullptr) {
        PyErr_NoMemory();
        throw py::error_already_set();
      }
      py::capsule owner(data, [](void* d) { big_block_release(d); });
      return py::array_t<T>(shape, static_cast<T*>(data), owner);
    }
    return py::array_t<T>(shape);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError) && !e.matches(PyExc_ValueError)) throw;
    index_t bytes = sizeof(T);
    for (py::ssize_t d : shape) bytes *= d;
    const std::string msg = std::string(op) + ": cannot allocate the output of shape " +
                            shape_of(shape) + " (" + std::to_string(bytes) + " bytes)";
    PyErr_SetString(e.matches(PyExc_MemoryError) ? PyExc_MemoryError : PyExc_ValueError,
                    msg.c_str());
    throw py::error_already_set();
  }
}

template <typename T>
T* mut(const py::array& a) {
  return static_cast<T*>(const_cast<void*>(a.data()));
}
template <typename T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

// A max pooling fused into a convolution, ((kh, kw), (sh, sw), (ph, pw), ceil_mode), over the
// output's planes x H x W, validated (ValueError naming `op`; TypeError for another form).
inline Pool2dParams fused_pool_arg(const py::object& pool_obj, const char* op, index_t planes,
                                   index_t H, index_t W) {
  using Pair = std::pair<index_t, index_t>;
  std::tuple<Pair, Pair, Pair, bool> w4;
  try {
    w4 = pool_obj.cast<std::tuple<Pair, Pair, Pair, bool>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(op) +
                         ": pool must be ((kh, kw), (sh, sw), (ph, pw), ceil_mode), got " +
                         py::str(pool_obj).cast<std::string>());
  }
  Pool2dParams q;
  q.planes = planes;
  q.H = H;
  q.W = W;
  std::tie(q.kh, q.kw) = std::get<0>(w4);
  std::tie(q.sh, q.sw) = std::get<1>(w4);
  std::tie(q.ph, q.pw) = std::get<2>(w4);
  q.ceil_mode = std::get<3>(w4);
  validate(q, (std::string(op) + " max_pool").c_str());
  return q;
}

}  // namespace cnnkit::bind
