"""Batch normalisation and local response normalisation; every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, f32, numgrad, rand, threads_restored  # noqa: F401

import cnnkit


def axes(x):
    return (0,) + tuple(range(2, x.ndim))


def cshape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def ref_bn(x, w, b, eps):
    x = x.astype(np.float64)
    mu = x.mean(axis=axes(x))
    var = x.var(axis=axes(x))
    xhat = (x - mu.reshape(cshape(x))) / np.sqrt(var.reshape(cshape(x)) + eps)
    y = (xhat * (1 if w is None else w.reshape(cshape(x)))
         + (0 if b is None else b.reshape(cshape(x))))
    return y, mu, var


BN_SHAPES = [(5, 3), (2, 1), (1, 4, 1, 2), (2, 3, 5, 7), (3, 2, 9, 17), (2, 4, 3)]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_train_forward_backward(isa, shape, affine):
    rng = np.random.default_rng(20)
    C = shape[1]
    x = rand(rng, *shape, scale=3.0) + 1.5
    w = rand(rng, C) if affine else None
    b = rand(rng, C) if affine else None
    rm, rv = rand(rng, C), f32(rng.random(C) + 0.5)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = _core.batch_norm_forward_train(x, w, b, rm, rv, 0.1, 1e-5)
    ry, mu, var = ref_bn(x, w, b, 1e-5)
    np.testing.assert_allclose(y, ry, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(mean, mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var + 1e-5), rtol=1e-5)
    M = x.size // C
    np.testing.assert_allclose(rm, 0.9 * rm0 + 0.1 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, 0.9 * rv0 + 0.1 * var * M / (M - 1), rtol=1e-5, atol=1e-6)
    # backward: analytic float64 formula and finite differences of the reference forward
    dy = rand(rng, *shape)
    dx, dw, db = _core.batch_norm_backward(dy, x, w, mean, invstd)
    xhat = (x - mu.reshape(cshape(x))) / np.sqrt(var.reshape(cshape(x)) + 1e-5)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=axes(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, (dy * xhat).sum(axis=axes(x)), rtol=1e-4, atol=1e-5)
    if x.size <= 300:
        num = numgrad(lambda z: ref_bn(z, w, b, 1e-5)[0], x, dy)
        assert_grad_close(dx, num, rtol=1e-3)


def test_batch_norm_output_has_zero_mean_unit_variance(isa):
    rng = np.random.default_rng(21)
    x = rand(rng, 8, 5, 13, 11, scale=7.0) - 3.0
    y, _, _ = _core.batch_norm_forward_train(x, None, None, None, None, 0.1, 1e-5)
    y64 = y.astype(np.float64)
    np.testing.assert_allclose(y64.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(y64.var(axis=(0, 2, 3)), 1, rtol=1e-5)


@pytest.mark.parametrize("shape", [(16, 3, 10, 10), (64, 3)])
def test_batch_norm_large_mean_small_std(isa, shape):
    rng = np.random.default_rng(22)
    x = f32(1e4 + 1e-2 * rng.standard_normal(shape))
    rv = np.ones(shape[1], np.float32)
    y, mean, invstd = _core.batch_norm_forward_train(x, None, None, None, rv, 1.0, 1e-8)
    xd = x.astype(np.float64)  # the float32 data itself is what must be normalised
    var = xd.var(axis=axes(x))
    np.testing.assert_allclose(mean, xd.mean(axis=axes(x)), rtol=1e-7)
    np.testing.assert_allclose(1 / invstd.astype(np.float64) ** 2, var + 1e-8, rtol=1e-4)
    np.testing.assert_allclose(rv, var * (x.size // shape[1]) / (x.size // shape[1] - 1), rtol=1e-4)
    y64 = y.astype(np.float64)
    np.testing.assert_allclose(y64.mean(axis=axes(x)), 0, atol=1e-4)
    np.testing.assert_allclose(y64.var(axis=axes(x)), 1, rtol=1e-3)


def _bn_backward_ref(x, dy, w, eps):
    """float64 dx of the training-mode batch norm (the formula, on the float32 data)."""
    xd, g = x.astype(np.float64), dy.astype(np.float64)
    mu, var = xd.mean(axis=axes(x), keepdims=True), xd.var(axis=axes(x), keepdims=True)
    xhat = (xd - mu) / np.sqrt(var + eps)
    gamma = 1.0 if w is None else w.astype(np.float64).reshape(cshape(x))
    dx = gamma / np.sqrt(var + eps) * (g - g.mean(axis=axes(x), keepdims=True)
                                       - xhat * (g * xhat).mean(axis=axes(x), keepdims=True))
    return dx, (g * xhat).sum(axis=axes(x))


@pytest.mark.parametrize("shape", [(16, 3, 10, 10), (64, 3)])
def test_batch_norm_backward_large_mean_small_std(isa, shape):
    """The backward keeps the forward's accuracy when |mean| >> std (issue 14: it was 2e-3 off
    float64 when x - mean was taken around the float32 mean)."""
    rng = np.random.default_rng(26)
    x = f32(1e4 + 1e-2 * rng.standard_normal(shape))
    dy, w = rand(rng, *shape), rand(rng, shape[1])
    y, mean, invstd = _core.batch_norm_forward_train(x, w, None, None, None, 0.1, 1e-8)
    assert mean.dtype == np.float64
    dx, dw, db = _core.batch_norm_backward(dy, x, w, mean, invstd)
    rdx, rdw = _bn_backward_ref(x, dy, w, 1e-8)
    assert np.abs(dx - rdx).max() <= 1e-4 * np.abs(rdx).max()
    assert np.abs(dw - rdw).max() <= 1e-4 * np.abs(rdw).max()


@pytest.mark.parametrize("shape", [(6, 5, 7, 9), (9, 4), (3, 2, 11)])
def test_batch_norm_backward_eval(isa, shape):
    """Running statistics: a per-channel affine map; its gradients against float64."""
    rng = np.random.default_rng(27)
    C = shape[1]
    x, dy, w = rand(rng, *shape) * 2 + 1, rand(rng, *shape), rand(rng, C)
    rm, rv = rand(rng, C), f32(rng.random(C) + 0.5)
    dx, dw, db = _core.batch_norm_backward_eval(dy, x, w, rm, rv, 1e-5)
    r = 1 / np.sqrt(rv.astype(np.float64) + 1e-5)
    g = dy.astype(np.float64)
    np.testing.assert_allclose(dx, g * (w * r).reshape(cshape(x)), rtol=1e-6, atol=1e-7)
    xhat = (x - rm.reshape(cshape(x)).astype(np.float64)) * r.reshape(cshape(x))
    np.testing.assert_allclose(dw, (g * xhat).sum(axis=axes(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, g.sum(axis=axes(x)), rtol=1e-6, atol=1e-5)
    none, dw2, db2 = _core.batch_norm_backward_eval(dy, x, None, rm, rv, 1e-5, need_dx=False)
    assert none is None
    np.testing.assert_allclose(dw2, dw, rtol=1e-6)


@pytest.mark.parametrize("shape", [(8, 3, 5, 7), (10, 4)])
def test_batch_norm_stages_over_shards_equal_the_whole_batch(isa, shape):
    """SyncBatchNorm's stages: statistics and backward sums added over two shards of the
    batch give the whole batch's forward and backward."""
    rng = np.random.default_rng(28)
    C = shape[1]
    x, dy, w, b = rand(rng, *shape) * 3 + 2, rand(rng, *shape), rand(rng, C), rand(rng, C)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, mean, invstd = _core.batch_norm_forward_train(x, w, b, rm, rv, 0.1, 1e-5)
    dx, dw, db = _core.batch_norm_backward(dy, x, w, mean, invstd)
    shards = (slice(0, 3), slice(3, None))
    shift = rand(rng, C)
    sums = sum(_core.batch_norm_stats(np.ascontiguousarray(x[s]), shift) for s in shards)
    count = float(x.size // C)
    rm2, rv2 = np.zeros(C, np.float32), np.ones(C, np.float32)
    outs = [_core.batch_norm_forward_from_stats(np.ascontiguousarray(x[s]), w, b, sums, count,
                                                shift, rm2, rv2, 0.1, 1e-5) for s in shards]
    # the running statistics moved once per call: compare the first call's update
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs]), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], mean, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(outs[0][2], invstd, rtol=1e-6)
    red = [_core.batch_norm_backward_reduce(np.ascontiguousarray(dy[s]), np.ascontiguousarray(x[s]),
                                            outs[0][1], outs[0][2]) for s in shards]
    total = red[0][0] + red[1][0]
    np.testing.assert_allclose(red[0][1] + red[1][1], dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(red[0][2] + red[1][2], db, rtol=1e-5, atol=1e-5)
    dxs = [_core.batch_norm_backward_apply(np.ascontiguousarray(dy[s]), np.ascontiguousarray(x[s]),
                                           w, outs[0][1], outs[0][2], total, count) for s in shards]
    np.testing.assert_allclose(np.concatenate(dxs), dx, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"batch_norm_backward_apply: sums must have shape \[2, "):
        _core.batch_norm_backward_apply(dy, x, w, mean, invstd, total[:, :1].copy(), count)
    with pytest.raises(TypeError,
                       match="batch_norm_backward_reduce: save_mean must have dtype float64"):
        _core.batch_norm_backward_reduce(dy, x, mean.astype(np.float32), invstd)


def test_batch_norm_eval(isa):
    rng = np.random.default_rng(23)
    x = rand(rng, 3, 4, 5, 19)
    w, b, rm, rv = rand(rng, 4), rand(rng, 4), rand(rng, 4), f32(rng.random(4) + 0.1)
    y = _core.batch_norm_forward_eval(x, w, b, rm, rv, 1e-5)
    ref = (x - rm.reshape(1, 4, 1, 1)) / np.sqrt(rv.reshape(1, 4, 1, 1).astype(np.float64) + 1e-5)
    np.testing.assert_allclose(y, ref * w.reshape(1, 4, 1, 1) + b.reshape(1, 4, 1, 1),
                               rtol=1e-5, atol=1e-5)
    y2 = _core.batch_norm_forward_eval(x[:, :, 0, :].copy(), None, None, rm, rv, 1e-5)
    np.testing.assert_allclose(y2, ref[:, :, 0, :], rtol=1e-5, atol=1e-5)


def test_batch_norm_bitwise_across_thread_counts(isa, threads_restored):  # noqa: F811
    rng = np.random.default_rng(24)
    x = rand(rng, 4, 6, 33, 31)
    dy = rand(rng, *x.shape)
    res = []
    for t in (1, 2, 3):
        cnnkit.set_num_threads(t)
        y, m, s = _core.batch_norm_forward_train(x, None, None, None, None, 0.1, 1e-5)
        res.append((y, m, s) + _core.batch_norm_backward(dy, x, None, m, s))
    for r in res[1:]:
        for a, b in zip(res[0], r):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("S", [2, 3, 4, 5, 7, 8, 11, 15, 16, 17, 19, 31, 32, 33, 37])
def test_fused_batch_norm_relu_ragged_planes(isa, S):
    """Planes whose size is not a multiple of the vector width or of the mask word (16): the
    mask holds bit s % 16 of word s // 16 of each plane set exactly where the output is > 0
    (bits past S clear); forward and backward match the float64 formulas."""
    rng = np.random.default_rng(S)
    N, C = 3, 2
    x = rand(rng, N, C, 1, S, scale=2.0) + 0.3
    w, b = rand(rng, C), rand(rng, C)
    y, mean, invstd, mask = _core.batch_norm_forward_train(x, w, b, None, None, 0.1, 1e-5, True)
    words = (S + 15) // 16
    assert mask.dtype == np.uint16 and mask.shape == (N * C * words,)
    bits = (mask.reshape(N * C, words, 1) >> np.arange(16, dtype=np.uint16)) & 1
    bits = bits.reshape(N * C, words * 16)
    assert not bits[:, S:].any()
    np.testing.assert_array_equal(bits[:, :S].astype(bool), (y > 0).reshape(N * C, S))
    ry, mu, var = ref_bn(x, w, b, 1e-5)
    np.testing.assert_allclose(y, np.maximum(ry, 0), rtol=1e-5, atol=2e-5)
    dy = rand(rng, *x.shape)
    dx, dw, db = _core.batch_norm_backward(dy, x, w, mean, invstd, mask)
    gy = np.where(y > 0, dy, 0.0)
    r = 1 / np.sqrt(var.reshape(cshape(x)) + 1e-5)
    xhat = (x - mu.reshape(cshape(x))) * r
    np.testing.assert_allclose(db, gy.sum(axis=axes(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, (gy * xhat).sum(axis=axes(x)), rtol=1e-4, atol=1e-5)
    gx = w.reshape(cshape(x)) * r * (gy - gy.mean(axis=axes(x), keepdims=True)
                                     - xhat * (gy * xhat).mean(axis=axes(x), keepdims=True))
    np.testing.assert_allclose(dx, gx, rtol=1e-4, atol=1e-5)


def test_batch_norm_bad_arguments():
    x = np.zeros((4, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"batch_norm_forward_train: weight must have shape "
                                         r"\[3\], got \[4\]"):
        _core.batch_norm_forward_train(x, np.ones(4, np.float32), None, None, None, 0.1, 1e-5)
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        _core.batch_norm_forward_train(np.zeros((1, 3), np.float32), None, None, None, None,
                                       0.1, 1e-5)
    with pytest.raises(TypeError, match="running_mean must have dtype float32"):
        _core.batch_norm_forward_train(x, None, None, np.zeros(3), None, 0.1, 1e-5)
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        _core.batch_norm_forward_eval(np.zeros(3, np.float32), None, None,
                                      np.zeros(3, np.float32), np.ones(3, np.float32), 1e-5)
    with pytest.raises(ValueError, match=r"dy must have the shape of x"):
        _core.batch_norm_backward(np.zeros((4, 3), np.float32), x, None,
                                  np.zeros(3, np.float32), np.ones(3, np.float32))


def test_batch_norm_parity_with_torch(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(25)
    for shape in [(6, 5, 7, 9), (9, 4)]:
        C = shape[1]
        x, w, b, dy = rand(rng, *shape) * 2 + 1, rand(rng, C), rand(rng, C), rand(rng, *shape)
        rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
        trm, trv = torch.zeros(C), torch.ones(C)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        yt = torch.nn.functional.batch_norm(xt, trm, trv, wt, bt, training=True, momentum=0.1,
                                            eps=1e-5)
        yt.backward(torch.tensor(dy))
        y, m, s = _core.batch_norm_forward_train(x, w, b, rm, rv, 0.1, 1e-5)
        dx, dw, db = _core.batch_norm_backward(dy, x, w, m, s)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-5, atol=1e-4)
        ye = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w),
                                            torch.tensor(b), training=False, eps=1e-5)
        np.testing.assert_allclose(_core.batch_norm_forward_eval(x, w, b, rm, rv, 1e-5), ye.numpy(),
                                   rtol=1e-5, atol=1e-5)


# ---- local response normalisation ----

def ref_lrn(x, size, alpha, beta, k):
    x = x.astype(np.float64)
    C = x.shape[1]
    sq = np.zeros_like(x)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C - 1, c + (size - 1) // 2)
        sq[:, c] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
    scale = k + alpha / size * sq
    return x * scale ** -beta, scale


LRN_CASES = [((2, 7, 3, 5), 5, 1e-4, 0.75, 1.0), ((1, 1, 1, 1), 5, 1e-2, 0.75, 2.0),
             ((2, 3, 4, 37), 5, 0.5, 0.75, 2.0), ((1, 6, 2, 3), 4, 0.3, 0.6, 1.5),
             ((2, 5, 3, 3), 1, 0.2, 0.75, 1.0), ((1, 9, 41), 3, 1.0, 1.2, 0.5),
             ((1, 4, 2, 2), 2, 0.7, 0.75, 1.0), ((1, 16, 50, 50), 5, 5e-4, 0.75, 2.0)]


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES)
def test_lrn_forward_backward(isa, shape, size, alpha, beta, k):
    rng = np.random.default_rng(26)
    x = rand(rng, *shape, scale=2.0)
    y, scale = _core.lrn_forward(x, size, alpha, beta, k)
    ry, rs = ref_lrn(x, size, alpha, beta, k)
    np.testing.assert_allclose(scale, rs, rtol=2e-6)
    np.testing.assert_allclose(y, ry, rtol=4e-6, atol=1e-7)
    dy = rand(rng, *shape)
    dx = _core.lrn_backward(dy, x, y, scale, size, alpha, beta, k)
    # analytic float64 backward
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    t = dy64 * ry / rs
    acc = np.zeros_like(t)
    C = shape[1]
    for i in range(C):
        lo, hi = max(0, i - (size - 1) // 2), min(C - 1, i + size // 2)
        acc[:, i] = t[:, lo:hi + 1].sum(axis=1)
    ref_dx = dy64 * rs ** -beta - 2 * alpha * beta / size * x64 * acc
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-6)
    if x.size <= 200:
        num = numgrad(lambda z: ref_lrn(z, size, alpha, beta, k)[0], x, dy)
        assert_grad_close(dx, num, rtol=1e-4)


def test_lrn_alexnet_paper_parameters():
    # paper: b = a / (k + alpha_paper * sum a^2)^beta, n = 5, k = 2, alpha_paper = 1e-4
    rng = np.random.default_rng(27)
    x = rand(rng, 1, 8, 3, 3, scale=20.0)
    y, _ = _core.lrn_forward(x, 5, 5 * 1e-4, 0.75, 2.0)
    x64 = x.astype(np.float64)
    paper = np.zeros_like(x64)
    for c in range(8):
        s = (x64[:, max(0, c - 2):min(8, c + 3)] ** 2).sum(axis=1)
        paper[:, c] = x64[:, c] / (2.0 + 1e-4 * s) ** 0.75
    np.testing.assert_allclose(y, paper, rtol=1e-5)


def test_lrn_bad_arguments():
    with pytest.raises(ValueError,
                       match=r"local_response_norm: size must be in \[1, 1024\], got 0"):
        _core.lrn_forward(np.zeros((1, 3, 2, 2), np.float32), 0, 1e-4, 0.75, 1.0)
    with pytest.raises(ValueError, match="lrn_forward: x must have at least 3 dimensions"):
        _core.lrn_forward(np.zeros((3, 2), np.float32), 5, 1e-4, 0.75, 1.0)
    x = np.ones((1, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="scale must have the shape of x"):
        _core.lrn_backward(x, x, x, np.ones((1, 3, 2, 1), np.float32), 5, 1e-4, 0.75, 1.0)


def test_lrn_parity_with_torch(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(28)
    for shape, size, alpha, beta, k in [((2, 96, 13, 13), 5, 1e-4, 0.75, 2.0),
                                        ((3, 6, 5, 7), 4, 0.3, 0.6, 1.0)]:
        x, dy = rand(rng, *shape, scale=3.0), rand(rng, *shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.local_response_norm(xt, size, alpha, beta, k)
        yt.backward(torch.tensor(dy))
        y, s = _core.lrn_forward(x, size, alpha, beta, k)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        dx = _core.lrn_backward(dy, x, y, s, size, alpha, beta, k)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)


# ---- batch norm + ReLU fused (nn.utils.fuse_batch_norm_relu, F.batch_norm(relu=True)) -----


def _bn_pair(C, rng):
    from cnnkit import nn
    a, b = nn.BatchNorm2d(C), nn.BatchNorm2d(C)
    w = rng.standard_normal(C).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    for m in (a, b):
        m.weight.data[:] = w
        m.bias.data[:] = bias
    return a, b


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (2, 3, 16, 16), (3, 5, 1, 17), (2, 4, 33)])
def test_fused_batch_norm_relu_equals_the_two_ops(isa, rng, shape):
    import cnnkit.functional as F
    from cnnkit import nn
    C = shape[1]
    a, b = _bn_pair(C, rng)
    if len(shape) == 3:
        a, b = nn.BatchNorm1d(C), nn.BatchNorm1d(C)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    xa, xb = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(x, requires_grad=True)
    fused = nn.utils.fuse_batch_norm_relu(nn.Sequential(a, nn.ReLU()))
    assert a.fused_relu and fused[1].fused  # the fused path runs, not the two ops
    ya = fused(xa)
    yb = F.relu(b(xb))                    # two ops
    np.testing.assert_array_equal(ya.data, yb.data)
    (ya * cnnkit.tensor(g)).sum().backward()
    (yb * cnnkit.tensor(g)).sum().backward()
    np.testing.assert_array_equal(xa.grad, xb.grad)
    np.testing.assert_array_equal(a.weight.grad, b.weight.grad)
    np.testing.assert_array_equal(a.bias.grad, b.bias.grad)
    np.testing.assert_array_equal(a.running_mean.data, b.running_mean.data)
    np.testing.assert_array_equal(a.running_var.data, b.running_var.data)
    # and against float64: d relu(bn(x)) / dx by the formula
    xd = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    mu, var = xd.mean(axis=axes, keepdims=True), xd.var(axis=axes, keepdims=True)
    bshape = (1, C) + (1,) * (x.ndim - 2)
    wv, bv = (a.weight.data.astype(np.float64).reshape(bshape),
              a.bias.data.astype(np.float64).reshape(bshape))
    xhat = (xd - mu) / np.sqrt(var + 1e-5)
    y = xhat * wv + bv
    np.testing.assert_allclose(ya.data, np.maximum(y, 0), rtol=1e-4, atol=1e-5)
    gy = np.where(y > 0, g, 0.0)
    m = x.size / C
    gx = wv / np.sqrt(var + 1e-5) * (gy - gy.mean(axis=axes, keepdims=True)
                                    - xhat * (gy * xhat).mean(axis=axes, keepdims=True))
    np.testing.assert_allclose(xa.grad, gx, rtol=1e-3, atol=1e-4 * np.abs(gx).max())
    assert m > 1


def test_fusion_only_where_it_is_invisible(rng):
    """Hooks on either module, or a subclass, keep the two separate ops; in eval mode the
    fused pair gives the two ops' values."""
    from cnnkit import nn
    x = cnnkit.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    bn, relu = nn.BatchNorm2d(3), nn.ReLU()
    seen = []
    bn.register_forward_hook(lambda m, i, o: seen.append(o.data.min()))
    y = nn.utils.fuse_batch_norm_relu(nn.Sequential(bn, relu))(x)
    assert not bn.fused_relu and not relu.fused
    assert seen and seen[0] < 0  # the hook saw the batch norm's own (signed) output
    assert (y.data >= 0).all()

    class MyBN(nn.BatchNorm2d):
        pass

    sub = nn.utils.fuse_batch_norm_relu(nn.Sequential(MyBN(3), nn.ReLU()))
    assert not sub[0].fused_relu and not sub[1].fused
    model = nn.utils.fuse_batch_norm_relu(nn.Sequential(nn.BatchNorm2d(3), nn.ReLU())).eval()
    plain = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU()).eval()
    assert model[0].fused_relu
    np.testing.assert_array_equal(model(x).data, np.maximum(plain[0](x).data, 0))


