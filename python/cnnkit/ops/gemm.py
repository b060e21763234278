"""Matrix products: ``sgemm`` on float32 numpy arrays (no autograd; ``cnnkit.ops.sgemm``) and
``MatMul``, the differentiable ``a @ b`` with numpy's rules (1-D operands promoted, batch dims
broadcast):

    C = A B:  dA = G B^T,  dB = A^T G   (each summed over the batch dims its operand broadcast)

Two float32 operands of any shape compute with the C++ SGEMM, forward and backward, never
with numpy/OpenBLAS (whose spinning worker threads slow cnnkit's next GEMM): one GEMM per
matrix of the broadcast batch, written straight into the result, or one GEMM for the whole
batch where the layout allows it (``[B, M, K] @ [K, N]``, Linear on 3-D input, is one
``[B*M, K] x [K, N]`` product; its weight gradient one ``[K, B*M] x [B*M, N]`` product).
Under ``cnnkit.autocast`` they compute in bf16 (``precision="bf16"`` on every SGEMM).

Any other dtype pair (float64, integers, float32 mixed with either) is not a training or
inference path -- cnnkit tensors are float32 -- and keeps numpy's semantics: ``np.matmul``
computes it (in float64 for floats) and floating results are stored as float32, like every
cnnkit op's; under autocast such operands raise TypeError.
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


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _matmul_shapes(a_shape, b_shape):
    """The broadcast batch shape of ``a @ b`` (operands after 1-D promotion), or a ValueError
    naming matmul and both shapes where numpy's rules reject them."""
    shapes = f"(a: {_shape_str(a_shape)}, b: {_shape_str(b_shape)})"
    for name, shape in (("a", a_shape), ("b", b_shape)):
        if len(shape) == 0:
            raise ValueError(f"matmul: {name} must have at least 1 dimension, got a 0-D array "
                             f"{shapes}")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        b_axis = "b's only" if len(b_shape) == 1 else "b's second-to-last"
        raise ValueError(f"matmul: a's last dimension ({k_a}) must equal {b_axis} dimension "
                         f"({k_b}) {shapes}")
    batch_a = tuple(a_shape[:-2])
    batch_b = tuple(b_shape[:-2])
    try:
        return np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        raise ValueError(
            f"matmul: batch dimensions {_shape_str(batch_a)} of a and {_shape_str(batch_b)} of b "
            f"do not broadcast {shapes}"
        ) from None


def _readable(x) -> bool:
    """Whether ``_core.sgemm`` reads each matrix of ``x`` (its last two axes) in place: one
    contiguous axis, positive strides (the bindings' rule, cpp/bindings/arrays.hpp)."""
    rows, cols = x.shape[-2:]
    if rows == 0 or cols == 0:
        return True
    if not x.flags.aligned:
        return False
    s0, s1 = x.strides[-2:]

    def fits(stride, n):
        return stride > 0 and stride % 4 == 0 and stride // 4 >= n

    row_major = (s1 == 4 or cols <= 1) and (rows <= 1 or fits(s0, cols))
    col_major = (s0 == 4 or rows <= 1) and (cols <= 1 or fits(s1, rows))
    return row_major or col_major


def _operand(x):
    """``x`` itself when sgemm can read its matrices in place, else one C-contiguous copy (made
    once, not once per batch entry that uses it)."""
    return x if _readable(x) else np.ascontiguousarray(x)


def _flat(x, rows):
    """``x`` [..., m, k] as a [rows, k] view sgemm reads in place (rows = all m-rows of the
    batch), or None where that needs a copy (then the batch is looped instead)."""
    if x.size:
        dims = [(n, st) for n, st in zip(x.shape[:-1], x.strides[:-1]) if n != 1]
        if any(st != n * st2 for (_, st), (n, st2) in zip(dims, dims[1:])):
            return None
    r = x.reshape(rows, x.shape[-1])
    return r if _readable(r) else None


