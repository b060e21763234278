// Bindings: softmax, log-softmax and the losses over [N, C] float32 rows.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "cnnkit/loss.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

template <typename F>
py::array rows_fwd(const py::object& x_obj, const char* op, F&& f) {
  py::array x = float32_contiguous(x_obj, op, "x", 2);
  py::array_t<float> y(dims_of(x));
  {
    py::gil_scoped_release release;
    f(x.shape(0), x.shape(1), cptr<float>(x), y.mutable_data());
  }
  return y;
}

template <typename F>
py::array rows_bwd(const py::object& dy_obj, const py::object& y_obj, const char* op, F&& f) {
  py::array dy = float32_contiguous(dy_obj, op, "dy", 2);
  py::array y = float32_contiguous(y_obj, op, "y", 2);
  require_same_shape(y, "y", dy, "dy", op);
  py::array_t<float> dx(dims_of(y));
  {
    py::gil_scoped_release release;
    f(y.shape(0), y.shape(1), cptr<float>(dy), cptr<float>(y), dx.mutable_data());
  }
  return dx;
}

// x [N, C] float32 and target int64 [N].
py::array targets(const py::array& x, const py::object& t_obj, const char* op) {
  py::array t = int64_c(t_obj, op, "target", 1);
  if (t.shape(0) != x.shape(0)) {
    throw_invalid(op, ": target must have shape [", x.shape(0), "] to match ", shape_of(x),
                  ", got ", shape_of(t));
  }
  return t;
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def(
      "softmax_forward",
      [](const py::object& x) { return rows_fwd(x, "softmax_forward", softmax_forward); },
      py::arg("x"));
  m.def(
      "softmax_backward",
      [](const py::object& dy, const py::object& y) {
        return rows_bwd(dy, y, "softmax_backward", softmax_backward);
      },
      py::arg("dy"), py::arg("y"));
  m.def(
      "log_softmax_forward",
      [](const py::object& x) { return rows_fwd(x, "log_softmax_forward", log_softmax_forward); },
      py::arg("x"));
  m.def(
      "log_softmax_backward",
      [](const py::object& dy, const py::object& y) {
        return rows_bwd(dy, y, "log_softmax_backward", log_softmax_backward);
      },
      py::arg("dy"), py::arg("y"));

  m.def(
      "cross_entropy_forward",
      [](const py::object& x_obj, const py::object& t_obj, double label_smoothing) {
        const char* op = "cross_entropy";
        py::array x = float32_contiguous(x_obj, op, "logits", 2);
        py::array t = targets(x, t_obj, op);
        validate_targets(op, x.shape(0), x.shape(1), cptr<std::int64_t>(t));
        validate_label_smoothing(op, label_smoothing);
        py::array_t<float> probs(dims_of(x));
        double loss;
        {
          py::gil_scoped_release release;
          loss =
              cross_entropy_forward(x.shape(0), x.shape(1), cptr<float>(x), cptr<std::int64_t>(t),
                                    probs.mutable_data(), label_smoothing);
        }
        return py::make_tuple(loss, probs);
      },
      py::arg("logits"), py::arg("target"), py::arg("label_smoothing") = 0.0);
  m.def(
      "cross_entropy_backward",
      [](const py::object& p_obj, const py::object& t_obj, float grad, double label_smoothing) {
        const char* op = "cross_entropy";
        py::array probs = float32_contiguous(p_obj, op, "probs", 2);
        py::array t = targets(probs, t_obj, op);
        validate_targets(op, probs.shape(0), probs.shape(1), cptr<std::int64_t>(t));
        validate_label_smoothing(op, label_smoothing);
        py::array_t<float> dx(dims_of(probs));
        {
          py::gil_scoped_release release;
          cross_entropy_backward(probs.shape(0), probs.shape(1), cptr<float>(probs),
                                 cptr<std::int64_t>(t), grad, dx.mutable_data(), label_smoothing);
        }
        return dx;
      },
      py::arg("probs"), py::arg("target"), py::arg("grad"), py::arg("label_smoothing") = 0.0);

  m.def(
      "multi_margin_loss_forward",
      [](const py::object& x_obj, const py::object& t_obj, float margin) {
        const char* op = "multi_margin_loss";
        py::array x = float32_contiguous(x_obj, op, "x", 2);
        py::array t = targets(x, t_obj, op);
        validate_targets(op, x.shape(0), x.shape(1), cptr<std::int64_t>(t));
        py::gil_scoped_release release;
        return multi_margin_loss_forward(x.shape(0), x.shape(1), cptr<float>(x),
                                         cptr<std::int64_t>(t), margin);
      },
      py::arg("x"), py::arg("target"), py::arg("margin") = 1.0f);
  m.def(
      "multi_margin_loss_backward",
      [](const py::object& x_obj, const py::object& t_obj, float margin, float grad) {
        const char* op = "multi_margin_loss";
        py::array x = float32_contiguous(x_obj, op, "x", 2);
        py::array t = targets(x, t_obj, op);
        validate_targets(op, x.shape(0), x.shape(1), cptr<std::int64_t>(t));
        py::array_t<float> dx(dims_of(x));
        {
          py::gil_scoped_release release;
          multi_margin_loss_backward(x.shape(0), x.shape(1), cptr<float>(x), cptr<std::int64_t>(t),
                                     margin, grad, dx.mutable_data());
        }
        return dx;
      },
      py::arg("x"), py::arg("target"), py::arg("margin"), py::arg("grad"));

  m.def(
      "mse_loss_forward",
      [](const py::object& x_obj, const py::object& y_obj) {
        const char* op = "mse_loss";
        py::array x = float32_c(x_obj, op, "x");
        py::array y = float32_c(y_obj, op, "y");
        require_same_shape(x, "x", y, "y", op);
        py::gil_scoped_release release;
        return mse_loss_forward(x.size(), cptr<float>(x), cptr<float>(y));
      },
      py::arg("x"), py::arg("y"));
  m.def(
      "mse_loss_backward",
      [](const py::object& x_obj, const py::object& y_obj, float grad) {
        const char* op = "mse_loss";
        py::array x = float32_c(x_obj, op, "x");
        py::array y = float32_c(y_obj, op, "y");
        require_same_shape(x, "x", y, "y", op);
        py::array_t<float> dx(dims_of(x));
        {
          py::gil_scoped_release release;
          mse_loss_backward(x.size(), cptr<float>(x), cptr<float>(y), grad, dx.mutable_data());
        }
        return dx;
      },
      py::arg("x"), py::arg("y"), py::arg("grad"));
}

}  // namespace cnnkit::bind
