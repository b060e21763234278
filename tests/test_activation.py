"""Activations (relu, leaky_relu, elu, sigmoid, tanh) and maxout; every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, assert_grad_close, f32, numgrad, rand, threads_restored  # noqa: F401

import cnnkit


def np_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),
                    np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


REF = {
    "relu": lambda x, a: np.maximum(x, 0),
    "leaky_relu": lambda x, a: np.where(x > 0, x, a * x),
    "elu": lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
    "sigmoid": lambda x, a: np_sigmoid(x),
    "tanh": lambda x, a: np.tanh(x),
}
PARAM = {"relu": None, "leaky_relu": 0.01, "elu": 1.0, "sigmoid": None, "tanh": None}


def fwd(name, x, a):
    f = getattr(_core, name + "_forward")
    return f(x) if a is None else f(x, a)


def bwd(name, dy, x, y, a):
    f = getattr(_core, name + "_backward")
    if name in ("relu", "sigmoid", "tanh"):
        return f(dy, y)
    if name == "leaky_relu":
        return f(dy, x, a)
    return f(dy, x, y, a)


def ref_grad(name, x, y, a):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    if name == "relu":
        return (y > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, a)
    if name == "elu":
        return np.where(x > 0, 1.0, y + a)
    if name == "sigmoid":
        return y * (1 - y)
    return 1 - y * y


SHAPES = [(1,), (7,), (3, 5), (1, 1, 1, 1), (2, 3, 5, 7), (4, 33, 17)]
NAMES = list(REF)


def sample(rng, shape):
    # a wide range of magnitudes, including |x| large enough to overflow a naive exp
    x = rng.standard_normal(shape) * rng.choice([0.01, 1.0, 5.0, 40.0], size=shape)
    return f32(x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_matches_float64_reference(isa, name, shape):
    rng = np.random.default_rng(hash((name, shape)) % 2**32)
    a = PARAM[name] if name != "elu" else 0.7
    x = sample(rng, shape)
    y = fwd(name, x, a)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, REF[name](x.astype(np.float64), a), rtol=2e-6, atol=1e-7)
    dy = rand(rng, *shape)
    dx = bwd(name, dy, x, y, a)
    np.testing.assert_allclose(dx, dy * ref_grad(name, x, y, a), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_activation_extremes_are_stable(isa, name):
    x = f32([-1e30, -1e4, -100.0, -88.0, -20.0, -1e-6, 0.0, 1e-6, 20.0, 88.0, 100.0, 1e4, 1e30]
            + [-3.0] * 20)
    a = PARAM[name]
    y = fwd(name, x, a)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, REF[name](x.astype(np.float64), a), rtol=2e-6, atol=1e-37)
    if name == "sigmoid":
        assert y[0] == 0.0 and y[-21] == 1.0 and 0 < y[2] < 1e-40  # no 0/0 or inf/inf
    if name == "tanh":
        assert y[0] == -1.0 and y[-21] == 1.0


def test_vectorised_exp_accuracy_in_ulps(isa):
    # sigmoid on x < 0 is e / (1 + e): a dense sweep checks the polynomial exp of each ISA
    x = f32(np.linspace(-87.0, 20.0, 200003))
    y = _core.sigmoid_forward(x).astype(np.float64)
    ref = np_sigmoid(x.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y - ref) / ulp) <= 4.0
    t = _core.tanh_forward(x / 10).astype(np.float64)
    ref = np.tanh((x / 10).astype(np.float64))
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(t - ref) / np.maximum(ulp, 1e-45)) <= 4.0


@pytest.mark.parametrize("name", NAMES)
def test_activation_gradient_numerically(isa, name):
    rng = np.random.default_rng(11)
    # keep away from the kink at 0
    x = rng.standard_normal((2, 3, 4))
    x = f32(np.sign(x) * (np.abs(x) + 0.1))
    a = PARAM[name] if name != "elu" else 1.3
    y = fwd(name, x, a)
    dy = rand(rng, *x.shape)
    dx = bwd(name, dy, x, y, a)
    assert_grad_close(dx, numgrad(lambda z: REF[name](z, a), x, dy), rtol=1e-4)


def test_activation_big_tensor_and_threads_are_bitwise_equal(isa, threads_restored):  # noqa: F811
    rng = np.random.default_rng(12)
    x = sample(rng, (300001,))
    outs = []
    for t in (1, 2, 3):
        cnnkit.set_num_threads(t)
        outs.append([fwd(n, x, PARAM[n]) for n in NAMES])
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)
    for n, y in zip(NAMES, outs[0]):
        np.testing.assert_allclose(y, REF[n](x.astype(np.float64), PARAM[n]), rtol=2e-6, atol=1e-7)


def test_relu_nan_propagates(isa):
    x = f32([np.nan, -1.0, 2.0] * 7)
    assert np.isnan(_core.relu_forward(x)[0]) and np.isnan(_core.sigmoid_forward(x)[0])


SPECIALS = [np.nan, -np.inf, np.inf, 0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30, 88.5, -88.5, 89.0,
            -87.3, -104.0, -150.0, 3.0]


@pytest.mark.parametrize("name", NAMES)
def test_activation_tails_and_special_values(isa, name):
    """A value's result does not depend on n or on where its chunk starts (the vector kernels'
    last n % 4 / n % 16 values take the same arithmetic as full vectors); NaN, infinities,
    signed zeros and subnormals in every lane position give what the float64 formulas give."""
    rng = np.random.default_rng(15)
    a = PARAM[name] if name != "elu" else 0.7
    x = sample(rng, (41,))
    x[rng.permutation(41)[:len(SPECIALS)]] = SPECIALS
    y = fwd(name, x, a)
    dy = rand(rng, 41)
    dx = bwd(name, dy, x, y, a)
    with np.errstate(invalid="ignore", over="ignore"):
        want = REF[name](x.astype(np.float64), a)
        want_dx = dy * ref_grad(name, x, y, a)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-44)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-7)
    if name in ("relu", "leaky_relu"):  # the reference's selections: relu(-0) = -0
        sel = np.where(x < 0, 0.0, x) if name == "relu" else np.where(x > 0, x, x * a)
        finite = ~np.isnan(x)
        np.testing.assert_array_equal(np.signbit(y[finite]), np.signbit(sel[finite]))
    for lo in range(5):
        for hi in range(lo + 1, 42):
            np.testing.assert_array_equal(fwd(name, x[lo:hi], a).view(np.uint32),
                                          y[lo:hi].view(np.uint32))
            got = bwd(name, dy[lo:hi], x[lo:hi], y[lo:hi], a)
            np.testing.assert_array_equal(got.view(np.uint32), dx[lo:hi].view(np.uint32))


def ref_maxout(x, pieces):
    N, C = x.shape[:2]
    g = x.reshape(N, C // pieces, pieces, *x.shape[2:])
    return g.max(axis=2), g.argmax(axis=2)


@pytest.mark.parametrize("shape,pieces",
                         [((2, 6, 3, 5), 3), ((1, 4), 2), ((3, 5, 7), 1), ((2, 8, 1, 17), 4)])
def test_maxout(shape, pieces):
    rng = np.random.default_rng(13)
    x = rand(rng, *shape)
    y, am = _core.maxout_forward(x, pieces)
    ry, ram = ref_maxout(x, pieces)
    assert am.dtype == np.uint8
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)
    dy = rand(rng, *y.shape)
    dx = _core.maxout_backward(dy, am, pieces)
    assert dx.shape == x.shape
    assert_grad_close(dx, numgrad(lambda z: ref_maxout(z, pieces)[0], x, dy, eps=1e-4), rtol=1e-4)


def test_maxout_ties_and_errors():
    x = np.ones((1, 4, 2), dtype=np.float32)
    _, am = _core.maxout_forward(x, 2)
    np.testing.assert_array_equal(am, 0)
    with pytest.raises(ValueError, match=r"maxout: number of channels \(6\) "
                                         r"must be divisible by pieces \(4\)"):
        _core.maxout_forward(np.zeros((2, 6, 3), np.float32), 4)
    with pytest.raises(TypeError, match="argmax must have dtype uint8"):
        _core.maxout_backward(np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.int64), 2)


def test_activation_bad_arguments():
    with pytest.raises(TypeError, match="relu_forward: x must have dtype float32"):
        _core.relu_forward(np.zeros(4))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _core.tanh_forward([1.0, 2.0])
    with pytest.raises(ValueError, match=r"sigmoid_backward: y must have the shape of dy "
                                         r"\[3\], got \[4\]"):
        _core.sigmoid_backward(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.elu_forward(np.zeros((4, 4), np.float32).T, 1.0)


@pytest.mark.parametrize("name", NAMES + ["maxout"])
def test_activation_parity_with_torch(isa, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(14)
    x = sample(rng, (3, 8, 5, 7))
    xt = torch.tensor(x, requires_grad=True)
    if name == "maxout":
        yt = xt.reshape(3, 4, 2, 5, 7).max(dim=2).values
        y, am = _core.maxout_forward(x, 2)
    else:
        tf = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.01), "elu": F.elu,
              "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
        yt = tf(xt)
        y = fwd(name, x, PARAM[name])
    dy = rand(rng, *yt.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=2e-6, atol=1e-7)
    dx = _core.maxout_backward(dy, am, 2) if name == "maxout" else bwd(name, dy, x, y, PARAM[name])
    # tanh/sigmoid gradients come from y: 1 - y^2 near |y| = 1 turns a 1-ulp difference between
    # the two libraries' y into ~1e-7 absolute (times |dy|)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_out_buffers_and_in_place():
    """out= writes into a given buffer (also the input itself); a bad out is refused."""
    from cnnkit import _core

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    want = np.maximum(x, 0)
    out = np.empty_like(x)
    assert _core.relu_forward(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    y = x.copy()
    assert _core.relu_forward(y, out=y) is y  # in place
    np.testing.assert_array_equal(y, want)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    g = dy.copy()
    _core.relu_backward(g, want, out=g)
    np.testing.assert_array_equal(g, np.where(want > 0, dy, 0))
    t = x.copy()
    _core.tanh_forward(t, out=t)
    np.testing.assert_allclose(t, np.tanh(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="relu_forward"):
        _core.relu_forward(x, out=np.empty((3, 5, 6), np.float32))
    with pytest.raises(TypeError, match="relu_forward: out"):
        _core.relu_forward(x, out=np.empty(x.shape, np.float64))
    ro = np.empty_like(x)
    ro.setflags(write=False)
    with pytest.raises(TypeError, match="read-only"):
        _core.relu_forward(x, out=ro)


def test_out_partly_overlapping_an_input_is_refused():
    """A shifted view of the input as out= would read already-overwritten values."""
    from cnnkit import _core

    buf = np.arange(40, dtype=np.float32) - 20
    x, out = buf[:32], buf[8:40]
    with pytest.raises(ValueError, match="relu_forward: out overlaps x"):
        _core.relu_forward(x, out=out)
    np.testing.assert_array_equal(buf, np.arange(40, dtype=np.float32) - 20)  # untouched
    y = np.maximum(x, 0)
    with pytest.raises(ValueError, match="relu_backward: out overlaps dy"):
        _core.relu_backward(x, y, out=out)
