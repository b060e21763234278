"""Gradient averaging across ranks with one allreduce per step: :class:`GradientAllreduce`."""

from __future__ import annotations

import numpy as np

from .comm import allreduce_, uses_mpi, world_size

__all__ = ["GradientAllreduce"]


class GradientAllreduce:
    """Average the gradients of ``params`` across ranks with one allreduce per step.

    All gradients live in one flat float32 buffer: each parameter's ``.grad`` is a view of its
    slice. A gradient accumulator on every parameter (``Tensor.register_grad_accumulator``)
    writes the first gradient a backward pass delivers into the view and adds later ones in
    place, also after ``zero_grad(set_to_none=True)``, so the allreduce reads and writes them
    with no copy. The buffer ends with one float per parameter that is 1 when the parameter got
    a gradient on this rank: after the sum, a parameter no rank touched keeps ``grad = None``
    (as in one process), one that some rank touched gets the average (zeros from the others).
    """

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        sizes = [p.data.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.numel = int(self.offsets[-1])
        self.buffer = np.zeros(self.numel + len(self.params), dtype=np.float32)
        self.flags = self.buffer[self.numel:]
        self.views, self._handles = [], []
        for p, a, b in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            view = self.buffer[a:b].reshape(p.data.shape)
            if p.grad is not None:
                np.copyto(view, p.grad)
                p.grad = view
            self._handles.append(p.register_grad_accumulator(_into(view)))
            self.views.append(view)

    def allreduce(self) -> None:
        """Replace every ``.grad`` by its average over the ranks (call after backward)."""
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if p.grad is None:
                view[...] = 0
                self.flags[i] = 0
            else:
                if p.grad is not view:  # assigned by hand: bring it into the buffer
                    np.copyto(view, p.grad)
                    p.grad = view
                self.flags[i] = 1
        if uses_mpi():
            allreduce_(self.buffer)
            grads = self.buffer[:self.numel]
            np.divide(grads, np.float32(world_size()), out=grads)
        for p, view, flag in zip(self.params, self.views, self.flags):
            p.grad = view if flag > 0 else None

    def close(self) -> None:
        """Stop accumulating into the buffer (the current ``.grad`` views stay valid)."""
        for h in self._handles:
            h.remove()
        self._handles = []


def _into(view: np.ndarray):
    """The accumulator that keeps a parameter's gradient in ``view`` (its slice of the buffer):
    written there first, then added in place; a ``.grad`` assigned by hand is added to as
    usual."""

    def accumulate(p, g):
        if p.grad is None:
            np.copyto(view, g)
            p.grad = view
        elif p.grad is view:
            np.add(view, g, out=view)
        else:
            p.grad = p.grad + g

    return accumulate
