"""Softmax, log-softmax, cross-entropy, multi-margin (SVM) and MSE losses."""

from __future__ import annotations

import re

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, f32, numgrad, rand


def ref_log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def ref_ce(x, t):
    return -ref_log_softmax(x)[np.arange(len(t)), t].mean()


def ref_mm(x, t, margin):
    x = x.astype(np.float64)
    N, C = x.shape
    z = np.maximum(0, margin - x[np.arange(N), t][:, None] + x)
    z[np.arange(N), t] = 0
    return (z.sum(axis=1) / C).mean()


SHAPES = [(1, 1), (1, 5), (4, 3), (7, 10), (33, 17)]


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_and_log_softmax(isa, shape):
    rng = np.random.default_rng(50)
    x = rand(rng, *shape, scale=3.0)
    y = _core.softmax_forward(x)
    ly = _core.log_softmax_forward(x)
    np.testing.assert_allclose(ly, ref_log_softmax(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, np.exp(ref_log_softmax(x)), rtol=1e-5, atol=1e-7)
    dy = rand(rng, *shape)
    dx = _core.softmax_backward(dy, y)
    ref = y * (dy - (dy * y).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(dx, ref, rtol=1e-5, atol=1e-6)
    assert_grad_close(dx, numgrad(lambda z: np.exp(ref_log_softmax(z)), x, dy), rtol=1e-3)
    dlx = _core.log_softmax_backward(dy, ly)
    assert_grad_close(dlx, numgrad(ref_log_softmax, x, dy), rtol=1e-3)


def test_softmax_is_stable_for_huge_logits(isa):
    x = f32([[1000.0, 1001.0, 999.0], [-1e4, -1e4 + 1, -1e4 - 1], [88.0, -88.0, 0.0]])
    y = _core.softmax_forward(x)
    ly = _core.log_softmax_forward(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly))
    np.testing.assert_allclose(ly, ref_log_softmax(x), rtol=1e-6, atol=1e-5)
    loss, _ = _core.cross_entropy_forward(x, np.array([0, 1, 1], np.int64))
    np.testing.assert_allclose(loss, ref_ce(x, np.array([0, 1, 1])), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_cross_entropy(isa, shape):
    rng = np.random.default_rng(51)
    x = rand(rng, *shape, scale=2.0)
    t = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss, probs = _core.cross_entropy_forward(x, t)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref_ce(x, t), rtol=1e-6)
    np.testing.assert_allclose(probs, np.exp(ref_log_softmax(x)), rtol=1e-5, atol=1e-7)
    dx = _core.cross_entropy_backward(probs, t, 2.0)
    onehot = np.eye(shape[1])[t]
    np.testing.assert_allclose(dx, 2.0 * (probs - onehot) / shape[0], rtol=1e-5, atol=1e-7)
    assert_grad_close(dx, numgrad(lambda z: ref_ce(z, t), x, 2.0), rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_multi_margin_loss(isa, shape, margin):
    rng = np.random.default_rng(52)
    x = rand(rng, *shape)
    t = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    loss = _core.multi_margin_loss_forward(x, t, margin)
    np.testing.assert_allclose(loss, ref_mm(x, t, margin), rtol=1e-6, atol=1e-7)
    dx = _core.multi_margin_loss_backward(x, t, margin, 1.5)
    assert_grad_close(dx, numgrad(lambda z: ref_mm(z, t, margin), x, 1.5, eps=1e-4), rtol=1e-3)


@pytest.mark.parametrize("shape", [(1,), (5, 3), (2, 3, 4, 5)])
def test_mse_loss(isa, shape):
    rng = np.random.default_rng(53)
    x, y = rand(rng, *shape), rand(rng, *shape)
    loss = _core.mse_loss_forward(x, y)
    np.testing.assert_allclose(loss, ((x.astype(np.float64) - y) ** 2).mean(), rtol=1e-6)
    dx = _core.mse_loss_backward(x, y, 0.5)
    np.testing.assert_allclose(dx, 0.5 * 2 * (x.astype(np.float64) - y) / x.size, rtol=1e-6)
    assert_grad_close(dx, numgrad(lambda z: ((z - y) ** 2).mean(), x, 0.5), rtol=1e-4)


def test_loss_bad_arguments():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"cross_entropy: target label 4 \(at index 1\) "
                                         r"is out of range for 4 classes"):
        _core.cross_entropy_forward(x, np.array([0, 4, 1], np.int64))
    with pytest.raises(ValueError, match=r"multi_margin_loss: target label -1 .* for 4 classes"):
        _core.multi_margin_loss_forward(x, np.array([0, -1, 1], np.int64), 1.0)
    with pytest.raises(ValueError, match=r"cross_entropy: target label 9 .* for 4 classes"):
        _core.cross_entropy_backward(x, np.array([9, 0, 0], np.int64), 1.0)
    with pytest.raises(TypeError, match="target must have dtype int64"):
        _core.cross_entropy_forward(x, np.array([0, 1, 2], np.int32))
    with pytest.raises(ValueError, match=r"target must have shape \[3\]"):
        _core.cross_entropy_forward(x, np.array([0, 1], np.int64))
    with pytest.raises(ValueError, match="y must have the shape of x"):
        _core.mse_loss_forward(x, np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="logits must have dtype float32"):
        _core.cross_entropy_forward(x.astype(np.float16), np.array([0, 1, 2], np.int64))


def test_loss_parity_with_torch(isa):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(54)
    x = rand(rng, 9, 7, scale=2.0)
    t = rng.integers(0, 7, 9).astype(np.int64)
    dy = rand(rng, 9, 7)
    for fwd, bwd, tf in [(_core.softmax_forward, _core.softmax_backward,
                          lambda z: F.softmax(z, 1)),
                         (_core.log_softmax_forward, _core.log_softmax_backward,
                          lambda z: F.log_softmax(z, 1))]:
        xt = torch.tensor(x, requires_grad=True)
        yt = tf(xt)
        yt.backward(torch.tensor(dy))
        y = fwd(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bwd(dy, y), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    tt = torch.tensor(t)
    for name, _ours in [("ce", None), ("mm", None), ("mse", None)]:
        xt = torch.tensor(x, requires_grad=True)
        if name == "ce":
            lt = F.cross_entropy(xt, tt)
            loss, probs = _core.cross_entropy_forward(x, t)
            dx = _core.cross_entropy_backward(probs, t, 1.0)
        elif name == "mm":
            lt = F.multi_margin_loss(xt, tt, margin=0.8)
            loss = _core.multi_margin_loss_forward(x, t, 0.8)
            dx = _core.multi_margin_loss_backward(x, t, 0.8, 1.0)
        else:
            lt = F.mse_loss(xt, torch.tensor(dy))
            loss = _core.mse_loss_forward(x, dy)
            dx = _core.mse_loss_backward(x, dy, 1.0)
        lt.backward()
        np.testing.assert_allclose(loss, lt.item(), rtol=1e-5)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ label smoothing
def ref_ce_smooth(x, t, eps):
    """PyTorch's label-smoothed cross-entropy in float64: the target q = (1 - eps) onehot +
    eps / C; loss = mean_n -sum_k q_nk log p_nk; gradient (p - q) / N."""
    N, C = x.shape
    q = (1 - eps) * np.eye(C)[t] + eps / C
    lp = ref_log_softmax(x)
    return -(q * lp).sum(axis=1).mean(), (np.exp(lp) - q) / N


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
def test_cross_entropy_label_smoothing(isa, shape, eps):
    rng = np.random.default_rng(55)
    x = rand(rng, *shape, scale=2.0)
    t = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    ref_loss, ref_grad = ref_ce_smooth(x, t, eps)
    loss, probs = _core.cross_entropy_forward(x, t, eps)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probs, np.exp(ref_log_softmax(x)), rtol=1e-5, atol=1e-7)
    dx = _core.cross_entropy_backward(probs, t, 2.0, label_smoothing=eps)
    np.testing.assert_allclose(dx, 2.0 * ref_grad, rtol=1e-5, atol=1e-7)
    assert_grad_close(dx, numgrad(lambda z: ref_ce_smooth(z, t, eps)[0], x, 2.0), rtol=1e-4)


def test_cross_entropy_label_smoothing_zero_is_the_plain_loss_bitwise(isa):
    rng = np.random.default_rng(56)
    x = rand(rng, 13, 29, scale=4.0)
    t = rng.integers(0, 29, 13).astype(np.int64)
    loss, probs = _core.cross_entropy_forward(x, t)
    loss0, probs0 = _core.cross_entropy_forward(x, t, label_smoothing=0.0)
    assert loss == loss0
    np.testing.assert_array_equal(probs, probs0)
    np.testing.assert_array_equal(_core.cross_entropy_backward(probs, t, 0.7),
                                  _core.cross_entropy_backward(probs, t, 0.7, 0.0))


def test_cross_entropy_label_smoothing_same_on_every_isa():
    import cnnkit

    rng = np.random.default_rng(57)
    x = rand(rng, 37, 45, scale=3.0)  # partial 16-lane tails
    t = rng.integers(0, 45, 37).astype(np.int64)
    before = cnnkit.get_isa()
    results = {}
    try:
        for isa in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(isa)
            loss, probs = _core.cross_entropy_forward(x, t, 0.2)
            results[isa] = (loss, _core.cross_entropy_backward(probs, t, 1.0, 0.2))
    finally:
        cnnkit.set_isa(before)
    ref_loss, ref_grad = ref_ce_smooth(x, t, 0.2)
    for isa, (loss, dx) in results.items():
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6, err_msg=isa)
        np.testing.assert_allclose(dx, ref_grad, rtol=1e-5, atol=1e-8, err_msg=isa)


