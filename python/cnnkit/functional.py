"""The network operations as functions on tensors: ``import cnnkit.functional as F``.

Each wrapper checks its arguments' types (a TypeError names the op and the argument), turns
sizes into the core's form (``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int
or an ``(h, w)`` pair, as in PyTorch) and applies the op's Function from :mod:`cnnkit.ops`,
whose forward and backward call the C++ core. Shapes are validated once, by the core
(ValueError naming the op, the argument, the expected and the actual shape). There is no numpy
fallback: an op either runs the C++ kernels or fails loudly.
"""

from __future__ import annotations

import numpy as np

from . import _core
from . import random as _random
from ._args import as_dim, as_int, as_pair, as_real, as_size
from .autograd.function import untracked
from .ops.activation import (
    ELUFunction,
    LeakyReLUFunction,
    MaxoutFunction,
    ReLUFunction,
    SigmoidFunction,
    TanhFunction,
)
from .ops.conv import Conv2dFunction, LocalConv2dFunction, TiledConv2dFunction
from .ops.dropout import DropoutFunction
from .ops.linear import LinearFunction
from .ops.loss import (
    CrossEntropyFunction,
    LogSoftmaxFunction,
    MSEFunction,
    MultiMarginFunction,
    SoftmaxFunction,
    check_label_smoothing,
)
from .ops.norm import (
    BatchNormEvalFunction,
    BatchNormTrainFunction,
    GroupNormFunction,
    LayerNormFunction,
    LocalResponseNormFunction,
)
from .ops.pool import AdaptiveAvgPool2dFunction, AvgPool2dFunction, MaxPool2dFunction
from .tensor import Tensor

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
    "group_norm",
    "layer_norm",
    "dropout",
    "linear",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "multi_margin_loss",
    "mse_loss",
]


# --------------------------------------------------------------------------- argument types
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
        stride=as_pair(stride, "stride", op), padding=as_pair(padding, "padding", op),
        dilation=as_pair(dilation, "dilation", op), groups=as_int(groups, "groups", op),
    )


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
                                     stride=as_pair(stride, "stride", op),
                                     padding=as_pair(padding, "padding", op))


def tiled_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Tiled convolution: Th x Tw filter banks used in turn; output (i, j) uses bank
    (i % Th, j % Tw).

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
                                     stride=as_pair(stride, "stride", op),
                                     padding=as_pair(padding, "padding", op))


# --------------------------------------------------------------------------- pooling
def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling over [N, C, H, W]; ``stride`` defaults to ``kernel_size``."""
    op = "max_pool2d"
    kernel = as_pair(kernel_size, "kernel_size", op)
    return MaxPool2dFunction.apply(
        _tensor(x, op), kernel=kernel,
        stride=kernel if stride is None else as_pair(stride, "stride", op),
        padding=as_pair(padding, "padding", op), ceil_mode=bool(ceil_mode),
    )


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling over [N, C, H, W]; ``stride`` defaults to ``kernel_size``."""
    op = "avg_pool2d"
    kernel = as_pair(kernel_size, "kernel_size", op)
    return AvgPool2dFunction.apply(
        _tensor(x, op), kernel=kernel,
        stride=kernel if stride is None else as_pair(stride, "stride", op),
        padding=as_pair(padding, "padding", op), ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
    )


def adaptive_avg_pool2d(x, output_size):
    """Average pooling of [N, C, H, W] to [N, C, h, w], ``output_size`` an int or (h, w)
    (None keeps that input size)."""
    op = "adaptive_avg_pool2d"
    x = _tensor(x, op)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    return AdaptiveAvgPool2dFunction.apply(x, output_hw=as_pair(output_size, "output_size", op))


