"""RMSprop (PyTorch's exact update)."""

from __future__ import annotations

import numpy as np

from .. import amp
from .optimizer import Optimizer, check_nonnegative

__all__ = ["RMSprop"]


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """a <- lerp(a, b, w) in place, with torch.lerp_'s two branches (the one that rounds better
    for w below or above 1/2)."""
    wf = np.float32(w)
    if abs(w) < 0.5:
        a += wf * (b - a)
    else:
        a[...] = b - (b - a) * (np.float32(1) - wf)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch computes it, for each parameter p with gradient g:

    - g <- -g with maximize; g <- g + weight_decay * p
    - v <- alpha * v + (1 - alpha) * g * g                          (state "square_avg")
    - centered: a <- lerp(a, g, 1 - alpha) (state "grad_avg"); d = sqrt(v - a * a) + eps,
      else d = sqrt(v) + eps                                        (eps outside the sqrt)
    - momentum > 0: b <- momentum * b + g / d (state "momentum_buffer"); p <- p - lr * b
      else p <- p - lr * g / d

    State per parameter: "step", "square_avg" and, when used, "momentum_buffer" and "grad_avg"
    (created on the parameter's first step, as PyTorch does).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay,
                          alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            wd, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
            for p, g in self._gradients(group):
                state = self._state(p)
                if not state:
                    state["step"] = 0
                    state["square_avg"] = np.zeros_like(p.data)
                # zeros on the first step, as PyTorch; also when a group's momentum or centered
                # is switched on after its first step (PyTorch fails there)
                if momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                if centered and "grad_avg" not in state:
                    state["grad_avg"] = np.zeros_like(p.data)
                # a PyTorch state_dict stores the step as a 0-d float tensor
                state["step"] = int(state["step"]) + 1
                if wd != 0:
                    g = g + np.float32(wd) * p.data
                v = state["square_avg"]
                v *= np.float32(alpha)
                v += np.float32(1 - alpha) * g * g
                if centered:
                    a = state["grad_avg"]
                    _lerp_(a, g, 1 - alpha)
                    d = v - a * a
                    np.sqrt(d, out=d)
                else:
                    d = np.sqrt(v)
                d += np.float32(eps)
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf *= np.float32(momentum)
                    buf += g / d
                    p.data -= np.float32(lr) * buf
                else:
                    p.data -= (np.float32(lr) * g) / d
        amp.weights_changed()  # packed bf16 weights of an inference cache are stale
        return loss
