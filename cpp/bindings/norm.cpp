// Bindings: batch normalisation, local response normalisation, group and layer normalisation.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "arrays.hpp"
#include "cnnkit/norm.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

namespace {

// [N, C, ...] -> (N, C, product of the rest).
void ncs(const py::array& x, index_t* N, index_t* C, index_t* S) {
  *N = x.shape(0);
  *C = x.shape(1);
  *S = 1;
  for (py::ssize_t i = 2; i < x.ndim(); ++i) *S *= x.shape(i);
}

// An optional per-channel float32 vector of length C (None -> nullptr).
const float* channel_vec(const py::object& obj, index_t C, const char* op, const char* name,
                         py::array* keep, bool writable = false) {
  if (obj.is_none()) return nullptr;
  *keep = float32_c(obj, op, name);
  require_vector(*keep, C, name, op);
  if (writable) require_writable(*keep, op, name);
  return cptr<float>(*keep);
}

// Batch norm's x (and dy): float32, C-contiguous, [N, C], [N, C, L] or [N, C, H, W].
py::array bn_array(const py::object& obj, const char* op, const char* name) {
  py::array a = float32_c(obj, op, name, 2);
  if (a.ndim() > 4) {
    throw_invalid(op, ": ", name,
                  " must have at most 4 dimensions ([N, C], [N, C, L] or "
                  "[N, C, H, W]), got shape ",
                  shape_of(a));
  }
  return a;
}

// The training forward's save_mean: float64 [C].
const double* mean_vec(const py::object& obj, index_t C, const char* op, const char* name,
                       py::array* keep) {
  *keep = typed_c<double>(obj, op, name, "float64", 1);
  require_vector(*keep, C, name, op);
  return cptr<double>(*keep);
}

// [N, C, ...] float32 x with its [N, C, S] view; `training` checks that M > 1.
py::array bn_input(const py::object& x_obj, const char* op, const char* name, BatchNormParams* p,
                   bool training) {
  py::array x = bn_array(x_obj, op, name);
  ncs(x, &p->N, &p->C, &p->S);
  validate(*p, training);
  return x;
}

// The fused ReLU's bit mask, as batch_norm_forward_train(relu=True) returned it (or None).
const std::uint16_t* relu_mask_of(const py::object& mask_obj, const BatchNormParams& p,
                                  const py::array& x, const char* op, py::array* keep) {
  if (mask_obj.is_none()) return nullptr;
  if (p.S == 1) throw_invalid(op, ": relu_mask needs x with spatial dimensions, got ", shape_of(x));
  if (!py::isinstance<py::array_t<std::uint16_t>>(mask_obj)) {
    throw py::type_error(std::string(op) +
                         ": relu_mask must be the uint16 array that "
                         "batch_norm_forward_train(relu=True) returned");
  }
  *keep = py::reinterpret_borrow<py::array>(mask_obj);
  if (keep->ndim() != 1 || keep->shape(0) != bn_relu_mask_words(p) ||
      !(keep->flags() & py::array::c_style)) {
    throw_invalid(op, ": relu_mask must have shape [", bn_relu_mask_words(p),
                  "] (contiguous), got ", shape_of(*keep));
  }
  return static_cast<const std::uint16_t*>(keep->data());
}

py::tuple bn_train_py(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                      const py::object& rm_obj, const py::object& rv_obj, float momentum, float eps,
                      bool relu) {
  const char* op = "batch_norm_forward_train";
  py::array x = bn_array(x_obj, op, "x");
  BatchNormParams p;
  ncs(x, &p.N, &p.C, &p.S);
  p.momentum = momentum;
  p.eps = eps;
  py::array w, b, rm, rv;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  const float* bp = channel_vec(b_obj, p.C, op, "bias", &b);
  float* rmp = const_cast<float*>(channel_vec(rm_obj, p.C, op, "running_mean", &rm, true));
  float* rvp = const_cast<float*>(channel_vec(rv_obj, p.C, op, "running_var", &rv, true));
  validate(p, true);
  if (relu && p.S == 1) {
    throw_invalid(op, ": relu=True needs x with spatial dimensions [N, C, *], got ", shape_of(x));
  }
  py::array_t<float> y = output_array<float>(op, dims_of(x)), invstd(p.C);
  py::array_t<double> mean(p.C);
  py::object mask_obj = py::none();
  std::uint16_t* mask = nullptr;
  if (relu) {
    py::array_t<std::uint16_t> m = output_array<std::uint16_t>(op, {bn_relu_mask_words(p)});
    mask = m.mutable_data();
    mask_obj = m;
  }
  {
    py::gil_scoped_release release;
    batch_norm_forward_train(p, cptr<float>(x), wp, bp, rmp, rvp, y.mutable_data(),
                             mean.mutable_data(), invstd.mutable_data(), mask);
  }
  if (relu) return py::make_tuple(y, mean, invstd, mask_obj);
  return py::make_tuple(y, mean, invstd);
}

py::array bn_eval_py(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                     const py::object& rm_obj, const py::object& rv_obj, float eps) {
  const char* op = "batch_norm_forward_eval";
  py::array x = bn_array(x_obj, op, "x");
  BatchNormParams p;
  ncs(x, &p.N, &p.C, &p.S);
  p.eps = eps;
  py::array w, b, rm, rv;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  const float* bp = channel_vec(b_obj, p.C, op, "bias", &b);
  if (rm_obj.is_none() || rv_obj.is_none()) {
    throw_invalid(op, ": running_mean and running_var are required in eval mode");
  }
  const float* rmp = channel_vec(rm_obj, p.C, op, "running_mean", &rm);
  const float* rvp = channel_vec(rv_obj, p.C, op, "running_var", &rv);
  validate(p, false);
  py::array_t<float> y = output_array<float>(op, dims_of(x));
  {
    py::gil_scoped_release release;
    batch_norm_forward_eval(p, cptr<float>(x), wp, bp, rmp, rvp, y.mutable_data());
  }
  return y;
}

py::tuple bn_backward_py(const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj,
                         const py::object& mean_obj, const py::object& invstd_obj,
                         const py::object& mask_obj) {
  const char* op = "batch_norm_backward";
  py::array dy = bn_array(dy_obj, op, "dy");
  py::array x = bn_array(x_obj, op, "x");
  require_same_shape(x, "x", dy, "dy", op);
  BatchNormParams p;
  ncs(x, &p.N, &p.C, &p.S);
  py::array w, mean, invstd, mask_arr;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  if (mean_obj.is_none() || invstd_obj.is_none()) {
    throw_invalid(op, ": save_mean and save_invstd are required");
  }
  const double* mp = mean_vec(mean_obj, p.C, op, "save_mean", &mean);
  const float* ip = channel_vec(invstd_obj, p.C, op, "save_invstd", &invstd);
  validate(p, false);
  const std::uint16_t* mask = relu_mask_of(mask_obj, p, x, op, &mask_arr);
  py::array_t<float> dx = output_array<float>(op, dims_of(x)), dw(p.C), db(p.C);
  {
    py::gil_scoped_release release;
    batch_norm_backward(p, cptr<float>(dy), cptr<float>(x), wp, mp, ip, dx.mutable_data(),
                        dw.mutable_data(), db.mutable_data(), mask);
  }
  return py::make_tuple(dx, dw, db);
}

py::tuple bn_backward_eval_py(const py::object& dy_obj, const py::object& x_obj,
                              const py::object& w_obj, const py::object& rm_obj,
                              const py::object& rv_obj, float eps, bool need_dx) {
  const char* op = "batch_norm_backward_eval";
  py::array dy = bn_array(dy_obj, op, "dy");
  py::array x = bn_array(x_obj, op, "x");
  require_same_shape(x, "x", dy, "dy", op);
  BatchNormParams p;
  ncs(x, &p.N, &p.C, &p.S);
  p.eps = eps;
  py::array w, rm, rv;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  if (rm_obj.is_none() || rv_obj.is_none()) {
    throw_invalid(op, ": running_mean and running_var are required");
  }
  const float* rmp = channel_vec(rm_obj, p.C, op, "running_mean", &rm);
  const float* rvp = channel_vec(rv_obj, p.C, op, "running_var", &rv);
  validate(p, false);
  py::object dx_obj = py::none();
  float* dxp = nullptr;
  if (need_dx) {
    py::array_t<float> dx = output_array<float>(op, dims_of(x));
    dxp = dx.mutable_data();
    dx_obj = dx;
  }
  py::array_t<float> dw(p.C), db(p.C);
  {
    py::gil_scoped_release release;
    batch_norm_backward_eval(p, cptr<float>(dy), cptr<float>(x), wp, rmp, rvp, dxp,
                             dw.mutable_data(), db.mutable_data());
  }
  return py::make_tuple(dx_obj, dw, db);
}

py::array bn_stats_py(const py::object& x_obj, const py::object& shift_obj) {
  const char* op = "batch_norm_stats";
  BatchNormParams p;
  py::array x = bn_input(x_obj, op, "x", &p, false);
  if (shift_obj.is_none()) throw_invalid(op, ": shift is required (float32 [C])");
  py::array shift;
  const float* sp = channel_vec(shift_obj, p.C, op, "shift", &shift);
  py::array_t<double> sums({py::ssize_t(2), py::ssize_t(p.C)});
  {
    py::gil_scoped_release release;
    batch_norm_stats(p, cptr<float>(x), sp, sums.mutable_data());
  }
  return sums;
}

// [2, C] float64 sums (batch_norm_stats / batch_norm_backward_reduce, maybe summed across
// processes) and their value count.
const double* sums_of(const py::object& obj, const BatchNormParams& p, const char* op,
                      py::array* keep) {
  *keep = typed_c<double>(obj, op, "sums", "float64", 2);
  if (keep->shape(0) != 2 || keep->shape(1) != p.C) {
    throw_invalid(op, ": sums must have shape [2, ", p.C, "], got ", shape_of(*keep));
  }
  return cptr<double>(*keep);
}

py::tuple bn_forward_from_stats_py(const py::object& x_obj, const py::object& w_obj,
                                   const py::object& b_obj, const py::object& sums_obj,
                                   double count, const py::object& shift_obj,
                                   const py::object& rm_obj, const py::object& rv_obj,
                                   float momentum, float eps) {
  const char* op = "batch_norm_forward_from_stats";
  BatchNormParams p;
  p.momentum = momentum;
  p.eps = eps;
  py::array x = bn_input(x_obj, op, "x", &p, false);
  py::array w, b, shift, rm, rv, sums;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  const float* bp = channel_vec(b_obj, p.C, op, "bias", &b);
  const double* s = sums_of(sums_obj, p, op, &sums);
  if (shift_obj.is_none()) throw_invalid(op, ": shift is required (float32 [C])");
  const float* sp = channel_vec(shift_obj, p.C, op, "shift", &shift);
  float* rmp = const_cast<float*>(channel_vec(rm_obj, p.C, op, "running_mean", &rm, true));
  float* rvp = const_cast<float*>(channel_vec(rv_obj, p.C, op, "running_var", &rv, true));
  if (!(count >= 2.0) || count > 9.0e15) {
    throw_invalid(op,
                  ": count must be the number of values per channel (2 <= count < 2^53), "
                  "got ",
                  count);
  }
  py::array_t<float> y = output_array<float>(op, dims_of(x)), invstd(p.C);
  py::array_t<double> mean(p.C);
  {
    py::gil_scoped_release release;
    batch_norm_forward_from_stats(p, cptr<float>(x), wp, bp, s, count, sp, rmp, rvp,
                                  y.mutable_data(), mean.mutable_data(), invstd.mutable_data());
  }
  return py::make_tuple(y, mean, invstd);
}

py::tuple bn_backward_reduce_py(const py::object& dy_obj, const py::object& x_obj,
                                const py::object& mean_obj, const py::object& invstd_obj) {
  const char* op = "batch_norm_backward_reduce";
  BatchNormParams p;
  py::array x = bn_input(x_obj, op, "x", &p, false);
  py::array dy = bn_array(dy_obj, op, "dy");
  require_same_shape(x, "x", dy, "dy", op);
  py::array mean, invstd;
  const double* mp = mean_vec(mean_obj, p.C, op, "save_mean", &mean);
  if (invstd_obj.is_none()) throw_invalid(op, ": save_invstd is required");
  const float* ip = channel_vec(invstd_obj, p.C, op, "save_invstd", &invstd);
  py::array_t<double> sums({py::ssize_t(2), py::ssize_t(p.C)});
  py::array_t<float> dw(p.C), db(p.C);
  {
    py::gil_scoped_release release;
    batch_norm_backward_reduce(p, cptr<float>(dy), cptr<float>(x), mp, ip, sums.mutable_data(),
                               dw.mutable_data(), db.mutable_data());
  }
  return py::make_tuple(sums, dw, db);
}

py::array bn_backward_apply_py(const py::object& dy_obj, const py::object& x_obj,
                               const py::object& w_obj, const py::object& mean_obj,
                               const py::object& invstd_obj, const py::object& sums_obj,
                               double count) {
  const char* op = "batch_norm_backward_apply";
  BatchNormParams p;
  py::array x = bn_input(x_obj, op, "x", &p, false);
  py::array dy = bn_array(dy_obj, op, "dy");
  require_same_shape(x, "x", dy, "dy", op);
  py::array w, mean, invstd, sums;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  const double* mp = mean_vec(mean_obj, p.C, op, "save_mean", &mean);
  if (invstd_obj.is_none()) throw_invalid(op, ": save_invstd is required");
  const float* ip = channel_vec(invstd_obj, p.C, op, "save_invstd", &invstd);
  const double* s = sums_of(sums_obj, p, op, &sums);
  if (!(count >= 1.0) || count > 9.0e15) {
    throw_invalid(op,
                  ": count must be the number of values per channel (1 <= count < 2^53), "
                  "got ",
                  count);
  }
  py::array_t<float> dx = output_array<float>(op, dims_of(x));
  {
    py::gil_scoped_release release;
    batch_norm_backward_apply(p, cptr<float>(dy), cptr<float>(x), wp, mp, ip, s, count,
                              dx.mutable_data());
  }
  return dx;
}

LrnParams lrn_params(const py::array& x, index_t size, float alpha, float beta, float k) {
  LrnParams p;
  ncs(x, &p.N, &p.C, &p.S);
  p.size = size;
  p.alpha = alpha;
  p.beta = beta;
  p.k = k;
  validate(p);
  return p;
}

py::tuple lrn_forward_py(const py::object& x_obj, index_t size, float alpha, float beta, float k) {
  const char* op = "lrn_forward";
  py::array x = float32_c(x_obj, op, "x");
  if (x.ndim() < 3) {
    throw_invalid(op,
                  ": x must have at least 3 dimensions ([N, C, ...] for local_response_norm), "
                  "got shape ",
                  shape_of(x));
  }
  const LrnParams p = lrn_params(x, size, alpha, beta, k);
  py::array_t<float> y(dims_of(x)), scale(dims_of(x));
  {
    py::gil_scoped_release release;
    lrn_forward(p, cptr<float>(x), y.mutable_data(), scale.mutable_data());
  }
  return py::make_tuple(y, scale);
}

py::array lrn_backward_py(const py::object& dy_obj, const py::object& x_obj,
                          const py::object& y_obj, const py::object& scale_obj, index_t size,
                          float alpha, float beta, float k) {
  const char* op = "lrn_backward";
  py::array dy = float32_c(dy_obj, op, "dy", 3);
  py::array x = float32_c(x_obj, op, "x", 3);
  py::array y = float32_c(y_obj, op, "y", 3);
  py::array scale = float32_c(scale_obj, op, "scale", 3);
  require_same_shape(x, "x", dy, "dy", op);
  require_same_shape(x, "x", y, "y", op);
  require_same_shape(x, "x", scale, "scale", op);
  const LrnParams p = lrn_params(x, size, alpha, beta, k);
  py::array_t<float> dx(dims_of(x));
  {
    py::gil_scoped_release release;
    lrn_backward(p, cptr<float>(dy), cptr<float>(x), cptr<float>(y), cptr<float>(scale),
                 dx.mutable_data());
  }
  return dx;
}

// ----------------------------------------------------------------------------- group / layer norm

// An optional float32 array of exactly `dims` (None -> nullptr): the affine parameters.
const float* affine_of(const py::object& obj, const std::vector<py::ssize_t>& dims, const char* op,
                       const char* name, const char* what, py::array* keep) {
  if (obj.is_none()) return nullptr;
  *keep = float32_c(obj, op, name);
  if (dims_of(*keep) != dims) {
    throw_invalid(op, ": ", name, " must have shape ", shape_of(dims), " (", what, "), got ",
                  shape_of(*keep));
  }
  return cptr<float>(*keep);
}

// save_mean (float64) and save_invstd (float32) as the forward returned them: shape `dims`.
void saved_stats(const py::object& mean_obj, const py::object& invstd_obj,
                 const std::vector<py::ssize_t>& dims, const char* op, py::array* mean,
                 py::array* invstd) {
  if (mean_obj.is_none() || invstd_obj.is_none()) {
    throw_invalid(op, ": save_mean and save_invstd are required");
  }
  *mean = typed_c<double>(mean_obj, op, "save_mean", "float64", int(dims.size()));
  *invstd = float32_c(invstd_obj, op, "save_invstd");
  if (dims_of(*mean) != dims) {
    throw_invalid(op, ": save_mean must have shape ", shape_of(dims), ", got ", shape_of(*mean));
  }
  if (dims_of(*invstd) != dims) {
    throw_invalid(op, ": save_invstd must have shape ", shape_of(dims), ", got ",
                  shape_of(*invstd));
  }
}

GroupNormParams gn_params(const py::array& x, index_t num_groups, float eps) {
  GroupNormParams p;
  ncs(x, &p.N, &p.C, &p.S);
  p.G = num_groups;
  p.eps = eps;
  validate(p);
  return p;
}

py::tuple gn_forward_py(const py::object& x_obj, index_t num_groups, const py::object& w_obj,
                        const py::object& b_obj, float eps) {
  const char* op = "group_norm_forward";
  py::array x = float32_c(x_obj, op, "x", 2);
  const GroupNormParams p = gn_params(x, num_groups, eps);
  py::array w, b;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  const float* bp = channel_vec(b_obj, p.C, op, "bias", &b);
  py::array_t<float> y = output_array<float>(op, dims_of(x));
  py::array_t<double> mean = output_array<double>(op, {p.N, p.G});
  py::array_t<float> invstd = output_array<float>(op, {p.N, p.G});
  {
    py::gil_scoped_release release;
    group_norm_forward(p, cptr<float>(x), wp, bp, y.mutable_data(), mean.mutable_data(),
                       invstd.mutable_data());
  }
  return py::make_tuple(y, mean, invstd);
}

py::tuple gn_backward_py(const py::object& dy_obj, const py::object& x_obj, index_t num_groups,
                         const py::object& w_obj, const py::object& mean_obj,
                         const py::object& invstd_obj, bool need_weight_grads) {
  const char* op = "group_norm_backward";
  py::array dy = float32_c(dy_obj, op, "dy", 2);
  py::array x = float32_c(x_obj, op, "x", 2);
  require_same_shape(x, "x", dy, "dy", op);
  const GroupNormParams p = gn_params(x, num_groups, 1e-5f);
  py::array w, mean, invstd;
  const float* wp = channel_vec(w_obj, p.C, op, "weight", &w);
  saved_stats(mean_obj, invstd_obj, {p.N, p.G}, op, &mean, &invstd);
  py::array_t<float> dx = output_array<float>(op, dims_of(x));
  py::object dw_obj = py::none(), db_obj = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (need_weight_grads) {
    py::array_t<float> dw(p.C), db(p.C);
    dwp = dw.mutable_data();
    dbp = db.mutable_data();
    dw_obj = dw;
    db_obj = db;
  }
  {
    py::gil_scoped_release release;
    group_norm_backward(p, cptr<float>(dy), cptr<float>(x), wp, cptr<double>(mean),
                        cptr<float>(invstd), dx.mutable_data(), dwp, dbp);
  }
  return py::make_tuple(dx, dw_obj, db_obj);
}

// x [*, normalized_shape] viewed as [rows, L].
LayerNormParams ln_params(const py::array& x, const std::vector<index_t>& shape, float eps,
                          const char* op) {
  const py::ssize_t k = py::ssize_t(shape.size());
  if (k == 0) throw_invalid(op, ": normalized_shape must have at least one dimension, got []");
  std::vector<py::ssize_t> tail(shape.begin(), shape.end());
  if (x.ndim() < k ||
      std::vector<py::ssize_t>(x.shape() + x.ndim() - k, x.shape() + x.ndim()) != tail) {
    throw_invalid(op, ": x must end with normalized_shape ", shape_of(tail), ", got x of shape ",
                  shape_of(x));
  }
  LayerNormParams p;
  p.rows = 1;
  p.L = 1;
  for (py::ssize_t i = 0; i < x.ndim(); ++i) (i < x.ndim() - k ? p.rows : p.L) *= x.shape(i);
  p.eps = eps;
  validate(p);
  return p;
}

std::vector<py::ssize_t> lead_dims(const py::array& x, std::size_t k) {
  return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim() - k);
}

