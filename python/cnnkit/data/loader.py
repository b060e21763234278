"""DataLoader: shuffled float32 batches, prepared one ahead in a background thread."""

from __future__ import annotations

import queue
import threading

import numpy as np

from ..tensor import Tensor

__all__ = ["DataLoader"]

_DONE = object()


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(images Tensor float32 [B, C, H, W],
    labels Tensor int64 [B])``.

    Parameters
    ----------
    dataset : ArrayDataset, or anything with ``len()`` whose ``dataset[index_array]`` returns
        ``(images, labels)`` arrays (``dataset[i]`` for one sample also works: samples are
        stacked)
    batch_size : int
    shuffle : bool
        A new order each epoch.
    drop_last : bool
        Drop the last, smaller batch.
    seed : int
        The order and the augmentation of epoch ``e`` come from ``numpy.random.default_rng
        ([seed, e])``, so they do not depend on how many epochs ran before in this process:
        a run resumed at epoch ``e`` (``set_epoch(e)``) sees exactly what the straight run saw.
    transform : callable ``transform(batch, rng=...)``, optional
        Preprocessing and augmentation applied to each batch (see ``cnnkit.data.Compose``).
    prefetch : bool
        Prepare the next batch in a background thread while the current one trains (numpy
        releases the GIL for copies, so this overlaps with the C++ kernels).
    sampler : optional
        Where the indices of epoch ``e`` come from instead: ``sampler.indices(e)`` (e.g.
        ``cnnkit.distributed.DistributedSampler``, this rank's shard); ``len(sampler)`` samples
        per epoch. Excludes ``shuffle`` (the sampler orders). Its ``rng_key`` (a tuple of ints,
        if any) is appended to the augmentation seed so that shards draw different augmentations.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, transform=None, prefetch: bool = True,
                 sampler=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.sampler = sampler
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.transform, self.prefetch = transform, bool(prefetch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order and augmentation)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self, epoch: int):
        if self.sampler is not None:
            rng = np.random.default_rng([self.seed, epoch, *getattr(self.sampler, "rng_key", ())])
            order = np.asarray(self.sampler.indices(epoch), dtype=np.int64)
        else:
            rng = np.random.default_rng([self.seed, epoch])
            n = len(self.dataset)
            order = rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self._fetch(idx)
            if self.transform is not None:
                x = self.transform(x, rng=rng)
            yield (Tensor(np.ascontiguousarray(x, dtype=np.float32)),
                   Tensor(np.asarray(y, dtype=np.int64)))

    def _fetch(self, idx):
        if hasattr(self.dataset, "images") and hasattr(self.dataset, "labels"):
            return self.dataset.images[idx], self.dataset.labels[idx]
        samples = [self.dataset[int(i)] for i in idx]
        return (np.stack([np.asarray(s[0], dtype=np.float32) for s in samples]),
                np.array([int(s[1]) for s in samples], dtype=np.int64))

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1  # a plain loop over epochs reshuffles, as PyTorch's loader does
        if not self.prefetch:
            yield from self._batches(epoch)
            return
        q = queue.Queue(maxsize=1)   # one batch waits while the current one trains
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False  # the consumer left early

        def produce():
            try:
                for item in self._batches(epoch):
                    if not put(item):
                        return
                put(_DONE)
            except BaseException as e:  # handed to the consumer, raised there
                put(e)

        worker = threading.Thread(target=produce, name="cnnkit-dataloader", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})")
