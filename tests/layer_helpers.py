"""Shared helpers for the layer tests (issue 4): finite differences, tolerances, threads."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit
from cnnkit import _core

# The `isa` fixture (one run per supported ISA, default restored after) is in conftest.py.


@pytest.fixture
def threads_restored():
    prev = cnnkit.get_num_threads()
    yield
    cnnkit.set_num_threads(prev)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def numgrad(f, x, dy, eps=1e-6):
    """Centred finite differences of sum(f(x) * dy) with respect to x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = np.sum(f(x) * dy)
        flat[i] = old - eps
        fm = np.sum(f(x) * dy)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


def assert_grad_close(analytic, numeric, rtol=2e-3, floor=1e-3):
    """Relative error with a floor, as in Caffe's gradient checker."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    err = np.abs(analytic - numeric) / scale
    assert err.max() <= rtol, f"max relative gradient error {err.max():.3g}"


def rand(rng, *shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


__all__ = ["threads_restored", "f32", "numgrad", "assert_grad_close", "rand", "_core"]
