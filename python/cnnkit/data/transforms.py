"""Seeded data augmentation on image batches.

Every transform takes one image [C, H, W] or a batch [N, C, H, W] (float32) and returns the
same rank. Random transforms draw one choice per image from ``rng`` when it is given (the
DataLoader passes its per-epoch generator, so a run is reproducible and a resumed run sees the
same augmentation), otherwise from their own generator seeded by ``seed``.

AlexNet-style heavy augmentation (images float32 in [0, 1], before preprocessing)::

    Compose([RandomResizedCrop(32, scale=(0.35, 1.0)), RandomHorizontalFlip(),
             ColorJitter(0.4, 0.4, 0.4), PCALighting(0.1).fit(train.images),
             ChannelMean().fit(train.images)])

:func:`resize` (bilinear, antialiased when shrinking, as PIL and torchvision's
``antialias=True``), :func:`five_crop` and :func:`ten_crop` are the deterministic pieces, also
used by test-time augmentation (``cnnkit.metrics.evaluate(..., tta="ten_crop")``).
"""

from __future__ import annotations

import math
import numbers
import threading

import numpy as np

from .. import _core

__all__ = ["RandomCrop", "RandomHorizontalFlip", "CenterCrop", "Compose", "resize",
           "RandomResizedCrop", "ColorJitter", "PCALighting", "five_crop", "ten_crop"]


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


def _threads() -> int:
    """Threads for the core's pixel work: cnnkit's count on the main thread, one on any other
    (the DataLoader's prefetching thread), where the work runs beside the training step instead
    of holding up its thread pool (bench/augment.py's last line, 2 cores: +1 to +5 % per
    training step with one thread, +9 to +13 % with both)."""
    return 0 if threading.current_thread() is threading.main_thread() else 1


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


# --------------------------------------------------------------------------- resizing
# The resampling is _core.resize_boxes (cpp/src/augment/augment.cpp): PIL's bilinear filter,
# output pixel i of a window [start, start + length) of an axis samples at
# ``start + (i + 0.5) * scale`` (``scale = length / out_len``) with the triangle filter
# ``max(0, 1 - |d|)``, stretched by ``scale`` when shrinking (the antialiasing), restricted to
# the window and normalised to sum 1 (which clamps at the window's edges).
def _boxes(tops, lefts, heights, widths) -> np.ndarray:
    return np.stack([np.asarray(a, dtype=np.float64).reshape(-1)
                     for a in (tops, lefts, heights, widths)], axis=1)


def resize(images, size) -> np.ndarray:
    """Resize one image [C, H, W] or a batch [N, C, H, W] to ``size`` (an int: square, or
    ``(h, w)``) with bilinear interpolation, antialiased when shrinking (PIL's
    ``Image.resize(size, BILINEAR)``, torchvision's ``antialias=True``). float32, same rank;
    resizing to the same size returns the image unchanged. (Unlike torchvision's ``Resize``, an
    int here means a square, not the shorter edge.)"""
    x, single = _as_batch(images)
    h, w = _size(size, "resize")
    n, _, hh, ww = x.shape
    if (h, w) == (hh, ww):
        out = x.copy()
    else:
        boxes = np.tile(np.array([0.0, 0.0, hh, ww]), (n, 1))
        out = _core.resize_boxes(np.ascontiguousarray(x), boxes, (h, w), _threads())
    return out[0] if single else out


def _resize_boxes(x, tops, lefts, heights, widths, size) -> np.ndarray:
    """Cut box i (tops[i], lefts[i], heights[i], widths[i]) of image i and resize it to size."""
    return _core.resize_boxes(np.ascontiguousarray(x, dtype=np.float32),
                              _boxes(tops, lefts, heights, widths), tuple(size), _threads())


def _pair(v, name, what) -> tuple:
    v = tuple(float(a) for a in v)
    if len(v) != 2 or not v[0] <= v[1]:
        raise ValueError(f"{name}: {what} must be (min, max) with min <= max, got {v}")
    return v


