"""Test helper: skip tests whose _core ops are not in this build yet (and only those)."""

from __future__ import annotations

import pytest

from cnnkit import _core

CONV = ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights")
LOCAL = ("local_conv2d_forward", "local_conv2d_backward")
TILED = ("tiled_conv2d_forward", "tiled_conv2d_backward")
MAXPOOL = ("max_pool2d_forward", "max_pool2d_backward")
AVGPOOL = ("avg_pool2d_forward", "avg_pool2d_backward")
ADAPTIVE = ("adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward")
RELU = ("relu_forward", "relu_backward")
BN = ("batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward")
LRN = ("lrn_forward", "lrn_backward")
DROPOUT = ("dropout_forward", "dropout_backward")
LINEAR = ("linear_forward", "linear_backward")
CE = ("cross_entropy_forward", "cross_entropy_backward")
MAXOUT = ("maxout_forward", "maxout_backward")


def missing(*names) -> list:
    return [n for n in names if not hasattr(_core, n)]


def requires_core(*names):
    """Mark a test that needs these ``cnnkit._core`` functions; it is skipped, with the reason
    "cnnkit._core lacks X (not merged yet)", only while one of them is missing."""
    flat = []
    for n in names:
        flat.extend(n if isinstance(n, (tuple, list)) else [n])
    gone = missing(*flat)
    return pytest.mark.skipif(
        bool(gone), reason=f"cnnkit._core lacks {', '.join(gone)} (not merged yet)"
    )
