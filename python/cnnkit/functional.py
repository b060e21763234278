"""Differentiable network operations: ``cnnkit.functional`` (``import cnnkit.functional as F``).

Each operation is a :class:`~cnnkit.tensor.Function` whose ``forward`` calls the C++ forward
kernel in ``cnnkit._core`` and keeps what the backward kernels need (inputs, outputs, pooling
indices, batch-norm statistics, dropout masks); its ``backward`` calls the C++ backward kernels
(the contract is ``cpp/bindings/API.md``). The core functions are looked up when an operation
runs, so this module imports even in a build that lacks some of them; calling such an operation
raises the AttributeError that names the missing ``_core`` function. There is deliberately no
numpy fallback: an op either runs the C++ kernels or fails loudly.

Arrays are handed to the core as C-contiguous float32 (converted explicitly here, since the core
refuses silent conversions). Sizes follow PyTorch: ``kernel_size``, ``stride``, ``padding`` and
``dilation`` are an int or an ``(h, w)`` pair.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core
from . import random as _random
from .tensor import Function, Tensor

__all__ = [
    "conv2d",
    "local_conv2d",
    "tiled_conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "relu",
    "leaky_relu",
    "elu",
    "sigmoid",
    "tanh",
    "maxout",
    "batch_norm",
    "local_response_norm",
    "dropout",
    "linear",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "multi_margin_loss",
    "mse_loss",
]


# --------------------------------------------------------------------------- helpers
def _f32(a) -> np.ndarray:
    # np.asarray(order="C"), not np.ascontiguousarray, which turns 0-d arrays into 1-d
    return np.asarray(a, dtype=np.float32, order="C")


def _opt_f32(a):
    return None if a is None else _f32(a)


def _labels(target, op: str) -> np.ndarray:
    """Class indices as C-contiguous int64; floats, bools and non-arrays raise TypeError (a
    silent float -> int cast would train on the wrong classes)."""
    if isinstance(target, Tensor):
        target = target.data
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{op}: target must be a cnnkit.Tensor or numpy array of class indices, "
                        f"got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {target.dtype}")
    if target.dtype.kind == "u" and target.size and target.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: target label {target.max()} does not fit in int64")
    return np.asarray(target, dtype=np.int64, order="C")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _in_int64(v: int, name: str, op: str) -> int:
    v = int(v)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"{op}: {name} must fit in 64 bits, got {v}")
    return v


def _pair(value, name: str, op: str) -> tuple:
    """An int or an (h, w) pair of ints, as a tuple of two Python ints (64-bit)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        v = _in_int64(value, name, op)
        return (v, v)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        return (_in_int64(value[0], name, op), _in_int64(value[1], name, op))
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _int(value, name: str, op: str) -> int:
    """A Python int (not a bool, not a float) that fits in 64 bits."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return _in_int64(value, name, op)


def _size(value, name: str, op: str, minimum: int = 0) -> int:
    """A layer size (channels, features): an int >= ``minimum``."""
    v = _int(value, name, op)
    if v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    return v


def _real(value, name: str, op: str) -> float:
    """A Python float from a real number (int, float, numpy scalar; not bool, str or None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


# dtypes an op converts to float32 itself: booleans, integers and floats (not complex, strings
# or objects, whose conversion would drop data or fail with a message that names nothing)
_NUMERIC_KINDS = "biuf"


def _check_array(a, op: str, name: str, optional: bool = False):
    """A Tensor or numpy array of a numeric dtype (None too where ``optional``); TypeError
    naming the op and the argument otherwise. Returns it unchanged."""
    if a is None and optional:
        return None
    if isinstance(a, (Tensor, np.ndarray)):
        if a.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"{op}: {name} must have a real numeric dtype (float32 preferred), "
                            f"got {a.dtype}")
        return a
    raise TypeError(f"{op}: {name} must be a cnnkit.Tensor or numpy array"
                    + (" or None" if optional else "") + f", got {type(a).__name__}")


def _tensor(x, op: str, name: str = "x") -> Tensor:
    _check_array(x, op, name)
    return x if isinstance(x, Tensor) else Tensor(x)


