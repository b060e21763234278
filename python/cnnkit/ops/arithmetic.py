"""Element-wise arithmetic with numpy broadcasting (numpy kernels; results stay float32).

    c = a + b:  da = g,  db = g        c = a - b:  da = g,  db = -g
    c = a * b:  da = g b,  db = g a    c = a / b:  da = g / b,  db = -g a / b^2
    c = -a:  da = -g                   c = a^p:  da = g p a^(p-1)
    c = exp(a):  da = g c              c = log(a):  da = g / a      c = |a|:  da = g sign(a)

A gradient that broadcasting spread over more elements than its input has is summed back to
the input's shape (``unbroadcast``).
"""

from __future__ import annotations

import numpy as np

from .._args import float_result
from ..autograd.function import Function

__all__ = ["Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Abs", "unbroadcast"]


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes numpy broadcast to reach it from ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Add(Function):
    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        return float_result(np.add(a, b))

    def backward(self, g):
        need = self.needs_input_grad
        return (unbroadcast(g, self.shapes[0]) if need[0] else None,
                unbroadcast(g, self.shapes[1]) if need[1] else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        return float_result(np.subtract(a, b))

    def backward(self, g):
        need = self.needs_input_grad
        return (unbroadcast(g, self.shapes[0]) if need[0] else None,
                unbroadcast(-g, self.shapes[1]) if need[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return float_result(np.multiply(a, b))

    def backward(self, g):
        da = unbroadcast(g * self.b, np.shape(self.a)) if self.needs_input_grad[0] else None
        db = unbroadcast(g * self.a, np.shape(self.b)) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return float_result(np.divide(a, b))

    def backward(self, g):
        da = unbroadcast(g / self.b, np.shape(self.a)) if self.needs_input_grad[0] else None
        db = None
        if self.needs_input_grad[1]:
            db = unbroadcast(-g * self.a / (np.asarray(self.b) ** 2), np.shape(self.b))
        return da, db


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return float_result(np.power(a, np.float32(exponent)))

    def backward(self, g):
        p = self.exponent
        return (g * np.float32(p) * np.power(self.a, np.float32(p - 1)),)


class Exp(Function):
    def forward(self, a):
        self.y = np.exp(a)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)