def test_cross_entropy_label_smoothing_huge_logits_stay_finite(isa):
    x = f32([[1000.0, 1001.0, 999.0], [-1e4, -1e4 + 1, -1e4 - 1], [88.0, -88.0, 0.0]])
    t = np.array([0, 1, 1], np.int64)
    loss, probs = _core.cross_entropy_forward(x, t, 0.3)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, ref_ce_smooth(x, t, 0.3)[0], rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("module", [False, True])
def test_cross_entropy_label_smoothing_parity_with_torch(isa, eps, module):
    torch = pytest.importorskip("torch")
    import cnnkit
    from cnnkit import functional as F
    from cnnkit import nn

    rng = np.random.default_rng(58)
    x = rand(rng, 11, 6, scale=2.5)
    t = rng.integers(0, 6, 11).astype(np.int64)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(t), label_smoothing=eps)
    lt.backward()
    xc = cnnkit.tensor(x, requires_grad=True)
    lc = (nn.CrossEntropyLoss(label_smoothing=eps)(xc, t) if module
          else F.cross_entropy(xc, t, label_smoothing=eps))
    lc.backward()
    np.testing.assert_allclose(lc.item(), lt.item(), rtol=1e-6)
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), -1e-12])
def test_cross_entropy_label_smoothing_out_of_range(bad):
    import cnnkit
    from cnnkit import functional as F
    from cnnkit import nn

    x = np.zeros((3, 4), np.float32)
    t = np.array([0, 1, 2], np.int64)
    pattern = r"cross_entropy: label_smoothing must be in \[0, 1\].*got " + re.escape(str(bad))
    with pytest.raises(ValueError, match=pattern):
        _core.cross_entropy_forward(x, t, bad)
    with pytest.raises(ValueError, match=pattern):
        _core.cross_entropy_backward(x, t, 1.0, label_smoothing=bad)
    with pytest.raises(ValueError, match=pattern):
        F.cross_entropy(cnnkit.tensor(x), t, label_smoothing=bad)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: label_smoothing must be in \[0, 1\]"):
        nn.CrossEntropyLoss(label_smoothing=bad)


@pytest.mark.parametrize("bad", ["0.1", None, True, [0.1], 1j])
def test_cross_entropy_label_smoothing_wrong_type(bad):
    import cnnkit
    from cnnkit import functional as F
    from cnnkit import nn

    x = cnnkit.tensor(np.zeros((3, 4), np.float32))
    t = np.array([0, 1, 2], np.int64)
    with pytest.raises(TypeError, match=r"cross_entropy: label_smoothing must be a real number "
                                        r"in \[0, 1\], got " + re.escape(repr(bad))):
        F.cross_entropy(x, t, label_smoothing=bad)
    with pytest.raises(TypeError, match=r"CrossEntropyLoss: label_smoothing must be a real"):
        nn.CrossEntropyLoss(label_smoothing=bad)
    if not isinstance(bad, bool):  # the core takes a bool as a number, as for its other floats
        with pytest.raises(TypeError):
            _core.cross_entropy_forward(x.data, t, bad)


def test_cross_entropy_loss_module_repr_and_default():
    from cnnkit import nn

    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert "label_smoothing=0.1" in repr(nn.CrossEntropyLoss(label_smoothing=0.1))
    assert nn.CrossEntropyLoss(label_smoothing=1).label_smoothing == 1.0
