"""Convolution layers: Conv2d, LocallyConnected2d (unshared weights), TiledConv2d."""

from __future__ import annotations

import math

import numpy as np

from .. import _core, amp
from .. import functional as F
from .._args import as_int, as_pair, as_size
from ..autograd.function import untracked
from ..autograd.grad_mode import is_grad_enabled
from ..ops.conv import Conv2dFunction, conv2d_array
from ..shapes import conv_output_size
from ..tensor import Tensor
from . import init
from .module import Module, Parameter, input_error

__all__ = ["Conv2d", "LocallyConnected2d", "TiledConv2d"]


def _short(v):
    """(3, 3) -> 3 for messages, as the user most likely wrote it."""
    return v[0] if v[0] == v[1] else v


class _ConvBase(Module):
    """What the three convolutions share: NCHW input checks that name the layer."""

    def _signature(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}"]
        parts += self._signature_extra()
        parts.append(f"kernel_size={_short(self.kernel_size)}")
        if self.stride != (1, 1):
            parts.append(f"stride={_short(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={_short(self.padding)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _signature_extra(self):
        return []

    def _check_input(self, x):
        """The layer's interface: a 4-D input with in_channels channels (the op checks the
        rest: sizes, padding, the output's size)."""
        if x.ndim != 4:
            raise ValueError(
                f"{self._signature()}: expected a 4-D input [N, {self.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._signature()}: expected input with {self.in_channels} channels, "
                f"got {list(x.shape)}"
            )

    def _init_uniform(self, fan_in: int):
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias alike."""
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)


class Conv2d(_ConvBase):
    """2-D convolution over [N, C, H, W].

    weight: [out_channels, in_channels / groups, kh, kw], bias: [out_channels]; initialised as
    PyTorch does (``kaiming_uniform_`` with a = sqrt(5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    """

    _transient = ("_weight_cache",)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        op = "Conv2d"
        in_channels = as_size(in_channels, "in_channels", op, 1)
        out_channels = as_size(out_channels, "out_channels", op, 1)
        groups = as_int(groups, "groups", op)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = as_pair(kernel_size, "kernel_size", op)
        self.stride = as_pair(stride, "stride", op)
        self.padding = as_pair(padding, "padding", op)
        self.dilation = as_pair(dilation, "dilation", op)
        self.groups = int(groups)
        self.fused_relu = False  # set by nn.utils.fuse: the ReLU after it runs in the GEMM epilogue
        # set by nn.utils.fuse: (kernel, stride, padding, ceil_mode) of the MaxPool2d after it,
        # pooled in the epilogue where no gradient is needed (else run as its own op)
        self.fused_pool = None
        # set by nn.utils.fuse: keep what the fp32 algorithms derive from the weights
        # (Winograd's transformed filters) across inference calls (eval mode, no gradient),
        # valid while the weight array and amp.weights_version() stay the same
        self.inference_cache = False
        self._weight_cache = None  # (weight array, version, _core.ConvWeightCache)
        self.weight = Parameter(np.empty(
            (out_channels, in_channels // groups) + self.kernel_size, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _signature_extra(self):
        return []

    def forward(self, x):
        self._check_input(x)
        try:
            if untracked() and isinstance(x, Tensor):
                # inference: the core directly (no graph to build, no Function object); the
                # registry read directly (a batch-1 call is ~30 us, its Python part ~5)
                params = self._parameters
                w, b = params["weight"].data, params["bias"]
                return Tensor._wrap(conv2d_array(
                    x.data, w, None if b is None else b.data, self.stride, self.padding,
                    self.dilation, self.groups, self.fused_relu, self.fused_pool,
                    self._cache(w) if self.inference_cache and not self.training else None))
            pool = self.fused_pool
            if pool is not None and is_grad_enabled() and any(
                    isinstance(t, Tensor) and t.requires_grad for t in (x, self.weight, self.bias)):
                # a gradient will flow: the pooling runs as its own op (it keeps the argmax)
                y = self._conv(x, None)
                return F.max_pool2d(y, pool[0], pool[1], pool[2], pool[3])
            return self._conv(x, pool)
        except ValueError as e:
            raise input_error(self._signature(), x, e) from None

    def _cache(self, w=None):
        """The weight cache for this call (fused inference models only), else None. ``w``: the
        weight array, when the caller already knows this is such a call."""
        if w is None:
            if not self.inference_cache or self.training or is_grad_enabled():
                return None
            w = self.weight.data
        version = amp.weights_version()
        held = self._weight_cache
        if held is None or held[0] is not w or held[1] != version:
            held = (w, version, _core.ConvWeightCache())
            self._weight_cache = held
        return held[2]

    def _conv(self, x, pool):
        cache = self._cache()
        if self.fused_relu or pool is not None or cache is not None:
            return Conv2dFunction.apply(x, self.weight, self.bias, stride=self.stride,
                                        padding=self.padding, dilation=self.dilation,
                                        groups=self.groups, relu=self.fused_relu, pool=pool,
                                        cache=cache)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.fused_relu:
            s += ", relu=True"
        if self.fused_pool is not None:
            k, st, pad, ceil = self.fused_pool
            s += f", max_pool=(kernel_size={k}, stride={st}, padding={pad}, ceil_mode={ceil})"
        return s


class LocallyConnected2d(_ConvBase):
    """Convolution without weight sharing: a different filter bank at each output position.

    weight: [Ho, Wo, out_channels, in_channels, kh, kw], bias: [out_channels, Ho, Wo], where
    (Ho, Wo) is the output size for ``input_size`` (the layer accepts only that input size).
    """

    def __init__(self, in_channels, out_channels, input_size, kernel_size, stride=1, padding=0,
                 bias=True):
        super().__init__()
        op = "LocallyConnected2d"
        self.in_channels = in_channels = as_size(in_channels, "in_channels", op, 1)
        self.out_channels = out_channels = as_size(out_channels, "out_channels", op, 1)
        self.input_size = as_pair(input_size, "input_size", op)
        self.kernel_size = as_pair(kernel_size, "kernel_size", op)
        self.stride = as_pair(stride, "stride", op)
        self.padding = as_pair(padding, "padding", op)
        self.output_size = conv_output_size(self.input_size, self.kernel_size, self.stride,
                                            self.padding)
        ho, wo = self.output_size
        self.weight = Parameter(np.empty((ho, wo, out_channels, in_channels) + self.kernel_size,
                                         dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty((out_channels, ho, wo), dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # each output unit sees in_channels * kh * kw inputs, as in a convolution
        self._init_uniform(self.in_channels * self.kernel_size[0] * self.kernel_size[1])

    def _signature_extra(self):
        return [f"input_size={_short(self.input_size)}"]

    def forward(self, x):
        self._check_input(x)
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"{self._signature()}: expected input of spatial size {list(self.input_size)}, "
                f"got {list(x.shape)}"
            )
        try:
            return F.local_conv2d(x, self.weight, self.bias, self.stride, self.padding)
        except ValueError as e:
            raise input_error(self._signature(), x, e) from None

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
             f"kernel_size={self.kernel_size}, stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class TiledConv2d(_ConvBase):
    """Tiled convolution: ``tile_size`` = (Th, Tw) filter banks; output position (i, j) uses bank
    (i % Th, j % Tw). Tile size 1 is an ordinary convolution.

    weight: [Th, Tw, out_channels, in_channels, kh, kw], bias: [out_channels].
    """

    def __init__(self, in_channels, out_channels, kernel_size, tile_size, stride=1, padding=0,
                 bias=True):
        super().__init__()
        op = "TiledConv2d"
        self.in_channels = in_channels = as_size(in_channels, "in_channels", op, 1)
        self.out_channels = out_channels = as_size(out_channels, "out_channels", op, 1)
        self.kernel_size = as_pair(kernel_size, "kernel_size", op)
        self.tile_size = as_pair(tile_size, "tile_size", op)
        self.stride = as_pair(stride, "stride", op)
        self.padding = as_pair(padding, "padding", op)
        self.weight = Parameter(np.empty(self.tile_size + (out_channels, in_channels)
                                         + self.kernel_size, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        self._init_uniform(self.in_channels * self.kernel_size[0] * self.kernel_size[1])

    def _signature_extra(self):
        return [f"tile_size={_short(self.tile_size)}"]

    def forward(self, x):
        self._check_input(x)
        try:
            return F.tiled_conv2d(x, self.weight, self.bias, self.stride, self.padding)
        except ValueError as e:
            raise input_error(self._signature(), x, e) from None

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"tile_size={self.tile_size}, stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s