class RandomResizedCrop(_Random):
    """Cut a random window of each image and resize it to ``size`` (GoogLeNet's and
    torchvision's "Inception crop"): the window covers a fraction of the area drawn uniformly
    from ``scale`` with an aspect ratio (width / height) drawn log-uniformly from ``ratio``; up
    to 10 draws until the window fits the image, else the central window with the ratio clamped
    to ``ratio``. The window is resized with :func:`resize`'s bilinear interpolation
    (antialiased when shrinking). Each batch draws the same number of random numbers."""

    TRIES = 10

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
        super().__init__(seed)
        self.size = _size(size, "RandomResizedCrop")
        self.scale = _pair(scale, "RandomResizedCrop", "scale")
        self.ratio = _pair(ratio, "RandomResizedCrop", "ratio")
        if not 0.0 < self.scale[1] or self.scale[0] < 0.0:
            raise ValueError(f"RandomResizedCrop: scale must be within (0, inf) area "
                             f"fractions, got {self.scale}")
        if self.ratio[0] <= 0.0:
            raise ValueError(f"RandomResizedCrop: ratio must be positive, got {self.ratio}")

    def get_params(self, n: int, height: int, width: int, g) -> tuple:
        """``(tops, lefts, heights, widths)`` int64 [n] of the windows of n images."""
        area = float(height * width)
        target = area * g.uniform(self.scale[0], self.scale[1], size=(n, self.TRIES))
        log_r = np.log(self.ratio)
        aspect = np.exp(g.uniform(log_r[0], log_r[1], size=(n, self.TRIES)))
        ws = np.round(np.sqrt(target * aspect)).astype(np.int64)   # half to even, as round()
        hs = np.round(np.sqrt(target / aspect)).astype(np.int64)
        ok = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
        first = ok.argmax(axis=1)
        found = ok[np.arange(n), first]
        w, h = ws[np.arange(n), first], hs[np.arange(n), first]
        # the fallback: the central window, its aspect ratio clamped into ``ratio``
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fw, fh = int(round(height * self.ratio[1])), height
        else:
            fw, fh = width, height
        w, h = np.where(found, w, fw), np.where(found, h, fh)
        tops = g.integers(0, height - np.where(found, h, 0) + 1)
        lefts = g.integers(0, width - np.where(found, w, 0) + 1)
        tops = np.where(found, tops, (height - fh) // 2)
        lefts = np.where(found, lefts, (width - fw) // 2)
        return tops, lefts, h, w

    def __call__(self, x, rng=None):
        x, single = _as_batch(x)
        n, _, hh, ww = x.shape
        tops, lefts, hs, ws = self.get_params(n, hh, ww, self._gen(rng))
        out = _resize_boxes(x, tops, lefts, hs, ws, self.size)
        return out[0] if single else out

    def __repr__(self):
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)})")


# --------------------------------------------------------------------------- colour
def _rgb_to_hsv(x):
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, minc = x.max(axis=1), x.min(axis=1)
    delta = maxc - minc
    gray = delta == 0
    s = delta / np.where(maxc == 0, 1.0, maxc)
    d = np.where(gray, 1.0, delta)
    h = np.where(maxc == r, (g - b) / d,
                 np.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    h = np.where(gray, 0.0, h)
    return np.mod(h / 6.0, 1.0).astype(np.float32), s, maxc


# hsv -> rgb: sector i of the hue picks each channel from (v, q, p, t)
_R_OF, _G_OF, _B_OF = (np.array(a) for a in ([0, 1, 2, 2, 3, 0], [3, 0, 0, 1, 2, 2],
                                             [2, 2, 3, 0, 0, 1]))


def _hsv_to_rgb(h, s, v):
    h6 = h * 6.0
    sector = np.floor(h6)
    f = h6 - sector
    sector = sector.astype(np.int64) % 6
    cand = np.stack([v, np.clip(v * (1.0 - s * f), 0.0, 1.0), np.clip(v * (1.0 - s), 0.0, 1.0),
                     np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)])   # v, q, p, t
    return np.stack([np.take_along_axis(cand, table[sector][None], axis=0)[0]
                     for table in (_R_OF, _G_OF, _B_OF)], axis=1)


