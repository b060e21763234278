"""Tensor and reverse-mode automatic differentiation (the tape).

The idea is micrograd's at tensor granularity: every differentiable operation is a
:class:`Function`; its ``forward`` computes the result from numpy arrays and saves what its
``backward`` needs on the function object, which becomes the result's ``grad_fn``.
``Tensor.backward()`` sorts the graph that ends at the tensor topologically (iteratively, so deep
networks do not hit Python's recursion limit), then visits each function once in reverse order,
handing it the sum of the gradients flowing into its output. Leaf tensors that require gradients
accumulate them in ``.grad`` (a float32 numpy array) until zeroed.

Element-wise arithmetic, reductions and shape changes live here, in numpy; the network ops
(convolution, pooling, ...) live in :mod:`cnnkit.functional` and call the C++ core.
"""

from __future__ import annotations

import collections
import functools
import threading

import numpy as np

__all__ = [
    "Tensor",
    "Function",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
]

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for autograd in this thread."""
    return getattr(_state, "grad_enabled", True)


class _GradMode:
    """Context manager and decorator that sets whether operations are recorded."""

    enabled = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _state.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Disable gradient recording: ``with cnnkit.no_grad(): ...`` or ``@cnnkit.no_grad()``.

    Results computed inside have ``requires_grad=False`` and hold no graph, so no memory is kept
    for a backward pass (evaluation, optimizer updates).
    """

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Re-enable gradient recording inside a ``no_grad`` block."""

    enabled = True


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


def _float_result(arr) -> np.ndarray:
    """Keep arithmetic results float32 (numpy promotes float32 with float64 arrays)."""
    arr = np.asarray(arr)
    if arr.dtype != np.float32 and arr.dtype.kind == "f":
        return arr.astype(np.float32)
    return arr


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
            grad = _float_result(np.array(grad.data if isinstance(grad, Tensor) else grad,
                                          dtype=np.float32))
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward: grad has shape {list(grad.shape)} but the tensor has shape "
                    f"{list(self.shape)}"
                )
        if self.grad_fn is None:
            self._accumulate(grad)
            return

        order = _topological_order(self.grad_fn)
        pending = {id(self.grad_fn): grad}
        for fn in reversed(order):
            g_out = pending.pop(id(fn), None)
            if g_out is None:  # no gradient reached this function (e.g. an unused branch)
                continue
            grads = fn.backward(g_out)
            if not isinstance(grads, tuple):
                grads = (grads,)
            for parent, g in zip(fn.parents, grads):
                if g is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                    continue
                g = _float_result(g)
                if g.shape != parent.shape:
                    raise RuntimeError(
                        f"{type(fn).__name__}.backward returned a gradient of shape "
                        f"{list(g.shape)} for an input of shape {list(parent.shape)}"
                    )
                if parent.grad_fn is None:
                    parent._accumulate(g)
                else:
                    key = id(parent.grad_fn)
                    if key in pending:
                        pending[key] = pending[key] + g
                    else:
                        pending[key] = g

    def _accumulate(self, g: np.ndarray) -> None:
        target = getattr(self, "_grad_target", None)
        if target is not None and (self.grad is None or self.grad is target):
            # a preassigned gradient array (cnnkit.distributed's flat allreduce buffer):
            # written and then accumulated in place, so .grad stays a view of that buffer
            if self.grad is None:
                np.copyto(target, g)
                self.grad = target
            else:
                target += g
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=np.float32, copy=True)
        else:
            self.grad = self.grad + g

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
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
        from . import functional

        return functional.relu(self)

    def sigmoid(self):
        from . import functional

        return functional.sigmoid(self)

    def tanh(self):
        from . import functional

        return functional.tanh(self)

    def softmax(self, dim):
        from . import functional

        return functional.softmax(self, dim)

    def log_softmax(self, dim):
        from . import functional

        return functional.log_softmax(self, dim)

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


def _topological_order(root: Function) -> list:
    """Functions reachable from ``root``, each after every function that feeds it.

    Iterative depth-first search with an explicit stack: a 10,000-layer chain is fine.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for p in fn.parents:
            if isinstance(p, Tensor) and p.grad_fn is not None and id(p.grad_fn) not in visited:
                stack.append((p.grad_fn, False))
    return order


class Function:
    """One differentiable operation.

    Subclasses implement ``forward(self, *arrays, **options) -> np.ndarray`` (inputs arrive as
    numpy arrays, or as given when they are not tensors) and ``backward(self, grad) -> tuple``
    with one gradient (or None) per positional input. ``self.needs_input_grad`` says which
    inputs need one. ``apply`` builds the output tensor and, when recording, links it into the
    graph.
    """

    parents: tuple = ()
    needs_input_grad: tuple = ()

    @classmethod
    def apply(cls, *inputs, **options):
        fn = cls()
        record = is_grad_enabled() and any(
            isinstance(t, Tensor) and t.requires_grad for t in inputs
        )
        fn.needs_input_grad = tuple(
            record and isinstance(t, Tensor) and t.requires_grad for t in inputs
        )
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        out = Tensor(fn.forward(*arrays, **options))
        if record:
            out.requires_grad = True
            out.grad_fn = fn
            fn.parents = inputs
        return out

    def forward(self, *args, **options):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes numpy broadcast to reach it from ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _shape(x) -> tuple:
    return np.shape(x)


