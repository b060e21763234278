"""Group normalisation and layer normalisation (PyTorch semantics); every ISA path.

The references are float64 numpy written from the formulas (row_norm.cpp's comment): each
(sample, group) row, or each row of the normalised trailing dims, is normalised by its own mean
and biased variance, then scaled and shifted per channel (group norm) or per element (layer
norm); the backward is dx = r (g - mean(g) - xhat mean(g xhat)) with g = dy w, dw = sum dy xhat,
db = sum dy.
"""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, f32, numgrad, rand, threads_restored  # noqa: F401

import cnnkit
import cnnkit.functional as F
import cnnkit.nn as nn


# --------------------------------------------------------------------------- references
def ref_rows(rows, eps):
    """xhat, mean and 1 / std of each row of a float64 [R, L] array."""
    mean = rows.mean(axis=1, keepdims=True)
    var = rows.var(axis=1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    return (rows - mean) * r, mean[:, 0], r[:, 0]


def ref_rows_backward(dy_rows, xhat, r, g_rows):
    """dx of each row from g = dy w (float64 [R, L])."""
    mg = g_rows.mean(axis=1, keepdims=True)
    mgx = (g_rows * xhat).mean(axis=1, keepdims=True)
    return r[:, None] * (g_rows - mg - xhat * mgx)


def channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def ref_group_norm(x, G, w, b, eps=1e-5):
    """y, mean [N, G], 1 / std [N, G], xhat (shape of x)."""
    N = x.shape[0]
    xhat, mean, r = ref_rows(x.astype(np.float64).reshape(N * G, -1), eps)
    xhat = xhat.reshape(x.shape)
    y = xhat * (1 if w is None else w.reshape(channel_shape(x)))
    y = y + (0 if b is None else b.reshape(channel_shape(x)))
    return y, mean.reshape(N, G), r.reshape(N, G), xhat


def ref_group_norm_backward(dy, x, G, w, eps=1e-5):
    N = x.shape[0]
    _, _, r, xhat = ref_group_norm(x, G, None, None, eps)
    dy = dy.astype(np.float64)
    g = dy * (1 if w is None else w.reshape(channel_shape(x)))
    dx = ref_rows_backward(None, xhat.reshape(N * G, -1), r.reshape(-1), g.reshape(N * G, -1))
    axes = (0,) + tuple(range(2, x.ndim))
    return dx.reshape(x.shape), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def ref_layer_norm(x, k, w, b, eps=1e-5):
    """Normalises the last k dims. y, mean and 1 / std (x's leading dims), xhat."""
    lead = x.shape[: x.ndim - k]
    xhat, mean, r = ref_rows(x.astype(np.float64).reshape(int(np.prod(lead)), -1), eps)
    xhat = xhat.reshape(x.shape)
    y = xhat * (1 if w is None else w) + (0 if b is None else b)
    return y, mean.reshape(lead), r.reshape(lead), xhat


def ref_layer_norm_backward(dy, x, k, w, eps=1e-5):
    _, _, r, xhat = ref_layer_norm(x, k, None, None, eps)
    dy = dy.astype(np.float64)
    g = dy * (1 if w is None else w)
    R = r.size
    dx = ref_rows_backward(None, xhat.reshape(R, -1), r.reshape(-1), g.reshape(R, -1))
    lead_axes = tuple(range(x.ndim - k))
    return dx.reshape(x.shape), (dy * xhat).sum(axis=lead_axes), dy.sum(axis=lead_axes)


def close(got, want, rtol=1e-5, atol=1e-5, what=""):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol,
                               err_msg=what)


# --------------------------------------------------------------------------- group norm
# (shape, num_groups): C/G = 1, HW = 1, 2-D / 3-D / 5-D, odd sizes, rows shorter than a SIMD
# vector and not multiples of 16, batch 1, one group, large rows
GN_CASES = [
    ((2, 6, 3, 5), 3), ((1, 4, 7), 4), ((3, 8, 1, 1), 2), ((2, 6), 3), ((5, 3), 1),
    ((2, 4, 2, 3, 5), 2), ((1, 32, 17, 19), 8), ((2, 3, 5, 5), 1), ((4, 6, 3), 6),
    ((2, 2, 1000), 1), ((1, 16, 64, 63), 4), ((3, 10, 1), 5), ((1, 1, 1), 1),
]


