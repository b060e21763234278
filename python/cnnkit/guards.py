"""Guards against non-finite training steps (issue 9), used by :func:`cnnkit.train.fit`.

A NaN or Inf in the loss or in a gradient poisons every parameter at the next optimizer step,
and from then on every checkpoint. :func:`check_step` looks at the loss and at every
parameter's gradient after ``backward()`` and before ``optimizer.step()``, so a bad step is
caught while the parameters (and the last checkpoint on disk) are still good.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["NonFiniteError", "check_step", "handle_step", "snapshot_buffers", "ON_NONFINITE"]

ON_NONFINITE = ("raise", "skip")


class NonFiniteError(FloatingPointError):
    """A training step produced a NaN/Inf loss or gradient.

    Attributes: ``epoch`` and ``step`` (1-based), ``parameter`` (the name of the first
    parameter whose gradient is non-finite, or None when the loss itself is), ``loss``.
    """

    def __init__(self, message, epoch, step, parameter, loss):
        super().__init__(message)
        self.epoch, self.step, self.parameter, self.loss = epoch, step, parameter, loss


def _count(a: np.ndarray) -> str:
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return f"{nan} NaN and {inf} Inf of {a.size} values"


def check_step(model, loss, epoch: int, step: int):
    """None when the loss and every gradient of ``model`` are finite, else a
    :class:`NonFiniteError` (not raised) naming the epoch, the step and the parameter."""
    value = float(np.asarray(loss.data if hasattr(loss, "data") else loss, dtype=np.float64))
    if not np.isfinite(value):
        return NonFiniteError(
            f"fit: non-finite loss ({value}) at epoch {epoch}, step {step}; the parameters "
            f"were not updated", epoch, step, None, value)
    for name, p in model.named_parameters():
        g = p.grad
        if g is not None and not np.isfinite(g).all():
            return NonFiniteError(
                f"fit: non-finite gradient of parameter '{name}' ({_count(g)}) at epoch {epoch}, "
                f"step {step} (loss {value:.6g}); the parameters were not updated",
                epoch, step, name, value)
    return None


def snapshot_buffers(model) -> list:
    """Copies of the model's buffers (batch-norm running statistics: the forward pass
    updates them in place, so a NaN batch would poison them before any gradient exists)."""
    return [(b, b.data.copy()) for _, b in model.named_buffers()
            if b is not None]


def handle_step(model, loss, epoch: int, step: int, on_nonfinite: str, buffers=None) -> bool:
    """True when the step may go on to ``optimizer.step()``. A non-finite step raises
    :class:`NonFiniteError` (``on_nonfinite="raise"``) or is skipped with a RuntimeWarning
    (``"skip"``); either way its gradients are dropped, the parameters stay as they were and
    the buffers saved by :func:`snapshot_buffers` before the forward pass are put back."""
    err = check_step(model, loss, epoch, step)
    if err is None:
        return True
    for b, saved in buffers or ():
        b.data[...] = saved
    for p in model.parameters():
        p.grad = None
    if on_nonfinite == "raise":
        raise err
    warnings.warn(str(err).replace("fit: ", "fit: skipped step with ", 1), RuntimeWarning,
                  stacklevel=3)
    return False
