"""cifar_cnn: the classic VGG-style network for 32x32 colour images."""

from __future__ import annotations

from .. import nn
from ._registry import he_init, register

__all__ = ["cifar_cnn"]


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


@register
def cifar_cnn(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5):
    """conv32-conv32-pool-conv64-conv64-pool-fc512-fc10 for [N, 3, 32, 32]:

    every conv is 3x3 pad 1 followed by batch norm and ReLU; pools are 2x2 max (32 -> 16 -> 8);
    dropout 0.25 after each pool and ``dropout`` (0.5) before the last layer;
    fc512 = Linear(64*8*8, 512)-BN-ReLU.
    """
    model = nn.Sequential(
        *_conv_bn_relu(in_channels, 32), *_conv_bn_relu(32, 32),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, num_classes),
    )
    return he_init(model)