def _adjust_hue(x, f):
    h, s, v = _rgb_to_hsv(x)
    h = np.mod(h + f.astype(np.float32).reshape(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, s, v).astype(np.float32)


def _jitter_range(value, name, center, bound=None, lower=0.0) -> tuple | None:
    if isinstance(value, numbers.Number):
        value = float(value)
        if not value >= 0 or value == math.inf:  # NaN and inf too
            raise ValueError(f"ColorJitter: {name} must be a finite number >= 0, got {value}")
        if bound is not None and value > bound:
            raise ValueError(f"ColorJitter: {name} must be in [0, {bound}], got {value}")
        lo, hi = center - value, center + value
        lo = lo if lower is None else max(lower, lo)
    else:
        lo, hi = _pair(value, "ColorJitter", name)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"ColorJitter: {name} range must be finite, got {(lo, hi)}")
        if (lower is not None and lo < lower) or (bound is not None and max(-lo, hi) > bound):
            lim = f"[{lower}, inf)" if bound is None else f"[-{bound}, {bound}]"
            raise ValueError(f"ColorJitter: {name} range must lie in {lim}, got {(lo, hi)}")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(_Random):
    """Randomly change brightness, contrast, saturation and hue of each image (torchvision's
    ColorJitter on float images in [0, 1]).

    Each op's factor is drawn uniformly per image from ``[max(0, 1 - v), 1 + v]`` (hue: the
    shift from ``[-hue, hue]``, ``hue <= 0.5``), or from a given ``(min, max)``; 0 turns an op
    off. The ops run in a random order per image, as torchvision draws it per call, each
    clamping to [0, 1]: brightness ``x * f``; contrast: blend with the mean of the image's
    grayscale ``0.299 R + 0.587 G + 0.114 B`` (``f x + (1 - f) mean``); saturation: blend with
    the per-pixel grayscale; hue: add the shift to the hue in HSV (mod 1). One-channel images
    take brightness and contrast (the mean of the image); saturation and hue need RGB."""

    OPS = ("brightness", "contrast", "saturation", "hue")

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, seed=None):
        super().__init__(seed)
        self.brightness = _jitter_range(brightness, "brightness", 1.0)
        self.contrast = _jitter_range(contrast, "contrast", 1.0)
        self.saturation = _jitter_range(saturation, "saturation", 1.0)
        self.hue = _jitter_range(hue, "hue", 0.0, bound=0.5, lower=None)

    def get_params(self, n: int, g) -> tuple:
        """``(factors [4, n] float64, order [n, 4])``: op k of image i is ``OPS[order[i, k]]``
        (a disabled op's factor is its identity)."""
        factors = np.empty((4, n))
        for k, name in enumerate(self.OPS):
            r = getattr(self, name)
            u = g.random(n)   # drawn for every op, so turning one off leaves the others' draws
            factors[k] = (0.0 if k == 3 else 1.0) if r is None else r[0] + (r[1] - r[0]) * u
        order = np.argsort(g.random((n, 4)), axis=1)
        return factors, order

    def __call__(self, x, rng=None):
        x, single = _as_batch(x)
        c = x.shape[1]
        active = [k for k, name in enumerate(self.OPS) if getattr(self, name) is not None]
        if c != 3:
            bad = [self.OPS[k] for k in active if k >= 2]
            if bad:
                raise ValueError(f"ColorJitter: {' and '.join(bad)} need RGB images "
                                 f"[N, 3, H, W], got {c} channel(s)")
            if c != 1 and 1 in active:
                raise ValueError(f"ColorJitter: contrast needs 1- or 3-channel images, "
                                 f"got {c} channels")
        factors, order = self.get_params(x.shape[0], self._gen(rng))
        # brightness, contrast and saturation run in _core.color_jitter, which takes each
        # image's ops in order (-1: skip; here the inactive ops and hue). Hue (numpy) applies
        # to every image when active: the steps before it, hue, then the steps after it.
        on = np.array([getattr(self, name) is not None for name in self.OPS])
        steps = np.where(on[order] & (order != 3), order, -1)
        f3 = np.ascontiguousarray(factors[:3].T)
        out, nt = np.ascontiguousarray(x), _threads()
        if not on[3]:
            out = _core.color_jitter(out, f3, steps, nt)
        else:
            before = np.arange(4) < (order == 3).argmax(axis=1)[:, None]
            out = _core.color_jitter(out, f3, np.where(before, steps, -1), nt)
            out = np.ascontiguousarray(_adjust_hue(out, factors[3]))
            out = _core.color_jitter(out, f3, np.where(before, -1, steps), nt)
        return out[0] if single else out

    def __repr__(self):
        return ("ColorJitter(" + ", ".join(f"{n}={getattr(self, n)}" for n in self.OPS) + ")")


