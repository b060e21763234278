"""Pooling: max (argmax routing), average, adaptive average; every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, f32, numgrad, rand

import cnnkit


def out_size(n, k, s, p, ceil):
    num = n + 2 * p - k + (s - 1 if ceil else 0)
    o = num // s + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def ref_max_pool(x, k, s, p, ceil):
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, k[0], s[0], p[0], ceil), out_size(W, k[1], s[1], p[1], ceil)
    y = np.zeros((N, C, Ho, Wo))
    idx = np.zeros((N, C, Ho, Wo), dtype=np.int64)
    for i in range(Ho):
        h0, h1 = max(i * s[0] - p[0], 0), min(i * s[0] - p[0] + k[0], H)
        for j in range(Wo):
            w0, w1 = max(j * s[1] - p[1], 0), min(j * s[1] - p[1] + k[1], W)
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1).astype(np.float64)
            a = win.argmax(axis=2)  # numpy: first maximum
            y[:, :, i, j] = win.max(axis=2)
            idx[:, :, i, j] = (h0 + a // (w1 - w0)) * W + w0 + a % (w1 - w0)
    return y, idx


def ref_avg_pool(x, k, s, p, ceil, count_include_pad):
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, k[0], s[0], p[0], ceil), out_size(W, k[1], s[1], p[1], ceil)
    y = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            area = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
            d = area if count_include_pad else (he - hs) * (we - ws)
            y[:, :, i, j] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / d
    return y


def ref_adaptive(x, oh, ow):
    N, C, H, W = x.shape
    y = np.zeros((N, C, oh, ow))
    for i in range(oh):
        h0, h1 = (i * H) // oh, -((-(i + 1) * H) // oh)
        for j in range(ow):
            w0, w1 = (j * W) // ow, -((-(j + 1) * W) // ow)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    return y


# (shape, kernel, stride, padding, ceil_mode): odd shapes, the AlexNet 3x3/2 and VGG 2x2/2
# cases, widths that give more than one vector of outputs plus a partial one.
CASES = [
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), False),
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1), True),
    ((2, 1, 13, 75), (3, 3), (2, 2), (0, 0), False),
    ((1, 2, 12, 70), (3, 3), (2, 2), (0, 0), True),
    ((2, 2, 9, 67), (2, 2), (2, 2), (0, 0), False),
    ((1, 3, 5, 66), (2, 2), (2, 2), (1, 1), True),
    ((1, 2, 8, 40), (3, 3), (1, 1), (1, 1), False),
    ((1, 2, 10, 37), (3, 3), (3, 3), (0, 0), True),
    ((3, 2, 5, 6), (2, 3), (1, 2), (1, 1), False),
    ((1, 1, 1, 37), (1, 3), (1, 2), (0, 1), False),
    ((1, 2, 11, 11), (5, 5), (2, 2), (2, 2), True),
]


@pytest.mark.parametrize("shape,k,s,p,ceil", CASES)
def test_max_pool_forward_backward_match_reference(isa, shape, k, s, p, ceil):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape)
    y, idx = _core.max_pool2d_forward(x, k, s, p, ceil)
    ry, ridx = ref_max_pool(x, k, s, p, ceil)
    assert y.shape == ry.shape and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(idx, ridx)
    # inference: the same maxima, no argmax
    y_only, none = _core.max_pool2d_forward(x, k, s, p, ceil, indices=False)
    assert none is None
    np.testing.assert_array_equal(y_only, y)
    dy = rand(rng, *y.shape)
    dx = _core.max_pool2d_backward(dy, idx, shape[2:])
    ref_dx = np.zeros(shape, dtype=np.float64).reshape(shape[0], shape[1], -1)
    for n in range(shape[0]):
        for c in range(shape[1]):
            np.add.at(ref_dx[n, c], ridx[n, c].ravel(), dy[n, c].ravel().astype(np.float64))
    np.testing.assert_allclose(dx, ref_dx.reshape(shape), rtol=1e-6, atol=1e-6)


def test_max_pool_gradient_numerically(isa):
    rng = np.random.default_rng(1)
    # distinct values spaced well apart: no ties, and eps cannot change the argmax
    x = f32(rng.permutation(2 * 7 * 8).reshape(1, 2, 7, 8) * 0.1)
    k, s, p = (3, 3), (2, 2), (1, 1)
    y, idx = _core.max_pool2d_forward(x, k, s, p, False)
    dy = rand(rng, *y.shape)
    dx = _core.max_pool2d_backward(dy, idx, (7, 8))
    num = numgrad(lambda z: ref_max_pool(z, k, s, p, False)[0], x, dy, eps=1e-3)
    assert_grad_close(dx, num)


def test_max_pool_routes_each_gradient_to_one_input(isa):
    rng = np.random.default_rng(2)
    x = rand(rng, 2, 3, 12, 34)
    y, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    dx = _core.max_pool2d_backward(np.ones_like(y), idx, (12, 34))
    blocks = dx.reshape(2, 3, 6, 2, 17, 2)
    # non-overlapping windows: exactly one input per window receives the gradient
    np.testing.assert_array_equal((blocks != 0).sum(axis=(3, 5)), np.ones((2, 3, 6, 17)))
    np.testing.assert_array_equal(blocks.sum(axis=(3, 5)), np.ones((2, 3, 6, 17)))
    # and it is the maximum of its window
    np.testing.assert_array_equal((x * (dx != 0)).reshape(2, 3, 6, 2, 17, 2).sum(axis=(3, 5)), y)


@pytest.mark.parametrize("W", [2, 3, 16, 31, 32, 33, 34, 67])
def test_max_pool_2x2_matches_the_reference_kernel_bit_for_bit(isa, W):
    """2 x 2 at stride 2 (its own vector path): NaNs, infinities, signed zeros and ties give the
    reference kernel's maxima (bits) and argmax, with and without the indices."""
    rng = np.random.default_rng(W)
    x = rng.integers(-3, 4, size=(2, 3, 7, W)).astype(np.float32)  # many ties
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    mask = rng.random(x.shape) < 0.15
    x[mask] = rng.choice(specials, size=int(mask.sum()))
    y, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    y_only, _ = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, indices=False)
    cnnkit.set_isa("ref")
    ry, ridx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    cnnkit.set_isa(isa)
    np.testing.assert_array_equal(y.view(np.uint32), ry.view(np.uint32))
    np.testing.assert_array_equal(y_only.view(np.uint32), ry.view(np.uint32))
    np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("k,s,p", [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (0, 0)),
                                   ((3, 3), (2, 2), (1, 1)), ((2, 2), (1, 1), (0, 0)),
                                   ((5, 5), (2, 2), (2, 2)), ((1, 1), (2, 2), (0, 0)),
                                   ((2, 3), (2, 2), (1, 1)), ((3, 4), (1, 2), (1, 2)),
                                   ((3, 1), (1, 1), (1, 0)), ((3, 3), (3, 3), (1, 1))])
