"""Fully connected layer."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._args import as_size
from ..autograd.function import untracked
from ..ops.linear import linear_array
from ..tensor import Tensor
from . import init
from .module import Module, Parameter

__all__ = ["Linear"]


class Linear(Module):
    """y = x W^T + b; weight [out_features, in_features], bias [out_features].

    Initialised as PyTorch does: kaiming_uniform_(a = sqrt(5)) and bias U(+-1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features = as_size(in_features, "in_features", "Linear")
        self.out_features = out_features = as_size(out_features, "out_features", "Linear")
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input with {self.in_features} features in the last "
                f"dimension, got {list(x.shape)}"
            )
        if untracked() and isinstance(x, Tensor):  # inference: the core directly
            params = self._parameters
            b = params["bias"]
            return Tensor._wrap(linear_array(x.data, params["weight"].data,
                                             None if b is None else b.data))
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
