"""Seeded data augmentation on image batches.

Every transform takes one image [C, H, W] or a batch [N, C, H, W] (float32) and returns the
same rank. Random transforms draw one choice per image from ``rng`` when it is given (the
DataLoader passes its per-epoch generator, so a run is reproducible and a resumed run sees the
same augmentation), otherwise from their own generator seeded by ``seed``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["RandomCrop", "RandomHorizontalFlip", "CenterCrop", "Compose"]


def _size(size, name) -> tuple:
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name}: size must be an int or (h, w) of positive ints, got {size}")
    return size


def _as_batch(x):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"expected an image [C, H, W] or a batch [N, C, H, W], "
                         f"got {list(x.shape)}")
    return x, False


class _Random:
    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def _gen(self, rng):
        return rng if rng is not None else self._rng


class RandomCrop(_Random):
    """Pad each side by ``padding`` zeros, then cut a random ``size`` window per image
    (CIFAR: ``RandomCrop(32, padding=4)``)."""

    def __init__(self, size, padding: int = 0, seed=None):
        super().__init__(seed)
        self.size, self.padding = _size(size, "RandomCrop"), int(padding)
        if self.padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")

    def __call__(self, x, rng=None):
        x, single = _as_batch(x)
        p, (h, w) = self.padding, self.size
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        n, _, hh, ww = x.shape
        if h > hh or w > ww:
            raise ValueError(f"RandomCrop: crop {h}x{w} is larger than the padded image {hh}x{ww}")
        g = self._gen(rng)
        tops = g.integers(0, hh - h + 1, size=n)
        lefts = g.integers(0, ww - w + 1, size=n)
        out = np.empty((n, x.shape[1], h, w), dtype=np.float32)
        for i in range(n):
            out[i] = x[i, :, tops[i]:tops[i] + h, lefts[i]:lefts[i] + w]
        return out[0] if single else out

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_Random):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        x, single = _as_batch(x)
        flip = self._gen(rng).random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out[0] if single else out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class CenterCrop:
    """Cut the central ``size`` window (the evaluation counterpart of RandomCrop)."""

    def __init__(self, size):
        self.size = _size(size, "CenterCrop")

    def __call__(self, x, rng=None):
        x, single = _as_batch(x)
        h, w = self.size
        hh, ww = x.shape[2:]
        if h > hh or w > ww:
            raise ValueError(f"CenterCrop: crop {h}x{w} is larger than the image {hh}x{ww}")
        top, left = (hh - h) // 2, (ww - w) // 2
        out = np.ascontiguousarray(x[:, :, top:top + h, left:left + w])
        return out[0] if single else out

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class Compose:
    """Apply transforms in order, handing each the same ``rng``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng=rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
