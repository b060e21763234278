"""Stochastic gradient descent with momentum (PyTorch's exact update)."""

from __future__ import annotations

import numpy as np

from .. import _core, amp
from .optimizer import Optimizer, check_nonnegative


def _fused(p) -> bool:
    # The C++ update works in place on C-contiguous float32 data.
    d = p.data
    return d.dtype == np.float32 and d.flags.c_contiguous and d.flags.writeable

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, updating each parameter p with gradient g as PyTorch does:

    - g <- g + weight_decay * p                 (L2 penalty added to the gradient)
    - b <- g on the first step, else b <- momentum * b + (1 - dampening) * g
    - g <- g + momentum * b with nesterov, else g <- b   (when momentum != 0)
    - p <- p - lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if _fused(p):
                    # One pass in C++ (same float32 rounding as the lines below).
                    state = self._state(p) if momentum != 0 else None
                    buf = state.get("momentum_buffer") if state is not None else None
                    first = state is not None and buf is None
                    if first:
                        buf = np.empty_like(p.data)
                        state["momentum_buffer"] = buf
                    _core.sgd_update(p.data, np.ascontiguousarray(p.grad, dtype=np.float32), buf,
                                     float(lr), float(momentum), float(dampening), float(wd),
                                     bool(nesterov), bool(group["maximize"]), first)
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    g = g + np.float32(wd) * p.data
                if momentum != 0:
                    state = self._state(p)
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = np.array(g, dtype=np.float32, copy=True)
                        state["momentum_buffer"] = buf
                    else:
                        buf *= np.float32(momentum)
                        buf += np.float32(1 - dampening) * g
                    g = g + np.float32(momentum) * buf if nesterov else buf
                p.data -= np.float32(lr) * g
        amp.weights_changed()  # packed bf16 weights of an inference cache are stale
        return loss