def _core_inplace(buf, op: str, name: str):
    """A running-statistics buffer the core updates in place: it must be the real array."""
    if buf is None:
        return None
    arr = buf.data if isinstance(buf, Tensor) else buf
    if not (isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.flags.c_contiguous
            and arr.flags.writeable):
        raise TypeError(
            f"{op}: {name} must be a writable C-contiguous float32 array (it is updated in "
            f"place), got {type(arr).__name__}"
            + (f" of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else "")
        )
    return arr


# --------------------------------------------------------------------------- convolution
class Conv2dFunction(Function):
    """y = conv(x, W) + b, optionally followed by ReLU in the GEMM epilogue (``relu=True``)."""

    def forward(self, x, weight, bias, stride, padding, dilation, groups, relu=False):
        self.x, self.weight = _f32(x), _f32(weight)
        self.args = (stride, padding, dilation, groups)
        self.relu = relu
        y = _core.conv2d_forward(self.x, self.weight, _opt_f32(bias), stride, padding, dilation,
                                 groups, relu)
        if relu:
            self.y = y
        return y

    def backward(self, g):
        g = _f32(g)
        if self.relu:
            g = _core.relu_backward(g, self.y)
        need_x, need_w, need_b = self.needs_input_grad
        dx = dw = db = None
        if need_x:
            dx = _core.conv2d_backward_data(g, self.weight, self.x.shape[2:], *self.args)
        if need_w or need_b:
            dw, db = _core.conv2d_backward_weights(g, self.x, self.weight.shape[2:], *self.args,
                                                   need_b)
        return dx, (dw if need_w else None), (db if need_b else None)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every CNN library).

    Parameters
    ----------
    x : Tensor [N, C, H, W]
    weight : Tensor [K, C / groups, Fh, Fw]
    bias : Tensor [K], optional
    stride, padding, dilation : int or (h, w)
    groups : int

    Returns
    -------
    Tensor [N, K, Ho, Wo], Ho = floor((H + 2P - D(Fh - 1) - 1) / S) + 1
    """
    op = "conv2d"
    return Conv2dFunction.apply(
        _tensor(x, op), _check_array(weight, op, "weight"), _check_array(bias, op, "bias", True),
        stride=_pair(stride, "stride", op), padding=_pair(padding, "padding", op),
        dilation=_pair(dilation, "dilation", op), groups=_int(groups, "groups", op),
    )


class _UnsharedConvFunction(Function):
    """Shared forward/backward wiring of locally connected and tiled convolution."""

    kind = ""

    def forward(self, x, weight, bias, stride, padding):
        self.x, self.weight, self.args = _f32(x), _f32(weight), (stride, padding)
        return getattr(_core, f"{self.kind}_forward")(self.x, self.weight, _opt_f32(bias),
                                                      stride, padding)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        dx, dw, db = getattr(_core, f"{self.kind}_backward")(
            _f32(g), self.x, self.weight, *self.args, need_x, need_b
        )
        return (dx if need_x else None), (dw if need_w else None), (db if need_b else None)


class LocalConv2dFunction(_UnsharedConvFunction):
    kind = "local_conv2d"


class TiledConv2dFunction(_UnsharedConvFunction):
    kind = "tiled_conv2d"


def local_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Locally connected layer: a convolution whose filters differ at every output position.

    Parameters
    ----------
    x : Tensor [N, C, H, W]
    weight : Tensor [Ho, Wo, K, C, Fh, Fw]
    bias : Tensor [K, Ho, Wo], optional

    Returns
    -------
    Tensor [N, K, Ho, Wo]
    """
    op = "local_conv2d"
    return LocalConv2dFunction.apply(_tensor(x, op), _check_array(weight, op, "weight"),
                                     _check_array(bias, op, "bias", True),
                                     stride=_pair(stride, "stride", op),
                                     padding=_pair(padding, "padding", op))


def tiled_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Tiled convolution: Th x Tw filter banks used in turn, output (i, j) uses bank (i % Th, j % Tw).

    Parameters
    ----------
    x : Tensor [N, C, H, W]
    weight : Tensor [Th, Tw, K, C, Fh, Fw]
    bias : Tensor [K], optional

    Returns
    -------
    Tensor [N, K, Ho, Wo]
    """
    op = "tiled_conv2d"
    return TiledConv2dFunction.apply(_tensor(x, op), _check_array(weight, op, "weight"),
                                     _check_array(bias, op, "bias", True),
                                     stride=_pair(stride, "stride", op),
                                     padding=_pair(padding, "padding", op))


# --------------------------------------------------------------------------- pooling
class MaxPool2dFunction(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode):
        self.hw = x.shape[2:]
        y, self.indices = _core.max_pool2d_forward(_f32(x), kernel, stride, padding, ceil_mode)
        return y

    def backward(self, g):
        return (_core.max_pool2d_backward(_f32(g), self.indices, self.hw),)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling over [N, C, H, W]; ``stride`` defaults to ``kernel_size``."""
    op = "max_pool2d"
    kernel = _pair(kernel_size, "kernel_size", op)
    return MaxPool2dFunction.apply(
        _tensor(x, op), kernel=kernel,
        stride=kernel if stride is None else _pair(stride, "stride", op),
        padding=_pair(padding, "padding", op), ceil_mode=bool(ceil_mode),
    )


