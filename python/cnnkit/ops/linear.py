"""The fully connected layer over the C++ core (cpp/src/linear/linear.cpp), x [*, in]:

    y = x W^T + b:  dx = dy W,  dW = dy^T x,  db = sum of dy over the rows
"""

from __future__ import annotations

import math

from .. import _core, amp
from .._args import as_f32, as_opt_f32
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled

__all__ = ["LinearFunction"]


class LinearFunction(Function):
    def forward(self, x, weight, bias):
        self.shape = x.shape
        self.x = as_f32(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])
        self.weight = as_f32(weight)
        self.precision = amp.precision()
        packed = None
        if self.precision == "bf16" and not is_grad_enabled():  # inference: pack W once
            packed = amp.packed_weight("linear", self.weight, _core.linear_pack_bf16)
        y = _core.linear_forward(self.x, self.weight, as_opt_f32(bias), self.precision, packed)
        return y.reshape(self.shape[:-1] + (y.shape[-1],))

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = as_f32(g).reshape(self.x.shape[0], g.shape[-1])
        dx, dw, db = _core.linear_backward(g, self.x, self.weight, need_x, self.precision)
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))
