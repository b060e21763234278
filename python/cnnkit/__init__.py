"""cnnkit: convolutional neural networks on the CPU.

A C++17 core (OpenMP threads, AVX-512/AVX2 kernels chosen at run time, a reference path for
every op) under a PyTorch-style Python API.
"""

from __future__ import annotations

import os

# OpenMP threads that finish a parallel region spin for a while before sleeping (libgomp's
# default is ~300,000 spins). When anything else wants a core (another process, the data
# loader's thread), a spinning worker holds it while the thread everyone waits for is not
# scheduled: measured here, a cifar_cnn training step on 2 threads took 867 ms with the default
# under load against 476 ms with a short spin (and 307 ms on 1 thread). A short spin keeps
# back-to-back regions fast on an idle machine. Set before libgomp loads (with _core); an
# explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

from . import _core  # noqa: E402

_core._init_runtime()  # reads CNNKIT_ISA; a bad value raises ValueError here
if os.environ.get("CNNKIT_CONV_ALGORITHM"):
    _core.set_conv_algorithm(os.environ["CNNKIT_CONV_ALGORITHM"])  # bad value: ValueError

from ._version import __version__  # noqa: E402
from .runtime import (cpu_info, get_conv_algorithm, get_isa, get_num_threads,  # noqa: E402
                      set_conv_algorithm, set_isa, set_num_threads)
from . import autograd  # noqa: E402
from . import ops  # noqa: E402
from .random import manual_seed  # noqa: E402
from .shapes import conv_output_size  # noqa: E402
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, tensor  # noqa: E402
from . import functional  # noqa: E402
from . import nn  # noqa: E402
from . import optim  # noqa: E402
from .gradcheck import gradcheck  # noqa: E402
from .summary import summary  # noqa: E402
from .io import load, save  # noqa: E402
from . import data  # noqa: E402
from . import models  # noqa: E402
from . import metrics  # noqa: E402
from . import distributed  # noqa: E402
from . import train  # noqa: E402
from . import ensemble  # noqa: E402
from . import onnx  # noqa: E402  (imports the onnx package only when exporting)

__all__ = [
    "cpu_info",
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
    "__version__",
]
