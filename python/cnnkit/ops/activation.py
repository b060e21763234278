"""Activation Functions over the C++ core (cpp/src/activation/activation.cpp).

    relu:       y = max(0, x)                      dx = dy [y > 0]
    leaky_relu: y = x (x > 0), slope x otherwise    dx = dy (1 or slope)
    elu:        y = x (x > 0), alpha (e^x - 1)      dx = dy (1 or y + alpha)
    sigmoid:    y = 1 / (1 + e^-x)                  dx = dy y (1 - y)
    tanh:       y = tanh x                          dx = dy (1 - y^2)
    maxout:     y = max over `pieces` consecutive channels; dx = dy at the argmax
"""

from __future__ import annotations

from .. import _core
from .._args import as_f32
from ..autograd.function import Function

__all__ = ["ReLUFunction", "LeakyReLUFunction", "ELUFunction", "SigmoidFunction",
           "TanhFunction", "MaxoutFunction"]


class ReLUFunction(Function):
    def forward(self, x):
        self.y = _core.relu_forward(as_f32(x))
        return self.y

    def backward(self, g):
        return (_core.relu_backward(as_f32(g), self.y),)


class LeakyReLUFunction(Function):
    def forward(self, x, slope):
        self.x, self.slope = as_f32(x), slope
        return _core.leaky_relu_forward(self.x, slope)

    def backward(self, g):
        return (_core.leaky_relu_backward(as_f32(g), self.x, self.slope),)


class ELUFunction(Function):
    def forward(self, x, alpha):
        self.x, self.alpha = as_f32(x), alpha
        self.y = _core.elu_forward(self.x, alpha)
        return self.y

    def backward(self, g):
        return (_core.elu_backward(as_f32(g), self.x, self.y, self.alpha),)


class SigmoidFunction(Function):
    def forward(self, x):
        self.y = _core.sigmoid_forward(as_f32(x))
        return self.y

    def backward(self, g):
        return (_core.sigmoid_backward(as_f32(g), self.y),)


class TanhFunction(Function):
    def forward(self, x):
        self.y = _core.tanh_forward(as_f32(x))
        return self.y

    def backward(self, g):
        return (_core.tanh_backward(as_f32(g), self.y),)


class MaxoutFunction(Function):
    def forward(self, x, pieces):
        self.pieces = pieces
        y, self.argmax = _core.maxout_forward(as_f32(x), pieces)
        return y

    def backward(self, g):
        return (_core.maxout_backward(as_f32(g), self.argmax, self.pieces),)