def test_batch_norm_relu_keyword(rng):
    import cnnkit.functional as F
    x = cnnkit.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True, relu=True)  # [N, C]: the two ops
    np.testing.assert_array_equal(y.data,
                                  np.maximum(F.batch_norm(x, None, None, training=True).data, 0))
    with pytest.raises(TypeError, match="batch_norm: relu must be a bool, got int"):
        F.batch_norm(x, None, None, training=True, relu=1)


def test_fused_mask_is_checked(rng):
    core = cnnkit._core
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    y, mean, invstd, mask = core.batch_norm_forward_train(x, None, None, None, None, 0.1, 1e-5,
                                                          True)
    assert mask.dtype == np.uint16 and mask.shape == (2 * 3 * 2,)
    dy = np.ones_like(x)
    with pytest.raises(ValueError, match=r"relu_mask must have shape \[12\]"):
        core.batch_norm_backward(dy, x, None, mean, invstd, mask[:5])
    with pytest.raises(TypeError, match="relu_mask must be the uint16 array"):
        core.batch_norm_backward(dy, x, None, mean, invstd, mask.astype(np.int32))
    with pytest.raises(ValueError, match="relu=True needs x with spatial dimensions"):
        core.batch_norm_forward_train(x.reshape(2, 75), None, None, None, None, 0.1, 1e-5, True)


def test_summed_batch_norm_with_nothing_to_sum_is_the_training_batch_norm(isa, rng):
    """ops.norm.BatchNormSummedFunction (SyncBatchNorm's stages) with a no-op sum_across."""
    from cnnkit.ops.norm import BatchNormSummedFunction, BatchNormTrainFunction
    for shape in [(6, 3, 4, 5), (8, 4), (3, 2, 7)]:
        C = shape[1]
        x = rand(rng, *shape) * 2 + 1
        w, b, dy = rand(rng, C), rand(rng, C), rand(rng, *shape)
        outs = []
        for fn, extra in ((BatchNormTrainFunction, {}),
                          (BatchNormSummedFunction, {"sum_across": lambda a: a})):
            xt, wt, bt = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
            rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
            y = fn.apply(xt, wt, bt, running_mean=rm, running_var=rv, momentum=0.1, eps=1e-5,
                         **extra)
            (y * cnnkit.tensor(dy)).sum().backward()
            outs.append((y.data, xt.grad, wt.grad, bt.grad, rm, rv))
        for a, b_ in zip(*outs):
            np.testing.assert_allclose(a, b_, rtol=2e-5, atol=2e-5)
