"""The tape's reverse pass: ``backward(root, grad)`` (micrograd's idea, at tensor granularity).

The graph that ends at ``root`` is sorted topologically (iteratively, so deep networks do not
hit Python's recursion limit); each function is visited once, in reverse order, with the sum of
the gradients flowing into its output. A leaf that requires gradients receives each gradient
that reaches it through :func:`accumulate_grad`: by default it is stored in ``.grad`` (a new
float32 array) or added to it; a leaf with a gradient accumulator (``Tensor.
register_grad_accumulator``, e.g. cnnkit.distributed's flat allreduce buffer) stores it its own
way.

Nodes are duck-typed: a tensor is anything with ``grad_fn``, ``requires_grad`` and ``grad``;
other inputs of a function (arrays, numbers, None) get no gradient.
"""

from __future__ import annotations

import numpy as np

from .._args import float_result

__all__ = ["backward", "accumulate_grad", "topological_order"]


def accumulate_grad(leaf, g: np.ndarray, owned: bool = False) -> None:
    """Hand gradient ``g`` to leaf tensor ``leaf`` (its accumulator, or ``.grad``).

    ``owned``: ``g`` is a new array nothing else refers to, so ``.grad`` may take it as it is
    instead of a copy (a 151 MB copy per step for AlexNet's FC6 weight gradient).
    """
    accumulator = getattr(leaf, "_grad_accumulator", None)
    if accumulator is not None:
        accumulator(leaf, g)
    elif leaf.grad is None:
        leaf.grad = g if owned else np.array(g, dtype=np.float32, copy=True)
    else:
        leaf.grad = leaf.grad + g


def _owned(fn, g, g_out, grads) -> bool:
    """Whether gradient ``g`` that ``fn.backward`` returned is an array of its own: from one of
    cnnkit's functions (which return new arrays or their input's), not ``g_out`` itself, not a
    view of another array, and returned once (not to two inputs)."""
    return (type(fn).__module__.startswith("cnnkit.") and g is not g_out
            and isinstance(g, np.ndarray) and g.dtype == np.float32
            and not isinstance(g.base, np.ndarray) and g.flags.c_contiguous
            and g.flags.writeable and sum(x is g for x in grads) == 1)


def topological_order(root) -> list:
    """Functions reachable from function ``root``, each after every function that feeds it.

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
            parent_fn = getattr(p, "grad_fn", None)
            if parent_fn is not None and id(parent_fn) not in visited:
                stack.append((parent_fn, False))
    return order


def backward(root, grad: np.ndarray) -> None:
    """Propagate ``grad`` (d objective / d root, root's shape, float32) to every leaf."""
    if root.grad_fn is None:
        accumulate_grad(root, grad)
        return
    order = topological_order(root.grad_fn)
    pending = {id(root.grad_fn): grad}
    for fn in reversed(order):
        g_out = pending.pop(id(fn), None)
        if g_out is None:  # no gradient reached this function (e.g. an unused branch)
            continue
        grads = fn.backward(g_out)
        if not isinstance(grads, tuple):
            grads = (grads,)
        for parent, g in zip(fn.parents, grads):
            if g is None or not getattr(parent, "requires_grad", False):
                continue
            g = float_result(g)
            if g.shape != parent.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape "
                    f"{list(g.shape)} for an input of shape {list(parent.shape)}"
                )
            if parent.grad_fn is None:
                accumulate_grad(parent, g, _owned(fn, g, g_out, grads))
            else:
                key = id(parent.grad_fn)
                if key in pending:
                    pending[key] = pending[key] + g
                else:
                    pending[key] = g
