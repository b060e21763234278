"""The run-time settings of the C++ core: instruction set, threads, convolution algorithm,
and what the CPU offers (``cnnkit.cpu_info()`` and the others, re-exported by the package)."""

from __future__ import annotations

import numbers

from . import _core

__all__ = ["cpu_info", "get_isa", "set_isa", "get_conv_algorithm", "set_conv_algorithm",
           "get_num_threads", "set_num_threads"]


def cpu_info() -> dict:
    """What the CPU offers and what cnnkit uses.

    Returns a dict with ``arch`` (``"x86_64"`` or ``"aarch64"``: the build's target; the x86
    kernel folders exist only in x86_64 builds, the neon folder only in aarch64 ones),
    ``vendor``, ``brand``, ``features`` (x86: CPUID bits confirmed by the OS
    through XGETBV, for AMX also whether Linux granted the tile data; aarch64: Advanced SIMD
    and the HWCAP bits of SVE, the dot products, BF16 and I8MM), ``supported_isas``,
    ``best_isa``, ``isa`` (in use), ``num_threads``, ``thread_binding`` (how cnnkit's worker
    threads are bound to CPUs, in words), ``sgemm_tile`` (the
    micro-kernel's MR x NR), ``caches`` (L1D / L2 per core and L3 in bytes, from CPUID leaf 4
    or 0x8000001D; ``from_cpuid`` False when the CPU reports neither and Zen 4's sizes are
    assumed), ``sgemm_blocking`` (the K block ``kc`` and the per-thread packed B chunk
    ``b_chunk_floats`` derived from those caches), ``bf16_path`` (the bf16 micro-kernel that
    :class:`cnnkit.autocast` uses: ``"amx"``, ``"avx512_bf16"`` or ``"ref"``, the exact
    emulation) and ``bf16_path_reason`` (why a faster one is not in use: the CPU lacks it,
    Linux refused the AMX tile data, or ``CNNKIT_ISA`` / :func:`set_isa` chose a lower level;
    empty when none is).
    """
    return _core.cpu_info()


def get_isa() -> str:
    """The instruction set whose kernels are in use: ``"ref"``, ``"avx2"``, ``"avx512"``,
    ``"avx512_bf16"`` or ``"amx"`` (the last two add bf16 kernels; fp32 runs AVX-512 there) on
    x86-64; ``"ref"`` or ``"neon"`` on aarch64."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force the kernels of one instruction set (``"ref"``, ``"avx2"``, ``"avx512"``,
    ``"avx512_bf16"`` or ``"amx"``; each level is the one below plus its own kernels, so
    ``"avx512"`` on an AMX machine runs bf16 on the reference emulation); on aarch64 ``"ref"``
    or ``"neon"``.

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
      at least 16 input and 16 output channels; the direct implicit GEMM elsewhere, and for
      the backward passes of layers with few 4x4 output tiles in the batch (batch 1-2 at
      13x13, 512 channels at 7x7 and batch 8: these transform the filters on every call,
      which the tiles no longer pay for). Winograd does 4x (5x5: 2.8x) fewer
      multiplications; its results differ from the direct sum by a few float32 roundings
      (relative error ~1e-6 to 1e-5).
    - ``"direct"``: always the implicit GEMM (like PyTorch's CPU convolution).
    - ``"winograd"``: Winograd wherever it applies (filters 2x2 to 9x9), on every
      instruction set.

    The environment variable ``CNNKIT_CONV_ALGORITHM`` does the same at import.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_conv_algorithm: name must be a str, got {type(name).__name__}")
    _core.set_conv_algorithm(name)


def get_num_threads() -> int:
    """Threads each op uses (default: ``OMP_NUM_THREADS`` when set, else the CPUs the process
    may run on: its affinity mask)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads each op uses; ``n`` must be an integer in [1, 512]."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1 or n > 512:
        raise ValueError(f"set_num_threads: n must be in [1, 512], got {n}")
    _core.set_num_threads(int(n))