@pytest.mark.parametrize("shape, G", GN_CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_reference(isa, shape, G, affine):
    rng = np.random.default_rng(30)
    C = shape[1]
    x = rand(rng, *shape, scale=2.0) + 0.7
    w = rand(rng, C) if affine else None
    b = rand(rng, C) if affine else None
    y, mean, invstd = _core.group_norm_forward(x, G, w, b, 1e-5)
    ry, rmean, rinv, _ = ref_group_norm(x, G, w, b)
    close(y, ry, 1e-5, 2e-5, "y")
    assert mean.dtype == np.float64 and mean.shape == (shape[0], G)
    assert invstd.dtype == np.float32 and invstd.shape == (shape[0], G)
    close(mean, rmean, 1e-6, 1e-6, "save_mean")
    close(invstd, rinv, 1e-5, 0, "save_invstd")
    dy = rand(rng, *shape)
    dx, dw, db = _core.group_norm_backward(dy, x, G, w, mean, invstd)
    rdx, rdw, rdb = ref_group_norm_backward(dy, x, G, w)
    close(dx, rdx, 1e-4, 1e-4, "dx")
    close(dw, rdw, 1e-4, 1e-4, "dweight")
    close(db, rdb, 1e-5, 1e-4, "dbias")
    _, dw0, db0 = _core.group_norm_backward(dy, x, G, w, mean, invstd, need_weight_grads=False)
    assert dw0 is None and db0 is None


def test_group_norm_backward_formula_against_finite_differences():
    """The reference backward itself, against centred differences of the reference forward."""
    rng = np.random.default_rng(31)
    x, w, b, dy = rand(rng, 2, 4, 3), rand(rng, 4), rand(rng, 4), rand(rng, 2, 4, 3)
    dx, dw, db = ref_group_norm_backward(dy, x, 2, w)
    assert_grad_close(dx, numgrad(lambda z: ref_group_norm(z, 2, w, b)[0], x, dy), 1e-5)
    assert_grad_close(dw, numgrad(lambda v: ref_group_norm(x, 2, v, b)[0], w, dy), 1e-5)
    assert_grad_close(db, numgrad(lambda v: ref_group_norm(x, 2, w, v)[0], b, dy), 1e-5)


# --------------------------------------------------------------------------- layer norm
# (shape, number of normalised trailing dims)
LN_CASES = [
    ((4, 7), 1), ((2, 3, 5), 2), ((3, 1), 1), ((2, 3, 4, 5, 6), 3), ((1, 1000), 1),
    ((8, 3, 16), 1), ((5, 33), 1), ((6,), 1), ((2, 4, 4100), 1), ((3, 2, 9), 3),
    ((64, 17), 1), ((2, 5, 1, 3), 2),
]


@pytest.mark.parametrize("shape, k", LN_CASES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_reference(isa, shape, k, affine):
    rng = np.random.default_rng(32)
    ns = list(shape[len(shape) - k:])
    x = rand(rng, *shape, scale=1.5) - 0.4
    w = rand(rng, *ns) if affine != "none" else None
    b = rand(rng, *ns) if affine == "both" else None
    y, mean, invstd = _core.layer_norm_forward(x, ns, w, b, 1e-5)
    ry, rmean, rinv, _ = ref_layer_norm(x, k, w, b)
    close(y, ry, 1e-5, 2e-5, "y")
    assert mean.shape == invstd.shape == shape[: len(shape) - k]
    close(mean, rmean, 1e-6, 1e-6, "save_mean")
    close(invstd, rinv, 1e-5, 0, "save_invstd")
    dy = rand(rng, *shape)
    dx, dw, db = _core.layer_norm_backward(dy, x, ns, w, mean, invstd)
    rdx, rdw, rdb = ref_layer_norm_backward(dy, x, k, w)
    close(dx, rdx, 1e-4, 1e-4, "dx")
    assert dw.shape == db.shape == tuple(ns)
    close(dw, rdw, 1e-4, 1e-4, "dweight")
    close(db, rdb, 1e-5, 1e-4, "dbias")


def test_layer_norm_backward_formula_against_finite_differences():
    rng = np.random.default_rng(33)
    x, w, b, dy = rand(rng, 3, 2, 4), rand(rng, 2, 4), rand(rng, 2, 4), rand(rng, 3, 2, 4)
    dx, dw, db = ref_layer_norm_backward(dy, x, 2, w)
    assert_grad_close(dx, numgrad(lambda z: ref_layer_norm(z, 2, w, b)[0], x, dy), 1e-5)
    assert_grad_close(dw, numgrad(lambda v: ref_layer_norm(x, 2, v, b)[0], w, dy), 1e-5)
    assert_grad_close(db, numgrad(lambda v: ref_layer_norm(x, 2, w, v)[0], b, dy), 1e-5)


# --------------------------------------------------------------------------- ISA paths
@pytest.mark.parametrize("L", [1, 2, 3, 5, 15, 16, 17, 31, 32, 33, 47, 100, 257])
def test_every_isa_matches_the_reference_kernels(L):
    """Row lengths below, at and above the 16-float vector: the SIMD kernels (masked tails)
    against the reference kernels on the same input."""
    rng = np.random.default_rng(34)
    x, dy = rand(rng, 7, L, scale=3.0) + 2.0, rand(rng, 7, L)
    w, b = rand(rng, L), rand(rng, L)
    xg, dyg = x.reshape(7, L, 1), dy.reshape(7, L, 1)          # group norm, S = 1
    xs, dys = x.reshape(1, 7, L), dy.reshape(1, 7, L)          # group norm, planes of L
    wc, bc = rand(rng, 7), rand(rng, 7)
    before = cnnkit.get_isa()

    def run():
        out = _core.layer_norm_forward(x, [L], w, b, 1e-5)
        out += _core.layer_norm_backward(dy, x, [L], w, out[1], out[2])
        g = _core.group_norm_forward(xg, 1, w, b, 1e-5)
        g += _core.group_norm_backward(dyg, xg, 1, w, g[1], g[2])
        s = _core.group_norm_forward(xs, 7, wc, bc, 1e-5)
        s += _core.group_norm_backward(dys, xs, 7, wc, s[1], s[2])
        return out + g + s

    try:
        cnnkit.set_isa("ref")
        want = run()
        for isa in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(isa)
            for got, ref in zip(run(), want):
                close(got, ref.astype(np.float64), 2e-5, 2e-5, isa)
    finally:
        cnnkit.set_isa(before)


@pytest.mark.parametrize("op", ["group", "layer"])
def test_large_mean_small_std_keeps_its_accuracy(isa, op):
    """A mean of 1e4 with a std of 1e-2: the double sums around the row's first value and the
    split mean keep xhat accurate (x^2 ~ 1e8 would swamp a variance of 1e-4 in float)."""
    rng = np.random.default_rng(35)
    x = f32(1e4 + 1e-2 * rng.standard_normal((4, 6, 40)))
    dy = rand(rng, 4, 6, 40)
    if op == "group":
        y, mean, invstd = _core.group_norm_forward(x, 2, None, None, 1e-8)
        ry = ref_group_norm(x, 2, None, None, 1e-8)[0]
        dx = _core.group_norm_backward(dy, x, 2, None, mean, invstd)[0]
        rdx = ref_group_norm_backward(dy, x, 2, None, 1e-8)[0]
    else:
        y, mean, invstd = _core.layer_norm_forward(x, [6, 40], None, None, 1e-8)
        ry = ref_layer_norm(x, 2, None, None, 1e-8)[0]
        dx = _core.layer_norm_backward(dy, x, [6, 40], None, mean, invstd)[0]
        rdx = ref_layer_norm_backward(dy, x, 2, None, 1e-8)[0]
    close(y, ry, 0, 2e-4, "y")
    close(dx, rdx, 1e-3, 2e-2, "dx")  # dx ~ 1 / std = 100


def test_empty_batch():
    x = np.zeros((0, 4, 3), np.float32)
    y, mean, invstd = _core.group_norm_forward(x, 2, None, None, 1e-5)
    assert y.shape == x.shape and mean.shape == (0, 2)
    dx, dw, db = _core.group_norm_backward(x, x, 2, np.ones(4, np.float32), mean, invstd)
    assert dx.shape == x.shape and not dw.any() and not db.any()
    y, mean, invstd = _core.layer_norm_forward(x, [4, 3], None, None, 1e-5)
    assert y.shape == x.shape and mean.shape == (0,)


# --------------------------------------------------------------------------- autograd
def test_gradcheck_group_norm():
    rng = np.random.default_rng(36)
    x = cnnkit.tensor(rand(rng, 2, 4, 3), requires_grad=True)
    w = cnnkit.tensor(rand(rng, 4), requires_grad=True)
    b = cnnkit.tensor(rand(rng, 4), requires_grad=True)
    assert cnnkit.gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), (x, w, b))
    assert cnnkit.gradcheck(lambda x: F.group_norm(x, 4), (x,))


