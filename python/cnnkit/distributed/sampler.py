"""Each rank's share of the data: :class:`DistributedSampler` and :func:`shard_loader`."""

from __future__ import annotations

import numpy as np

from ..data import DataLoader
from .comm import rank as _this_rank
from .comm import world_size

__all__ = ["DistributedSampler", "shard_loader"]


class DistributedSampler:
    """The indices of this rank's shard of every epoch (PyTorch's DistributedSampler).

    Epoch ``e``'s order is ``numpy.random.default_rng([seed, e]).permutation(n)`` (the order a
    shuffled ``DataLoader`` with the same seed uses) on every rank; rank ``r`` takes positions
    ``r, r + p, r + 2p, ...`` of it, so the shards are disjoint and, with a local batch of
    B / p, the ranks' b-th batches together are the one-process loader's b-th batch of B.

    Uneven tails: with ``drop_last=False`` (default) the order is padded by repeating its first
    ``ceil(n / p) * p - n`` indices, so every rank gets ``ceil(n / p)`` samples (a few samples
    count twice per epoch); with ``drop_last=True`` the last ``n mod p`` indices of the order
    are dropped and every rank gets ``n // p``. Either way all ranks see the same number of
    samples, hence the same number of batches: no rank waits in an allreduce the others skip.

    ``rng_key`` (``(rank, num_replicas)``) makes a DataLoader's augmentation random stream
    differ between ranks.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.n = int(dataset) if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.num_replicas = world_size() if num_replicas is None else int(num_replicas)
        self.rank = _this_rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {self.num_replicas}), "
                             f"got {self.rank}")
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        p = self.num_replicas
        self.num_samples = self.n // p if self.drop_last else -(-self.n // p)
        self.total_size = self.num_samples * p
        self.epoch = 0

    @property
    def rng_key(self) -> tuple:
        return (self.rank, self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's indices for epoch ``epoch`` (int64 array of ``len(self)``)."""
        order = (np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        if self.total_size > self.n:  # pad by repeating from the start (cyclically if n < p)
            order = np.concatenate([order, np.resize(order, self.total_size - self.n)])
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self.indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last})")


class _EvalShard:
    """Positions r, r + p, ... of 0..n-1 without padding (evaluation counts every image
    once; ranks may get one image more or less, which is fine without per-batch collectives)."""

    def __init__(self, n: int, num_replicas: int, rank: int):
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.rng_key = (self.rank, self.num_replicas)

    def indices(self, epoch: int) -> np.ndarray:
        return np.arange(self.rank, self.n, self.num_replicas, dtype=np.int64)

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def shard_loader(loader, *, for_eval: bool = False):
    """This rank's DataLoader for a one-process ``loader`` whose ``batch_size`` is the global
    batch: local batch ``batch_size // world_size()`` over a :class:`DistributedSampler`
    (same dataset, seed, transform). ``for_eval``: a plain partition of the data set in order,
    no padding, for evaluation. With one process ``loader`` itself is returned."""
    p, r = world_size(), _this_rank()
    if p == 1:
        return loader
    if not isinstance(loader, DataLoader):
        raise TypeError(f"distributed training needs cnnkit.data.DataLoader loaders, got "
                        f"{type(loader).__name__}")
    if for_eval:
        sampler, batch = _EvalShard(len(loader.dataset), p, r), loader.batch_size
    else:
        if loader.batch_size % p:
            raise ValueError(f"distributed: the global batch size {loader.batch_size} is not "
                             f"divisible by the {p} ranks")
        sampler = DistributedSampler(loader.dataset, p, r, shuffle=loader.shuffle,
                                     seed=loader.seed)
        batch = loader.batch_size // p
    out = DataLoader(loader.dataset, batch, drop_last=loader.drop_last and not for_eval,
                     seed=loader.seed, transform=loader.transform, prefetch=loader.prefetch,
                     sampler=sampler)
    out.set_epoch(loader.epoch)
    return out
