"""cnnkit: convolutional neural networks on the CPU.

A C++17 core (its own thread runtime, AVX-512/AVX2 kernels chosen at run time, a reference path for
every op) under a PyTorch-style Python API.
"""

from __future__ import annotations

import os

from . import _core

_core._init_runtime()  # reads CNNKIT_ISA; a bad value raises ValueError here
if os.environ.get("CNNKIT_CONV_ALGORITHM"):
    _core.set_conv_algorithm(os.environ["CNNKIT_CONV_ALGORITHM"])  # bad value: ValueError

# (cnnkit.onnx imports the onnx package only when exporting)
from . import (
    autograd,
    data,
    distributed,
    ensemble,
    functional,
    metrics,
    models,
    nn,
    onnx,
    ops,
    optim,
    quantization,
    train,
)
from ._version import __version__
from .amp import autocast, bfloat16, get_autocast_dtype, is_autocast_enabled
from .gradcheck import gradcheck
from .io import load, save
from .random import manual_seed
from .runtime import (
    cpu_info,
    get_conv_algorithm,
    get_isa,
    get_num_threads,
    set_conv_algorithm,
    set_isa,
    set_num_threads,
)
from .shapes import conv_output_size
from .summary import summary
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, tensor

__all__ = [
    "cpu_info",
    "autocast",
    "bfloat16",
    "is_autocast_enabled",
    "get_autocast_dtype",
    "get_isa",
    "set_isa",
    "get_conv_algorithm",
    "set_conv_algorithm",
    "get_num_threads",
    "set_num_threads",
    "autograd",
    "ops",
    "tensor",
    "Tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "manual_seed",
    "conv_output_size",
    "functional",
    "nn",
    "optim",
    "summary",
    "gradcheck",
    "save",
    "load",
    "data",
    "models",
    "metrics",
    "train",
    "ensemble",
    "distributed",
    "onnx",
    "quantization",
    "__version__",
]
