"""Weight initialisation, with PyTorch's names and formulas (``torch.nn.init``).

Every function fills a Tensor (or numpy array) in place and returns it, drawing from the
global generator (``cnnkit.manual_seed``) unless a ``generator`` is given.

Fans follow PyTorch: for a weight ``[out, in, *kernel]``, ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)``. He (kaiming) initialisation keeps the variance of activations
constant through ReLU layers: std = gain / sqrt(fan) with gain = sqrt(2) for ReLU.
"""

from __future__ import annotations

import math

import numpy as np

from .. import amp
from .. import random as _random
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "zeros_",
    "ones_",
    "constant_",
    "uniform_",
    "normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
]


def _array(tensor) -> np.ndarray:
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"init: expected a Tensor or numpy array, got {type(tensor).__name__}")
    return arr


def _fill(tensor, values):
    arr = _array(tensor)
    arr[...] = np.asarray(values, dtype=arr.dtype)
    amp.weights_changed()  # caches of derived weights are stale
    return tensor


def _rng(generator):
    return generator if generator is not None else _random.generator()


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2))
    (slope ``param``, default 0.01); selu: 3/4.
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
            f"(shape {list(shape)})"
        )
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def zeros_(tensor):
    """Fill with 0."""
    return _fill(tensor, 0)


def ones_(tensor):
    """Fill with 1."""
    return _fill(tensor, 1)


def constant_(tensor, val: float):
    """Fill with ``val``."""
    return _fill(tensor, val)


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with samples of U(a, b)."""
    return _fill(tensor, _rng(generator).uniform(a, b, size=_array(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    return _fill(tensor, _rng(generator).normal(mean, std, size=_array(tensor).shape))


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None):
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan).

    ``a`` is the negative slope for leaky_relu (PyTorch's default layers use a = sqrt(5), which
    gives bound = 1 / sqrt(fan_in)).
    """
    if _array(tensor).size == 0:  # PyTorch: initialising a zero-element tensor is a no-op
        return tensor
    if _array(tensor).size == 0:  # PyTorch: initialising a zero-element tensor is a no-op
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    bound = math.sqrt(3.0) * gain / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None):
    """He normal: N(0, std^2), std = gain / sqrt(fan) (sqrt(2 / fan) for ReLU)."""
    if _array(tensor).size == 0:
        return tensor
    if _array(tensor).size == 0:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    if _array(tensor).size == 0:
        return tensor
    if _array(tensor).size == 0:
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    if _array(tensor).size == 0:
        return tensor
    if _array(tensor).size == 0:
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)
