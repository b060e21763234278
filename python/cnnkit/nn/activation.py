"""Activation layers: ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Maxout."""

from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Maxout"]


class ReLU(Module):
    """max(0, x), element-wise, any shape. ``inplace`` is accepted for PyTorch compatibility
    (results are new arrays).

    ``fused`` (set by :func:`cnnkit.nn.utils.fuse_batch_norm_relu`, shown in the repr): the
    batch norm before this ReLU already applies it, so the input passes through unchanged.
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        self.fused = False

    def forward(self, x):
        if self.fused:
            return x
        return F.relu(x)  # (which calls the core directly at inference)

    def extra_repr(self):
        parts = ["inplace=True"] if self.inplace else []
        if self.fused:
            parts.append("fused=True")
        return ", ".join(parts)


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise; element-wise, any shape."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise; element-wise, any shape."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x)), element-wise, any shape."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent, element-wise, any shape."""

    def forward(self, x):
        return F.tanh(x)


class Maxout(Module):
    """[N, C, ...] -> [N, C // pieces, ...]: the max over each group of ``pieces`` consecutive
    channels (Goodfellow et al., 2013)."""

    def __init__(self, pieces: int):
        super().__init__()
        if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
            raise ValueError(f"Maxout: pieces must be a positive int, got {pieces!r}")
        self.pieces = pieces

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] % self.pieces:
            raise ValueError(
                f"{self!r}: expected an input whose channel count (dim 1) is divisible by "
                f"{self.pieces}, got {list(x.shape)}"
            )
        return F.maxout(x, self.pieces)

    def extra_repr(self):
        return f"pieces={self.pieces}"
