"""Low-level array operations on float32 numpy arrays (no autograd)."""

from __future__ import annotations

import numpy as np

from . import _core


def sgemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, overwrite_c=False):
    """Single-precision matrix product ``alpha * op(a) @ op(b) + beta * c``.

    Parameters
    ----------
    a : np.ndarray, float32, shape [M, K] (or [K, M] with ``trans_a=True``)
    b : np.ndarray, float32, shape [K, N] (or [N, K] with ``trans_b=True``)
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b``.
    alpha, beta : float
        Scale factors. With ``beta == 0``, ``c`` is never read (NaN in it does not leak).
    c : np.ndarray, float32, shape [M, N], optional
        Added as ``beta * c``; required when ``beta != 0``.
    overwrite_c : bool
        Write the result into ``c`` (which must have contiguous rows) instead of a new array.

    Returns
    -------
    np.ndarray, float32, shape [M, N]

    Arrays are used as they are, without copies: any 2-D float32 array with one contiguous axis
    works (C or Fortran order, ``.T`` views, row slices). Other dtypes raise TypeError; shapes
    that do not chain raise ValueError naming both shapes.
    """
    for name, v in (("trans_a", trans_a), ("trans_b", trans_b), ("overwrite_c", overwrite_c)):
        if not isinstance(v, (bool, np.bool_, int, np.integer)) or v not in (0, 1):
            raise TypeError(f"sgemm: {name} must be a bool, got {v!r}")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"sgemm: {name} must be a real number, got {type(v).__name__}")
    return _core.sgemm(
        a, b, bool(trans_a), bool(trans_b), float(alpha), float(beta), c, bool(overwrite_c)
    )


__all__ = ["sgemm"]