# --------------------------------------------------------------------------- activations
def relu(x):
    """max(0, x), element-wise; any shape, returned unchanged."""
    if isinstance(x, Tensor) and x.data.dtype == np.float32 and untracked():
        return Tensor._wrap(_core.relu_forward(x.data))  # inference: the core directly
    return ReLUFunction.apply(_tensor(x, "relu"))


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, ``negative_slope`` * x otherwise; element-wise, any shape."""
    op = "leaky_relu"
    return LeakyReLUFunction.apply(_tensor(x, op),
                                   slope=as_real(negative_slope, "negative_slope", op))


def elu(x, alpha=1.0):
    """x for x > 0, ``alpha`` * (exp(x) - 1) otherwise; element-wise, any shape."""
    return ELUFunction.apply(_tensor(x, "elu"), alpha=as_real(alpha, "alpha", "elu"))


def sigmoid(x):
    """1 / (1 + exp(-x)), element-wise; any shape."""
    return SigmoidFunction.apply(_tensor(x, "sigmoid"))


def tanh(x):
    """Hyperbolic tangent, element-wise; any shape."""
    return TanhFunction.apply(_tensor(x, "tanh"))


def maxout(x, pieces):
    """Maxout: [N, C, ...] -> [N, C // pieces, ...], the max over consecutive channel groups."""
    return MaxoutFunction.apply(_tensor(x, "maxout"), pieces=as_int(pieces, "pieces", "maxout"))


# --------------------------------------------------------------------------- normalisation
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, relu=False):
    """Batch normalisation over the channel axis 1 of [N, C], [N, C, L] or [N, C, H, W].

    With ``training=True`` the batch's mean and (biased) variance normalise ``x`` and the
    running statistics (if given) move by ``momentum`` towards the batch's mean and unbiased
    variance, in place. Otherwise the running statistics normalise ``x``.
    ``relu=True`` returns ``relu(batch_norm(x))``, in training from one pass over memory
    (forward and backward) with the same values as the two ops; :func:`cnnkit.nn.utils.
    fuse_batch_norm_relu` marks a batch norm followed by a ReLU to run so.
    """
    op = "batch_norm"
    x = _tensor(x, op)
    rm = _core_inplace(running_mean, op, "running_mean")
    rv = _core_inplace(running_var, op, "running_var")
    weight = _check_array(weight, op, "weight", True)
    bias = _check_array(bias, op, "bias", True)
    momentum, eps = as_real(momentum, "momentum", op), as_real(eps, "eps", op)
    if not isinstance(relu, bool):
        raise TypeError(f"batch_norm: relu must be a bool, got {type(relu).__name__}")
    if training:
        # the fused kernel works on planes: without a spatial axis, the two ops
        fused = relu and x.ndim > 2
        y = BatchNormTrainFunction.apply(x, weight, bias, running_mean=rm, running_var=rv,
                                         momentum=momentum, eps=eps, relu=fused)
        return ReLUFunction.apply(y) if relu and not fused else y
    y = BatchNormEvalFunction.apply(x, weight, bias, running_mean=rm, running_var=rv, eps=eps)
    return ReLUFunction.apply(y) if relu else y


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across the channels of [N, C, ...] (PyTorch semantics).

    y = x / (k + alpha / size * sum of x^2 over ``size`` neighbouring channels) ** beta
    """
    op = "local_response_norm"
    return LocalResponseNormFunction.apply(_tensor(x, op), size=as_int(size, "size", op),
                                           alpha=as_real(alpha, "alpha", op),
                                           beta=as_real(beta, "beta", op), k=as_real(k, "k", op))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation of x [N, C, ...] (PyTorch semantics).

    The C channels form ``num_groups`` groups of C / num_groups consecutive channels; each
    sample's group is normalised by its own mean and biased variance, then scaled and shifted
    per channel by ``weight`` and ``bias`` [C] (None: 1 and 0).
    """
    op = "group_norm"
    x = _tensor(x, op)
    num_groups = as_int(num_groups, "num_groups", op)
    weight = _check_array(weight, op, "weight", True)
    bias = _check_array(bias, op, "bias", True)
    eps = as_real(eps, "eps", op)
    if x.ndim < 2:
        raise ValueError(f"group_norm: x must be [N, C, *] (at least 2-D), got shape "
                         f"{list(x.shape)}")
    if num_groups < 1 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: num_groups must be >= 1 and divide the number of channels "
                         f"{x.shape[1]} (x.shape[1]), got num_groups = {num_groups}")
    return GroupNormFunction.apply(x, weight, bias, num_groups=num_groups, eps=eps)