@pytest.mark.parametrize("W", [5, 12, 21, 38])
def test_max_pool_matches_the_reference_kernel_bit_for_bit(isa, k, s, p, W):
    """Every window shape (odd and even widths, strides 1 to 3, padding): NaNs, infinities,
    signed zeros and ties give the reference kernel's maxima (bits) and argmax."""
    rng = np.random.default_rng(W)
    x = rng.integers(-3, 4, size=(2, 2, 9, W)).astype(np.float32)  # many ties
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    mask = rng.random(x.shape) < 0.1
    x[mask] = rng.choice(specials, size=int(mask.sum()))
    for ceil in (False, True):
        y, idx = _core.max_pool2d_forward(x, k, s, p, ceil)
        y_only, _ = _core.max_pool2d_forward(x, k, s, p, ceil, indices=False)
        cnnkit.set_isa("ref")
        ry, ridx = _core.max_pool2d_forward(x, k, s, p, ceil)
        cnnkit.set_isa(isa)
        np.testing.assert_array_equal(y.view(np.uint32), ry.view(np.uint32))
        np.testing.assert_array_equal(y_only.view(np.uint32), ry.view(np.uint32))
        np.testing.assert_array_equal(idx, ridx)


def test_max_pool_ties_pick_first_maximum(isa):
    x = np.full((1, 1, 7, 37), 2.5, dtype=np.float32)
    y, idx = _core.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), True)
    Ho, Wo = y.shape[2:]
    exp = np.array([[max(2 * i - 1, 0) * 37 + max(2 * j - 1, 0) for j in range(Wo)]
                    for i in range(Ho)])
    np.testing.assert_array_equal(idx[0, 0], exp)
    # two equal maxima in one window: the first in row-major order wins
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 5.0
    _, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    assert idx[0, 0, 0, 0] == 1


def test_max_pool_small_translation_inside_window_keeps_output(isa):
    rng = np.random.default_rng(3)
    base = -np.abs(rand(rng, 1, 2, 8, 36)) - 1.0  # everything below the spikes
    spikes = 1.0 + rng.random((1, 2, 4, 18))
    a = base.copy()
    b = base.copy()
    for i in range(4):
        for j in range(18):
            a[0, :, 2 * i, 2 * j] = spikes[0, :, i, j]        # spike at the window's top-left ...
            b[0, :, 2 * i + 1, 2 * j + 1] = spikes[0, :, i, j]  # ... moved by (1, 1) inside it
    ya, _ = _core.max_pool2d_forward(f32(a), (2, 2), (2, 2), (0, 0), False)
    yb, _ = _core.max_pool2d_forward(f32(b), (2, 2), (2, 2), (0, 0), False)
    np.testing.assert_array_equal(ya, yb)


