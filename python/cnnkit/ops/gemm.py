"""Matrix products: ``sgemm`` on float32 numpy arrays (no autograd; ``cnnkit.ops.sgemm``) and
``MatMul``, the differentiable ``a @ b`` (numpy's rules; two 2-D float32 operands go through
the C++ SGEMM):

    C = A B:  dA = G B^T,  dB = A^T G   (batched and 1-D operands as numpy promotes them)
"""

from __future__ import annotations

import numpy as np

from .. import _core, amp
from .._args import float_result
from ..autograd.function import Function
from .arithmetic import unbroadcast

__all__ = ["sgemm", "MatMul"]


def sgemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, overwrite_c=False,
          precision="fp32"):
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
    precision : ``"fp32"`` (default) or ``"bf16"``: both operands rounded to bf16 (nearest
        even) and the products summed in float32 (see :mod:`cnnkit.amp`); ``c``, ``alpha`` and
        ``beta`` stay float32.

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
        real = isinstance(v, (int, float, np.integer, np.floating))
        if isinstance(v, (bool, np.bool_)) or not real:
            raise TypeError(f"sgemm: {name} must be a real number, got {type(v).__name__}")
    return _core.sgemm(
        a, b, bool(trans_a), bool(trans_b), float(alpha), float(beta), c, bool(overwrite_c),
        amp.check_precision("sgemm", precision)
    )




def _matrix(x):
    """x itself when sgemm can read it in place (one contiguous axis), else a C-contiguous copy."""
    s0, s1 = x.strides
    if (s1 == 4 and s0 >= 4 * x.shape[1]) or (s0 == 4 and s1 >= 4 * x.shape[0]):
        return x
    return np.ascontiguousarray(x)


class MatMul(Function):
    """Matrix product with numpy's rules (1-D operands, batched stacks broadcast)."""

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        self.a, self.b = a, b
        self.precision = amp.precision()
        if a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32:
            return _core.sgemm(_matrix(a), _matrix(b), precision=self.precision)
        if self.precision == "bf16":
            raise TypeError(
                "matmul: under autocast only two 2-D float32 operands compute in bf16, got "
                f"{a.dtype}[{a.ndim}-D] @ {b.dtype}[{b.ndim}-D]; leave the autocast block or "
                "reshape to 2-D"
            )
        return float_result(np.matmul(a, b))

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32:
            g = np.ascontiguousarray(g, dtype=np.float32)
            pr = self.precision
            da = (_core.sgemm(g, _matrix(b), False, True, precision=pr)
                  if self.needs_input_grad[0] else None)
            db = (_core.sgemm(_matrix(a), g, True, False, precision=pr)
                  if self.needs_input_grad[1] else None)
            return da, db
        # promote 1-D operands as numpy does, then undo the promotion in the gradients
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return float_result(da) if da is not None else None, (
            float_result(db) if db is not None else None
        )
