"""AlexNet as the lecture's table gives it (one tower, 227x227 input).

    INPUT      [227x227x3]
    CONV1      96 11x11 filters, stride 4, pad 0  -> [55x55x96]
    MAX POOL1  3x3, stride 2                      -> [27x27x96]
    NORM1                                         -> [27x27x96]
    CONV2      256 5x5 filters, stride 1, pad 2   -> [27x27x256]
    MAX POOL2  3x3, stride 2                      -> [13x13x256]
    NORM2                                         -> [13x13x256]
    CONV3      384 3x3 filters, stride 1, pad 1   -> [13x13x384]
    CONV4      384 3x3 filters, stride 1, pad 1   -> [13x13x384]
    CONV5      256 3x3 filters, stride 1, pad 1   -> [13x13x256]
    MAX POOL3  3x3, stride 2                      -> [6x6x256]
    FC6 4096, FC7 4096 (ReLU, dropout 0.5 before each), FC8 num_classes

ReLU after every conv and FC6/FC7. He (kaiming) normal initialisation, zero biases.

NORM is local response normalisation with the paper's constants (n = 5, alpha = 1e-4,
beta = 0.75, k = 2). The paper divides by (k + alpha * sum of squares) ** beta; PyTorch's
LocalResponseNorm (whose semantics cnnkit follows) divides by (k + alpha / n * sum) ** beta, so
the paper's alpha becomes alpha = 1e-4 * n = 5e-4 here: ``LocalResponseNorm(5, alpha=5e-4,
beta=0.75, k=2.0)`` computes exactly the paper's normalisation.
"""

from __future__ import annotations

from .. import nn
from ._registry import he_init, register

__all__ = ["alexnet", "LRN_SIZE", "LRN_ALPHA", "LRN_BETA", "LRN_K"]

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 5e-4, 0.75, 2.0  # paper's alpha 1e-4 times n = 5


@register
def alexnet(num_classes: int = 1000, dropout: float = 0.5):
    """AlexNet for [N, 3, 227, 227] (see the module docstring for the table)."""
    features = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(),                    # CONV1
        nn.MaxPool2d(3, stride=2),                                    # POOL1
        nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K),   # NORM1
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(),                  # CONV2
        nn.MaxPool2d(3, stride=2),                                    # POOL2
        nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K),   # NORM2
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),                 # CONV3
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),                 # CONV4
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),                 # CONV5
        nn.MaxPool2d(3, stride=2),                                    # POOL3
    )
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),  # FC6
        nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),         # FC7
        nn.Linear(4096, num_classes),                                  # FC8
    )
    model = nn.Sequential()
    model.add_module("features", features)
    model.add_module("flatten", nn.Flatten())
    model.add_module("classifier", classifier)
    return he_init(model)
