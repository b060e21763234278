"""Adagrad (PyTorch's exact update)."""

from __future__ import annotations

import numpy as np

from .. import amp
from .optimizer import Optimizer, check_nonnegative

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as PyTorch computes it, for step t = 1, 2, ...:

    - g <- -g with maximize; g <- g + weight_decay * p
    - clr = lr / (1 + (t - 1) * lr_decay)
    - s <- s + g * g                                       (state "sum")
    - p <- p - clr * g / (sqrt(s) + eps)

    State per parameter: "step" and "sum", created when the parameter joins the optimizer (at
    construction or by :meth:`add_param_group`) with sum = initial_accumulator_value, as
    PyTorch does, so a state_dict taken before the first step already holds them.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        check_nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                          initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize))

    def add_param_group(self, group: dict) -> None:
        super().add_param_group(group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self._init_state(p, group)

    def _init_state(self, p, group) -> dict:
        state = self._state(p)
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # parameters the saved state did not cover
            for p in group["params"]:
                self._init_state(p, group)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
            wd = group["weight_decay"]
            for p, g in self._gradients(group):
                # a loaded state_dict may lack a parameter's state; PyTorch's stores the step
                # as a 0-d float tensor
                state = self._init_state(p, group)
                state["step"] = int(state["step"]) + 1
                t = state["step"]
                if wd != 0:
                    g = g + np.float32(wd) * p.data
                clr = lr / (1 + (t - 1) * lr_decay)
                s = state["sum"]
                s += g * g
                std = np.sqrt(s)
                std += np.float32(eps)
                p.data -= (np.float32(clr) * g) / std
        amp.weights_changed()  # packed bf16 weights of an inference cache are stale
        return loss
