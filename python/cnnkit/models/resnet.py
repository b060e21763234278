"""A small ResNet for CIFAR (He et al. 2016, section 4.2): 6n + 2 layers.

conv3x3(16)-BN-ReLU, then three stages of n basic blocks with 16, 32 and 64 channels (the first
block of stages 2 and 3 halves the size with stride 2: 32 -> 16 -> 8), global average pooling,
FC num_classes. A basic block is conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU; where
the shape changes the shortcut is a 1x1 conv with stride 2 and batch norm (option B).
"""

from __future__ import annotations

from .. import functional as F
from .. import nn
from ._registry import he_init, register

__all__ = ["BasicBlock", "ResNetCIFAR", "resnet_cifar", "resnet20"]


def _relu_after(conv, bn, y):
    """relu(bn(conv(x))) given y = bn(conv(x)): y itself where nn.utils.fuse folded the batch
    norm into the convolution and moved the ReLU into its epilogue (a second ReLU would be a
    no-op costing a pass over the output)."""
    if conv.fused_relu and type(bn) is nn.Identity:
        return y
    return F.relu(y)


class BasicBlock(nn.Module):
    # for nn.utils.fuse: forward computes bn1(conv1(x)) then a ReLU, and bn2(conv2(.))
    fuse_pairs = (("conv1", "bn1", True), ("conv2", "bn2", False))

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = _relu_after(self.conv1, self.bn1, self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    fuse_pairs = (("conv1", "bn1", True),)  # for nn.utils.fuse: relu(bn1(conv1(x)))

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = _relu_after(self.conv1, self.bn1, self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


@register
def resnet_cifar(depth: int = 20, num_classes: int = 10, in_channels: int = 3):
    """ResNet-``depth`` for 32x32 images; depth = 6n + 2 (20, 32, 44, 56, 110)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet_cifar: depth must be 6n + 2 (20, 32, 44, ...), got {depth}")
    return he_init(ResNetCIFAR((depth - 2) // 6, num_classes, in_channels))


@register
def resnet20(num_classes: int = 10, in_channels: int = 3):
    """ResNet-20 (n = 3, 0.27 M parameters)."""
    return he_init(ResNetCIFAR(3, num_classes, in_channels))
