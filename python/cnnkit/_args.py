"""Argument checks shared by the ops, the functional API and the layers (no tensors here).

Each takes the value, the argument's name and the op (or layer) name for the message, and
returns the value in the form the core wants (Python ints that fit in 64 bits, floats,
C-contiguous float32 arrays). Wrong types raise TypeError, wrong values ValueError, both naming
the op and the argument. Shapes are not checked here: the C++ core validates them.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["float_result", "as_f32", "as_opt_f32", "as_int", "as_pair", "as_size", "as_real",
           "as_dim"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def float_result(arr) -> np.ndarray:
    """Keep a computed result float32 (numpy promotes float32 with float64 arrays to float64);
    integer and boolean results stay as they are."""
    arr = np.asarray(arr)
    if arr.dtype != np.float32 and arr.dtype.kind == "f":
        return arr.astype(np.float32)
    return arr


def as_f32(a) -> np.ndarray:
    """``a`` as a C-contiguous float32 array (a copy only when needed)."""
    # np.asarray(order="C"), not np.ascontiguousarray, which turns 0-d arrays into 1-d
    return np.asarray(a, dtype=np.float32, order="C")


def as_opt_f32(a):
    return None if a is None else as_f32(a)


def _in_int64(v: int, name: str, op: str) -> int:
    v = int(v)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"{op}: {name} must fit in 64 bits, got {v}")
    return v


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def as_int(value, name: str, op: str) -> int:
    """A Python int (not a bool, not a float) that fits in 64 bits."""
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return _in_int64(value, name, op)


def as_pair(value, name: str, op: str) -> tuple:
    """An int or an (h, w) pair of ints, as a tuple of two Python ints (64-bit)."""
    if _is_int(value):
        v = _in_int64(value, name, op)
        return (v, v)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (_in_int64(value[0], name, op), _in_int64(value[1], name, op))
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def as_size(value, name: str, op: str, minimum: int = 0) -> int:
    """A layer size (channels, features): an int >= ``minimum``."""
    v = as_int(value, name, op)
    if v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    return v


def as_real(value, name: str, op: str) -> float:
    """A Python float from a real number (int, float, numpy scalar; not bool, str or None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def as_dim(dim, shape: tuple, op: str) -> int:
    """An axis of an array of ``shape`` (negative counts from the end), checked."""
    dim = as_int(dim, "dim", op)
    ndim = len(shape)
    if ndim < 1:
        raise ValueError(f"{op}: x must have at least one dimension, got shape []")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{op}: dim {dim} is out of range for x of shape {list(shape)} "
                         f"(expected {-ndim} <= dim < {ndim})")
    return dim
