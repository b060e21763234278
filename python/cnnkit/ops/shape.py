"""Shape changes and indexing (numpy views and copies).

    reshape:  da = g reshaped back      permute(axes):  da = g permuted by the inverse
    a[index]: da = zeros with g added at index (repeated indices accumulate)
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function

__all__ = ["Reshape", "Permute", "Index"]


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return np.transpose(a, axes)

    def backward(self, g):
        return (np.transpose(g, np.argsort(self.axes)),)


class Index(Function):
    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        return np.array(a[index])

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=np.float32)
        np.add.at(dx, self.index, g)  # add.at: repeated indices accumulate
        return (dx,)
