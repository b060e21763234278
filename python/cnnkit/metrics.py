"""Classification metrics over a data set: :class:`Evaluation` and :func:`evaluate`.

The pieces are separate so that a data set split across processes (cnnkit.distributed) sums
the same counts before summarising: :func:`predict` (scores and labels of a model over a
loader), :func:`confusion_matrix`, :func:`top5_hits` and :func:`summarize` (the counts ->
an Evaluation).

Test-time augmentation (``tta=``): ``"flip"`` averages the softmax probabilities of each image
and its mirror image; ``"ten_crop"`` (AlexNet) those of the ten crops of :func:`cnnkit.data.
ten_crop` (``round(crop_fraction * H) x round(crop_fraction * W)``, each resized back to H x W
so any model takes them). The scores are then mean probabilities and the loss, when asked, the
negative log-likelihood of those probabilities.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .autograd.grad_mode import no_grad
from .nn.module import eval_mode
from .tensor import Tensor

__all__ = ["Evaluation", "evaluate", "predict", "confusion_matrix", "top5_hits", "summarize"]


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` measures. ``confusion[i, j]`` counts images of class i predicted
    as j; ``per_class_accuracy[i]`` is the recall of class i (NaN when the class is absent)."""

    accuracy: float
    top5: float | None
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    loss: float | None
    count: int

    def __str__(self):
        s = f"accuracy {100 * self.accuracy:.2f}% ({self.count} images)"
        if self.top5 is not None:
            s += f", top-5 {100 * self.top5:.2f}%"
        if self.loss is not None:
            s += f", loss {self.loss:.4f}"
        return s


_TTA = ("flip", "ten_crop")


def _check_tta(tta, crop_fraction, name: str) -> None:
    if tta is not None and not (isinstance(tta, str) and tta in _TTA):
        raise ValueError(f"{name}: unknown tta; expected None, 'flip' or 'ten_crop', got {tta!r}")
    if tta == "ten_crop":
        try:
            cf = float(crop_fraction)
        except (TypeError, ValueError):
            cf = float("nan")
        if not 0.0 < cf <= 1.0:
            raise ValueError(f"{name}: crop_fraction must be in (0, 1], got {crop_fraction!r}")


def _probabilities(model, out) -> np.ndarray:
    """float64 probabilities [N, C] from a model's output: softmax of the logits, or the
    output itself for a model whose ``outputs_probabilities`` is True (an Ensemble)."""
    z = np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)
    if getattr(model, "outputs_probabilities", False):
        return z
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _tta_views(x: np.ndarray, tta: str, crop_fraction: float):
    """The augmented copies of the batch x [N, C, H, W] that ``tta`` averages over."""
    from .data.transforms import resize, ten_crop

    if tta == "flip":
        return [x, np.ascontiguousarray(x[..., ::-1])]
    n, c, hh, ww = x.shape
    crop = (max(1, int(round(crop_fraction * hh))), max(1, int(round(crop_fraction * ww))))
    crops = ten_crop(x, crop).reshape(10 * n, c, *crop)
    return list(resize(crops, (hh, ww)).reshape(10, n, c, hh, ww))


def _predict_tta(model, loader, loss, tta, crop_fraction):
    outs, labels, total = [], [], 0.0
    with eval_mode(model), no_grad():
        for x, y in loader:
            xa = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float32)
            ya = np.asarray(y.data if isinstance(y, Tensor) else y)
            views = _tta_views(xa, tta, crop_fraction)
            p = sum(_probabilities(model, model(Tensor(v))) for v in views) / len(views)
            if loss is not None:
                picked = p[np.arange(len(ya)), ya.astype(np.int64)]
                total += float(-np.log(np.maximum(picked, np.finfo(np.float64).tiny)).sum())
            outs.append(p.astype(np.float32))
            labels.append(ya)
    if not outs:
        return None, None, total
    return np.concatenate(outs), np.concatenate(labels), total


def predict(model, loader, loss=None, tta=None, crop_fraction=0.875):
    """``(scores [n, C], labels [n], summed loss)`` of ``model`` over ``loader`` (eval mode,
    restored afterwards; no tape). ``scores`` is None when the loader yields no batch.

    ``tta`` None: the model's outputs and ``loss(out, y)``. ``"flip"`` / ``"ten_crop"``: the
    mean softmax probabilities over the augmented copies (module docstring; an Ensemble's
    outputs are averaged as the probabilities they are), and with any ``loss`` given the
    summed negative log-likelihood of those probabilities (``loss`` itself is not called)."""
    _check_tta(tta, crop_fraction, "predict")
    if tta is not None:
        return _predict_tta(model, loader, loss, tta, float(crop_fraction))
    outs, labels, total = [], [], 0.0
    with eval_mode(model), no_grad():
        for x, y in loader:
            out = model(x)
            if loss is not None:
                total += float(loss(out, y).item()) * len(y)
            outs.append(np.asarray(out.data if isinstance(out, Tensor) else out))
            labels.append(np.asarray(y.data if isinstance(y, Tensor) else y))
    if not outs:
        return None, None, total
    return np.concatenate(outs), np.concatenate(labels), total


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C, C]: entry (i, j) counts the images of class i predicted as class j."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    return confusion


def top5_hits(scores: np.ndarray, labels: np.ndarray) -> int:
    """How many labels are among their row's five highest scores (0 with <= 5 classes)."""
    if scores.shape[1] <= 5:
        return 0
    top = np.argpartition(-scores, 5, axis=1)[:, :5]
    return int((top == labels[:, None]).any(axis=1).sum())


def summarize(confusion: np.ndarray, top5: int | None, loss_sum: float | None) -> Evaluation:
    """The Evaluation of a confusion matrix, its top-5 hit count (None: not measured) and the
    summed loss (None: no loss)."""
    n = int(confusion.sum())
    if n == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / support
    return Evaluation(float(np.trace(confusion) / n), None if top5 is None else float(top5 / n),
                      confusion, per_class, None if loss_sum is None else float(loss_sum / n), n)


def evaluate(model, loader, loss=None, num_classes=None, tta=None,
             crop_fraction=0.875) -> Evaluation:
    """Accuracy, top-5 accuracy (when there are more than 5 classes), confusion matrix and
    per-class accuracy of ``model`` over ``loader`` (eval mode, restored afterwards).
    ``loss`` (e.g. CrossEntropyLoss()) adds the mean loss. Works for anything returning
    per-class scores [N, C]: logits or probabilities (an Ensemble).

    ``tta="flip"`` or ``"ten_crop"`` (crops of ``crop_fraction`` of each side) scores the mean
    softmax probabilities of the augmented copies of each image; the loss is then the mean
    negative log-likelihood of those probabilities (see :func:`predict`)."""
    _check_tta(tta, crop_fraction, "evaluate")
    scores, labels, total = predict(model, loader, loss, tta=tta, crop_fraction=crop_fraction)
    if scores is None:
        raise ValueError("evaluate: the loader yielded no batches")
    c = int(num_classes or scores.shape[1])
    confusion = confusion_matrix(labels, scores.argmax(axis=1), c)
    return summarize(confusion, top5_hits(scores, labels) if scores.shape[1] > 5 else None,
                     total if loss is not None else None)
