"""Normalisation layers: BatchNorm1d, BatchNorm2d, LocalResponseNorm."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional import _real, _size
from ..tensor import Tensor
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LocalResponseNorm"]


class _BatchNorm(Module):
    """PyTorch's batch norm: parameters ``weight`` (1) and ``bias`` (0, absent with
    ``bias=False``); buffers
    ``running_mean`` (0), ``running_var`` (1) and ``num_batches_tracked`` (int64, 0-d).

    Training mode normalises with the batch statistics and moves the running statistics by
    ``momentum`` (``momentum=None``: cumulative average over the batches seen); eval mode
    normalises with the running statistics.
    """

    _ranks: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        num_features = _size(num_features, "num_features", name, 1)
        eps = _real(eps, "eps", name)
        momentum = None if momentum is None else _real(momentum, "momentum", name)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x, relu=False):
        """``relu=True``: return relu(batch_norm(x)) from one fused pass (nn.Sequential uses it
        for a batch norm followed by a ReLU)."""
        if x.ndim not in self._ranks:
            shapes = " or ".join(["[N, C]", "[N, C, L]", "[N, C, H, W]"][r - 2] for r in self._ranks)
            raise ValueError(f"{self!r}: expected input {shapes}, got {list(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: expected input with {self.num_features} channels, got {list(x.shape)}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps, relu=relu,
        )

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over [N, C] or [N, C, L] (statistics per channel C)."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over [N, C, H, W] (statistics per channel C, over N, H and W)."""

    _ranks = (4,)


class LocalResponseNorm(Module):
    """Normalisation across ``size`` neighbouring channels (AlexNet's LRN, PyTorch semantics)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        op = "LocalResponseNorm"
        size = _size(size, "size", op, 1)
        alpha, beta, k = _real(alpha, "alpha", op), _real(beta, "beta", op), _real(k, "k", op)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected input [N, C, ...] of rank >= 3, "
                             f"got {list(x.shape)}")
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
