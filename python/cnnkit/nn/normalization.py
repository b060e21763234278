"""Normalisation layers: BatchNorm1d, BatchNorm2d, LocalResponseNorm, GroupNorm, LayerNorm."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .._args import as_real, as_size
from ..functional import _normalized_shape
from ..tensor import Tensor
from .module import Module, Parameter, input_error

__all__ = ["BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "GroupNorm", "LayerNorm"]


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
        num_features = as_size(num_features, "num_features", name, 1)
        eps = as_real(eps, "eps", name)
        momentum = None if momentum is None else as_real(momentum, "momentum", name)
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
        # set by nn.utils.fuse_batch_norm_relu: the ReLU after it runs in the same pass
        self.fused_relu = False
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

    def forward(self, x):
        self._check_input(x)
        factor = self._count_batch()
        try:
            return self._normalize(x, factor)
        except ValueError as e:
            raise input_error(repr(self), x, e) from None

    def _check_input(self, x):
        """The layer's interface: the ranks it takes and num_features channels."""
        if x.ndim not in self._ranks:
            names = ["[N, C]", "[N, C, L]", "[N, C, H, W]"]
            shapes = " or ".join(names[r - 2] for r in self._ranks)
            raise ValueError(f"{self!r}: expected input {shapes}, got {list(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: expected input with {self.num_features} channels, got {list(x.shape)}"
            )

    def _count_batch(self) -> float:
        """Counts a training batch in ``num_batches_tracked``; returns the running statistics'
        momentum for it (``momentum=None``: 1 / batches seen, a cumulative average)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        return factor

    def _normalize(self, x, factor: float):
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps, relu=self.fused_relu,
        )

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}"
                + (", relu=True" if self.fused_relu else ""))


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
        size = as_size(size, "size", op, 1)
        alpha, beta, k = as_real(alpha, "alpha", op), as_real(beta, "beta", op), as_real(k, "k", op)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        try:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        except ValueError as e:
            raise input_error(repr(self), x, e) from None

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class GroupNorm(Module):
    """Group normalisation of [N, C, ...] (PyTorch's): ``num_channels`` channels in
    ``num_groups`` groups, each sample's group normalised by its own statistics (the same in
    training and eval mode); parameters ``weight`` (1) and ``bias`` (0) [C] with ``affine``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True):
        super().__init__()
        name = "GroupNorm"
        num_groups = as_size(num_groups, "num_groups", name, 1)
        num_channels = as_size(num_channels, "num_channels", name, 1)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels must be divisible by num_groups, got "
                             f"num_channels = {num_channels} and num_groups = {num_groups}")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = as_real(eps, "eps", name), bool(affine)
        if self.affine:
            self.weight = Parameter(np.ones(num_channels, dtype=np.float32))
            self.bias = Parameter(np.zeros(num_channels, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r}: expected input [N, {self.num_channels}, *], got "
                             f"{list(x.shape)}")
        try:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        except ValueError as e:
            raise input_error(repr(self), x, e) from None

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Layer normalisation over the trailing dims ``normalized_shape`` (PyTorch's); parameters
    ``weight`` (1) and ``bias`` (0, absent with ``bias=False``) of shape ``normalized_shape``
    with ``elementwise_affine``."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        name = "LayerNorm"
        self.normalized_shape = _normalized_shape(normalized_shape, name)
        self.eps = as_real(eps, "eps", name)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        try:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        except ValueError as e:
            raise input_error(repr(self), x, e) from None

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
