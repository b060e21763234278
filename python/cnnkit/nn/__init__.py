"""Neural-network modules with PyTorch's names: ``import cnnkit.nn as nn``."""

from .. import functional
from . import init, utils
from .activation import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Tanh
from .conv import Conv2d, LocallyConnected2d, TiledConv2d
from .dropout import Dropout
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss, MultiMarginLoss
from .module import Flatten, Identity, Module, ModuleList, Parameter, Sequential, eval_mode
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, LocalResponseNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "functional", "init", "utils",
    "Module", "Parameter", "Sequential", "ModuleList", "Identity", "Flatten", "eval_mode",
    "Conv2d", "LocallyConnected2d", "TiledConv2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Maxout",
    "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "GroupNorm", "LayerNorm", "Dropout",
    "Linear",
    "CrossEntropyLoss", "MultiMarginLoss", "MSELoss",
]
