"""Preprocessing fitted on the training set and saved with the model.

- :class:`MeanImage` subtracts the mean image [C, H, W] of the training set (AlexNet).
- :class:`ChannelMean` subtracts one mean per channel (VGG).

Either can also divide by the per-channel standard deviation (``std=True``). Both work on one
image [C, H, W] or a batch [N, C, H, W] and return float32. ``state_dict()`` holds the fitted
arrays and the class name, so a checkpoint rebuilds the exact preprocessing with
:func:`preprocessing_from_state`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MeanImage", "ChannelMean", "preprocessing_from_state"]


class _Preprocessing:
    def __init__(self, std: bool = False):
        self.std = bool(std)
        self.mean = None     # MeanImage: [C, H, W]; ChannelMean: [C, 1, 1]
        self.scale = None    # 1 / per-channel std, [C, 1, 1], or None

    def _mean(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, images):
        """Fit on the training images [N, C, H, W]; returns self."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.fit: expected training images "
                             f"[N, C, H, W] with N > 0, got {list(x.shape)}")
        # float64 sums: a float32 mean over 50 000 images loses digits
        self.mean = self._mean(x.astype(np.float64)).astype(np.float32)
        if self.std:
            sd = x.astype(np.float64).std(axis=(0, 2, 3)).reshape(-1, 1, 1)
            self.scale = (1.0 / np.maximum(sd, 1e-8)).astype(np.float32)
        return self

    def __call__(self, x, rng=None):
        if self.mean is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(train_images) first")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-3:] != self.mean.shape and (self.mean.shape[1:] != (1, 1)
                                                 or x.shape[-3] != self.mean.shape[0]):
            raise ValueError(f"{type(self).__name__}: fitted on images "
                             f"[{', '.join(map(str, self.mean.shape))}] but got "
                             f"{list(x.shape)}")
        y = x - self.mean
        if self.scale is not None:
            y *= self.scale
        return y

    def state_dict(self) -> dict:
        return {"kind": type(self).__name__, "std": self.std, "mean": self.mean,
                "scale": self.scale}

    def load_state_dict(self, state: dict):
        self.std = bool(state["std"])
        self.mean = np.asarray(state["mean"], dtype=np.float32)
        self.scale = None if state.get("scale") is None else np.asarray(state["scale"],
                                                                        dtype=np.float32)
        return self

    def __repr__(self):
        fitted = "" if self.mean is not None else ", not fitted"
        return f"{type(self).__name__}(std={self.std}{fitted})"


class MeanImage(_Preprocessing):
    """Subtract the training set's mean image [C, H, W] (then, with ``std=True``, divide by
    the per-channel standard deviation)."""

    def _mean(self, x):
        return x.mean(axis=0)


class ChannelMean(_Preprocessing):
    """Subtract the training set's per-channel mean (then, with ``std=True``, divide by the
    per-channel standard deviation)."""

    def _mean(self, x):
        return x.mean(axis=(0, 2, 3)).reshape(-1, 1, 1)


_KINDS = {"MeanImage": MeanImage, "ChannelMean": ChannelMean}


def preprocessing_from_state(state):
    """Rebuild the preprocessing a ``state_dict()`` describes (None stays None)."""
    if state is None:
        return None
    kind = state.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown preprocessing {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind]().load_state_dict(state)
