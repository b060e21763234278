"""Reductions (numpy kernels): sum, mean and max over all or some axes.

    s = sum(a, axes):   da = g broadcast back over the reduced axes
    m = mean(a, axes):  da = g / count broadcast back
    max(a) over all:    da = g shared equally among the tied maxima (as torch.max())
    max(a, dim):        da = g at the (first) argmax along dim, 0 elsewhere
"""

from __future__ import annotations

import math

import numpy as np

from .._args import float_result
from ..autograd.function import Function

__all__ = ["Sum", "Mean", "MaxAll", "MaxDim"]


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % max(ndim, 1) for d in dim)


class Sum(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        return float_result(np.sum(a, axis=self.axes, keepdims=keepdim))

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.axes)
        return (np.broadcast_to(g, self.shape).astype(np.float32),)


class Mean(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        self.count = math.prod(a.shape[i] for i in self.axes) if a.ndim else 1
        return float_result(np.mean(a, axis=self.axes, keepdims=keepdim))

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.axes)
        return (np.broadcast_to(g / np.float32(self.count), self.shape).astype(np.float32),)


class MaxAll(Function):
    def forward(self, a):
        self.a = a
        self.m = np.max(a)
        return np.asarray(self.m, dtype=a.dtype)

    def backward(self, g):
        mask = (self.a == self.m).astype(np.float32)
        return (mask * (g / mask.sum()),)


class MaxDim(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.dim, self.keepdim = a.shape, dim % a.ndim, keepdim
        self.idx = np.expand_dims(np.argmax(a, axis=self.dim), self.dim)
        out = np.take_along_axis(a, self.idx, axis=self.dim)
        return out if keepdim else np.squeeze(out, self.dim)

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        dx = np.zeros(self.shape, dtype=np.float32)
        np.put_along_axis(dx, self.idx, g, axis=self.dim)
        return (dx,)
