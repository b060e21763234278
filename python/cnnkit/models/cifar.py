"""cifar_cnn: the classic VGG-style network for 32x32 colour images."""

from __future__ import annotations

from .. import nn
from ._registry import he_init, register

__all__ = ["cifar_cnn"]


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


@register
def cifar_cnn(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5,
              input_size=32):
    """conv32-conv32-pool-conv64-conv64-pool-fc512-fc10 for [N, 3, 32, 32]:

    every conv is 3x3 pad 1 followed by batch norm and ReLU; pools are 2x2 max (32 -> 16 -> 8);
    dropout 0.25 after each pool and ``dropout`` (0.5) before the last layer;
    fc512 = Linear(64*8*8, 512)-BN-ReLU. ``input_size`` (an int or (H, W), each at least 4)
    sizes the first fully connected layer for other images: Linear(64*(H//4)*(W//4), 512).
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if min(h, w) < 4:
        raise ValueError(f"cifar_cnn: input_size must be at least 4x4, got {input_size}")
    model = nn.Sequential(
        *_conv_bn_relu(in_channels, 32), *_conv_bn_relu(32, 32),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * (h // 4) * (w // 4), 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, num_classes),
    )
    return he_init(model)
