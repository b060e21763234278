"""Finite-difference gradient checking of the autograd (cs231n's and Caffe's habit)."""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message names the worst element."""


def gradcheck(fn, inputs, eps: float = 1e-3, atol: float = 1e-4, rtol: float = 1e-2,
              seed: int = 0) -> bool:
    """Compare the autograd gradients of ``fn`` with centred finite differences.

    The output of ``fn(*inputs)`` is reduced to the scalar ``L = sum(out * w)`` with a fixed random
    ``w``; for every element x of every input with ``requires_grad=True``, the numerical
    derivative ``(L(x + eps) - L(x - eps)) / (2 eps)`` is computed in float64 from the float32
    outputs (with the step actually representable in float32), and must match the analytic
    dL/dx from ``backward`` within ``atol + rtol * |numerical| + noise``. Since the ops compute
    in float32, the outputs that the step changes carry rounding error; ``noise`` is that floor,
    8 units in the last place of each changed output, weighted by ``|w|``, divided by the step.

    Keep inputs small (every element costs two forward passes) and away from kinks and ties
    (ReLU at 0, equal maxima), where the function is not differentiable.

    Parameters
    ----------
    fn : callable returning a Tensor
    inputs : Tensor or sequence of Tensors (others are passed through unchanged)

    Returns
    -------
    True

    Raises
    ------
    GradcheckError
        Naming the input, the worst element, both gradients and how many elements fail.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    targets = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not targets:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i, t in targets:
        if t.data.dtype != np.float32:
            raise TypeError(f"gradcheck: input {i} must be float32, got {t.data.dtype}")

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    w = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    w64 = w.astype(np.float64)

    saved = [t.grad for _, t in targets]
    for _, t in targets:
        t.grad = None
    try:
        if out.requires_grad:
            out.backward(w)
        analytic = [np.zeros(t.shape) if t.grad is None else t.grad.astype(np.float64)
                    for _, t in targets]
    finally:
        for (_, t), g in zip(targets, saved):
            t.grad = g

    abs_w = np.abs(w64)

    def objective():
        with no_grad():
            o = np.asarray(fn(*inputs).data, dtype=np.float32)
        return float(np.sum(o.astype(np.float64) * w64)), o

    worst, failures, total = None, 0, 0
    for (i, t), ana in zip(targets, analytic):
        flat = t.data.reshape(-1)  # a view: writes perturb the input in place
        ana = ana.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            xp, xm = np.float32(orig + eps), np.float32(orig - eps)
            try:
                flat[j] = xp
                fp, op = objective()
                flat[j] = xm
                fm, om = objective()
            finally:
                flat[j] = orig
            step = float(xp) - float(xm)
            num = (fp - fm) / step
            changed = op != om
            ulps = (np.spacing(np.abs(op[changed])).astype(np.float64)
                    + np.spacing(np.abs(om[changed])))
            noise = 8.0 * float(np.sum(abs_w[changed] * ulps))
            err = abs(num - ana[j])
            tol = atol + rtol * abs(num) + noise / step
            total += 1
            if err > tol:
                failures += 1
            ratio = err / tol
            if worst is None or ratio > worst[0]:
                worst = (ratio, i, np.unravel_index(j, t.shape), num, ana[j], err, tol)
    if failures:
        ratio, i, idx, num, ana, err, tol = worst
        raise GradcheckError(
            f"gradcheck: {failures} of {total} gradient elements out of tolerance; worst: "
            f"input {i} (shape {list(inputs[i].shape)}) at index {tuple(int(k) for k in idx)}: "
            f"numerical {num:.6g}, analytical {ana:.6g}, |difference| {err:.3g} > "
            f"atol + rtol * |numerical| = {tol:.3g}"
        )
    return True
