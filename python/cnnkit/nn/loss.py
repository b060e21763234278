"""Loss modules: CrossEntropyLoss, MultiMarginLoss (SVM), MSELoss; all average over the batch."""

from __future__ import annotations

from .. import functional as F
from ..ops.loss import check_label_smoothing
from .module import Module

__all__ = ["CrossEntropyLoss", "MultiMarginLoss", "MSELoss"]


def _mean_only(name, reduction):
    if reduction != "mean":
        raise ValueError(f"{name}: only reduction='mean' is supported, got {reduction!r}")


class CrossEntropyLoss(Module):
    """Softmax cross-entropy: logits [N, C], target int64 [N] -> mean loss.

    ``label_smoothing`` e in [0, 1] (PyTorch's): the target is (1 - e) onehot + e / C.
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        _mean_only("CrossEntropyLoss", reduction)
        self.reduction = reduction
        self.label_smoothing = check_label_smoothing(label_smoothing, "CrossEntropyLoss")

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""


class MultiMarginLoss(Module):
    """Multi-class hinge loss (PyTorch's MultiMarginLoss with p=1): mean over N of
    sum_{j != y} max(0, margin - x_y + x_j) / C, for logits [N, C] and int64 targets [N]."""

    def __init__(self, p: int = 1, margin: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if p != 1:
            raise ValueError(f"MultiMarginLoss: only p=1 is supported, got p={p}")
        _mean_only("MultiMarginLoss", reduction)
        self.p, self.margin, self.reduction = p, margin, reduction

    def forward(self, logits, target):
        return F.multi_margin_loss(logits, target, self.margin)

    def extra_repr(self):
        return f"margin={self.margin}" if self.margin != 1.0 else ""


class MSELoss(Module):
    """Mean squared error over all elements of two tensors of the same shape."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _mean_only("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, x, y):
        return F.mse_loss(x, y)
