"""Dropout."""

from __future__ import annotations

from .. import functional as F
from .._args import as_real
from ..tensor import Tensor
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training mode (scaling the rest by
    1 / (1 - p)); the identity in eval mode. Any shape."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        p = as_real(p, "p", "Dropout")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        if not self.training and isinstance(x, Tensor):
            return x  # eval: the identity (what F.dropout returns, without its checks)
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