class AvgPool2dFunction(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self.hw = x.shape[2:]
        self.args = (kernel, stride, padding, ceil_mode, count_include_pad)
        return _core.avg_pool2d_forward(_f32(x), *self.args)

    def backward(self, g):
        return (_core.avg_pool2d_backward(_f32(g), self.hw, *self.args),)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling over [N, C, H, W]; ``stride`` defaults to ``kernel_size``."""
    op = "avg_pool2d"
    kernel = _pair(kernel_size, "kernel_size", op)
    return AvgPool2dFunction.apply(
        _tensor(x, op), kernel=kernel,
        stride=kernel if stride is None else _pair(stride, "stride", op),
        padding=_pair(padding, "padding", op), ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
    )


class AdaptiveAvgPool2dFunction(Function):
    def forward(self, x, output_hw):
        self.hw = x.shape[2:]
        return _core.adaptive_avg_pool2d_forward(_f32(x), output_hw)

    def backward(self, g):
        return (_core.adaptive_avg_pool2d_backward(_f32(g), self.hw),)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling of [N, C, H, W] to [N, C, h, w], ``output_size`` an int or (h, w)
    (None keeps that input size)."""
    op = "adaptive_avg_pool2d"
    x = _tensor(x, op)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    return AdaptiveAvgPool2dFunction.apply(x, output_hw=_pair(output_size, "output_size", op))


# --------------------------------------------------------------------------- activations
class ReLUFunction(Function):
    def forward(self, x):
        self.y = _core.relu_forward(_f32(x))
        return self.y

    def backward(self, g):
        return (_core.relu_backward(_f32(g), self.y),)


class LeakyReLUFunction(Function):
    def forward(self, x, slope):
        self.x, self.slope = _f32(x), slope
        return _core.leaky_relu_forward(self.x, slope)

    def backward(self, g):
        return (_core.leaky_relu_backward(_f32(g), self.x, self.slope),)


class ELUFunction(Function):
    def forward(self, x, alpha):
        self.x, self.alpha = _f32(x), alpha
        self.y = _core.elu_forward(self.x, alpha)
        return self.y

    def backward(self, g):
        return (_core.elu_backward(_f32(g), self.x, self.y, self.alpha),)


class SigmoidFunction(Function):
    def forward(self, x):
        self.y = _core.sigmoid_forward(_f32(x))
        return self.y

    def backward(self, g):
        return (_core.sigmoid_backward(_f32(g), self.y),)


class TanhFunction(Function):
    def forward(self, x):
        self.y = _core.tanh_forward(_f32(x))
        return self.y

    def backward(self, g):
        return (_core.tanh_backward(_f32(g), self.y),)


def relu(x):
    """max(0, x), element-wise; any shape, returned unchanged."""
    return ReLUFunction.apply(_tensor(x, "relu"))


_relu = relu  # for functions whose `relu` argument shadows the op


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, ``negative_slope`` * x otherwise; element-wise, any shape."""
    op = "leaky_relu"
    return LeakyReLUFunction.apply(_tensor(x, op),
                                   slope=_real(negative_slope, "negative_slope", op))


def elu(x, alpha=1.0):
    """x for x > 0, ``alpha`` * (exp(x) - 1) otherwise; element-wise, any shape."""
    return ELUFunction.apply(_tensor(x, "elu"), alpha=_real(alpha, "alpha", "elu"))


def sigmoid(x):
    """1 / (1 + exp(-x)), element-wise; any shape."""
    return SigmoidFunction.apply(_tensor(x, "sigmoid"))


def tanh(x):
    """Hyperbolic tangent, element-wise; any shape."""
    return TanhFunction.apply(_tensor(x, "tanh"))


class MaxoutFunction(Function):
    def forward(self, x, pieces):
        self.pieces = pieces
        y, self.argmax = _core.maxout_forward(_f32(x), pieces)
        return y

    def backward(self, g):
        return (_core.maxout_backward(_f32(g), self.argmax, self.pieces),)


def maxout(x, pieces):
    """Maxout: [N, C, ...] -> [N, C // pieces, ...], the max over consecutive channel groups."""
    x = _tensor(x, "maxout")
    pieces = _int(pieces, "pieces", "maxout")
    if pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive int, got {pieces!r}")
    if x.ndim < 2:
        raise ValueError(f"maxout: x must be [N, C, ...] (rank >= 2), got shape {list(x.shape)}")
    if x.shape[1] % pieces:
        raise ValueError(
            f"maxout: the channel count must be divisible by pieces={pieces}, "
            f"got x of shape {list(x.shape)}"
        )
    return MaxoutFunction.apply(x, pieces=int(pieces))


# --------------------------------------------------------------------------- normalisation
def _bn_core_shape(shape):
    # the core takes [N, C] or [N, C, H, W]; [N, C, L] (BatchNorm1d on sequences) is [N, C, L, 1]
    return shape + (1,) if len(shape) == 3 else shape


class BatchNormTrainFunction(Function):
    """Batch statistics; updates the running statistics in place (inside the core)."""

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, relu=False):
        self.shape = x.shape
        self.x = _f32(x).reshape(_bn_core_shape(x.shape))
        self.weight = _opt_f32(weight)
        out = _core.batch_norm_forward_train(
            self.x, self.weight, _opt_f32(bias), running_mean, running_var, momentum, eps, relu
        )
        y, self.save_mean, self.save_invstd = out[:3]
        self.relu_mask = out[3] if relu else None  # which outputs the fused ReLU kept (bits)
        return y.reshape(self.shape)

    def backward(self, g):
        g = _f32(g).reshape(self.x.shape)
        dx, dw, db = _core.batch_norm_backward(g, self.x, self.weight, self.save_mean,
                                               self.save_invstd, self.relu_mask)
        need_x, need_w, need_b = self.needs_input_grad
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))


