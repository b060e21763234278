"""How ``train.fit`` runs on one process or several: a strategy object.

:class:`Strategy` is the protocol and the one-process behaviour (every hook does nothing);
:class:`DataParallel` is data-parallel training over MPI ranks. ``fit(..., strategy=s)`` calls,
in order: ``s.setup(model, train_loader, val_loader) -> (train_loader, val_loader)`` once;
after every backward ``s.after_backward()`` (the gradients are then final); after every epoch
``s.reduce_metrics(seen, correct, loss_sum)``, ``s.end_epoch()`` and, with a validation loader,
``s.evaluate(loss)``; ``s.close()`` at the end. ``s.is_main`` says whether this process prints
and writes checkpoints.

:func:`evaluate` is ``cnnkit.metrics.evaluate`` over a data set split across ranks.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from .comm import allreduce_, broadcast_parameters, init, is_main, sum_counts, uses_mpi, world_size
from .gradients import GradientAllreduce
from .sampler import shard_loader
from .sync_batchnorm import average_buffers

__all__ = ["Strategy", "DataParallel", "evaluate"]


def evaluate(model, loader, loss=None, num_classes=None):
    """``metrics.evaluate`` over a data set split across ranks (``shard_loader(...,
    for_eval=True)``): each rank scores its part, then one allreduce sums the confusion matrix,
    the top-5 hits and the loss. Every rank returns the same :class:`~cnnkit.metrics.Evaluation`
    of the whole data set. ``num_classes`` defaults to the model's output width."""
    if not uses_mpi():
        return metrics.evaluate(model, loader, loss=loss, num_classes=num_classes)
    scores, labels, total = metrics.predict(model, loader, loss)
    width = np.array([0 if scores is None else scores.shape[1]], dtype=np.float64)
    c = int(num_classes or allreduce_(width, "max")[0])
    confusion, hits = np.zeros((c, c), dtype=np.int64), 0
    if scores is not None:
        confusion = metrics.confusion_matrix(labels, scores.argmax(axis=1), c)
        hits = metrics.top5_hits(scores, labels)
    flat = np.concatenate([confusion.ravel().astype(np.float64), [hits, total]])
    allreduce_(flat)
    confusion = np.rint(flat[:c * c]).astype(np.int64).reshape(c, c)
    return metrics.summarize(confusion, flat[c * c] if c > 5 else None,
                             flat[c * c + 1] if loss is not None else None)


class Strategy:
    """One process: ``fit``'s hooks, all doing nothing (the protocol every strategy follows)."""

    is_main = True

    def setup(self, model, train_loader, val_loader=None):
        """Before the first epoch; returns the (train, validation) loaders to use."""
        self.model = model
        return train_loader, val_loader

    def after_backward(self) -> None:
        """After every backward pass, before the gradients are checked and applied."""

    def reduce_metrics(self, seen: int, correct: int, total_loss: float):
        """(seen, correct, summed loss) of the epoch over all processes."""
        return seen, correct, total_loss

    def end_epoch(self) -> None:
        """After every epoch's training steps."""

    def evaluate(self, val_loader, loss=None):
        """The validation Evaluation (of all processes' shards)."""
        return metrics.evaluate(self.model, val_loader, loss=loss)

    def close(self) -> None:
        """After the last epoch (also when training stops early)."""


class DataParallel(Strategy):
    """Data-parallel training on MPI, the way Horovod does it (what ``fit(...,
    distributed=True)`` uses): every rank holds the whole model, trains on its shard of each
    global batch, and the gradients are averaged with one allreduce before every step.

    ``setup`` joins MPI (:func:`~cnnkit.distributed.init`), broadcasts rank 0's parameters and
    buffers, shards the loaders (:func:`~cnnkit.distributed.shard_loader`: the training
    loader's batch size is the global batch) and puts the gradients into a
    :class:`GradientAllreduce`. Then ``after_backward`` averages the gradients, the epoch's
    metrics are summed, the plain batch norms' running statistics are averaged at the end of
    every epoch, and validation covers every rank's shard. With one process every hook does
    nothing and the loaders are the caller's.

    ``DataParallel(model, train_loader, val_loader)`` also sets it up at once (then
    ``train_loader`` / ``val_loader`` are the sharded loaders).
    """

    def __init__(self, model=None, train_loader=None, val_loader=None):
        init()
        self.is_main, self.world_size = is_main(), world_size()
        self.grads = None
        if model is not None:
            self.train_loader, self.val_loader = self.setup(model, train_loader, val_loader)

    def setup(self, model, train_loader, val_loader=None):
        self.model = model
        broadcast_parameters(model)
        train_loader = shard_loader(train_loader)
        val_loader = None if val_loader is None else shard_loader(val_loader, for_eval=True)
        self.grads = GradientAllreduce(model.parameters()) if uses_mpi() else None
        return train_loader, val_loader

    def after_backward(self) -> None:
        if self.grads is not None:
            self.grads.allreduce()

    allreduce_gradients = after_backward

    def reduce_metrics(self, seen, correct, total_loss):
        if not uses_mpi():
            return seen, correct, total_loss
        s, c, t = sum_counts(seen, correct, total_loss)
        return int(s), int(c), float(t)

    def end_epoch(self) -> None:
        average_buffers(self.model)

    def evaluate(self, val_loader=None, loss=None):
        return evaluate(self.model, self.val_loader if val_loader is None else val_loader,
                        loss=loss)

    def close(self) -> None:
        if self.grads is not None:
            self.grads.close()