def test_gradcheck_layer_norm():
    rng = np.random.default_rng(37)
    x = cnnkit.tensor(rand(rng, 3, 2, 5), requires_grad=True)
    w = cnnkit.tensor(rand(rng, 2, 5), requires_grad=True)
    b = cnnkit.tensor(rand(rng, 2, 5), requires_grad=True)
    assert cnnkit.gradcheck(lambda x, w, b: F.layer_norm(x, (2, 5), w, b), (x, w, b))
    assert cnnkit.gradcheck(lambda x: F.layer_norm(x, 5), (x,))


def test_modules_init_and_state_dict_keys():
    gn = nn.GroupNorm(2, 6)
    assert list(gn.state_dict()) == ["weight", "bias"]
    np.testing.assert_array_equal(gn.weight.data, np.ones(6, np.float32))
    np.testing.assert_array_equal(gn.bias.data, np.zeros(6, np.float32))
    assert list(nn.GroupNorm(2, 6, affine=False).state_dict()) == []
    ln = nn.LayerNorm((3, 4))
    assert list(ln.state_dict()) == ["weight", "bias"] and ln.weight.shape == (3, 4)
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert list(nn.LayerNorm(4, elementwise_affine=False).state_dict()) == []
    assert repr(gn) == "GroupNorm(2, 6, eps=1e-05, affine=True)"
    assert repr(nn.LayerNorm(8)) == ("LayerNorm((8,), eps=1e-05, elementwise_affine=True, "
                                     "bias=True)")


