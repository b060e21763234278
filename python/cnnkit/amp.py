"""Mixed precision: ``cnnkit.autocast`` and ``cnnkit.bfloat16`` (PyTorch's names).

Inside ``with cnnkit.autocast():`` (dtype ``cnnkit.bfloat16``, the only one) the GEMM-shaped ops
-- ``conv2d`` (all strides, paddings, dilations, groups), ``local_conv2d``, ``tiled_conv2d``,
``linear`` and ``matmul`` of float32 operands (any shapes numpy's matmul takes) -- compute with
both operands of every product rounded to bf16 (8 significant bits; round to nearest, ties to
even; float32 denormals become zeros) and sum the products in float32, forward and backward:
the input gradient from bf16 dY and W, the weight gradient from bf16 dY and x. The result,
parameters, ``.grad`` and optimizer state stay float32 (master weights), and every other op
computes as it does outside.
Expected error against exact arithmetic: about 2^-8 sqrt(K) relative for a sum of K products.

The mode is per thread; a backward pass computes in the precision its forward pass ran in.

Inference (grad mode off) inside an autocast block packs each conv / linear weight for the bf16
kernels once and reuses the packing for the rest of the outermost block, as PyTorch caches its
weight casts: an optimizer step or ``load_state_dict`` drops the cache; a weight changed in
place by hand inside the block is not noticed (leave the block first).
The kernels: AMX tiles, AVX512-BF16, or an exact reference emulation (``cpu_info()["bf16_path"]``);
they differ only in the order of the float32 sums.
"""

from __future__ import annotations

import functools
import threading

from . import _core

__all__ = ["bfloat16", "autocast", "is_autocast_enabled", "get_autocast_dtype"]


class dtype:  # noqa: N801 - PyTorch's name
    """A compute precision for ``autocast`` (arrays themselves are always float32)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"cnnkit.{self.name}"


bfloat16 = dtype("bfloat16")


class _State(threading.local):
    # Per thread: the autocast dtype (None outside an enabled block) and the outermost block's
    # packed-weight cache (class defaults: a missing attribute of a plain threading.local
    # costs an AttributeError on every read).
    dtype = None
    cache = None


_state = _State()


def is_autocast_enabled() -> bool:
    """Whether this thread is inside an enabled ``autocast`` block."""
    return _state.dtype is not None


def get_autocast_dtype():
    """The dtype autocast computes with (``cnnkit.bfloat16``)."""
    return bfloat16


def packed_weight(kind: str, weight, pack):
    """``pack(weight)`` for the bf16 kernels, cached until the outermost autocast block ends
    (or :func:`weights_changed`); None outside an enabled block. ``weight`` is kept alive with
    its packing, so its id cannot be reused while the entry exists."""
    cache = _state.cache
    if cache is None or _state.dtype is None:
        return None
    key = (kind, id(weight), weight.shape, _core.get_isa())
    hit = cache.get(key)
    if hit is not None and hit[0] is weight:
        return hit[1]
    packed = pack(weight)
    cache[key] = (weight, packed)
    return packed


_generation = 0  # bumped by weights_changed(): the process-wide version of all weights


def weights_version() -> int:
    """The process-wide weight version: :func:`weights_changed` increments it. Caches of
    derived weights (the fp32 inference cache of a fused model's convolutions) are valid only
    while it stays the same."""
    return _generation


def weights_changed() -> None:
    """Mark every weight as changed: drops this thread's packed bf16 weights and invalidates
    the fp32 inference caches of fused models (via :func:`weights_version`). Optimizer steps,
    ``load_state_dict``, ``nn.init`` and ``Tensor.zero_`` call it; call it yourself after
    writing into a weight's array in place (``w.data[...] = ...``) while a fused model or an
    autocast block that uses it is alive."""
    global _generation
    _generation += 1
    cache = _state.cache
    if cache:
        cache.clear()


def precision() -> str:
    """"bf16" inside an enabled autocast block, else "fp32" (the core's precision argument)."""
    return "fp32" if _state.dtype is None else "bf16"  # is_autocast_enabled()


PRECISIONS = ("fp32", "bf16")


def check_precision(op: str, precision) -> str:
    """``precision`` itself when it is "fp32" or "bf16", else a TypeError/ValueError naming op."""
    if not isinstance(precision, str):
        raise TypeError(f"{op}: precision must be a str, got {type(precision).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"{op}: precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


class autocast:  # noqa: N801 - PyTorch's name
    """Compute conv / linear / matmul with bf16 operands and float32 sums (see the module doc).

    ``with cnnkit.autocast(): y = model(x)`` or ``@cnnkit.autocast()``; ``enabled=False`` turns
    it off inside an outer block. ``dtype`` must be ``cnnkit.bfloat16``. Run the backward pass
    where you like: each op's gradient uses the precision of its forward pass.
    """

    def __init__(self, dtype=bfloat16, enabled: bool = True):
        if dtype is not bfloat16:
            got = dtype if isinstance(dtype, str) else type(dtype).__name__
            raise TypeError(f"autocast: dtype must be cnnkit.bfloat16, got {got!r}")
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast: enabled must be a bool, got {type(enabled).__name__}")
        self.dtype = dtype
        self.enabled = enabled

    def __enter__(self):
        self._prev = _state.dtype
        self._outermost = _state.cache is None
        if self._outermost:
            _state.cache = {}
        _state.dtype = self.dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        _state.dtype = self._prev
        if self._outermost:
            _state.cache = None
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper
