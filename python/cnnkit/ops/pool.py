"""Pooling Functions over the C++ core (cpp/src/pool/pool.cpp).

    max:       y = max over the window;  dx = dy routed to the argmax (indices saved forward)
    average:   y = mean over the window; dx = dy / (window count) spread over the window
    adaptive:  average pooling with windows [floor(i H / h), ceil((i + 1) H / h))
"""

from __future__ import annotations

from .. import _core
from .._args import as_f32
from ..autograd.function import Function

__all__ = ["MaxPool2dFunction", "AvgPool2dFunction", "AdaptiveAvgPool2dFunction"]


class MaxPool2dFunction(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode):
        self.hw = x.shape[2:]
        # the argmax only where a gradient will flow back (none in inference)
        y, self.indices = _core.max_pool2d_forward(as_f32(x), kernel, stride, padding, ceil_mode,
                                                   indices=bool(self.needs_input_grad[0]))
        return y

    def backward(self, g):
        return (_core.max_pool2d_backward(as_f32(g), self.indices, self.hw),)


class AvgPool2dFunction(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self.hw = x.shape[2:]
        self.args = (kernel, stride, padding, ceil_mode, count_include_pad)
        return _core.avg_pool2d_forward(as_f32(x), *self.args)

    def backward(self, g):
        return (_core.avg_pool2d_backward(as_f32(g), self.hw, *self.args),)


class AdaptiveAvgPool2dFunction(Function):
    def forward(self, x, output_hw):
        self.hw = x.shape[2:]
        return _core.adaptive_avg_pool2d_forward(as_f32(x), output_hw)

    def backward(self, g):
        return (_core.adaptive_avg_pool2d_backward(as_f32(g), self.hw),)
