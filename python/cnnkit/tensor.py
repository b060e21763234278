"""``Tensor``: an n-dimensional float32 array that records the operations applied to it.

A Tensor holds its values (``.data``, a numpy array), and, for autograd, ``requires_grad``,
``grad_fn`` (the Function that made it; None for leaves) and ``.grad`` (what ``backward()``
accumulated in a leaf). Its methods are the array API PyTorch users know (arithmetic,
reductions, shapes, indexing, ``relu()``, ``softmax()``): each applies one of the Functions of
:mod:`cnnkit.ops`. The tape itself (Function, grad mode, the backward engine) is
:mod:`cnnkit.autograd`; the network ops are :mod:`cnnkit.functional`.
"""

from __future__ import annotations

import collections

import numpy as np

from . import amp, autograd
from ._args import as_dim, float_result
from .autograd.function import Function, register_tensor_type, untracked
from .autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from .ops.activation import ReLUFunction, SigmoidFunction, TanhFunction
from .ops.arithmetic import Abs, Add, Div, Exp, Log, Mul, Neg, Pow, Sub
from .ops.gemm import MatMul
from .ops.loss import LogSoftmaxFunction, SoftmaxFunction
from .ops.reduction import MaxAll, MaxDim, Mean, Sum
from .ops.shape import Index, Permute, Reshape

__all__ = [
    "Tensor",
    "tensor",
    "Function",  # cnnkit.autograd.Function, also importable from here
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
]


