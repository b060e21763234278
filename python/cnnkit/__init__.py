"""cnnkit: convolutional neural networks on the CPU.

A C++17 core (OpenMP threads, AVX-512/AVX2 kernels chosen at run time, a reference path for
every op) under a PyTorch-style Python API.
"""

from __future__ import annotations

import numbers
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
from . import train  # noqa: E402
from . import ensemble  # noqa: E402
from . import distributed  # noqa: E402
from . import onnx  # noqa: E402  (imports the onnx package only when exporting)

__version__ = "0.1.0"


def cpu_info() -> dict:
    """What the CPU offers and what cnnkit uses.

    Returns a dict with ``vendor``, ``brand``, ``features`` (CPUID bits confirmed by the OS
    through XGETBV), ``supported_isas``, ``best_isa``, ``isa`` (in use), ``num_threads``,
    ``openmp`` and ``sgemm_tile`` (the micro-kernel's MR x NR).
    """
    return _core.cpu_info()


def get_isa() -> str:
    """The instruction set whose kernels are in use: ``"ref"``, ``"avx2"`` or ``"avx512"``."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force the kernels of one instruction set (``"ref"``, ``"avx2"`` or ``"avx512"``).

    The environment variable ``CNNKIT_ISA`` does the same at import. Raises ValueError for an
    unknown name or one this CPU cannot run.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    _core.set_isa(name)


def get_conv_algorithm() -> str:
    """How 3x3/5x5 stride-1 convolutions run: ``"auto"``, ``"direct"`` or ``"winograd"``."""
    return _core.get_conv_algorithm()


def set_conv_algorithm(name: str) -> None:
    """Choose the algorithm of stride-1, dilation-1, ungrouped convolutions (all passes).

    - ``"auto"`` (default): Winograd F(4x4, 3x3) for 3x3 and 5x5 filters (a 5x5 one as four
      3x3 pieces) where the CPU has its SIMD transforms (AVX-512 or AVX2) and the layer has
      at least 16 input and 16 output channels; the direct implicit GEMM elsewhere. Winograd
      does 4x (5x5: 2.8x) fewer multiplications; its results differ from the direct sum by a
      few float32 roundings (relative error ~1e-6 to 1e-5).
    - ``"direct"``: always the implicit GEMM (like PyTorch's CPU convolution).
    - ``"winograd"``: Winograd wherever it applies (filters 2x2 to 9x9), on every
      instruction set.

    The environment variable ``CNNKIT_CONV_ALGORITHM`` does the same at import.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_conv_algorithm: name must be a str, got {type(name).__name__}")
    _core.set_conv_algorithm(name)


def get_num_threads() -> int:
    """Threads each op uses (default: OpenMP's default, which honours OMP_NUM_THREADS)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads each op uses; ``n`` must be an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(int(n))


__all__ = [
    "cpu_info",
    "get_isa",
    "set_isa",
    "get_conv_algorithm",
    "set_conv_algorithm",
    "get_num_threads",
    "set_num_threads",
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
    "train",
    "ensemble",
    "distributed",
    "onnx",
    "__version__",
]