# --------------------------------------------------------------------------- PyTorch parity
def _load_random(module, rng):
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    return module


@pytest.mark.parametrize("args, shape", [((3, 6), (2, 6, 5, 4)), ((2, 4, 1e-3, False), (3, 4, 7)),
                                         ((1, 5), (1, 5)), ((4, 8), (2, 8, 2, 3, 2))])
def test_group_norm_module_matches_torch(isa, args, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(38)
    m = _load_random(nn.GroupNorm(*args), rng)
    tm = torch.nn.GroupNorm(*args)
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
    _compare_with_torch(torch, m, tm, rng, shape)


@pytest.mark.parametrize("args, kwargs, shape", [
    ((8,), {}, (4, 8)), (((3, 5),), {"eps": 1e-3}, (2, 7, 3, 5)), ((17,), {"bias": False}, (3, 17)),
    ((6,), {"elementwise_affine": False}, (2, 3, 6)), (((2, 3, 4),), {}, (2, 2, 3, 4)),
])
def test_layer_norm_module_matches_torch(isa, args, kwargs, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(39)
    m = _load_random(nn.LayerNorm(*args, **kwargs), rng)
    tm = torch.nn.LayerNorm(*args, **kwargs)
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
    _compare_with_torch(torch, m, tm, rng, shape)


def _compare_with_torch(torch, m, tm, rng, shape):
    x = rand(rng, *shape)
    dy = rand(rng, *shape)
    xt = cnnkit.tensor(x, requires_grad=True)
    y = m(xt)
    (y * cnnkit.Tensor(dy)).sum().backward()
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = tm(tx)
    (ty * torch.from_numpy(dy)).sum().backward()
    close(y.numpy(), ty.detach().numpy(), 1e-5, 1e-5, "y")
    close(xt.grad, tx.grad.numpy(), 1e-4, 1e-4, "dx")
    for (name, p), tp in zip(m.named_parameters(), tm.parameters()):
        close(p.grad, tp.grad.numpy(), 1e-4, 1e-4, name)


# --------------------------------------------------------------------------- threads
@pytest.mark.usefixtures("threads_restored")
@pytest.mark.parametrize("op", ["group", "group_s1", "layer"])
def test_results_are_identical_for_any_thread_count(op):
    rng = np.random.default_rng(40)
    if op == "layer":
        x, dy, w = rand(rng, 400, 257), rand(rng, 400, 257), rand(rng, 257)
        def run():
            y, m, s = _core.layer_norm_forward(x, [257], w, w, 1e-5)
            return (y, m, s) + _core.layer_norm_backward(dy, x, [257], w, m, s)
    else:
        # enough rows (and columns) that 2 and 3 threads split them differently
        shape = (16, 32, 16, 16) if op == "group" else (2048, 64)
        x, dy, w = rand(rng, *shape), rand(rng, *shape), rand(rng, shape[1])
        def run():
            y, m, s = _core.group_norm_forward(x, 8, w, w, 1e-5)
            return (y, m, s) + _core.group_norm_backward(dy, x, 8, w, m, s)
    results = []
    for n in (1, 2, 3):
        cnnkit.set_num_threads(n)
        results.append(run())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- errors
def test_group_norm_errors():
    x = np.zeros((2, 6, 3), np.float32)
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels must be divisible by "
                                         r"num_groups, got num_channels = 6 and num_groups = 4"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"group_norm: num_groups .* channels 6 .* got "
                                         r"num_groups = 4"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match=r"group_norm: num_channels must be divisible"):
        _core.group_norm_forward(x, 4, None, None, 1e-5)
    with pytest.raises(ValueError, match=r"group_norm_forward: weight must have shape \[6\], "
                                         r"got \[4\]"):
        F.group_norm(x, 3, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"GroupNorm\(3, 6.*expected input \[N, 6, \*\], got "
                                         r"\[2, 4, 3\]"):
        nn.GroupNorm(3, 6)(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"group_norm: x must be \[N, C, \*\]"):
        F.group_norm(np.zeros(6, np.float32), 3)
    with pytest.raises(TypeError, match=r"group_norm_forward: x must have dtype float32, got "
                                        r"float64"):
        _core.group_norm_forward(x.astype(np.float64), 3, None, None, 1e-5)
    with pytest.raises(TypeError, match=r"group_norm: num_groups must be an int"):
        F.group_norm(x, 3.0)
    with pytest.raises(TypeError, match=r"group_norm: x must have a real numeric dtype"):
        F.group_norm(x.astype(np.complex64), 3)
    with pytest.raises(ValueError, match=r"group_norm: eps must be >= 0, got -1"):
        F.group_norm(x, 3, eps=-1.0)
    _, mean, invstd = _core.group_norm_forward(x, 3, None, None, 1e-5)
    with pytest.raises(ValueError, match=r"group_norm_backward: save_mean must have shape "
                                         r"\[2, 3\], got \[3, 2\]"):
        _core.group_norm_backward(x, x, 3, None, mean.reshape(3, 2), invstd)


def test_layer_norm_errors():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"layer_norm: x must end with normalized_shape \[3\], "
                                         r"got x of shape \[2, 3, 4\]"):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match=r"layer_norm_forward: x must end with normalized_shape "
                                         r"\[4, 4\]"):
        _core.layer_norm_forward(x, [4, 4], None, None, 1e-5)
    with pytest.raises(ValueError, match=r"LayerNorm\(\(5,\).*input \[2, 3, 4\].*normalized_"
                                         r"shape \[5\]"):
        nn.LayerNorm(5)(x)
    with pytest.raises(ValueError, match=r"layer_norm_forward: weight must have shape \[3, 4\] "
                                         r"\(normalized_shape\), got \[12\]"):
        F.layer_norm(x, (3, 4), np.ones(12, np.float32))
    with pytest.raises(ValueError, match=r"layer_norm_forward: bias must have shape \[4\]"):
        F.layer_norm(x, 4, None, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape must have at least one"):
        F.layer_norm(x, ())
    with pytest.raises(TypeError, match=r"layer_norm: normalized_shape must be an int"):
        F.layer_norm(x, 4.0)
    with pytest.raises(TypeError, match=r"LayerNorm: normalized_shape must be an int"):
        nn.LayerNorm((4, "a"))
    with pytest.raises(TypeError, match=r"layer_norm_forward: x must have dtype float32, got "
                                        r"float16"):
        _core.layer_norm_forward(x.astype(np.float16), [4], None, None, 1e-5)
    with pytest.raises(TypeError, match=r"layer_norm_forward: x must be C-contiguous"):
        _core.layer_norm_forward(np.zeros((4, 3), np.float32).T, [4], None, None, 1e-5)
