"""Linear layer on the GEMM engine; every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, numgrad, rand

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 3, 1), (7, 33, 17), (64, 100, 70), (3, 500, 10)]


@pytest.mark.parametrize("N,fin,fout", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward(isa, N, fin, fout, bias):
    rng = np.random.default_rng(40)
    x, w = rand(rng, N, fin), rand(rng, fout, fin)
    b = rand(rng, fout) if bias else None
    y = _core.linear_forward(x, w, b)
    ref = x.astype(np.float64) @ w.astype(np.float64).T + (0 if b is None else b)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.sqrt(fin))
    dy = rand(rng, N, fout)
    dx, dw, db = _core.linear_backward(dy, x, w, True)
    d64 = dy.astype(np.float64)
    np.testing.assert_allclose(dx, d64 @ w, rtol=1e-5, atol=1e-5 * np.sqrt(fout))
    np.testing.assert_allclose(dw, d64.T @ x, rtol=1e-5, atol=1e-5 * np.sqrt(N))
    np.testing.assert_allclose(db, d64.sum(axis=0), rtol=1e-5, atol=1e-5 * np.sqrt(N))
    none, dw2, _ = _core.linear_backward(dy, x, w, False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)


def test_linear_gradient_numerically(isa):
    rng = np.random.default_rng(41)
    x, w, b, dy = rand(rng, 3, 4), rand(rng, 5, 4), rand(rng, 5), rand(rng, 3, 5)
    dx, dw, db = _core.linear_backward(dy, x, w, True)
    assert_grad_close(dx, numgrad(lambda z: z @ w.T.astype(np.float64) + b, x, dy), rtol=1e-4)
    assert_grad_close(dw, numgrad(lambda z: x.astype(np.float64) @ z.T + b, w, dy), rtol=1e-4)
    assert_grad_close(db, numgrad(lambda z: x.astype(np.float64) @ w.T + z, b, dy), rtol=1e-4)


def test_linear_bad_arguments():
    x, w = np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError,
                       match=r"linear_forward: weight has 5 input features but x has 3"):
        _core.linear_forward(x, w)
    with pytest.raises(ValueError, match=r"bias must have shape \[4\], got \[3\]"):
        _core.linear_forward(np.zeros((2, 5), np.float32), w, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="weight must have dtype float32"):
        _core.linear_forward(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \[2, 4\]"):
        _core.linear_backward(np.zeros((2, 3), np.float32), np.zeros((2, 5), np.float32), w, True)
    with pytest.raises(ValueError, match="x must be 2-D"):
        _core.linear_forward(np.zeros(5, np.float32), w)


def test_linear_parity_with_torch(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(42)
    x, w, b, dy = rand(rng, 16, 300), rand(rng, 40, 300), rand(rng, 40), rand(rng, 16, 40)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.linear(xt, wt, bt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(_core.linear_forward(x, w, b), yt.detach().numpy(),
                               rtol=1e-5, atol=1e-4)
    dx, dw, db = _core.linear_backward(dy, x, w, True)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-5, atol=1e-4)
