"""Convolution Functions over the C++ core (cpp/src/conv/): Conv2d, locally connected, tiled.

    y = conv(x, W) + b (cross-correlation; optionally ReLU in the GEMM epilogue)
    dx = conv_transpose(dy, W),  dW = sum over images and pixels of dy (x) patches,
    db = sum of dy over images and pixels
(the maths and the algorithms are at the top of cpp/src/conv/conv2d.cpp). Locally connected
and tiled convolutions do the same with unshared filters (cpp/src/conv/tiled_conv2d.cpp).
"""

from __future__ import annotations

import numpy as np

from .. import _core, amp
from .._args import as_f32, as_opt_f32
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled

__all__ = ["Conv2dFunction", "LocalConv2dFunction", "TiledConv2dFunction", "conv2d_array"]


def conv2d_array(x, weight, bias, stride, padding, dilation, groups, relu=False, pool=None,
                 cache=None):
    """The forward convolution on arrays, in the precision autocast asks for (no graph): what
    Conv2dFunction computes, and what a layer calls directly when nothing is recorded. bf16
    inference packs W once per autocast block (for the bf16 GEMM engine); ``cache`` keeps what
    an fp32-computing algorithm derives from W (Winograd's filters, from the rounded W in
    bf16) in either precision."""
    x, weight = as_f32(x), as_f32(weight)
    precision = amp.precision()
    packed = None
    if precision == "bf16":
        if groups == 1 and not is_grad_enabled():  # inference
            packed = amp.packed_weight("conv2d", weight, _core.conv2d_pack_bf16)
    return _core.conv2d_forward(x, weight, as_opt_f32(bias), stride, padding, dilation, groups,
                                relu, precision, packed, pool, cache)


class Conv2dFunction(Function):
    """y = conv(x, W) + b, optionally followed by ReLU in the GEMM epilogue (``relu=True``) and,
    for inference only (no gradient), by a max pooling of the output planes (``pool`` =
    (kernel, stride, padding, ceil_mode)) done while they are in cache. ``cache`` (a
    ``_core.ConvWeightCache``, inference only) keeps what the algorithm derives from W
    (Winograd's transformed filters) for the next call; the caller drops it when W changes."""

    def forward(self, x, weight, bias, stride, padding, dilation, groups, relu=False, pool=None,
                cache=None):
        self.x, self.weight = as_f32(x), as_f32(weight)
        self.args = (stride, padding, dilation, groups)
        self.relu = relu
        self.precision = amp.precision()
        if pool is not None and any(self.needs_input_grad):
            raise ValueError("conv2d: a fused max pooling is for inference (no gradient); "
                             "run conv2d and max_pool2d to train")
        y = conv2d_array(self.x, self.weight, bias, stride, padding, dilation, groups, relu, pool,
                         None if any(self.needs_input_grad) else cache)
        if relu:
            self.y = y
        return y

    def backward(self, g):
        g = as_f32(g)
        if self.relu:
            g = _core.relu_backward(g, self.y)
        need_x, need_w, need_b = self.needs_input_grad
        dx = dw = db = None
        if need_x:
            dx = _core.conv2d_backward_data(g, self.weight, self.x.shape[2:], *self.args,
                                            self.precision)
        if need_w or need_b:
            dw, db = _core.conv2d_backward_weights(g, self.x, self.weight.shape[2:], *self.args,
                                                   need_b, self.precision)
        return dx, (dw if need_w else None), (db if need_b else None)


class _UnsharedConvFunction(Function):
    """Shared forward/backward wiring of locally connected and tiled convolution."""

    kind = ""

    # Under autocast the operands are rounded to bf16 here (copies) and the float32 kernels
    # compute with them: the products are exact in float32, so that is the bf16 semantics.
    def forward(self, x, weight, bias, stride, padding):
        self.x, self.weight, self.args = as_f32(x), as_f32(weight), (stride, padding)
        self.bf16 = amp.is_autocast_enabled()
        if self.bf16:
            self.x, self.weight = _core.round_bf16(self.x), _core.round_bf16(self.weight)
        return getattr(_core, f"{self.kind}_forward")(self.x, self.weight, as_opt_f32(bias),
                                                      stride, padding)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = as_f32(g)
        db = None
        if self.bf16:
            # the bias gradient is no product: it sums dY unrounded (locally connected: one
            # bias per output position, [K, Ho, Wo]; tiled: one per filter, [K])
            if need_b:
                axes = (0,) if self.kind == "local_conv2d" else (0, 2, 3)
                db = g.sum(axis=axes, dtype=np.float64).astype(np.float32)
            g = _core.round_bf16(g)
        dx, dw, db_core = getattr(_core, f"{self.kind}_backward")(
            g, self.x, self.weight, *self.args, need_x, need_b and not self.bf16
        )
        if not self.bf16:
            db = db_core
        return (dx if need_x else None), (dw if need_w else None), (db if need_b else None)


class LocalConv2dFunction(_UnsharedConvFunction):
    kind = "local_conv2d"


class TiledConv2dFunction(_UnsharedConvFunction):
    kind = "tiled_conv2d"
