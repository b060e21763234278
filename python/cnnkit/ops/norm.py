"""Normalisation Functions over the C++ core (cpp/src/norm/): batch norm, LRN, group norm and
layer norm.

The maths (training and eval forward, both backwards, the staged passes) is at the top of
cpp/src/norm/batch_norm.cpp, cpp/src/norm/lrn.cpp and cpp/src/norm/row_norm.cpp; this file
only wires the core's passes into autograd, viewing x [N, C, L] as [N, C, L, 1] for batch norm.

- ``BatchNormTrainFunction``: batch statistics, running statistics updated in place (by the
  core), optionally with the ReLU fused in (``relu=True``: a bit mask for the backward);
- ``BatchNormEvalFunction``: fixed running statistics (a per-channel affine map);
- ``BatchNormSummedFunction``: batch statistics whose sums ``sum_across(buffer)`` adds up
  between the core's stages, in place (cnnkit.distributed.SyncBatchNorm: over all ranks);
- ``LocalResponseNormFunction``;
- ``GroupNormFunction``, ``LayerNormFunction``: statistics of each sample's rows (the saved
  mean and 1 / std go to the backward).
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._args import as_f32, as_opt_f32
from ..autograd.function import Function

__all__ = ["BatchNormTrainFunction", "BatchNormEvalFunction", "BatchNormSummedFunction",
           "LocalResponseNormFunction", "GroupNormFunction", "LayerNormFunction"]


def _core_shape(shape):
    # the core takes [N, C, ...]; [N, C, L] (BatchNorm1d on sequences) is [N, C, L, 1]
    return shape + (1,) if len(shape) == 3 else shape


class BatchNormTrainFunction(Function):
    """Batch statistics; updates the running statistics in place (inside the core)."""

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, relu=False):
        self.shape = x.shape
        self.x = as_f32(x).reshape(_core_shape(x.shape))
        self.weight = as_opt_f32(weight)
        out = _core.batch_norm_forward_train(
            self.x, self.weight, as_opt_f32(bias), running_mean, running_var, momentum, eps, relu
        )
        y, self.save_mean, self.save_invstd = out[:3]
        self.relu_mask = out[3] if relu else None  # which outputs the fused ReLU kept (bits)
        return y.reshape(self.shape)

    def backward(self, g):
        g = as_f32(g).reshape(self.x.shape)
        dx, dw, db = _core.batch_norm_backward(g, self.x, self.weight, self.save_mean,
                                               self.save_invstd, self.relu_mask)
        need_x, need_w, need_b = self.needs_input_grad
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))


class BatchNormEvalFunction(Function):
    """Running statistics: y = (x - mean) / sqrt(var + eps) * weight + bias, per channel."""

    def forward(self, x, weight, bias, running_mean, running_var, eps):
        self.shape = x.shape
        self.x = as_f32(x).reshape(_core_shape(x.shape))
        self.weight = as_opt_f32(weight)
        self.stats = (running_mean, running_var, eps)
        y = _core.batch_norm_forward_eval(self.x, self.weight, as_opt_f32(bias), running_mean,
                                          running_var, eps)
        return y.reshape(self.shape)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        dx, dw, db = _core.batch_norm_backward_eval(as_f32(g).reshape(self.x.shape), self.x,
                                                    self.weight, *self.stats, need_x)
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))


class BatchNormSummedFunction(Function):
    """Training-mode batch norm over statistics that ``sum_across`` adds up in place between
    the core's stages (a float64 array: the shifted sums and the value count; in the backward,
    the sums of dy and dy (x - mean)). With ``sum_across`` a no-op it is the plain training
    batch norm. The shift is 0, the same on every process."""

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, sum_across):
        self.shape = x.shape
        self.x = as_f32(x).reshape(_core_shape(x.shape))
        self.weight = as_opt_f32(weight)
        self.sum_across = sum_across
        c = self.x.shape[1]
        shift = np.zeros(c, np.float32)
        buf = np.empty(2 * c + 1, dtype=np.float64)
        buf[:2 * c] = _core.batch_norm_stats(self.x, shift).ravel()
        buf[2 * c] = self.x.size // c
        sum_across(buf)
        self.count = float(buf[2 * c])
        y, self.save_mean, self.save_invstd = _core.batch_norm_forward_from_stats(
            self.x, self.weight, as_opt_f32(bias), buf[:2 * c].reshape(2, c), self.count, shift,
            running_mean, running_var, momentum, eps)
        return y.reshape(self.shape)

    def backward(self, g):
        g = as_f32(g).reshape(self.x.shape)
        sums, dw, db = _core.batch_norm_backward_reduce(g, self.x, self.save_mean,
                                                        self.save_invstd)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dx = None
        if need_x:
            self.sum_across(sums)
            dx = _core.batch_norm_backward_apply(g, self.x, self.weight, self.save_mean,
                                                 self.save_invstd, sums, self.count)
            dx = dx.reshape(self.shape)
        return dx, (dw if need_w else None), (db if need_b else None)


class LocalResponseNormFunction(Function):
    def forward(self, x, size, alpha, beta, k):
        self.x, self.args = as_f32(x), (size, alpha, beta, k)
        self.y, self.scale = _core.lrn_forward(self.x, *self.args)
        return self.y

    def backward(self, g):
        return (_core.lrn_backward(as_f32(g), self.x, self.y, self.scale, *self.args),)


class GroupNormFunction(Function):
    """x [N, C, ...] in ``num_groups`` groups of channels; weight/bias [C] or None."""

    def forward(self, x, weight, bias, num_groups, eps):
        self.x, self.weight, self.num_groups = as_f32(x), as_opt_f32(weight), num_groups
        y, self.save_mean, self.save_invstd = _core.group_norm_forward(
            self.x, num_groups, self.weight, as_opt_f32(bias), eps)
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        dx, dw, db = _core.group_norm_backward(as_f32(g), self.x, self.num_groups, self.weight,
                                               self.save_mean, self.save_invstd, need_w or need_b)
        return dx if need_x else None, dw if need_w else None, db if need_b else None


class LayerNormFunction(Function):
    """x ``[..., *normalized_shape]``; weight/bias of shape normalized_shape or None."""

    def forward(self, x, weight, bias, normalized_shape, eps):
        self.x, self.weight, self.shape = as_f32(x), as_opt_f32(weight), list(normalized_shape)
        y, self.save_mean, self.save_invstd = _core.layer_norm_forward(
            self.x, self.shape, self.weight, as_opt_f32(bias), eps)
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        dx, dw, db = _core.layer_norm_backward(as_f32(g), self.x, self.shape, self.weight,
                                               self.save_mean, self.save_invstd, need_w or need_b)
        return dx if need_x else None, dw if need_w else None, db if need_b else None
