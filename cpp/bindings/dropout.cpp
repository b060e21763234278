// Bindings: inverted dropout (training forward and backward; eval mode needs no call).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "cnnkit/dropout.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

void bind_dropout(py::module_& m) {
  m.def(
      "dropout_forward",
      [](const py::object& x_obj, float p, std::uint64_t seed) {
        py::array x = float32_c(x_obj, "dropout_forward", "x");
        validate_dropout(p);
        py::array_t<float> y(dims_of(x));
        py::array_t<std::uint8_t> mask(dims_of(x));
        {
          py::gil_scoped_release release;
          dropout_forward(cptr<float>(x), y.mutable_data(), mask.mutable_data(), x.size(), p, seed);
        }
        return py::make_tuple(y, mask);
      },
      py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def(
      "dropout_backward",
      [](const py::object& dy_obj, const py::object& mask_obj, float p) {
        py::array dy = float32_c(dy_obj, "dropout_backward", "dy");
        py::array mask = uint8_c(mask_obj, "dropout_backward", "mask");
        require_same_shape(dy, "dy", mask, "mask", "dropout_backward");
        validate_dropout(p);
        py::array_t<float> dx(dims_of(dy));
        {
          py::gil_scoped_release release;
          dropout_backward(cptr<float>(dy), cptr<std::uint8_t>(mask), dx.mutable_data(), dy.size(),
                           p);
        }
        return dx;
      },
      py::arg("dy"), py::arg("mask"), py::arg("p"));
}

}  // namespace cnnkit::bind
