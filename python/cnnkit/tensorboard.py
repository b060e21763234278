"""TensorBoard logging for :func:`cnnkit.train.fit` (``log_dir=``) and ``cnnkit train
--tensorboard DIR``, through tensorboardX's SummaryWriter (``pip install "cnnkit[tensorboard]"``)::

    train/loss, train/lr            every optimizer step (x axis: the global step)
    epoch/train_loss, epoch/train_acc, epoch/val_loss, epoch/val_acc, epoch/images_per_s
                                    every epoch (x axis: the epoch, 1-based)
    filters                         the first conv layer's filters as one image grid, every epoch

View with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import numpy as np

from .plot import _grid, first_conv

__all__ = ["TensorBoardLogger", "filter_grid"]


def filter_grid(weight, pad: int = 1) -> np.ndarray:
    """The filters ``weight`` [K, C, F, F] as one image [3, H, W] in [0, 1]: a near-square grid
    of K tiles separated by ``pad`` pixels, each filter scaled to [0, 1] on its own (RGB when
    C = 3, grey from the mean over channels otherwise)."""
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: weight must be [K, C, F, F], got {list(w.shape)}")
    k, c, fh, fw = w.shape
    tiles = w if c == 3 else np.repeat(w.mean(axis=1, keepdims=True), 3, axis=1)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(tiles.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    tiles = (tiles - lo) / span
    rows, cols = _grid(k)
    grid = np.zeros((3, rows * (fh + pad) + pad, cols * (fw + pad) + pad), dtype=np.float32)
    for i in range(k):
        r, q = divmod(i, cols)
        top, left = pad + r * (fh + pad), pad + q * (fw + pad)
        grid[:, top:top + fh, left:left + fw] = tiles[i]
    return grid


class TensorBoardLogger:
    """Writes fit()'s scalars and filter images to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir):
        self.writer = self.check_available().SummaryWriter(logdir=str(log_dir))

    @staticmethod
    def check_available():
        """The tensorboardX module, or an ImportError saying how to install it."""
        try:
            import tensorboardX
        except ImportError as e:
            raise ImportError("fit(log_dir=...) and --tensorboard need tensorboardX: "
                              'pip install "cnnkit[tensorboard]"') from e
        return tensorboardX

    def step(self, global_step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, global_step)
        self.writer.add_scalar("train/lr", lr, global_step)

    def epoch(self, epoch: int, history, model) -> None:
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_s"):
            value = getattr(history, name)[-1]
            if value is not None:
                self.writer.add_scalar(f"epoch/{name}", float(value), epoch)
        try:
            conv = first_conv(model)
        except ValueError:  # a model without convolutions has no filters to show
            conv = None
        if conv is not None:
            self.writer.add_image("filters", filter_grid(conv.weight.data), epoch,
                                  dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
