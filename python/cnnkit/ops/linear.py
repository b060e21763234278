"""The fully connected layer over the C++ core (cpp/src/linear/linear.cpp), x [*, in]:

    y = x W^T + b:  dx = dy W,  dW = dy^T x,  db = sum of dy over the rows
"""

from __future__ import annotations

import math

from .. import _core, amp
from .._args import as_f32, as_opt_f32
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled

__all__ = ["LinearFunction", "linear_array"]


def linear_array(x, weight, bias):
    """y = x W^T + b on arrays (x ``[*, in]``), in the precision autocast asks for, no graph: what
    LinearFunction computes, and what a layer calls directly when nothing is recorded."""
    x2 = as_f32(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])
    weight = as_f32(weight)
    precision = amp.precision()
    packed = None
    if precision == "bf16" and not is_grad_enabled():  # inference: pack W once
        packed = amp.packed_weight("linear", weight, _core.linear_pack_bf16)
    y = _core.linear_forward(x2, weight, as_opt_f32(bias), precision, packed)
    return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (y.shape[-1],))


class LinearFunction(Function):
    def forward(self, x, weight, bias):
        self.shape = x.shape
        self.x = as_f32(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])
        self.weight = as_f32(weight)
        self.precision = amp.precision()
        return linear_array(x, weight, bias)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = as_f32(g).reshape(self.x.shape[0], g.shape[-1])
        dx, dw, db = _core.linear_backward(g, self.x, self.weight, need_x, self.precision)
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))
