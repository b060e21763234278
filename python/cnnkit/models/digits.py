"""Small models for small grey images: digits_cnn (8x8 digits), lenet5 (28x28 MNIST)."""

from __future__ import annotations

from .. import nn
from ._registry import he_init, register

__all__ = ["digits_cnn", "lenet5"]


@register
def digits_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 32):
    """For scikit-learn's 8x8 digits ([N, 1, 8, 8]):

    conv3x3(width)-BN-ReLU, conv3x3(width)-BN-ReLU, maxpool 2 (-> 4x4),
    conv3x3(2 width)-BN-ReLU, maxpool 2 (-> 2x2), FC 128-ReLU, dropout 0.25, FC num_classes.
    """
    w = width
    model = nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * w * 2 * 2, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, num_classes),
    )
    return he_init(model)


@register
def lenet5(num_classes: int = 10, in_channels: int = 1):
    """LeNet-5 for 28x28 images (MNIST), modernised with ReLU and max pooling:
    conv5x5(6, pad 2)-ReLU-pool 2 (14x14), conv5x5(16)-ReLU-pool 2 (5x5),
    FC 120-ReLU, FC 84-ReLU, FC num_classes."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )
    return he_init(model)
