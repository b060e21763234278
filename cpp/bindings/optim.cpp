// Bindings: fused optimizer updates (in place on the parameter and its state).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "cnnkit/optim.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

void bind_optim(py::module_& m) {
  m.def(
      "sgd_update",
      [](const py::object& p_obj, const py::object& g_obj, const py::object& b_obj, float lr,
         float momentum, float dampening, float weight_decay, bool nesterov, bool maximize,
         bool first) {
        const char* op = "sgd_update";
        py::array p = float32_c(p_obj, op, "param", 0);
        require_writable(p, op, "param");
        py::array g = float32_c(g_obj, op, "grad", 0);
        require_same_shape(p, "param", g, "grad", op);
        py::array b;
        float* bp = nullptr;
        if (momentum != 0.0f) {
          if (b_obj.is_none()) throw_invalid(op, ": momentum ", momentum, " needs a buffer");
          b = float32_c(b_obj, op, "buf", 0);
          require_writable(b, op, "buf");
          require_same_shape(p, "param", b, "buf", op);
          bp = static_cast<float*>(b.mutable_data());
        }
        SgdParams s;
        s.lr = lr;
        s.momentum = momentum;
        s.dampening = dampening;
        s.weight_decay = weight_decay;
        s.nesterov = nesterov;
        s.maximize = maximize;
        s.first = first;
        float* pp = static_cast<float*>(p.mutable_data());
        const float* gp = static_cast<const float*>(g.data());
        {
          py::gil_scoped_release release;
          sgd_update(s, index_t(p.size()), pp, gp, bp);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("buf"), py::arg("lr"), py::arg("momentum"),
      py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
      py::arg("first"));
}

}  // namespace cnnkit::bind