def _normalized_shape(value, op: str) -> tuple:
    """layer_norm's normalized_shape: an int or a non-empty sequence of ints >= 0, as a tuple."""
    dims = (value,) if isinstance(value, (int, np.integer)) else value
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"{op}: normalized_shape must be an int or a sequence of ints, got "
                        f"{value!r}")
    if not dims:
        raise ValueError(f"{op}: normalized_shape must have at least one dimension, got "
                         f"{value!r}")
    return tuple(as_size(d, "normalized_shape", op, 0) for d in dims)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the trailing dims ``normalized_shape`` of x (PyTorch semantics).

    Each row of prod(normalized_shape) values is normalised by its own mean and biased
    variance, then scaled and shifted element-wise by ``weight`` and ``bias`` (shape
    ``normalized_shape``; None: 1 and 0).
    """
    op = "layer_norm"
    x = _tensor(x, op)
    shape = _normalized_shape(normalized_shape, op)
    weight = _check_array(weight, op, "weight", True)
    bias = _check_array(bias, op, "bias", True)
    eps = as_real(eps, "eps", op)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: x must end with normalized_shape {list(shape)}, got x of "
                         f"shape {list(x.shape)}")
    return LayerNormFunction.apply(x, weight, bias, normalized_shape=shape, eps=eps)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) (training);
    any shape.

    The kernel's seed comes from the global generator, so ``cnnkit.manual_seed`` makes the
    masks reproducible. Outside training (or with p = 0) ``x`` is returned unchanged.
    """
    x = _tensor(x, "dropout")
    p = as_real(p, "p", "dropout")
    if not 0.0 <= p <= 1.0:  # checked here: p selects the shortcuts below
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return DropoutFunction.apply(x, p=float(p), seed=_random.next_seed())


# --------------------------------------------------------------------------- linear
def linear(x, weight, bias=None):
    """y = x W^T + b for x [*, in], weight [out, in], bias [out] -> y [*, out]."""
    op = "linear"
    x = _tensor(x, op)
    if x.ndim < 1:  # checked here: the rows [*] are flattened before the core sees x
        raise ValueError("linear: x must have at least one dimension [*, in], got shape []")
    return LinearFunction.apply(x, _check_array(weight, op, "weight"),
                                _check_array(bias, op, "bias", True))


# --------------------------------------------------------------------------- softmax, losses
def softmax(x, dim=1):
    """exp(x) / sum(exp(x)) along ``dim`` (logits [N, C] -> probabilities [N, C])."""
    x = _tensor(x, "softmax")
    return SoftmaxFunction.apply(x, dim=as_dim(dim, x.shape, "softmax"))


def log_softmax(x, dim=1):
    """log(softmax(x)) along ``dim``, computed stably; same shape as ``x``."""
    x = _tensor(x, "log_softmax")
    return LogSoftmaxFunction.apply(x, dim=as_dim(dim, x.shape, "log_softmax"))


def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean over the batch of -log softmax(logits)[target]; logits [N, C], target int64 [N].

    ``label_smoothing`` e in [0, 1] (PyTorch's): the target becomes (1 - e) onehot + e / C,
    so each row's loss is (1 - e) (-log p[target]) + e mean_k(-log p[k]).
    """
    op = "cross_entropy"
    return CrossEntropyFunction.apply(_tensor(logits, op, "logits"), _labels(target, op),
                                      label_smoothing=check_label_smoothing(label_smoothing, op))


def multi_margin_loss(logits, target, margin=1.0):
    """Multi-class hinge (SVM) loss: mean over N of sum_{j != y} max(0, margin - x_y + x_j) / C.

    ``logits`` [N, C], ``target`` int64 [N]; returns a scalar Tensor.
    """
    op = "multi_margin_loss"
    return MultiMarginFunction.apply(_tensor(logits, op, "logits"), _labels(target, op),
                                     margin=as_real(margin, "margin", op))


def mse_loss(x, y):
    """Mean of (x - y)^2 over all elements; x and y of the same shape; a scalar Tensor."""
    x = _tensor(x, "mse_loss")
    return MSEFunction.apply(x, _check_array(y, "mse_loss", "y"))