class BatchNormEvalFunction(Function):
    """Running statistics: y = (x - mean) * invstd * weight + bias, per channel.

    The core has no eval-mode backward (API.md): with fixed statistics the layer is a
    per-channel affine map, whose gradients are the three reductions below.
    """

    def forward(self, x, weight, bias, running_mean, running_var, eps):
        self.shape = x.shape
        self.x = _f32(x).reshape(_bn_core_shape(x.shape))
        self.mean, self.invstd = running_mean, 1.0 / np.sqrt(running_var + np.float32(eps))
        self.weight = _opt_f32(weight)
        y = _core.batch_norm_forward_eval(self.x, self.weight, _opt_f32(bias), running_mean,
                                          running_var, eps)
        return y.reshape(self.shape)

    def backward(self, g):
        g = _f32(g).reshape(self.x.shape)
        bshape = (1, -1) + (1,) * (g.ndim - 2)
        axes = (0,) + tuple(range(2, g.ndim))
        scale = self.invstd if self.weight is None else self.invstd * self.weight
        need_x, need_w, need_b = self.needs_input_grad
        dx = (g * scale.reshape(bshape)).reshape(self.shape) if need_x else None
        dw = db = None
        if need_w:
            xhat = (self.x - self.mean.reshape(bshape)) * self.invstd.reshape(bshape)
            dw = (g * xhat).sum(axis=axes, dtype=np.float64).astype(np.float32)
        if need_b:
            db = g.sum(axis=axes, dtype=np.float64).astype(np.float32)
        return dx, dw, db


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, relu=False):
    """Batch normalisation over the channel axis 1 of [N, C], [N, C, L] or [N, C, H, W].

    With ``training=True`` the batch's mean and (biased) variance normalise ``x`` and the
    running statistics (if given) move by ``momentum`` towards the batch's mean and unbiased
    variance, in place. Otherwise the running statistics normalise ``x``.
    ``relu=True`` returns ``relu(batch_norm(x))`` from one pass over memory (forward and
    backward), the same values as the two ops; ``nn.Sequential`` uses it for a batch norm
    followed by a ReLU.
    """
    op = "batch_norm"
    x = _tensor(x, op)
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected x of rank 2, 3 or 4, got shape {list(x.shape)}")
    rm = _core_inplace(running_mean, op, "running_mean")
    rv = _core_inplace(running_var, op, "running_var")
    weight = _check_array(weight, op, "weight", True)
    bias = _check_array(bias, op, "bias", True)
    momentum, eps = _real(momentum, "momentum", op), _real(eps, "eps", op)
    if not isinstance(relu, bool):
        raise TypeError(f"batch_norm: relu must be a bool, got {type(relu).__name__}")
    if training:
        if relu and x.ndim == 2:  # no spatial axis: the two ops (the fused kernel wants planes)
            return _relu(BatchNormTrainFunction.apply(x, weight, bias, running_mean=rm,
                                                       running_var=rv, momentum=momentum, eps=eps))
        return BatchNormTrainFunction.apply(x, weight, bias, running_mean=rm, running_var=rv,
                                            momentum=momentum, eps=eps, relu=relu)
    if rm is None or rv is None:
        raise ValueError("batch_norm: training=False needs running_mean and running_var")
    y = BatchNormEvalFunction.apply(x, weight, bias, running_mean=rm, running_var=rv, eps=eps)
    return _relu(y) if relu else y


