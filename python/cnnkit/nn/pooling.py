"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from .. import functional as F
from ..functional import _pair
from ..shapes import conv_output_size
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class _Pool2d(Module):
    def _check_input(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected a 4-D input [N, C, H, W], got {list(x.shape)}")
        k = _pair(self.kernel_size, "kernel_size", type(self).__name__)
        s = k if self.stride is None else _pair(self.stride, "stride", type(self).__name__)
        p = _pair(self.padding, "padding", type(self).__name__)
        if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
            raise ValueError(f"{self!r}: padding should be at most half of the kernel size")
        try:
            conv_output_size(tuple(x.shape[2:]), k, s, p)
        except ValueError as e:
            raise ValueError(f"{self!r}: input {list(x.shape)}: {e}") from None


class MaxPool2d(_Pool2d):
    """Max pooling of [N, C, H, W] (PyTorch's signature; only ``dilation=1`` and ``return_indices=False``)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        if dilation not in (1, (1, 1)):
            raise ValueError(f"MaxPool2d: dilation={dilation} is not supported (only 1)")
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x):
        self._check_input(x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """Average pooling of [N, C, H, W]; ``count_include_pad`` counts padded zeros in the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        self._check_input(x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling of [N, C, H, W] to [N, C, h, w] for ``output_size`` (h, w) (or an int),
    whatever H and W."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected a 4-D input [N, C, H, W], got {list(x.shape)}")
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
