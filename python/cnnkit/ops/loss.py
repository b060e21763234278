"""Softmax and the losses over the C++ core (cpp/src/loss/loss.cpp).

    softmax:      y = e^x / sum e^x along dim     dx = y (dy - sum(dy y))
    log_softmax:  y = x - log sum e^x             dx = dy - softmax(x) sum(dy)
    cross_entropy(logits, t) = mean_n -log softmax(logits_n)[t_n]; dlogits = (p - onehot) / N
      with label_smoothing e: the target is q = (1 - e) onehot + e / C, loss = mean_n of
      -sum_k q_k log p_k = (1 - e) (-log p_t) + e mean_k(-log p_k); dlogits = (p - q) / N
    multi_margin (hinge)    = mean_n sum_{j != t_n} max(0, margin - x_t + x_j) / C
    mse(x, y)               = mean (x - y)^2;  dx = 2 (x - y) / size = -dy
The core works on rows [N, C]: softmax along another axis moves it last first.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._args import as_f32
from ..autograd.function import Function

__all__ = ["SoftmaxFunction", "LogSoftmaxFunction", "CrossEntropyFunction",
           "MultiMarginFunction", "MSEFunction", "check_label_smoothing"]


def check_label_smoothing(value, op: str = "cross_entropy") -> float:
    """``label_smoothing`` as a Python float in [0, 1]: TypeError for a non-real (a bool, a
    string, None), ValueError outside [0, 1] or NaN; both name ``op`` and the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: label_smoothing must be a real number in [0, 1], got "
                        f"{value!r} ({type(value).__name__})")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"{op}: label_smoothing must be in [0, 1] "
                         f"(0 <= label_smoothing <= 1), got {v}")
    return v


class _SoftmaxBase(Function):
    kind = ""

    def forward(self, x, dim):
        self.dim = dim % x.ndim
        moved = np.moveaxis(x, self.dim, -1)
        self.moved_shape = moved.shape
        rows = math.prod(moved.shape[:-1])
        y2 = getattr(_core, f"{self.kind}_forward")(as_f32(moved.reshape(rows, moved.shape[-1])))
        self.y2 = y2
        return np.moveaxis(y2.reshape(self.moved_shape), -1, self.dim)

    def backward(self, g):
        g2 = as_f32(np.moveaxis(g, self.dim, -1).reshape(self.y2.shape))
        dx2 = getattr(_core, f"{self.kind}_backward")(g2, self.y2)
        return (np.moveaxis(dx2.reshape(self.moved_shape), -1, self.dim),)


class SoftmaxFunction(_SoftmaxBase):
    kind = "softmax"


class LogSoftmaxFunction(_SoftmaxBase):
    kind = "log_softmax"


class CrossEntropyFunction(Function):
    def forward(self, logits, target, label_smoothing=0.0):
        self.target, self.label_smoothing = target, float(label_smoothing)
        loss, self.probs = _core.cross_entropy_forward(as_f32(logits), target,
                                                       self.label_smoothing)
        return np.asarray(loss, dtype=np.float32)

    def backward(self, g):
        return _core.cross_entropy_backward(self.probs, self.target, float(g),
                                            self.label_smoothing), None


class MultiMarginFunction(Function):
    def forward(self, x, target, margin):
        self.x, self.target, self.margin = as_f32(x), target, margin
        return np.asarray(_core.multi_margin_loss_forward(self.x, target, margin),
                          dtype=np.float32)

    def backward(self, g):
        return _core.multi_margin_loss_backward(self.x, self.target, self.margin, float(g)), None


class MSEFunction(Function):
    def forward(self, x, y):
        self.x, self.y = as_f32(x), as_f32(y)
        return np.asarray(_core.mse_loss_forward(self.x, self.y), dtype=np.float32)

    def backward(self, g):
        dx = _core.mse_loss_backward(self.x, self.y, float(g))
        return dx, (-dx if self.needs_input_grad[1] else None)