class LocalResponseNormFunction(Function):
    def forward(self, x, size, alpha, beta, k):
        self.x, self.args = _f32(x), (size, alpha, beta, k)
        self.y, self.scale = _core.lrn_forward(self.x, *self.args)
        return self.y

    def backward(self, g):
        return (_core.lrn_backward(_f32(g), self.x, self.y, self.scale, *self.args),)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across the channels of [N, C, ...] (PyTorch semantics).

    y = x / (k + alpha / size * sum of x^2 over ``size`` neighbouring channels) ** beta
    """
    op = "local_response_norm"
    x = _tensor(x, op)
    if x.ndim < 3:
        raise ValueError(f"{op}: x must be [N, C, ...] of rank >= 3, got shape {list(x.shape)}")
    return LocalResponseNormFunction.apply(x, size=_int(size, "size", op),
                                           alpha=_real(alpha, "alpha", op),
                                           beta=_real(beta, "beta", op), k=_real(k, "k", op))


class DropoutFunction(Function):
    def forward(self, x, p, seed):
        self.p = p
        y, self.mask = _core.dropout_forward(_f32(x), p, seed)
        return y

    def backward(self, g):
        return (_core.dropout_backward(_f32(g), self.mask, self.p),)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) (training);
    any shape.

    The kernel's seed comes from the global generator, so ``cnnkit.manual_seed`` makes the
    masks reproducible. Outside training (or with p = 0) ``x`` is returned unchanged.
    """
    x = _tensor(x, "dropout")
    p = _real(p, "p", "dropout")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return DropoutFunction.apply(x, p=float(p), seed=_random.next_seed())


# --------------------------------------------------------------------------- linear
class LinearFunction(Function):
    def forward(self, x, weight, bias):
        self.shape = x.shape
        self.x = _f32(x).reshape(int(np.prod(x.shape[:-1])), x.shape[-1])
        self.weight = _f32(weight)
        y = _core.linear_forward(self.x, self.weight, _opt_f32(bias))
        return y.reshape(self.shape[:-1] + (y.shape[-1],))

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g = _f32(g).reshape(self.x.shape[0], g.shape[-1])
        dx, dw, db = _core.linear_backward(g, self.x, self.weight, need_x)
        return ((dx.reshape(self.shape) if need_x else None), (dw if need_w else None),
                (db if need_b else None))


def linear(x, weight, bias=None):
    """y = x W^T + b for x [*, in], weight [out, in], bias [out] -> y [*, out]."""
    op = "linear"
    x = _tensor(x, op)
    if x.ndim < 1:
        raise ValueError(f"linear: x must have at least one dimension [*, in], got shape []")
    return LinearFunction.apply(x, _check_array(weight, op, "weight"),
                                _check_array(bias, op, "bias", True))