class Add(Function):
    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return _float_result(np.add(a, b))

    def backward(self, g):
        need = self.needs_input_grad
        return (_unbroadcast(g, self.shapes[0]) if need[0] else None,
                _unbroadcast(g, self.shapes[1]) if need[1] else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return _float_result(np.subtract(a, b))

    def backward(self, g):
        need = self.needs_input_grad
        return (_unbroadcast(g, self.shapes[0]) if need[0] else None,
                _unbroadcast(-g, self.shapes[1]) if need[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return _float_result(np.multiply(a, b))

    def backward(self, g):
        da = _unbroadcast(g * self.b, _shape(self.a)) if self.needs_input_grad[0] else None
        db = _unbroadcast(g * self.a, _shape(self.b)) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return _float_result(np.divide(a, b))

    def backward(self, g):
        da = _unbroadcast(g / self.b, _shape(self.a)) if self.needs_input_grad[0] else None
        db = None
        if self.needs_input_grad[1]:
            db = _unbroadcast(-g * self.a / (np.asarray(self.b) ** 2), _shape(self.b))
        return da, db


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return _float_result(np.power(a, np.float32(exponent)))

    def backward(self, g):
        p = self.exponent
        return (g * np.float32(p) * np.power(self.a, np.float32(p - 1)),)


class Exp(Function):
    def forward(self, a):
        self.y = np.exp(a)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % max(ndim, 1) for d in dim)


class Sum(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        return _float_result(np.sum(a, axis=self.axes, keepdims=keepdim))

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.axes)
        return (np.broadcast_to(g, self.shape).astype(np.float32),)


class Mean(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, _axes(dim, a.ndim), keepdim
        self.count = int(np.prod([a.shape[i] for i in self.axes])) if a.ndim else 1
        return _float_result(np.mean(a, axis=self.axes, keepdims=keepdim))

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.axes)
        return (np.broadcast_to(g / np.float32(self.count), self.shape).astype(np.float32),)


class MaxAll(Function):
    def forward(self, a):
        self.a = a
        self.m = np.max(a)
        return np.asarray(self.m, dtype=a.dtype)

    def backward(self, g):
        mask = (self.a == self.m).astype(np.float32)
        return (mask * (g / mask.sum()),)


class MaxDim(Function):
    def forward(self, a, dim, keepdim):
        self.shape, self.dim, self.keepdim = a.shape, dim % a.ndim, keepdim
        self.idx = np.expand_dims(np.argmax(a, axis=self.dim), self.dim)
        out = np.take_along_axis(a, self.idx, axis=self.dim)
        return out if keepdim else np.squeeze(out, self.dim)

    def backward(self, g):
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        dx = np.zeros(self.shape, dtype=np.float32)
        np.put_along_axis(dx, self.idx, g, axis=self.dim)
        return (dx,)


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return np.transpose(a, axes)

    def backward(self, g):
        return (np.transpose(g, np.argsort(self.axes)),)


class Index(Function):
    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        return np.array(a[index])

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=np.float32)
        np.add.at(dx, self.index, g)  # add.at: repeated indices accumulate
        return (dx,)


def _sgemm():
    from . import _core

    return _core.sgemm


def _matrix(x):
    """x itself when sgemm can read it in place (one contiguous axis), else a C-contiguous copy."""
    s0, s1 = x.strides
    if (s1 == 4 and s0 >= 4 * x.shape[1]) or (s0 == 4 and s1 >= 4 * x.shape[0]):
        return x
    return np.ascontiguousarray(x)


class MatMul(Function):
    """Matrix product with numpy's rules (1-D operands, batched stacks broadcast).

    Two 2-D float32 operands go through the C++ SGEMM.
    """

    def forward(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        self.a, self.b = a, b
        if a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32:
            return _sgemm()(_matrix(a), _matrix(b))
        return _float_result(np.matmul(a, b))

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32:
            g = np.ascontiguousarray(g, dtype=np.float32)
            sgemm = _sgemm()
            da = sgemm(g, _matrix(b), False, True) if self.needs_input_grad[0] else None
            db = sgemm(_matrix(a), g, True, False) if self.needs_input_grad[1] else None
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
            da = _unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = _unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return _float_result(da) if da is not None else None, (
            _float_result(db) if db is not None else None
        )

