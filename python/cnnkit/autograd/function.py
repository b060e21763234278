"""``Function``: one differentiable operation, and how applying it builds the graph.

An operation's ``forward`` computes its result from numpy arrays and saves on the function
object what its ``backward`` needs; ``apply`` wraps the result in a tensor whose ``grad_fn`` is
that object, with the input tensors as its ``parents`` (when recording). The op families in
:mod:`cnnkit.ops` are Functions; so is anything a user writes the same way.

The autograd layer sits below the tensor type, so it does not import it: :mod:`cnnkit.tensor`
registers ``Tensor`` here (:func:`register_tensor_type`) as the class results are made of and
inputs are recognised by.

:func:`record_applications` lets a caller see every operation a block of code applies (the ONNX
exporter traces a model with it).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import NamedTuple

from .grad_mode import _state as _grad_state
from .grad_mode import is_grad_enabled

__all__ = ["Function", "Application", "record_applications", "register_tensor_type"]

_tensor_type = None  # the Tensor class, registered by cnnkit.tensor


class _Local(threading.local):
    """Per thread: the list record_applications fills (None outside one) and the nesting
    depth of Function.apply calls (class defaults: a missing attribute of a plain
    threading.local costs an AttributeError on every read)."""

    records = None
    depth = 0


_local = _Local()


def register_tensor_type(cls) -> None:
    """Make ``cls`` the type of the tensors ``Function.apply`` recognises and returns."""
    global _tensor_type
    _tensor_type = cls


def recording() -> bool:
    """True inside a :func:`record_applications` block on this thread (a trace, e.g. the ONNX
    export's, wants every op as a Function application)."""
    return _local.records is not None


def untracked() -> bool:
    """True when an op's result needs no graph link and no record: gradients are off
    (``no_grad``) and no :func:`record_applications` block is open on this thread, so a layer
    may call the core directly (inference) instead of going through ``Function.apply``."""
    # is_grad_enabled() inlined: this runs once per layer call
    return not _grad_state.grad_enabled and _local.records is None


class Application(NamedTuple):
    """One operation applied inside :func:`record_applications`."""

    function: type   # the Function subclass
    inputs: tuple    # as given to apply (tensors, arrays, numbers, None)
    options: dict    # the keyword options
    output: object   # the result tensor


@contextlib.contextmanager
def record_applications():
    """Record the operations this thread applies inside the block, outermost only (an
    operation applied from inside another's forward is part of that one).

    Yields the list that fills with :class:`Application` records, in order.
    """
    records = []
    saved = (_local.records, _local.depth)
    _local.records, _local.depth = records, 0
    try:
        yield records
    finally:
        _local.records, _local.depth = saved


@functools.cache
def _no_grad_flags(n: int) -> tuple:
    return (False,) * n


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
        records = _local.records
        if records is None:
            return cls._apply(inputs, options)
        _local.depth += 1
        try:
            out = cls._apply(inputs, options)
        finally:
            _local.depth -= 1
        if _local.depth == 0:
            records.append(Application(cls, inputs, options, out))
        return out

    @classmethod
    def _apply(cls, inputs, options):
        tensor = _tensor_type
        fn = cls()
        record = False
        if is_grad_enabled():
            for t in inputs:
                if isinstance(t, tensor) and t.requires_grad:
                    record = True
                    break
        if record:
            fn.needs_input_grad = tuple(isinstance(t, tensor) and t.requires_grad for t in inputs)
        else:  # inference: one shared tuple per arity, nothing to compute
            fn.needs_input_grad = _no_grad_flags(len(inputs))
        arrays = [t.data if isinstance(t, tensor) else t for t in inputs]
        out = tensor._wrap(fn.forward(*arrays, **options))
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