# --------------------------------------------------------------------------- softmax, losses
class _SoftmaxBase(Function):
    kind = ""

    def forward(self, x, dim):
        self.dim = dim % x.ndim
        moved = np.moveaxis(x, self.dim, -1)
        self.moved_shape = moved.shape
        rows = int(np.prod(moved.shape[:-1]))
        y2 = getattr(_core, f"{self.kind}_forward")(_f32(moved.reshape(rows, moved.shape[-1])))
        self.y2 = y2
        return np.moveaxis(y2.reshape(self.moved_shape), -1, self.dim)

    def backward(self, g):
        g2 = _f32(np.moveaxis(g, self.dim, -1).reshape(self.y2.shape))
        dx2 = getattr(_core, f"{self.kind}_backward")(g2, self.y2)
        return (np.moveaxis(dx2.reshape(self.moved_shape), -1, self.dim),)


class SoftmaxFunction(_SoftmaxBase):
    kind = "softmax"


class LogSoftmaxFunction(_SoftmaxBase):
    kind = "log_softmax"


def _dim(x: Tensor, dim, op: str) -> int:
    dim = _int(dim, "dim", op)
    if x.ndim < 1:
        raise ValueError(f"{op}: x must have at least one dimension, got shape []")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{op}: dim {dim} is out of range for x of shape {list(x.shape)} "
                         f"(expected {-x.ndim} <= dim < {x.ndim})")
    return dim


def softmax(x, dim=1):
    """exp(x) / sum(exp(x)) along ``dim`` (logits [N, C] -> probabilities [N, C])."""
    x = _tensor(x, "softmax")
    return SoftmaxFunction.apply(x, dim=_dim(x, dim, "softmax"))


def log_softmax(x, dim=1):
    """log(softmax(x)) along ``dim``, computed stably; same shape as ``x``."""
    x = _tensor(x, "log_softmax")
    return LogSoftmaxFunction.apply(x, dim=_dim(x, dim, "log_softmax"))


def _check_logits(logits: Tensor, target: np.ndarray, op: str):
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected logits of shape [N, C], got {list(logits.shape)}")
    if target.shape != (logits.shape[0],):
        raise ValueError(
            f"{op}: expected target of shape [{logits.shape[0]}] (one class index per row), "
            f"got {list(target.shape)}"
        )


class CrossEntropyFunction(Function):
    def forward(self, logits, target):
        self.target = target
        loss, self.probs = _core.cross_entropy_forward(_f32(logits), target)
        return np.asarray(loss, dtype=np.float32)

    def backward(self, g):
        return _core.cross_entropy_backward(self.probs, self.target, float(g)), None


def cross_entropy(logits, target):
    """Mean over the batch of -log softmax(logits)[target]; logits [N, C], target int64 [N]."""
    logits, target = _tensor(logits, "cross_entropy", "logits"), _labels(target, "cross_entropy")
    _check_logits(logits, target, "cross_entropy")
    return CrossEntropyFunction.apply(logits, target)


class MultiMarginFunction(Function):
    def forward(self, x, target, margin):
        self.x, self.target, self.margin = _f32(x), target, margin
        return np.asarray(_core.multi_margin_loss_forward(self.x, target, margin),
                          dtype=np.float32)

    def backward(self, g):
        return _core.multi_margin_loss_backward(self.x, self.target, self.margin, float(g)), None


def multi_margin_loss(logits, target, margin=1.0):
    """Multi-class hinge (SVM) loss: mean over N of sum_{j != y} max(0, margin - x_y + x_j) / C.

    ``logits`` [N, C], ``target`` int64 [N]; returns a scalar Tensor.
    """
    op = "multi_margin_loss"
    logits, target = _tensor(logits, op, "logits"), _labels(target, op)
    _check_logits(logits, target, op)
    return MultiMarginFunction.apply(logits, target, margin=_real(margin, "margin", op))


class MSEFunction(Function):
    def forward(self, x, y):
        self.x, self.y = _f32(x), _f32(y)
        return np.asarray(_core.mse_loss_forward(self.x, self.y), dtype=np.float32)

    def backward(self, g):
        dx = _core.mse_loss_backward(self.x, self.y, float(g))
        return dx, (-dx if self.needs_input_grad[1] else None)


def mse_loss(x, y):
    """Mean of (x - y)^2 over all elements; x and y of the same shape; a scalar Tensor."""
    x = _tensor(x, "mse_loss")
    _check_array(y, "mse_loss", "y")
    y_shape = y.shape
    if tuple(y_shape) != x.shape:
        raise ValueError(f"mse_loss: x has shape {list(x.shape)} but y has {list(y_shape)}")
    return MSEFunction.apply(x, y)