class PCALighting(_Random):
    """AlexNet's "fancy PCA" lighting noise: ``fit(train_images)`` takes the eigenvalues
    lambda_i and eigenvectors p_i of the 3x3 covariance of the RGB values of all training
    pixels; each image then gets ``sum_i alpha_i lambda_i p_i``, alpha_i ~ N(0, alphastd),
    added to every pixel (no clamping, as in AlexNet). ``state_dict()`` saves the fit."""

    def __init__(self, alphastd: float = 0.1, seed=None):
        super().__init__(seed)
        if isinstance(alphastd, (str, bool)) or not 0.0 <= float(alphastd) < math.inf:
            raise ValueError(f"PCALighting: alphastd must be a finite number >= 0, got "
                             f"{alphastd!r}")
        self.alphastd = float(alphastd)
        self.eigval = None   # [3], descending
        self.eigvec = None   # [3, 3], column i is p_i

    def fit(self, images, chunk: int = 4096):
        """Fit on the training images [N, 3, H, W] (float64 sums, in chunks); returns self."""
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] != 3:
            raise ValueError(f"PCALighting.fit: expected RGB training images [N, 3, H, W] "
                             f"with N > 0, got {list(x.shape)}")
        total, outer, count = np.zeros(3), np.zeros((3, 3)), 0
        for i in range(0, x.shape[0], chunk):
            p = x[i:i + chunk].astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
            total += p.sum(axis=1)
            outer += p @ p.T
            count += p.shape[1]
        mean = total / count
        cov = (outer - count * np.outer(mean, mean)) / max(count - 1, 1)
        val, vec = np.linalg.eigh(cov)
        self.eigval, self.eigvec = val[::-1].clip(min=0.0), vec[:, ::-1]
        return self

    def offsets(self, n: int, g) -> np.ndarray:
        """The per-image RGB offsets [n, 3] (float64) for n images."""
        alpha = g.normal(0.0, self.alphastd, size=(n, 3))
        return (alpha * self.eigval) @ self.eigvec.T

    def __call__(self, x, rng=None):
        if self.eigval is None:
            raise RuntimeError("PCALighting: call fit(train_images) first")
        x, single = _as_batch(x)
        if x.shape[1] != 3:
            raise ValueError(f"PCALighting: needs RGB images [N, 3, H, W], got {x.shape[1]} "
                             f"channel(s)")
        off = self.offsets(x.shape[0], self._gen(rng)).astype(np.float32)
        out = x + off[:, :, None, None]
        return out[0] if single else out

    def state_dict(self) -> dict:
        return {"kind": "PCALighting", "alphastd": self.alphastd,
                "eigval": None if self.eigval is None else self.eigval.copy(),
                "eigvec": None if self.eigvec is None else self.eigvec.copy()}

    def load_state_dict(self, state: dict):
        self.alphastd = float(state["alphastd"])
        val, vec = state.get("eigval"), state.get("eigvec")
        self.eigval = None if val is None else np.asarray(val, dtype=np.float64).reshape(3)
        self.eigvec = None if vec is None else np.asarray(vec, dtype=np.float64).reshape(3, 3)
        return self

    def __repr__(self):
        fitted = "" if self.eigval is not None else ", not fitted"
        return f"PCALighting(alphastd={self.alphastd}{fitted})"


# --------------------------------------------------------------------------- multi-crop
def five_crop(images, crop) -> np.ndarray:
    """The four corner crops and the central crop of one image [C, H, W] or a batch
    [N, C, H, W]: [5, (N,) C, h, w] in the order top-left, top-right, bottom-left,
    bottom-right, centre (the centre as :class:`CenterCrop`: offset ``(H - h) // 2``)."""
    x, single = _as_batch(images)
    h, w = _size(crop, "five_crop")
    hh, ww = x.shape[2:]
    if h > hh or w > ww:
        raise ValueError(f"five_crop: crop {h}x{w} is larger than the image {hh}x{ww}")
    corners = [(0, 0), (0, ww - w), (hh - h, 0), (hh - h, ww - w),
               ((hh - h) // 2, (ww - w) // 2)]
    out = np.stack([x[:, :, t:t + h, s:s + w] for t, s in corners])
    return out[:, 0] if single else out


def ten_crop(images, crop) -> np.ndarray:
    """AlexNet's ten test crops: :func:`five_crop` followed by the mirror image (left-right)
    of each of the five, [10, (N,) C, h, w]."""
    five = five_crop(images, crop)
    return np.ascontiguousarray(np.concatenate([five, five[..., ::-1]]))