py::tuple ln_forward_py(const py::object& x_obj, const std::vector<index_t>& normalized_shape,
                        const py::object& w_obj, const py::object& b_obj, float eps) {
  const char* op = "layer_norm_forward";
  py::array x = float32_c(x_obj, op, "x", 1);
  const LayerNormParams p = ln_params(x, normalized_shape, eps, op);
  const std::vector<py::ssize_t> ns(normalized_shape.begin(), normalized_shape.end());
  py::array w, b;
  const float* wp = affine_of(w_obj, ns, op, "weight", "normalized_shape", &w);
  const float* bp = affine_of(b_obj, ns, op, "bias", "normalized_shape", &b);
  py::array_t<float> y = output_array<float>(op, dims_of(x));
  py::array_t<double> mean = output_array<double>(op, lead_dims(x, ns.size()));
  py::array_t<float> invstd = output_array<float>(op, lead_dims(x, ns.size()));
  {
    py::gil_scoped_release release;
    layer_norm_forward(p, cptr<float>(x), wp, bp, y.mutable_data(), mean.mutable_data(),
                       invstd.mutable_data());
  }
  return py::make_tuple(y, mean, invstd);
}

py::tuple ln_backward_py(const py::object& dy_obj, const py::object& x_obj,
                         const std::vector<index_t>& normalized_shape, const py::object& w_obj,
                         const py::object& mean_obj, const py::object& invstd_obj,
                         bool need_weight_grads) {
  const char* op = "layer_norm_backward";
  py::array dy = float32_c(dy_obj, op, "dy", 1);
  py::array x = float32_c(x_obj, op, "x", 1);
  require_same_shape(x, "x", dy, "dy", op);
  const LayerNormParams p = ln_params(x, normalized_shape, 1e-5f, op);
  const std::vector<py::ssize_t> ns(normalized_shape.begin(), normalized_shape.end());
  py::array w, mean, invstd;
  const float* wp = affine_of(w_obj, ns, op, "weight", "normalized_shape", &w);
  saved_stats(mean_obj, invstd_obj, lead_dims(x, ns.size()), op, &mean, &invstd);
  py::array_t<float> dx = output_array<float>(op, dims_of(x));
  py::object dw_obj = py::none(), db_obj = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (need_weight_grads) {
    py::array_t<float> dw = output_array<float>(op, ns), db = output_array<float>(op, ns);
    dwp = dw.mutable_data();
    dbp = db.mutable_data();
    dw_obj = dw;
    db_obj = db;
  }
  {
    py::gil_scoped_release release;
    layer_norm_backward(p, cptr<float>(dy), cptr<float>(x), wp, cptr<double>(mean),
                        cptr<float>(invstd), dx.mutable_data(), dwp, dbp);
  }
  return py::make_tuple(dx, dw_obj, db_obj);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm_forward_train", &bn_train_py, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum"), py::arg("eps"),
        py::arg("relu") = false);
  m.def("batch_norm_forward_eval", &bn_eval_py, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("eps"));
  m.def("batch_norm_backward", &bn_backward_py, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("relu_mask") = py::none());
  m.def("batch_norm_backward_eval", &bn_backward_eval_py, py::arg("dy"), py::arg("x"),
        py::arg("weight"), py::arg("running_mean"), py::arg("running_var"), py::arg("eps"),
        py::arg("need_dx") = true);
  m.def("batch_norm_stats", &bn_stats_py, py::arg("x"), py::arg("shift"));
  m.def("batch_norm_forward_from_stats", &bn_forward_from_stats_py, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("sums"), py::arg("count"), py::arg("shift"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum"), py::arg("eps"));
  m.def("batch_norm_backward_reduce", &bn_backward_reduce_py, py::arg("dy"), py::arg("x"),
        py::arg("save_mean"), py::arg("save_invstd"));
  m.def("batch_norm_backward_apply", &bn_backward_apply_py, py::arg("dy"), py::arg("x"),
        py::arg("weight"), py::arg("save_mean"), py::arg("save_invstd"), py::arg("sums"),
        py::arg("count"));
  m.def("lrn_forward", &lrn_forward_py, py::arg("x"), py::arg("size"), py::arg("alpha"),
        py::arg("beta"), py::arg("k"));
  m.def("lrn_backward", &lrn_backward_py, py::arg("dy"), py::arg("x"), py::arg("y"),
        py::arg("scale"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"));
  m.def("group_norm_forward", &gn_forward_py, py::arg("x"), py::arg("num_groups"),
        py::arg("weight"), py::arg("bias"), py::arg("eps"));
  m.def("group_norm_backward", &gn_backward_py, py::arg("dy"), py::arg("x"), py::arg("num_groups"),
        py::arg("weight"), py::arg("save_mean"), py::arg("save_invstd"),
        py::arg("need_weight_grads") = true);
  m.def("layer_norm_forward", &ln_forward_py, py::arg("x"), py::arg("normalized_shape"),
        py::arg("weight"), py::arg("bias"), py::arg("eps"));
  m.def("layer_norm_backward", &ln_backward_py, py::arg("dy"), py::arg("x"),
        py::arg("normalized_shape"), py::arg("weight"), py::arg("save_mean"),
        py::arg("save_invstd"), py::arg("need_weight_grads") = true);
}

}  // namespace cnnkit::bind
