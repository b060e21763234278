"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from .. import functional as F
from .module import Module, input_error

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class _Pool2d(Module):
    def _check_input(self, x):
        """The layer's interface: a 4-D input (the op checks sizes, stride and padding)."""
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected a 4-D input [N, C, H, W], got {list(x.shape)}")

    def forward(self, x):
        self._check_input(x)
        try:
            return self._pool(x)
        except ValueError as e:
            raise input_error(repr(self), x, e) from None


class MaxPool2d(_Pool2d):
    """Max pooling of [N, C, H, W] (PyTorch's signature; only ``dilation=1`` and
    ``return_indices=False``)."""

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

    def _pool(self, x):
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

    def _pool(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(_Pool2d):
    """Average pooling of [N, C, H, W] to [N, C, h, w] for ``output_size`` (h, w) (or an int),
    whatever H and W."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def _pool(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