def _as_array(data, dtype=None) -> np.ndarray:
    """Convert to the array a Tensor stores: floats become float32, integers stay int64."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=dtype)
    arr = np.asarray(data)
    if arr.dtype == np.float32:
        return arr
    if arr.dtype.kind in "fc" or arr.dtype == object:
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    return arr  # bool


class Tensor:
    """An n-dimensional float32 array that records the operations applied to it.

    Attributes
    ----------
    data : np.ndarray
        The values (float32 for anything differentiable; int64 for labels and indices).
    grad : np.ndarray or None
        Accumulated gradient of a leaf tensor, same shape as ``data``; None until a backward
        pass reaches it or after ``zero_grad``.
    requires_grad : bool
        Whether operations on this tensor are recorded for differentiation.
    grad_fn : Function or None
        The operation that produced this tensor (None for leaves).
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        arr = _as_array(data, dtype)
        if requires_grad and arr.dtype.kind != "f":
            arr = arr.astype(np.float32)
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self._grad_accumulator = None

    @classmethod
    def _wrap(cls, data) -> Tensor:
        """A tensor holding an op's result: a float32 ndarray as it is (the common case, without
        __init__'s conversions), anything else as ``Tensor(data)`` converts it."""
        if type(data) is np.ndarray and data.dtype == np.float32:
            t = object.__new__(cls)
            t.data = data
            t.grad = None
            t.requires_grad = False
            t.grad_fn = None
            t._grad_accumulator = None
            return t
        return cls(data)

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:  # noqa: N802 - numpy/PyTorch name
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (shares memory with the tensor)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): tensor has {self.data.size} elements, expected 1")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing the values, cut from the graph (``requires_grad=False``)."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: only leaf tensors can change requires_grad")
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and self.data.dtype.kind != "f":
            self.data = self.data.astype(np.float32)
        return self

    def zero_(self) -> Tensor:
        self.data[...] = 0
        amp.weights_changed()  # if this is a weight, caches derived from it are stale
        return self

    def float(self) -> Tensor:
        return Tensor(self.data.astype(np.float32)) if self.data.dtype != np.float32 else self

    def long(self) -> Tensor:
        return Tensor(self.data.astype(np.int64))

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.grad_fn is not None:
            extra = f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        if self.data.dtype not in (np.float32,):
            extra = f", dtype={self.data.dtype}" + extra
        return f"tensor({body}{extra})"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None) -> None:
        """Back-propagate from this tensor, accumulating into the leaves' ``.grad``.

        Parameters
        ----------
        grad : array-like, optional
            Gradient of the final objective with respect to this tensor, same shape. May be
            omitted only for a one-element tensor (it is then 1).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: tensor does not require grad and has no grad_fn "
                "(was it computed under no_grad, or from tensors without requires_grad=True?)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for one-element tensors, "
                    f"this one has shape {list(self.shape)}"
                )
            grad = np.ones_like(self.data, dtype=np.float32)
        else:
            grad = float_result(np.array(grad.data if isinstance(grad, Tensor) else grad,
                                          dtype=np.float32))
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward: grad has shape {list(grad.shape)} but the tensor has shape "
                    f"{list(self.shape)}"
                )
        autograd.backward(self, grad)

    def register_grad_accumulator(self, accumulator):
        """Let ``accumulator(tensor, grad)`` receive the gradients that reach this leaf in
        ``backward()``, instead of the default (``.grad = grad``, then ``.grad = .grad + grad``).
        cnnkit.distributed uses it to write gradients straight into one flat allreduce buffer.
        One accumulator per tensor; returns a handle whose ``remove()`` restores the default.
        """
        if not callable(accumulator):
            raise TypeError(f"register_grad_accumulator: accumulator must be callable as "
                            f"accumulator(tensor, grad), got {type(accumulator).__name__}")
        if not self.is_leaf:
            raise RuntimeError("register_grad_accumulator: only leaf tensors accumulate gradients")
        if self._grad_accumulator is not None:
            raise RuntimeError("register_grad_accumulator: this tensor already has one")
        self._grad_accumulator = accumulator
        return _AccumulatorHandle(self, accumulator)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        if type(other) is Tensor and untracked():  # inference (a residual sum): no Function
            return Tensor._wrap(float_result(np.add(self.data, other.data)))
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; the exponent must be a number")
        return Pow.apply(self, exponent=float(exponent))

    def __rpow__(self, base):
        # base ** x = exp(x * ln(base)) for a positive number base
        return Exp.apply(self * float(np.log(base)))

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Pow.apply(self, exponent=0.5)

    def abs(self):
        return Abs.apply(self)

    def relu(self):
        return ReLUFunction.apply(self)

    def sigmoid(self):
        return SigmoidFunction.apply(self)

    def tanh(self):
        return TanhFunction.apply(self)

    def softmax(self, dim):
        return SoftmaxFunction.apply(self, dim=as_dim(dim, self.shape, "softmax"))

    def log_softmax(self, dim):
        return LogSoftmaxFunction.apply(self, dim=as_dim(dim, self.shape, "log_softmax"))

    # comparisons: results carry no gradient
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other):  # noqa: D105 - element-wise, like PyTorch
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    # ----------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim: bool = False):
        return Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return Mean.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim: bool = False):
        """Largest value. With ``dim``, returns ``(values, indices)`` like PyTorch.

        The gradient is routed to the maximum: to the index along ``dim``; for the whole-tensor
        maximum it is shared equally among tied maxima (as ``torch.max()`` does).
        """
        if dim is None:
            return MaxAll.apply(self)
        values = MaxDim.apply(self, dim=dim, keepdim=keepdim)
        idx = np.argmax(self.data, axis=dim)
        if keepdim:
            idx = np.expand_dims(idx, dim)
        return _MaxResult(values, Tensor(idx.astype(np.int64)))

    def argmax(self, dim=None, keepdim: bool = False):
        if dim is None:
            return Tensor(np.int64(np.argmax(self.data)))
        idx = np.argmax(self.data, axis=dim)
        if keepdim:
            idx = np.expand_dims(idx, dim)
        return Tensor(idx.astype(np.int64))

    # ----------------------------------------------------------------- shapes
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:]
        if self.ndim == 0:
            shape = (1,)
        return self.reshape(shape)

    def transpose(self, dim0: int, dim1: int):
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Permute.apply(self, axes=tuple(axes))

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def unsqueeze(self, dim: int):
        d = dim % (self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        d = dim % self.ndim
        if self.shape[d] != 1:
            return self
        return self.reshape(self.shape[:d] + self.shape[d + 1:])

    def __getitem__(self, index):
        return Index.apply(self, index=_plain_index(index))


_MaxResult = collections.namedtuple("max", ["values", "indices"])


def _plain_index(index):
    """Replace Tensors inside an index by their numpy arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Create a tensor from a number, nested lists, a numpy array or another tensor (copied).

    Floating-point data becomes float32 and integer data int64 (class labels); with
    ``requires_grad=True`` the data is always float32.
    """
    if isinstance(data, Tensor):
        data = data.data
    arr = np.array(data, dtype=dtype, copy=True)
    return Tensor(arr, requires_grad=requires_grad)


class _AccumulatorHandle:
    def __init__(self, tensor, accumulator):
        self._tensor, self._accumulator = tensor, accumulator

    def remove(self):
        if self._tensor._grad_accumulator is self._accumulator:
            self._tensor._grad_accumulator = None


register_tensor_type(Tensor)
