"""Ready-made models: ``cnnkit.models.digits_cnn()``, ``lenet5()``, ``cifar_cnn()``,
``alexnet()``, ``resnet20()`` (``resnet_cifar(depth)``).

Every builder records how it was called in ``model.config`` (``{"name": ..., "args": {...}}``),
which checkpoints store so :func:`build` can recreate the architecture before loading weights.
"""

from __future__ import annotations

from ._registry import MODELS, build, register
from .alexnet import alexnet
from .cifar import cifar_cnn
from .digits import digits_cnn, lenet5
from .resnet import resnet20, resnet_cifar

__all__ = ["MODELS", "build", "register", "digits_cnn", "lenet5", "cifar_cnn", "alexnet",
           "resnet_cifar", "resnet20"]
