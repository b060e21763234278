"""Dropout over the C++ core (cpp/src/dropout/dropout.cpp).

    training: keep each element with probability 1 - p (a hash of the seed and the element's
    index decides), y = x / (1 - p) where kept, 0 elsewhere;  dx = dy / (1 - p) where kept
"""

from __future__ import annotations

from .. import _core
from .._args import as_f32
from ..autograd.function import Function

__all__ = ["DropoutFunction"]


class DropoutFunction(Function):
    def forward(self, x, p, seed):
        self.p = p
        y, self.mask = _core.dropout_forward(as_f32(x), p, seed)
        return y

    def backward(self, g):
        return (_core.dropout_backward(as_f32(g), self.mask, self.p),)
