// The cnnkit._core extension module: stateless functions over numpy arrays.
#include <pybind11/pybind11.h>

namespace cnnkit::bind {
void bind_runtime(pybind11::module_& m);
void bind_gemm(pybind11::module_& m);
void bind_conv(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_pool(pybind11::module_& m);
void bind_activation(pybind11::module_& m);
void bind_norm(pybind11::module_& m);
void bind_dropout(pybind11::module_& m);
void bind_linear(pybind11::module_& m);
void bind_loss(pybind11::module_& m);
void bind_augment(pybind11::module_& m);
void bind_int8_rows(pybind11::module_& m);
}  // namespace cnnkit::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "cnnkit C++ core (use the cnnkit package, not this module, directly)";
  cnnkit::bind::bind_runtime(m);
  cnnkit::bind::bind_gemm(m);
  cnnkit::bind::bind_conv(m);
  cnnkit::bind::bind_optim(m);
  cnnkit::bind::bind_pool(m);
  cnnkit::bind::bind_activation(m);
  cnnkit::bind::bind_norm(m);
  cnnkit::bind::bind_dropout(m);
  cnnkit::bind::bind_linear(m);
  cnnkit::bind::bind_loss(m);
  cnnkit::bind::bind_augment(m);
  cnnkit::bind::bind_int8_rows(m);
}
