"""Ensembles: average the softmax probabilities of several models."""

from __future__ import annotations

from . import functional as F
from .metrics import evaluate
from .nn import Module, ModuleList

__all__ = ["Ensemble"]


class Ensemble(Module):
    """``Ensemble([m1, m2, ...])(x)`` = mean over members of softmax(m_i(x)) [N, C].

    Averaging probabilities (not logits) is the usual model ensemble: each member votes with
    its confidence. :meth:`evaluate` reports each member's accuracy next to the ensemble's.
    """

    outputs_probabilities = True  # evaluate(tta=...) averages them without a second softmax

    def __init__(self, models):
        super().__init__()
        self.members = ModuleList(models)
        if len(self.members) == 0:
            raise ValueError("Ensemble: give at least one model")

    def forward(self, x):
        total = None
        for m in self.members:
            p = F.softmax(m(x), dim=1)
            total = p if total is None else total + p
        return total * (1.0 / len(self.members))

    def evaluate(self, loader, tta=None) -> dict:
        """``{"members": [accuracy of each], "ensemble": accuracy}`` over ``loader``; with
        ``tta`` ("flip", "ten_crop"), each scored on the augmented copies (see
        :func:`cnnkit.metrics.evaluate`)."""
        return {"members": [evaluate(m, loader, tta=tta).accuracy for m in self.members],
                "ensemble": evaluate(self, loader, tta=tta).accuracy}
