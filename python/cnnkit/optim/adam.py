"""Adam and AdamW (PyTorch's exact updates)."""

from __future__ import annotations

import math

import numpy as np

from .. import amp
from .optimizer import Optimizer, check_nonnegative

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), as PyTorch computes it, for step t = 1, 2, ...:

    - g <- g + weight_decay * p        (Adam: L2 in the gradient;
      AdamW instead decays the weights: p <- p * (1 - lr * weight_decay))
    - m <- m + (1 - beta1) * (g - m);  v <- beta2 * v + (1 - beta2) * g * g
    - (amsgrad) v_max <- max(v_max, v), used in place of v below
    - p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        check_nonnegative(lr=lr, eps=eps)
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        check_nonnegative(weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad = group["weight_decay"], group["amsgrad"]
            for p, g in self._gradients(group):
                state = self._state(p)
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = np.zeros_like(p.data)
                    state["exp_avg_sq"] = np.zeros_like(p.data)
                    if amsgrad:
                        state["max_exp_avg_sq"] = np.zeros_like(p.data)
                state["step"] += 1
                t = state["step"]
                if wd != 0:
                    if self._decoupled:
                        p.data *= np.float32(1 - lr * wd)
                    else:
                        g = g + np.float32(wd) * p.data
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m += np.float32(1 - beta1) * (g - m)  # lerp, as torch.lerp_ computes it
                v *= np.float32(beta2)
                v += np.float32(1 - beta2) * (g * g)
                bias_correction1 = 1 - beta1**t
                bias_correction2_sqrt = math.sqrt(1 - beta2**t)
                step_size = lr / bias_correction1
                if amsgrad:
                    np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                denom = np.sqrt(v) / np.float32(bias_correction2_sqrt) + np.float32(eps)
                p.data -= np.float32(step_size) * (m / denom)
        amp.weights_changed()  # packed bf16 weights of an inference cache are stale
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p <- p * (1 - lr * weight_decay)
    before the Adam step. PyTorch's default weight_decay=1e-2."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
