"""Plots saved as PNG (matplotlib, the optional ``plot`` extra: ``pip install "cnnkit[plot]"``).

- :func:`plot_history`: loss and accuracy per epoch (training and validation) and the lr.
- :func:`plot_filters`: the first conv layer's filters as a grid of small images.
- :func:`plot_activations`: the feature maps of one image after a chosen layer.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .nn import Conv2d, ReLU
from .nn.module import eval_mode
from .tensor import Tensor, no_grad

__all__ = ["plot_history", "plot_filters", "plot_activations", "first_conv"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('cnnkit plots need matplotlib: pip install "cnnkit[plot]"') from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_history(history, path) -> str:
    """Training curves of a :class:`cnnkit.train.History` (or its dict) to ``path``."""
    plt = _pyplot()
    h = history if isinstance(history, dict) else history.as_dict()
    ep = h["epoch"]
    if not ep:
        raise ValueError("plot_history: the history is empty")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(ep, h["train_loss"], "o-", label="train")
    if any(v is not None for v in h["val_loss"]):
        axes[0].plot(ep, h["val_loss"], "o-", label="validation")
    axes[0].set(title="loss", xlabel="epoch")
    axes[1].plot(ep, [100 * a for a in h["train_acc"]], "o-", label="train")
    if any(v is not None for v in h["val_acc"]):
        axes[1].plot(ep, [100 * a for a in h["val_acc"]], "o-", label="validation")
    axes[1].set(title="accuracy (%)", xlabel="epoch")
    axes[2].plot(ep, h["lr"], "o-")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)


def first_conv(model):
    """The first Conv2d of ``model`` (in registration order)."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            return m
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def _grid(n):
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def plot_filters(model, path) -> str:
    """The first conv layer's filters [K, C, F, F] as a grid: RGB when C = 3 (each filter
    scaled to [0, 1] on its own), grey otherwise (the mean over channels)."""
    plt = _pyplot()
    w = first_conv(model).weight.data
    k = w.shape[0]
    rows, cols = _grid(k)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= k:
            continue
        f = w[i]
        if f.shape[0] == 3:
            img = np.transpose(f, (1, 2, 0))
            img = (img - img.min()) / max(float(np.ptp(img)), 1e-12)
            ax.imshow(img, interpolation="nearest")
        else:
            ax.imshow(f.mean(axis=0), cmap="gray", interpolation="nearest")
    fig.suptitle(f"first-layer filters ({k} x {w.shape[1]} x {w.shape[2]} x {w.shape[3]})")
    return _save(fig, path)


def plot_activations(model, image, path, layer=None, max_maps: int = 64) -> str:
    """Feature maps of ``image`` [C, H, W] (already preprocessed) after ``layer`` (a module of
    ``model``; default: the first ReLU after the first conv, else the first conv)."""
    plt = _pyplot()
    if layer is None:
        mods = list(model.modules())
        conv = next((i for i, m in enumerate(mods) if isinstance(m, Conv2d)), None)
        if conv is None:
            raise ValueError(f"{type(model).__name__} has no Conv2d layer")
        layer = next((m for m in mods[conv:] if isinstance(m, ReLU)), mods[conv])
    captured = {}
    handle = layer.register_forward_hook(lambda m, i, o: captured.setdefault("out", o.data))
    try:
        with eval_mode(model), no_grad():
            model(Tensor(np.asarray(image, dtype=np.float32)[None]))
    finally:
        handle.remove()
    maps = captured["out"][0]
    n = min(maps.shape[0], max_maps)
    rows, cols = _grid(n)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(maps[i], cmap="viridis", interpolation="nearest")
    fig.suptitle(f"activations after {type(layer).__name__}: {n} of {maps.shape[0]} maps "
                 f"{maps.shape[1]}x{maps.shape[2]}")
    return _save(fig, path)
