"""Whether operations are recorded for differentiation: ``no_grad`` / ``enable_grad``.

The mode is per thread (a data-loading thread never changes the training thread's mode).
"""

from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "enable_grad", "is_grad_enabled"]


class _State(threading.local):
    # The default as a class attribute: a missing attribute of a plain threading.local costs
    # an AttributeError (its message formatted) on every read, ~0.35 us per op call.
    grad_enabled = True


_state = _State()


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for autograd in this thread."""
    return _state.grad_enabled


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
