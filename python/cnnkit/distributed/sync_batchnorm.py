"""Batch statistics of the global batch: :class:`SyncBatchNorm`, and the running statistics
of plain batch norms averaged across ranks (:func:`average_buffers`)."""

from __future__ import annotations

import numpy as np

from ..nn.normalization import _BatchNorm
from ..ops.activation import ReLUFunction
from ..ops.norm import BatchNormSummedFunction
from .comm import allreduce_, uses_mpi, world_size

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "average_buffers"]


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch across all ranks
    (PyTorch's SyncBatchNorm); with one process, or in eval mode, plain batch norm.
    Inputs [N, C], [N, C, L] or [N, C, H, W]; same parameters, buffers and state_dict keys as
    BatchNorm1d/2d. Build with :func:`convert_sync_batchnorm`.

    Training with several ranks runs the core's batch norm in stages with one allreduce in
    between (cnnkit.ops.norm.BatchNormSummedFunction): of each channel's sums of x and x^2 and
    the value count M forward; of sum(dy) and sum(dy (x - mean)) backward. Each rank's loss is
    the mean over its shard, i.e. p times its part of the global mean, so the dx computed from
    the global sums is p times the one-process dx (as is every upstream gradient, which the
    gradient average divides by p again); dgamma and dbeta are this rank's sums, averaged
    with the other gradients.
    """

    _ranks = (2, 3, 4)

    def _normalize(self, x, factor: float):
        if not (self.training and uses_mpi()):
            return super()._normalize(x, factor)
        track = self.track_running_stats
        y = BatchNormSummedFunction.apply(
            x, self.weight, self.bias,
            running_mean=self.running_mean.data if track else None,
            running_var=self.running_var.data if track else None,
            momentum=float(factor), eps=float(self.eps), sum_across=allreduce_)
        return ReLUFunction.apply(y) if self.fused_relu else y


def convert_sync_batchnorm(model):
    """Turn every BatchNorm1d/2d of ``model`` into a :class:`SyncBatchNorm` in place, keeping
    its Parameter and buffer objects (optimizers built before stay valid). Returns ``model``
    (or the new module when ``model`` itself is a batch norm)."""

    def convert(m):
        sync = object.__new__(SyncBatchNorm)
        sync.__dict__.update(m.__dict__)
        object.__setattr__(sync, "_ranks", type(m)._ranks)
        return sync

    if isinstance(model, _BatchNorm) and not isinstance(model, SyncBatchNorm):
        return convert(model)
    for m in list(model.modules()):
        for name, child in list(m._modules.items()):
            if isinstance(child, _BatchNorm) and not isinstance(child, SyncBatchNorm):
                m._modules[name] = convert(child)
    return model


def average_buffers(model) -> None:
    """Average the float buffers of the batch norms that keep per-rank statistics (running
    mean and variance) across ranks, so that evaluation and checkpoints agree on every rank.
    SyncBatchNorm's running statistics are already identical everywhere."""
    if not uses_mpi():
        return
    arrays = [t.data for m in model.modules()
              if isinstance(m, _BatchNorm) and not isinstance(m, SyncBatchNorm)
              for t in (m.running_mean, m.running_var) if t is not None]
    if not arrays:
        return
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float32)
    allreduce_(flat)
    flat /= np.float32(world_size())
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size