def _count(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _batched(a, b, trans_a, trans_b, out_batch, precision, result_shape):
    """``op(a[i]) @ op(b[i])`` over the broadcast batch of ``a`` and ``b`` (float32 arrays with
    >= 2 dims), each summed into its entry of ``out_batch``: the full broadcast batch for a
    forward, ``a``'s or ``b``'s batch shape for a gradient (unbroadcast as the GEMMs go).
    Every product is an sgemm writing straight into the result, a new C-contiguous array of
    ``result_shape`` (``out_batch + [M, N]`` with any 1-D promotion undone), not a view."""
    a, b = _operand(a), _operand(b)
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    full = np.broadcast_shapes(batch_a, batch_b)
    m = a.shape[-1] if trans_a else a.shape[-2]
    n = b.shape[-2] if trans_b else b.shape[-1]
    count, count_out = _count(full), _count(out_batch)
    out_shape = tuple(out_batch) + (m, n)
    # an empty batch sums to zeros; otherwise every entry is written with beta = 0 first
    result = (np.zeros if count == 0 else np.empty)(result_shape, np.float32)
    out = result.reshape(out_shape)  # a view: the GEMMs write through it

    # The whole batch as one GEMM where the layout allows it.
    if not trans_a and _count(batch_b) == 1 and count_out == count:
        # [B..., M, K] x one [K, N] (forward, and dA = G B^T): [B*M, K] x [K, N]
        a_flat = _flat(a, count * m)
        if a_flat is not None:
            _core.sgemm(a_flat, b.reshape(b.shape[-2:]), False, trans_b, 1.0, 0.0,
                        out.reshape(count * m, n), True, precision)
            return result
    if trans_a and not trans_b and count_out == 1 and _count(batch_a) == _count(batch_b) == count:
        # sum_i A_i^T G_i over a batch neither operand broadcast (dB of the case above):
        # [K, B*M] x [B*M, N]
        a_flat, b_flat = _flat(a, count * a.shape[-2]), _flat(b, count * b.shape[-2])
        if a_flat is not None and b_flat is not None:
            _core.sgemm(a_flat, b_flat, True, False, 1.0, 0.0, out.reshape(m, n), True,
                        precision)
            return result

    nf = len(full)

    def index_map(shape):  # full-batch index -> index into a batch of ``shape`` (right-aligned)
        return [(nf - len(shape) + i, d == 1) for i, d in enumerate(shape)]

    map_a, map_b, map_o = index_map(batch_a), index_map(batch_b), index_map(out_batch)
    reduce = count_out != count
    written = set()
    for idx in np.ndindex(*full):
        ia = tuple(0 if one else idx[j] for j, one in map_a)
        ib = tuple(0 if one else idx[j] for j, one in map_b)
        io = tuple(0 if one else idx[j] for j, one in map_o)
        beta = 0.0
        if reduce:  # accumulate into an entry that an earlier product already wrote
            beta = 1.0 if io in written else 0.0
            written.add(io)
        _core.sgemm(a[ia], b[ib], trans_a, trans_b, 1.0, beta, out[io], True, precision)
    return result


class MatMul(Function):
    """``a @ b`` with numpy's rules (1-D operands promoted, batch dims broadcast); two float32
    operands compute with the C++ SGEMM forward and backward (see the module doc)."""

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        self.a, self.b = a, b
        self.precision = amp.precision()
        self.batch = _matmul_shapes(a.shape, b.shape)
        self.use_sgemm = a.dtype == np.float32 and b.dtype == np.float32
        if not self.use_sgemm:
            if self.precision == "bf16":
                raise TypeError(
                    f"matmul: under autocast both operands must be float32 (they compute in "
                    f"bf16), got {a.dtype} @ {b.dtype} (a: {_shape_str(a.shape)}, b: "
                    f"{_shape_str(b.shape)}); convert them with .astype(np.float32) or leave "
                    "the autocast block"
                )
            return float_result(np.matmul(a, b))
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        return _batched(a2, b2, False, False, self.batch, self.precision, self._out_shape())

    def _out_shape(self):
        a, b = self.a, self.b
        return (tuple(self.batch) + ((a.shape[-2],) if a.ndim >= 2 else ())
                + ((b.shape[-1],) if b.ndim >= 2 else ()))

    def backward(self, g):
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad[:2]
        # promote 1-D operands as numpy does, then undo the promotion in the gradients
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if self.use_sgemm:
            g2 = np.asarray(g, dtype=np.float32).reshape(
                tuple(self.batch) + (a2.shape[-2], b2.shape[-1]))
            pr = self.precision
            da = _batched(g2, b2, False, True, a2.shape[:-2], pr, a.shape) if need_a else None
            db = _batched(a2, g2, True, False, b2.shape[:-2], pr, b.shape) if need_b else None
            return da, db
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = db = None
        if need_a:
            da = float_result(
                unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape))
        if need_b:
            db = float_result(
                unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape))
        return da, db