def test_max_pool_alexnet_shape(isa):
    rng = np.random.default_rng(4)
    x = rand(rng, 2, 5, 55, 55)
    y, idx = _core.max_pool2d_forward(x, (3, 3), (2, 2), (0, 0), False)
    assert y.shape == (2, 5, 27, 27)
    ry, ridx = ref_max_pool(x, (3, 3), (2, 2), (0, 0), False)
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("shape,k,s,p,ceil", CASES)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_matches_reference(shape, k, s, p, ceil, cip):
    rng = np.random.default_rng(5)
    x = rand(rng, *shape)
    y = _core.avg_pool2d_forward(x, k, s, p, ceil, cip)
    ry = ref_avg_pool(x.astype(np.float64), k, s, p, ceil, cip)
    np.testing.assert_allclose(y, ry, rtol=1e-5, atol=1e-6)
    dy = rand(rng, *y.shape)
    dx = _core.avg_pool2d_backward(dy, shape[2:], k, s, p, ceil, cip)
    if x.size <= 800:
        num = numgrad(lambda z: ref_avg_pool(z, k, s, p, ceil, cip), x, dy, eps=1e-3)
        assert_grad_close(dx, num, rtol=1e-4)


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 5), (3, 2)), ((1, 1, 1, 1), (1, 1)),
                                       ((2, 4, 6, 6), (1, 1)), ((1, 2, 5, 9), (5, 4)),
                                       ((1, 1, 3, 2), (4, 5))])
def test_adaptive_avg_pool_matches_reference(shape, out):
    rng = np.random.default_rng(6)
    x = rand(rng, *shape)
    y = _core.adaptive_avg_pool2d_forward(x, out)
    np.testing.assert_allclose(y, ref_adaptive(x, *out), rtol=1e-5, atol=1e-6)
    dy = rand(rng, *y.shape)
    dx = _core.adaptive_avg_pool2d_backward(dy, shape[2:])
    num = numgrad(lambda z: ref_adaptive(z, *out), x, dy, eps=1e-3)
    assert_grad_close(dx, num, rtol=1e-4)


def test_pool_bad_arguments():
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2\) "
                                         r"must be <= kernel_size / 2 \(3 / 2 = 1\)"):
        _core.max_pool2d_forward(x, (3, 3), (2, 2), (2, 2), False)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding \(3\) must be <= kernel_size / 2"):
        _core.avg_pool2d_forward(x, (5, 5), (1, 1), (3, 3), False, True)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        _core.max_pool2d_forward(x, (2, 2), (0, 1), (0, 0), False)
    with pytest.raises(ValueError, match="output size .* is too small"):
        _core.max_pool2d_forward(x, (9, 9), (1, 1), (0, 0), False)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        _core.max_pool2d_forward(np.zeros((8, 8), np.float32), (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(TypeError, match="dtype float32"):
        _core.max_pool2d_forward(x.astype(np.float64), (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.max_pool2d_forward(np.zeros((1, 1, 8, 16), np.float32)[..., ::2], (2, 2), (2, 2),
                                 (0, 0), False)
    y, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(TypeError, match="indices must have dtype int64"):
        _core.max_pool2d_backward(y, idx.astype(np.int32), (8, 8))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, H \* W\)"):
        _core.max_pool2d_backward(y, idx + 100, (8, 8))
    with pytest.raises(ValueError, match=r"dy must end in \(4, 4\)"):
        _core.avg_pool2d_backward(np.zeros((1, 1, 3, 4), np.float32), (8, 8), (2, 2), (2, 2),
                                  (0, 0), False, True)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        _core.adaptive_avg_pool2d_forward(x, (0, 2))


@pytest.mark.parametrize("shape,k,s,p,ceil", CASES)
def test_pool_parity_with_torch(isa, shape, k, s, p, ceil):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rand(rng, *shape)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, p, ceil_mode=ceil, return_indices=True)
    dy = rand(rng, *yt.shape)
    yt.backward(torch.tensor(dy))
    y, idx = _core.max_pool2d_forward(x, k, s, p, ceil)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_allclose(_core.max_pool2d_backward(dy, idx, shape[2:]), xt.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
    for cip in (True, False):
        xt = torch.tensor(x, requires_grad=True)
        yt = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        yt.backward(torch.tensor(dy))
        y = _core.avg_pool2d_forward(x, k, s, p, ceil, cip)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        dx = _core.avg_pool2d_backward(dy, shape[2:], k, s, p, ceil, cip)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_adaptive_parity_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rand(rng, 2, 3, 13, 10)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, (4, 3))
    dy = rand(rng, *yt.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(_core.adaptive_avg_pool2d_forward(x, (4, 3)), yt.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_core.adaptive_avg_pool2d_backward(dy, (13, 10)), xt.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
