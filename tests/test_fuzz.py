"""Fuzzing every public op (issue 9): cnnkit.functional, cnnkit.nn layers, cnnkit.ops.sgemm and
the cnnkit._core functions, with random valid and invalid arguments.

Valid calls (any float dtype, any memory layout, shapes with zeros and ones, NaN/Inf values,
every ISA path) must match a float64 reference: tests/conv_reference.py for convolutions, numpy
formulas, or PyTorch in float64 where it is installed. Invalid calls (bad sizes, negative or
huge stride/padding/kernel, mismatched channels, wrong dtypes and ranks, None, Python scalars,
strings) must raise ValueError or TypeError naming the op and the argument. Nothing may crash.

Examples per test: see ``fuzz(n)`` in fuzz_support.py; ``pytest --fuzz-long`` multiplies them.
The terminal summary prints how many cases ran.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from conv_reference import conv2d as ref_conv2d
from conv_reference import conv2d_grads as ref_conv2d_grads
from conv_reference import tiled_conv2d as ref_tiled_conv2d
from fuzz_support import (
    BAD_INTS,
    LAYOUTS,
    assert_close,
    count,
    expect_error,
    fuzz,
    inject_specials,
    layout,
    normal,
    probe,
    rngs,
)
from hypothesis import assume, given
from hypothesis import strategies as st

import cnnkit
import cnnkit.functional as F
import cnnkit.nn as nn
from cnnkit import _core

try:
    import torch
except ImportError:  # the oracle is optional; tests that need it skip
    torch = None

ISAS = cnnkit.cpu_info()["supported_isas"]
FLOAT_DTYPES = [np.float32, np.float32, np.float32, np.float64, np.float16]
ALL_DTYPES = FLOAT_DTYPES + [np.int32, np.int64, np.bool_]


@contextlib.contextmanager
def using_isa(name):
    before = cnnkit.get_isa()
    cnnkit.set_isa(name)
    try:
        yield
    finally:
        cnnkit.set_isa(before)


def need_torch():
    if torch is None:
        pytest.skip("torch not installed (optional oracle)")


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def as_input(rng, a32, dtypes=FLOAT_DTYPES):
    """``a32`` (float32) handed over as a user would: some dtype, some layout. Returns the
    argument and the float32 values cnnkit must compute with (after its own conversion)."""
    dtype = dtypes[int(rng.integers(len(dtypes)))]
    if dtype == np.bool_:
        a = a32 > 0
    elif np.issubdtype(dtype, np.integer):
        a = np.round(a32 * 3).astype(dtype)
    else:
        a = a32.astype(dtype)
    a = layout(a, LAYOUTS[int(rng.integers(len(LAYOUTS)))])
    return a, np.asarray(a, dtype=np.float32)


def grads_of(y, dy, *tensors):
    (y * cnnkit.Tensor(dy)).sum().backward()
    return [t.grad for t in tensors]


# ============================================================================ convolution
@st.composite
def conv_cases(draw):
    rng = draw(rngs())
    g = draw(st.integers(1, 3))
    C, K = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    Fh, Fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    eh, ew = d[0] * (Fh - 1) + 1, d[1] * (Fw - 1) + 1
    H = draw(st.integers(max(1, eh - 2 * p[0]), eh + 6))
    W = draw(st.integers(max(1, ew - 2 * p[1]), ew + 6))
    N = draw(st.sampled_from([0, 1, 1, 2, 3]))
    return dict(rng=rng, N=N, C=C, H=H, W=W, K=K, Fh=Fh, Fw=Fw, s=s, p=p, d=d, g=g,
                bias=draw(st.booleans()), isa=draw(st.sampled_from(ISAS)),
                nan=draw(st.sampled_from([False] * 5 + [True])),
                scalar_args=draw(st.booleans()))


def _conv_arrays(c):
    rng = c["rng"]
    x = normal(rng, (c["N"], c["C"], c["H"], c["W"]))
    w = normal(rng, (c["K"], c["C"] // c["g"], c["Fh"], c["Fw"]))
    b = normal(rng, (c["K"],)) if c["bias"] else None
    return x, w, b


def _conv_kwargs(c):
    one = lambda v: v[0] if (c["scalar_args"] and v[0] == v[1]) else v  # noqa: E731
    return dict(stride=one(c["s"]), padding=one(c["p"]), dilation=one(c["d"]), groups=c["g"])


@fuzz(150)
@given(conv_cases())
def test_conv2d_valid_matches_reference(c):
    count("valid")
    rng = c["rng"]
    x, w, b = _conv_arrays(c)
    kw = _conv_kwargs(c)
    with using_isa(c["isa"]):
        if c["nan"]:  # NaN must propagate to exactly the outputs whose windows see it
            x = inject_specials(rng, x, (np.nan,))
            y = F.conv2d(x, w, b, **kw).numpy()
            assert_close(y, ref_conv2d(x, w, b, c["s"], c["p"], c["d"], c["g"]),
                         ref_conv2d(np.abs(np.nan_to_num(x)), np.abs(w), None, c["s"], c["p"],
                                    c["d"], c["g"]) + 1)
            return
        if rng.integers(2):  # a user's array in some dtype/layout, no autograd
            xa, x = as_input(rng, x)
            wa, w = as_input(rng, w)
            y = F.conv2d(xa, wa, b, **kw).numpy()
            dy = None
        else:
            xt = cnnkit.tensor(x, requires_grad=True)
            wt = cnnkit.tensor(w, requires_grad=True)
            bt = None if b is None else cnnkit.tensor(b, requires_grad=True)
            if rng.integers(2):
                layer = nn.Conv2d(c["C"], c["K"], (c["Fh"], c["Fw"]), c["s"], c["p"], c["d"],
                                  c["g"], bias=b is not None)
                layer.weight.data[...] = w
                if b is not None:
                    layer.bias.data[...] = b
                yt = layer(xt)
                wt, bt = layer.weight, layer.bias
            else:
                yt = F.conv2d(xt, wt, bt, **kw)
            y = yt.numpy()
            dy = normal(rng, y.shape)
    bound = ref_conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), c["s"], c["p"],
                       c["d"], c["g"])
    assert_close(y, ref_conv2d(x, w, b, c["s"], c["p"], c["d"], c["g"]), bound)
    if dy is None:
        return
    with using_isa(c["isa"]):
        gx, gw, gb = grads_of(yt, dy, xt, wt, *([bt] if bt is not None else [xt]))
    rdx, rdw, rdb = ref_conv2d_grads(x, w, dy, c["s"], c["p"], c["d"], c["g"])
    _, adw, adb = ref_conv2d_grads(np.abs(x), np.abs(w), np.abs(dy), c["s"], c["p"], c["d"], c["g"])
    adx = ref_conv2d_grads(np.abs(x), np.abs(w), np.abs(dy), c["s"], c["p"], c["d"], c["g"])[0]
    assert_close(gx, rdx, adx, what="dx")
    assert_close(gw, rdw, adw, what="dweight")
    if bt is not None:
        assert_close(gb, rdb, adb, what="dbias")


def _bad_value_for(arg, rng):
    v = BAD_INTS[int(rng.integers(len(BAD_INTS)))]
    if arg == "padding" and v == 0:
        v = -1
    return v


@fuzz(200)
@given(conv_cases(), st.sampled_from(["stride", "padding", "dilation", "groups", "x_channels",
                                      "x_rank", "x_type", "weight_type", "weight_rank", "bias",
                                      "small_input", "pair_bad"]))
def test_conv2d_invalid_arguments_raise_clean_errors(c, what):
    count("invalid")
    rng = c["rng"]
    x, w, b = _conv_arrays(c)
    kw = _conv_kwargs(c)
    op = "conv2d"
    if what in ("stride", "padding", "dilation", "groups"):
        v = _bad_value_for(what, rng)
        if what == "groups" and isinstance(v, int) and not isinstance(v, bool) and v > 0:
            assume(c["C"] % v or c["K"] % v or c["C"] // v != w.shape[1])
        kw[what] = v
        huge = isinstance(v, int) and not isinstance(v, bool) and v >= 2**31
        if huge and what in ("stride", "dilation") and v < 2**63:
            # a huge stride (one output position) or a huge dilation of a 1x1 kernel is legal:
            # it must compute, or be refused cleanly
            r = probe(lambda: F.conv2d(x, w, b, **kw))
            if not isinstance(r, Exception):
                ref = ref_conv2d(x, w, b, min(v, 2**20) if what == "stride" else c["s"], c["p"],
                                 c["d"] if what == "stride" else 1, c["g"])
                assert_close(r.numpy(), ref, np.abs(ref) + 10)
                return
            assert op in str(r)
            return
        expect_error(lambda: F.conv2d(x, w, b, **kw), op,
                     (what, "output", "kernel") if huge else (what,), allow_memory=huge)
    elif what == "pair_bad":
        arg = ["stride", "padding", "dilation"][int(rng.integers(3))]
        kw[arg] = (1, BAD_INTS[int(rng.integers(len(BAD_INTS)))])
        r = probe(lambda: F.conv2d(x, w, b, **kw))
        if isinstance(r, Exception):
            assert op in str(r) and (arg in str(r) or "output" in str(r) or "kernel" in str(r)), r
    elif what == "x_channels":
        x2 = normal(rng, (c["N"], c["C"] + 1, c["H"], c["W"]))
        expect_error(lambda: F.conv2d(x2, w, b, **kw), op, ("x", "input", "channels"))
    elif what == "x_rank":
        shapes = [(), (c["C"],), (c["C"], c["H"], c["W"]), (1, c["N"], c["C"], c["H"], c["W"])]
        x2 = normal(rng, shapes[int(rng.integers(len(shapes)))])
        expect_error(lambda: F.conv2d(x2, w, b, **kw), op, ("x", "input"))
    elif what == "x_type":
        bad = [None, 1.0, 3, "x", [[1.0]], x.astype(np.complex64), np.array(["a"] * 4),
               np.array([object()] * 2)]
        x2 = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.conv2d(x2, w, b, **kw), op, ("x", "input"))
    elif what == "weight_type":
        bad = [None, 2.0, "w", w.astype(np.complex64), np.array(["a"])]
        w2 = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.conv2d(x, w2, b, **kw), op, ("weight",))
    elif what == "weight_rank":
        shapes = [(c["K"],), (c["K"], c["C"] // c["g"], c["Fh"]), (0, c["C"] // c["g"], 1, 1),
                  (c["K"], c["C"] // c["g"] + 1, c["Fh"], c["Fw"]), (c["K"], 0, 1, 1)]
        w2 = normal(rng, shapes[int(rng.integers(len(shapes)))])
        expect_error(lambda: F.conv2d(x, w2, b, **kw), op, ("weight", "x", "channels"))
    elif what == "bias":
        bad = [normal(rng, (c["K"] + 1,)), normal(rng, (c["K"], 1)), "b", 1.5,
               np.zeros(c["K"], np.complex64)]
        b2 = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.conv2d(x, w, b2, **kw), op, ("bias",))
    elif what == "small_input":
        x2 = normal(rng, (c["N"], c["C"], 1, 1))
        kw["padding"] = 0
        assume(c["Fh"] > 1 or c["Fw"] > 1)
        expect_error(lambda: F.conv2d(x2, w, b, **kw), op, ("kernel", "input", "x"))


# ============================================================================ local / tiled
@st.composite
def unshared_cases(draw):
    rng = draw(rngs())
    C, K = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    Fh, Fw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    H = draw(st.integers(max(1, Fh - 2 * p[0]), Fh + 4))
    W = draw(st.integers(max(1, Fw - 2 * p[1]), Fw + 4))
    Ho, Wo = (H + 2 * p[0] - Fh) // s[0] + 1, (W + 2 * p[1] - Fw) // s[1] + 1
    local = draw(st.booleans())
    Th, Tw = (Ho, Wo) if local else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return dict(rng=rng, N=draw(st.sampled_from([0, 1, 2])), C=C, K=K, H=H, W=W, Fh=Fh, Fw=Fw,
                s=s, p=p, Th=Th, Tw=Tw, Ho=Ho, Wo=Wo, local=local, bias=draw(st.booleans()),
                isa=draw(st.sampled_from(ISAS)))


@fuzz(80)
@given(unshared_cases())
def test_local_and_tiled_conv2d_valid_match_reference(c):
    count("valid")
    rng = c["rng"]
    x = normal(rng, (c["N"], c["C"], c["H"], c["W"]))
    w = normal(rng, (c["Th"], c["Tw"], c["K"], c["C"], c["Fh"], c["Fw"]))
    bshape = (c["K"], c["Ho"], c["Wo"]) if c["local"] else (c["K"],)
    b = normal(rng, bshape) if c["bias"] else None
    fn = F.local_conv2d if c["local"] else F.tiled_conv2d
    xt, wt = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    bt = None if b is None else cnnkit.tensor(b, requires_grad=True)
    with using_isa(c["isa"]):
        if rng.integers(2):
            if c["local"]:
                layer = nn.LocallyConnected2d(c["C"], c["K"], (c["H"], c["W"]), (c["Fh"], c["Fw"]),
                                              c["s"], c["p"], bias=b is not None)
            else:
                layer = nn.TiledConv2d(c["C"], c["K"], (c["Fh"], c["Fw"]), (c["Th"], c["Tw"]),
                                       c["s"], c["p"], bias=b is not None)
            layer.weight.data[...] = w
            if b is not None:
                layer.bias.data[...] = b
            yt, wt, bt = layer(xt), layer.weight, layer.bias
        else:
            yt = fn(xt, wt, bt, c["s"], c["p"])
        dy = normal(rng, yt.shape)
        grads = grads_of(yt, dy, xt, wt, *([bt] if bt is not None else []))
    y = yt.numpy()
    ref = ref_tiled_conv2d(x, w, b, c["s"], c["p"], per_position_bias=c["local"])
    bound = ref_tiled_conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), c["s"],
                             c["p"], per_position_bias=c["local"])
    assert_close(y, ref, bound)
    # gradients of a bilinear map: <dy, y - b> = <dx, x> = <dw, w>; <dy, b-part> = <db, b>
    ylin = ref - (0 if b is None else ref_tiled_conv2d(np.zeros_like(x), w, b, c["s"], c["p"],
                                                        per_position_bias=c["local"]))
    inner = float((dy.astype(np.float64) * ylin).sum())
    scale = float((np.abs(dy) * bound).sum()) + 1e-3
    gx, gw = grads[0], grads[1]
    assert abs(float((gx.astype(np.float64) * x).sum()) - inner) <= 1e-4 * scale
    assert abs(float((gw.astype(np.float64) * w).sum()) - inner) <= 1e-4 * scale
    if b is not None:
        want = dy.sum(axis=(0, 2, 3)) if not c["local"] else dy.sum(axis=0)
        assert_close(grads[2], want, np.abs(dy).sum(axis=0 if c["local"] else (0, 2, 3)),
                     what="dbias")


@fuzz(80)
@given(unshared_cases(), st.sampled_from(["stride", "padding", "weight", "bias", "x", "tile0"]))
def test_local_and_tiled_conv2d_invalid_arguments(c, what):
    count("invalid")
    rng = c["rng"]
    op = "local_conv2d" if c["local"] else "tiled_conv2d"
    fn = F.local_conv2d if c["local"] else F.tiled_conv2d
    x = normal(rng, (c["N"], c["C"], c["H"], c["W"]))
    w = normal(rng, (c["Th"], c["Tw"], c["K"], c["C"], c["Fh"], c["Fw"]))
    args = dict(stride=c["s"], padding=c["p"])
    b = None
    if what in ("stride", "padding"):
        v = _bad_value_for(what, rng)
        args[what] = v
        huge = isinstance(v, int) and not isinstance(v, bool) and v >= 2**31
        r = probe(lambda: fn(x, w, b, **args))
        if not (huge and what == "stride" and v < 2**63) or isinstance(r, Exception):
            assert isinstance(r, Exception), f"{op} accepted {what}={v!r}"
            assert op in str(r) and (what in str(r) or huge), r
        return
    if what == "weight":
        bad = [None, normal(rng, w.shape[1:]), normal(rng, (c["Th"] + (1 if c["local"] else 0),
                                                            c["Tw"], c["K"], c["C"] + 1,
                                                            c["Fh"], c["Fw"])), "w"]
        expect_error(lambda: fn(x, bad[int(rng.integers(len(bad)))], None, **args), op,
                     ("weight", "x", "input"))
    elif what == "bias":
        bad = [normal(rng, (c["K"] + 1,)), normal(rng, (c["K"], 2, 2, 2)), "b"]
        expect_error(lambda: fn(x, w, bad[int(rng.integers(len(bad)))], **args), op, ("bias",))
    elif what == "x":
        bad = [None, normal(rng, (c["C"], c["H"], c["W"])), 1.0,
               normal(rng, (c["N"], c["C"] + 1, c["H"], c["W"]))]
        expect_error(lambda: fn(bad[int(rng.integers(len(bad)))], w, None, **args), op,
                     ("x", "input", "weight"))
    elif what == "tile0":
        w2 = np.zeros((0,) + w.shape[1:], np.float32)
        expect_error(lambda: fn(x, w2, None, **args), op, ("weight", "tile", "x", "input"))


# ============================================================================ pooling
@st.composite
def pool_cases(draw):
    rng = draw(rngs())
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    H = draw(st.integers(max(1, kh - 2 * p[0]), kh + 7))
    W = draw(st.integers(max(1, kw - 2 * p[1]), kw + 7))
    return dict(rng=rng, shape=(draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 3)), H, W),
                k=(kh, kw), s=s, p=p, ceil=draw(st.booleans()), cip=draw(st.booleans()),
                kind=draw(st.sampled_from(["max", "avg", "adaptive"])),
                out=(draw(st.integers(1, 6)), draw(st.integers(1, 6))),
                isa=draw(st.sampled_from(ISAS)), special=draw(st.sampled_from([0] * 4 + [1])),
                module=draw(st.booleans()), default_stride=draw(st.booleans()))


@fuzz(200)
@given(pool_cases())
def test_pooling_valid_matches_torch(c):
    need_torch()
    count("valid")
    rng = c["rng"]
    x = normal(rng, c["shape"])
    s = c["k"] if c["default_stride"] else c["s"]
    if c["special"]:
        x = inject_specials(rng, x)
    xt = cnnkit.tensor(x, requires_grad=True)
    tx = t64(x).requires_grad_(True)
    with using_isa(c["isa"]):
        if c["kind"] == "max":
            layer = nn.MaxPool2d(c["k"], None if c["default_stride"] else s, c["p"],
                                 ceil_mode=c["ceil"])
            yt = layer(xt) if c["module"] else F.max_pool2d(
                xt, c["k"], None if c["default_stride"] else s, c["p"], c["ceil"])
            ty = torch.nn.functional.max_pool2d(tx, c["k"], s, c["p"], ceil_mode=c["ceil"])
        elif c["kind"] == "avg":
            layer = nn.AvgPool2d(c["k"], None if c["default_stride"] else s, c["p"], c["ceil"],
                                 c["cip"])
            yt = layer(xt) if c["module"] else F.avg_pool2d(
                xt, c["k"], None if c["default_stride"] else s, c["p"], c["ceil"], c["cip"])
            ty = torch.nn.functional.avg_pool2d(tx, c["k"], s, c["p"], c["ceil"], c["cip"])
        else:
            yt = nn.AdaptiveAvgPool2d(c["out"])(xt) if c["module"] else F.adaptive_avg_pool2d(
                xt, c["out"])
            ty = torch.nn.functional.adaptive_avg_pool2d(tx, c["out"])
        dy = normal(rng, yt.shape)
        if not c["special"]:
            (gx,) = grads_of(yt, dy, xt)
    finite = x[np.isfinite(x)]
    bound = np.abs(np.nan_to_num(ty.detach().numpy())) + np.abs(finite).max(initial=0)
    assert_close(yt.numpy(), ty.detach().numpy(), bound)
    if c["special"]:
        return
    (ty * t64(dy)).sum().backward()
    assert_close(gx, tx.grad.numpy(), np.abs(dy).max(initial=0) * 4 + 1, what="dx")


@fuzz(150)
@given(pool_cases(), st.sampled_from(["kernel_size", "stride", "padding", "x", "output_size",
                                      "pad_too_big"]))
def test_pooling_invalid_arguments(c, what):
    count("invalid")
    rng = c["rng"]
    x = normal(rng, c["shape"])
    kind = c["kind"]
    op = {"max": "max_pool2d", "avg": "avg_pool2d", "adaptive": "adaptive_avg_pool2d"}[kind]

    def call(x=x, k=c["k"], s=c["s"], p=c["p"], out=c["out"]):
        if kind == "max":
            return F.max_pool2d(x, k, s, p, c["ceil"])
        if kind == "avg":
            return F.avg_pool2d(x, k, s, p, c["ceil"], c["cip"])
        return F.adaptive_avg_pool2d(x, out)

    if what == "x":
        bad = [None, 2.0, normal(rng, (3,)), normal(rng, (1, 1, 1, 2, 2)), np.array("s"),
               x.astype(np.complex64)]
        expect_error(lambda: call(x=bad[int(rng.integers(len(bad)))]), op, ("x", "input"))
        return
    if kind == "adaptive":
        v = _bad_value_for("output_size", rng)
        huge = isinstance(v, int) and not isinstance(v, bool) and v >= 2**31
        if huge and v < 2**63 and x.size == 0:
            r = probe(lambda: call(out=v))  # nothing to compute: an empty output is fine
            assert not isinstance(r, Exception) or op in str(r), r
            return
        expect_error(lambda: call(out=v), op, ("output_size", "output"), allow_memory=huge)
        return
    if what == "pad_too_big":
        expect_error(lambda: call(p=(c["k"][0] // 2 + 1, 0)), op, ("padding",))
        return
    if what == "output_size":
        return
    v = _bad_value_for(what, rng)
    huge = isinstance(v, int) and not isinstance(v, bool) and v >= 2**31
    kw = {"kernel_size": "k", "stride": "s", "padding": "p"}[what]
    if (huge and what == "stride" and v < 2**63) or (what == "stride" and v is None):
        r = probe(lambda: call(**{kw: v}))
        assert not isinstance(r, Exception) or op in str(r), r
        return
    expect_error(lambda: call(**{kw: v}), op, (what, "output", "kernel_size"),
                 allow_memory=huge)


# ============================================================================ activations
ACT_REF = {
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, a: (x > 0) * 1.0),
    "leaky_relu": (lambda x, a: np.where(x > 0, x, a * x), lambda x, y, a: np.where(x > 0, 1.0, a)),
    "elu": (lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
            lambda x, y, a: np.where(x > 0, 1.0, y + a)),
    "sigmoid": (lambda x, a: 0.5 * (1 + np.tanh(0.5 * x)), lambda x, y, a: y * (1 - y)),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, a: 1 - y * y),
}
ACT_MODULE = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "sigmoid": nn.Sigmoid,
              "tanh": nn.Tanh}


@fuzz(200)
@given(rngs(), st.sampled_from(sorted(ACT_REF)), st.lists(st.integers(0, 5), min_size=1,
                                                            max_size=5),
       st.sampled_from(ISAS), st.sampled_from([0, 0, 0, 1]), st.booleans(),
       st.floats(0.0, 3.0))
def test_activations_valid_match_reference(rng, name, shape, isa, special, module, a):
    count("valid")
    x = normal(rng, shape, scale=float(rng.choice([0.1, 1.0, 10.0, 60.0])))
    if special:
        x = inject_specials(rng, x)
    fn = getattr(F, name)
    args = () if name in ("relu", "sigmoid", "tanh") else (a,)
    if a and name == "leaky_relu" and rng.integers(2):
        args = (-a,)  # negative slopes are legal
    with using_isa(isa):
        if special or rng.integers(3) == 0:
            xa, x = as_input(rng, x, ALL_DTYPES if not special else FLOAT_DTYPES)
            y = (ACT_MODULE[name](*args)(cnnkit.tensor(xa)) if module else fn(xa, *args)).numpy()
            gx = None
        else:
            xt = cnnkit.tensor(x, requires_grad=True)
            yt = ACT_MODULE[name](*args)(xt) if module else fn(xt, *args)
            y = yt.numpy()
            dy = normal(rng, y.shape)
            (gx,) = grads_of(yt, dy, xt)
    aa = float(np.float32(args[0])) if args else 0.0  # the kernel takes a float32 parameter
    with np.errstate(all="ignore"):
        ref = ACT_REF[name][0](x.astype(np.float64), aa)
    assert_close(y, ref, np.abs(ref), rtol=1e-5, atol=2e-6)
    if gx is not None:
        ref_g = dy * ACT_REF[name][1](x.astype(np.float64), y.astype(np.float64), aa)
        assert_close(gx, ref_g, np.abs(dy), rtol=1e-5, atol=2e-6, what="dx")


@fuzz(100)
@given(rngs(), st.sampled_from(sorted(ACT_REF) + ["maxout"]),
       st.sampled_from(["x", "param"]))
def test_activations_invalid_arguments(rng, name, what):
    count("invalid")
    fn = getattr(F, name)
    if what == "x":
        bad = [None, 1.0, 3, "x", [1.0, 2.0], np.float32(1.0), np.array(["a", "b"]),
               np.zeros(3, np.complex64), np.array([object()])]
        x = bad[int(rng.integers(len(bad)))]
        args = (2,) if name == "maxout" else ()
        expect_error(lambda: fn(x, *args), name, ("x", "input"))
        return
    x = normal(rng, (2, 4, 3))
    if name in ("relu", "sigmoid", "tanh"):
        return
    if name == "maxout":
        bad = [0, -1, 3, 2**40, 2**63, 256, None, 1.5, "2", True]
        expect_error(lambda: fn(x, bad[int(rng.integers(len(bad)))]), name, ("pieces",))
        return
    arg = {"leaky_relu": "negative_slope", "elu": "alpha"}[name]
    bad = [None, "0.1", [0.1], complex(1, 2)]
    expect_error(lambda: fn(x, bad[int(rng.integers(len(bad)))]), name, (arg,))


@fuzz(80)
@given(rngs(), st.integers(1, 5), st.integers(1, 4), st.lists(st.integers(0, 3), max_size=3),
       st.integers(0, 3), st.booleans())
def test_maxout_valid_matches_reference(rng, pieces, groups, rest, N, module):
    count("valid")
    x = normal(rng, (N, pieces * groups, *rest))
    xt = cnnkit.tensor(x, requires_grad=True)
    yt = nn.Maxout(pieces)(xt) if module else F.maxout(xt, pieces)
    r = x.reshape(N, groups, pieces, *rest)
    assert_close(yt.numpy(), r.max(axis=2), np.abs(r).max(axis=2))
    dy = normal(rng, yt.shape)
    (gx,) = grads_of(yt, dy, xt)
    onehot = (np.arange(pieces).reshape((1, 1, pieces) + (1,) * len(rest))
              == r.argmax(axis=2)[:, :, None])
    assert_close(gx, (onehot * dy[:, :, None]).reshape(x.shape), np.abs(dy).max(initial=0),
                 what="dx")


# ============================================================================ normalisation
@fuzz(120)
@given(rngs(), st.sampled_from([(3, 2), (2, 3, 4), (2, 3, 2, 5), (1, 2, 3, 3), (4, 1), (2, 4, 1, 1),
                                (3, 2, 1)]),
       st.booleans(), st.booleans(), st.sampled_from(ISAS), st.booleans(), st.floats(0.0, 1.0),
       st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batch_norm_valid_matches_reference(rng, shape, training, affine, isa, module, momentum,
                                            eps):
    count("valid")
    x = normal(rng, shape, scale=float(rng.choice([0.01, 1.0, 30.0])))
    x = x + float(rng.choice([0.0, 5.0, -100.0]))
    C = shape[1]
    axes = (0,) + tuple(range(2, len(shape)))
    cs = (1, C) + (1,) * (len(shape) - 2)
    w = normal(rng, (C,)) if affine else None
    b = normal(rng, (C,)) if affine else None
    rm, rv = normal(rng, (C,)), np.abs(normal(rng, (C,))) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    xt = cnnkit.tensor(x, requires_grad=True)
    with using_isa(isa):
        if module:
            layer = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(C, eps=eps,
                                                                         momentum=momentum,
                                                                         affine=affine)
            if affine:
                layer.weight.data[...] = w
                layer.bias.data[...] = b
            layer.running_mean.data[...] = rm
            layer.running_var.data[...] = rv
            layer.train(training)
            yt = layer(xt)
            rm, rv = layer.running_mean.data, layer.running_var.data
        else:
            yt = F.batch_norm(xt, rm, rv, w, b, training, momentum, eps)
    x64 = x.astype(np.float64)
    if training:
        mu, var = x64.mean(axis=axes), x64.var(axis=axes)
        n = x.size // C
        assert_close(rm, (1 - momentum) * rm0 + momentum * mu, np.abs(rm0) + np.abs(mu),
                     rtol=1e-4, what="running_mean")
        assert_close(rv, (1 - momentum) * rv0 + momentum * var * n / (n - 1),
                     rv0 + var * n / (n - 1), rtol=1e-4, atol=1e-4, what="running_var")
    else:
        mu, var = rm0.astype(np.float64), rv0.astype(np.float64)
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)
    xhat = (x64 - mu.reshape(cs)) / np.sqrt(var.reshape(cs) + eps)
    ref = xhat * (1 if w is None else w.reshape(cs)) + (0 if b is None else b.reshape(cs))
    # float32 rounding of x - mean is relative to |mean| / std
    cond = (np.abs(mu) + np.sqrt(var)).reshape(cs) / np.sqrt(var.reshape(cs) + eps)
    wb = 1 if w is None else np.abs(w).reshape(cs)
    assert_close(yt.numpy(), ref, (np.abs(xhat) + cond) * wb + np.abs(ref), rtol=1e-4)


@fuzz(80)
@given(rngs(), st.sampled_from(["x", "running_mean", "running_var", "weight", "bias", "momentum",
                                "eps", "N1"]),
       st.booleans())
def test_batch_norm_invalid_arguments(rng, what, training):
    count("invalid")
    x = normal(rng, (3, 4, 2, 2))
    args = dict(running_mean=np.zeros(4, np.float32), running_var=np.ones(4, np.float32),
                weight=np.ones(4, np.float32), bias=np.zeros(4, np.float32), training=training)
    op = "batch_norm"
    if what == "x":
        bad = [None, 1.0, normal(rng, (4,)), normal(rng, (1, 4, 1, 1, 1)), "x",
               normal(rng, (3, 5, 2, 2))]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.batch_norm(v, **args), op,
                     ("x", "input", "running_mean", "weight", "channels"))
    elif what in ("running_mean", "running_var", "weight", "bias"):
        bad = [np.zeros(3, np.float32), np.zeros((4, 1), np.float32), "s",
               np.zeros(4, np.complex64)]
        if what.startswith("running"):
            bad += [np.zeros(4, np.float64), np.zeros(8, np.float32)[::2]]
        args[what] = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.batch_norm(x, **args), op, (what,))
    elif what in ("momentum", "eps"):
        args[what] = [None, "0.1", [0.1]][int(rng.integers(3))]
        expect_error(lambda: F.batch_norm(x, **args), op, (what,))
    else:
        x1 = normal(rng, (1, 4))
        args["training"] = True
        expect_error(lambda: F.batch_norm(x1, **args), op, ("x", "input", "value", "values"))


@fuzz(80)
@given(rngs(), st.sampled_from([(1, 1, 1), (2, 5, 3), (1, 7, 2, 3), (2, 3, 1, 1, 2), (0, 3, 2)]),
       st.integers(1, 8), st.floats(1e-4, 2.0), st.floats(0.1, 1.5), st.floats(0.5, 3.0),
       st.sampled_from(ISAS), st.booleans())
def test_local_response_norm_valid_matches_torch(rng, shape, size, alpha, beta, k, isa, module):
    need_torch()
    count("valid")
    x = normal(rng, shape, scale=2.0)
    xt = cnnkit.tensor(x, requires_grad=True)
    with using_isa(isa):
        yt = (nn.LocalResponseNorm(size, alpha, beta, k)(xt) if module
              else F.local_response_norm(xt, size, alpha, beta, k))
        dy = normal(rng, yt.shape)
        (gx,) = grads_of(yt, dy, xt)
    tx = t64(x).requires_grad_(True)
    ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
    (ty * t64(dy)).sum().backward()
    assert_close(yt.numpy(), ty.detach().numpy(), np.abs(x) / k**beta, rtol=1e-4)
    assert_close(gx, tx.grad.numpy(), np.abs(dy).sum() / max(x.shape[0], 1) + np.abs(dy), rtol=1e-4,
                 atol=1e-5, what="dx")


@fuzz(60)
@given(rngs(), st.sampled_from(["size", "alpha", "beta", "k", "x"]))
def test_local_response_norm_invalid_arguments(rng, what):
    count("invalid")
    x = normal(rng, (2, 4, 3, 3))
    args = dict(size=3, alpha=1e-4, beta=0.75, k=1.0)
    op = "local_response_norm"
    if what == "x":
        bad = [None, normal(rng, (4, 3)), 1.0, "x"]
        expect_error(lambda: F.local_response_norm(bad[int(rng.integers(len(bad)))], **args), op,
                     ("x", "input"))
        return
    bad = ([0, -1, 2**40, 2**64, None, 1.5, "3"] if what == "size"
           else [None, "1", [1.0], float("nan")] + ([-1.0] if what == "k" else []))
    args[what] = bad[int(rng.integers(len(bad)))]
    if isinstance(args[what], float):
        r = probe(lambda: F.local_response_norm(x, **args))  # NaN parameters: NaN out, no crash
        assert not isinstance(r, Exception) or op in str(r)
        return
    expect_error(lambda: F.local_response_norm(x, **args), op, (what,))


def _row_norm_bounds(x64, xhat, r, w, dy, rows, bshape):
    """Error bounds of the row norms: float32 rounding of x - mean is relative to
    (|mean| + std) / std, and dx sums L terms of |g| and |g xhat| (rows: the view [R, L])."""
    cond = (np.abs(x64.reshape(rows).mean(axis=1)) * r.reshape(-1) + 1).reshape(-1, 1)
    wb = np.abs(1 if w is None else w).astype(np.float64)
    g = np.abs(dy.astype(np.float64)) * np.broadcast_to(wb, bshape)
    gx = (g * np.abs(xhat)).reshape(rows)
    gr = g.reshape(rows)
    y_b = ((np.abs(xhat).reshape(rows) + 1) * cond).reshape(x64.shape) * wb
    dx_b = (r.reshape(-1, 1) * cond * (gr + gr.mean(axis=1, keepdims=True)
                                       + np.abs(xhat).reshape(rows)
                                       * gx.mean(axis=1, keepdims=True))).reshape(x64.shape)
    return y_b, dx_b


@fuzz(100)
@given(rngs(), st.sampled_from([((2, 6, 3, 5), 3), ((1, 4, 7), 4), ((3, 8), 2), ((0, 4, 3), 2),
                                ((2, 4, 1, 1, 3), 2), ((2, 5, 17), 1), ((1, 2, 40), 2),
                                ((3, 1), 1)]),
       st.booleans(), st.sampled_from(ISAS), st.booleans(), st.sampled_from([1e-5, 1e-3, 0.1]))
def test_group_norm_valid_matches_reference(rng, case, affine, isa, module, eps):
    count("valid")
    shape, G = case
    C, N = shape[1], shape[0]
    x = normal(rng, shape, scale=float(rng.choice([0.01, 1.0, 30.0])))
    x_in, x = as_input(rng, x + float(rng.choice([0.0, 5.0, -100.0])), FLOAT_DTYPES[:4])
    w = normal(rng, (C,)) if affine else None
    b = normal(rng, (C,)) if affine else None
    xt = cnnkit.tensor(x_in, requires_grad=True)
    dy = normal(rng, shape)
    with using_isa(isa):
        if module:
            layer = nn.GroupNorm(G, C, eps=eps, affine=affine)
            if affine:
                layer.weight.data[...] = w
                layer.bias.data[...] = b
            yt = layer(xt)
            wt, bt = layer.weight, layer.bias
        else:
            wt = cnnkit.tensor(w, requires_grad=True) if affine else None
            bt = cnnkit.tensor(b, requires_grad=True) if affine else None
            yt = F.group_norm(xt, G, wt, bt, eps)
        (yt * cnnkit.Tensor(dy)).sum().backward()
    x64 = x.astype(np.float64)
    L = int(np.prod(shape[1:])) // G
    rows = x64.reshape(N * G, L)
    mean, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    r = 1 / np.sqrt(var + eps)
    xhat = ((rows - mean) * r).reshape(shape)
    cs = (1, C) + (1,) * (len(shape) - 2)
    wb = 1 if w is None else w.reshape(cs).astype(np.float64)
    ref = xhat * wb + (0 if b is None else b.reshape(cs))
    g = (dy * wb).reshape(N * G, L)
    xh = xhat.reshape(N * G, L)
    rdx = (r * (g - g.mean(axis=1, keepdims=True)
                - xh * (g * xh).mean(axis=1, keepdims=True))).reshape(shape)
    y_b, dx_b = _row_norm_bounds(x64, xhat, r, None if w is None else w.reshape(cs), dy,
                                 (N * G, L), shape)
    assert_close(yt.numpy(), ref, y_b + np.abs(ref), rtol=1e-4, what="y")
    assert_close(xt.grad, rdx, dx_b, rtol=1e-4, atol=1e-5, what="dx")
    if affine:
        axes = (0,) + tuple(range(2, len(shape)))
        dyxh = dy * xhat
        assert_close(wt.grad, dyxh.sum(axis=axes), (np.abs(dyxh) + np.abs(dy)).sum(axis=axes),
                     rtol=1e-4, what="dweight")
        assert_close(bt.grad, dy.astype(np.float64).sum(axis=axes), np.abs(dy).sum(axis=axes),
                     rtol=1e-5, what="dbias")


@fuzz(100)
@given(rngs(), st.sampled_from([((4, 7), 1), ((2, 3, 5), 2), ((3, 1), 1), ((2, 1, 3, 2, 2), 3),
                                ((0, 5), 1), ((1, 33), 1), ((6,), 1), ((2, 17, 3), 1)]),
       st.sampled_from(["both", "weight", "none"]), st.sampled_from(ISAS), st.booleans(),
       st.sampled_from([1e-5, 1e-3, 0.1]), st.sampled_from(["tuple", "list", "int"]))
def test_layer_norm_valid_matches_reference(rng, case, affine, isa, module, eps, spelling):
    count("valid")
    shape, k = case
    ns = tuple(shape[len(shape) - k:])
    arg = {"tuple": ns, "list": list(ns), "int": ns[0] if k == 1 else ns}[spelling]
    x = normal(rng, shape, scale=float(rng.choice([0.01, 1.0, 30.0])))
    x_in, x = as_input(rng, x + float(rng.choice([0.0, 5.0, -100.0])), FLOAT_DTYPES[:4])
    w = normal(rng, ns) if affine != "none" else None
    b = normal(rng, ns) if affine == "both" else None
    xt = cnnkit.tensor(x_in, requires_grad=True)
    dy = normal(rng, shape)
    with using_isa(isa):
        if module:
            layer = nn.LayerNorm(arg, eps=eps, elementwise_affine=affine != "none",
                                 bias=affine == "both")
            if w is not None:
                layer.weight.data[...] = w
            if b is not None:
                layer.bias.data[...] = b
            yt = layer(xt)
            wt, bt = layer.weight, layer.bias
        else:
            wt = cnnkit.tensor(w, requires_grad=True) if w is not None else None
            bt = cnnkit.tensor(b, requires_grad=True) if b is not None else None
            yt = F.layer_norm(xt, arg, wt, bt, eps)
        (yt * cnnkit.Tensor(dy)).sum().backward()
    L = int(np.prod(ns))
    x64 = x.astype(np.float64)
    rows = x64.reshape(-1, L)
    mean, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    r = 1 / np.sqrt(var + eps)
    xhat = ((rows - mean) * r).reshape(shape)
    wb = 1 if w is None else w.astype(np.float64)
    ref = xhat * wb + (0 if b is None else b)
    g = (dy * wb).reshape(-1, L)
    xh = xhat.reshape(-1, L)
    rdx = (r * (g - g.mean(axis=1, keepdims=True)
                - xh * (g * xh).mean(axis=1, keepdims=True))).reshape(shape)
    y_b, dx_b = _row_norm_bounds(x64, xhat, r, w, dy, (x.size // max(L, 1), L), shape)
    assert_close(yt.numpy(), ref, y_b + np.abs(ref), rtol=1e-4, what="y")
    assert_close(xt.grad, rdx, dx_b, rtol=1e-4, atol=1e-5, what="dx")
    lead = tuple(range(len(shape) - k))
    dyxh = dy * xhat
    if wt is not None:
        assert_close(wt.grad, dyxh.sum(axis=lead), (np.abs(dyxh) + np.abs(dy)).sum(axis=lead),
                     rtol=1e-4, what="dweight")
    if bt is not None:
        assert_close(bt.grad, dy.astype(np.float64).sum(axis=lead), np.abs(dy).sum(axis=lead),
                     rtol=1e-5, what="dbias")


@fuzz(80)
@given(rngs(), st.sampled_from(["x", "num_groups", "weight", "bias", "eps", "module"]))
def test_group_norm_invalid_arguments(rng, what):
    count("invalid")
    x = normal(rng, (2, 6, 3))
    args = dict(num_groups=3, weight=np.ones(6, np.float32), bias=np.zeros(6, np.float32))
    op = "group_norm"
    if what == "x":
        bad = [None, 1.0, "x", normal(rng, (6,)), normal(rng, (2, 5, 3))]
        expect_error(lambda: F.group_norm(bad[int(rng.integers(len(bad)))], **args), op,
                     ("x", "input", "channels", "num_groups", "weight"))
        return
    if what == "module":
        bad = [(4, 6), (0, 6), (3, 0), (3.0, 6), (3, "6"), (None, 6), (2**64, 6), (True, 6)]
        g, c = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: nn.GroupNorm(g, c), "GroupNorm", ("num_groups", "num_channels"))
        return
    bad = {"num_groups": [0, -1, 4, 5, 2**40, 2**64, 1.5, None, "3", True],
           "weight": [np.zeros(5), np.zeros((6, 1)), "s", np.zeros(6, np.complex64)],
           "bias": [np.zeros(5), np.zeros((6, 1)), "s", np.zeros(6, np.complex64)],
           "eps": [None, "0.1", [0.1], -1.0, float("nan")]}[what]
    args[what] = bad[int(rng.integers(len(bad)))]
    expect_error(lambda: F.group_norm(x, **args), op, (what,))


@fuzz(80)
@given(rngs(), st.sampled_from(["x", "normalized_shape", "weight", "bias", "eps", "module"]))
def test_layer_norm_invalid_arguments(rng, what):
    count("invalid")
    x = normal(rng, (2, 3, 4))
    args = dict(normalized_shape=(3, 4), weight=np.ones((3, 4), np.float32),
                bias=np.zeros((3, 4), np.float32))
    op = "layer_norm"
    shapes = [(), (4, 3), 5, (3, -4), (3, 4.0), "34", None, 2**64, (3, 4, 1), True]
    if what == "x":
        bad = [None, 1.0, "x", normal(rng, (4, 5)), normal(rng, (3,))]
        expect_error(lambda: F.layer_norm(bad[int(rng.integers(len(bad)))], **args), op,
                     ("x", "input", "normalized_shape"))
        return
    if what == "module":
        s = shapes[int(rng.integers(len(shapes)))]
        if s in ((4, 3), 5, (3, 4, 1)):  # valid layers that do not fit x
            expect_error(lambda: nn.LayerNorm(s)(x), "LayerNorm", ("normalized_shape",))
        else:
            expect_error(lambda: nn.LayerNorm(s), "LayerNorm", ("normalized_shape",))
        return
    bad = {"normalized_shape": shapes,
           "weight": [np.zeros(12), np.zeros((4, 3)), "s", np.zeros((3, 4), np.complex64)],
           "bias": [np.zeros(12), np.zeros((4, 3)), "s", np.zeros((3, 4), np.complex64)],
           "eps": [None, "0.1", [0.1], -1.0, float("nan")]}[what]
    args[what] = bad[int(rng.integers(len(bad)))]
    expect_error(lambda: F.layer_norm(x, **args), op, (what,))


# ============================================================================ dropout
@fuzz(80)
@given(rngs(), st.lists(st.integers(0, 6), min_size=1, max_size=4), st.floats(0.0, 0.95),
       st.booleans(), st.booleans(), st.sampled_from(ISAS))
def test_dropout_valid_properties(rng, shape, p, training, module, isa):
    count("valid")
    x = normal(rng, shape) + 3.0  # no zeros: a kept element is x / (1 - p) exactly
    xt = cnnkit.tensor(x, requires_grad=True)
    with using_isa(isa):
        layer = nn.Dropout(p)
        layer.train(training)
        yt = layer(xt) if module else F.dropout(xt, p, training)
        y = yt.numpy()
        dy = normal(rng, y.shape)
        (gx,) = grads_of(yt, dy, xt)
    if not training or p == 0:
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(gx, dy)
        return
    kept = y != 0
    assert_close(y[kept], x[kept] / np.float32(1 - p), rtol=1e-6, atol=0)
    assert_close(gx, np.where(kept, dy / (1 - p), 0), np.abs(dy) / (1 - p), rtol=1e-6, atol=0,
                 what="dx")


@fuzz(40)
@given(rngs(), st.sampled_from([-0.1, 1.5, float("nan"), None, "0.5", [0.5], complex(0, 1)]))
def test_dropout_invalid_arguments(rng, p):
    count("invalid")
    x = normal(rng, (3, 4))
    expect_error(lambda: F.dropout(x, p), "dropout", ("p",))
    if rng.integers(2):
        expect_error(lambda: F.dropout(None, 0.5), "dropout", ("x", "input"))


# ============================================================================ linear
@fuzz(150)
@given(rngs(), st.lists(st.integers(0, 4), max_size=3), st.integers(0, 40), st.integers(1, 40),
       st.booleans(), st.booleans(), st.sampled_from(ISAS))
def test_linear_valid_matches_reference(rng, lead, fin, fout, bias, module, isa):
    count("valid")
    x = normal(rng, (*lead, fin))
    w = normal(rng, (fout, fin))
    b = normal(rng, (fout,)) if bias else None
    xt = cnnkit.tensor(x, requires_grad=True)
    with using_isa(isa):
        if module:
            layer = nn.Linear(fin, fout, bias=bias)
            layer.weight.data[...] = w
            if bias:
                layer.bias.data[...] = b
            wt, bt = layer.weight, layer.bias
            yt = layer(xt)
        else:
            wt = cnnkit.tensor(w, requires_grad=True)
            bt = cnnkit.tensor(b, requires_grad=True) if bias else None
            yt = F.linear(xt, wt, bt)
        dy = normal(rng, yt.shape)
        grads = grads_of(yt, dy, xt, wt, *([bt] if bias else []))
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    ref = x64 @ w64.T + (0 if b is None else b)
    assert_close(yt.numpy(), ref, np.abs(x64) @ np.abs(w64).T + (0 if b is None else np.abs(b)))
    assert_close(grads[0], dy64 @ w64, np.abs(dy64) @ np.abs(w64), what="dx")
    x2, dy2 = x64.reshape(int(np.prod(lead)), fin), dy64.reshape(int(np.prod(lead)), fout)
    assert_close(grads[1], dy2.T @ x2, np.abs(dy2).T @ np.abs(x2), what="dweight")
    if bias:
        assert_close(grads[2], dy2.sum(axis=0), np.abs(dy2).sum(axis=0), what="dbias")


@fuzz(80)
@given(rngs(), st.sampled_from(["x", "weight", "bias"]))
def test_linear_invalid_arguments(rng, what):
    count("invalid")
    x, w, b = normal(rng, (3, 5)), normal(rng, (4, 5)), normal(rng, (4,))
    if what == "x":
        bad = [None, 1.0, np.float32(1), normal(rng, (3, 6)), np.array(()), "x"]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.linear(v, w, b), "linear", ("x", "input", "weight"))
    elif what == "weight":
        bad = [None, normal(rng, (4, 6)), normal(rng, (5,)), normal(rng, (4, 5, 1)), "w"]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.linear(x, v, b), "linear", ("weight", "x"))
    else:
        bad = [normal(rng, (5,)), normal(rng, (4, 1)), "b", np.float32(1.0)]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: F.linear(x, w, v), "linear", ("bias",))


# ============================================================================ softmax, losses
@fuzz(120)
@given(rngs(), st.lists(st.integers(0, 5), min_size=1, max_size=4), st.data(),
       st.sampled_from(["softmax", "log_softmax"]), st.sampled_from([0, 0, 0, 1]))
def test_softmax_valid_matches_reference(rng, shape, data, name, special):
    count("valid")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = normal(rng, shape, scale=float(rng.choice([1.0, 30.0])))
    if special:
        x = inject_specials(rng, x, (np.nan,))
    xt = cnnkit.tensor(x, requires_grad=True)
    yt = getattr(F, name)(xt, dim=dim)
    x64 = x.astype(np.float64)
    m = np.max(x64, axis=dim, keepdims=True, initial=-np.inf)
    with np.errstate(all="ignore"):
        lse = m + np.log(np.exp(x64 - m).sum(axis=dim, keepdims=True))
    ref = x64 - lse if name == "log_softmax" else np.exp(x64 - lse)
    assert_close(yt.numpy(), ref, np.abs(ref) + (np.abs(x64) + np.abs(lse)) * 0.1, rtol=1e-5)
    if special:
        return
    dy = normal(rng, yt.shape)
    (gx,) = grads_of(yt, dy, xt)
    if name == "softmax":
        refg = ref * (dy - (dy * ref).sum(axis=dim, keepdims=True))
    else:
        refg = dy - np.exp(ref) * dy.sum(axis=dim, keepdims=True)
    assert_close(gx, refg, np.abs(dy).sum(axis=dim, keepdims=True) + np.abs(dy), rtol=1e-5,
                 what="dx")


@fuzz(60)
@given(rngs(), st.sampled_from(["softmax", "log_softmax"]),
       st.sampled_from([3, -4, 10, 2**63, None, 1.5, "1"]))
def test_softmax_invalid_dim(rng, name, dim):
    count("invalid")
    x = normal(rng, (2, 3, 2))
    expect_error(lambda: getattr(F, name)(x, dim=dim), name, ("dim",))


@fuzz(150)
@given(rngs(), st.integers(0, 6), st.integers(1, 7), st.sampled_from(["ce", "mm", "mse"]),
       st.booleans(), st.floats(0.0, 3.0),
       st.one_of(st.sampled_from([0.0, 0.0, 1.0]), st.floats(0.0, 1.0)))
def test_losses_valid_match_reference(rng, N, C, kind, module, margin, label_smoothing):
    count("valid")
    x = normal(rng, (N, C), scale=3.0)
    target = rng.integers(0, C, N)
    xt = cnnkit.tensor(x, requires_grad=True)
    x64 = x.astype(np.float64)
    if kind == "mse":
        y = normal(rng, (N, C))
        lt = nn.MSELoss()(xt, y) if module else F.mse_loss(xt, y)
        ref = ((x64 - y) ** 2).mean() if x.size else np.nan
        refg = 2 * (x64 - y) / max(x.size, 1)
    elif kind == "ce":
        ls = label_smoothing
        lt = (nn.CrossEntropyLoss(label_smoothing=ls)(xt, target) if module
              else F.cross_entropy(xt, target, label_smoothing=ls))
        m = x64.max(axis=1, keepdims=True) if N else 0
        lse = (m + np.log(np.exp(x64 - m).sum(axis=1, keepdims=True))) if N else np.zeros((0, 1))
        # smoothed target q = (1 - ls) onehot + ls / C: loss -sum_k q_k log p_k, grad p - q
        q = (1 - ls) * np.eye(C)[target] + ls / C
        ref = -(q * (x64 - lse)).sum(axis=1).mean() if N else np.nan
        p = np.exp(x64 - lse)
        refg = (p - q) / max(N, 1)
    else:
        lt = (nn.MultiMarginLoss(margin=margin)(xt, target) if module
              else F.multi_margin_loss(xt, target, margin))
        xy = x64[np.arange(N), target][:, None]
        h = np.maximum(0, margin - xy + x64)
        h[np.arange(N), target] = 0
        ref = (h.sum(axis=1) / C).mean() if N else np.nan
        act = (h > 0).astype(np.float64)
        refg = act.copy()
        refg[np.arange(N), target] = -act.sum(axis=1)
        refg /= C * max(N, 1)
    if N == 0:
        # PyTorch's mean over an empty batch is NaN; either NaN or a clean error is accepted,
        # but never garbage
        assert np.isnan(float(lt.item())) or float(lt.item()) == 0.0
        return
    assert_close(lt.item(), ref, np.abs(x64).max() * 3 + margin + 1, rtol=1e-5, what="loss")
    lt.backward()
    assert_close(xt.grad, refg, 1.0 / max(N, 1), rtol=1e-5, atol=1e-6, what="dx")


@fuzz(120)
@given(rngs(), st.sampled_from(["cross_entropy", "multi_margin_loss", "mse_loss"]),
       st.sampled_from(["target", "x", "margin", "label_smoothing"]))
def test_losses_invalid_arguments(rng, name, what):
    count("invalid")
    x = normal(rng, (4, 3))
    fn = getattr(F, name)
    if name == "mse_loss":
        bad = [normal(rng, (4, 4)), None, "y", normal(rng, (3,)), np.zeros((4, 3), np.complex64)]
        if what == "x":
            expect_error(lambda: fn(None, x), name, ("x", "input"))
        else:
            expect_error(lambda: fn(x, bad[int(rng.integers(len(bad)))]), name, ("y", "target"))
        return
    if what == "target":
        bad = [np.array([0, 1, 2, 3]), np.array([0, 1, -1, 2]), np.array([0, 1]),
               np.array([[0, 1, 2, 0]]), np.array([0.5, 1.0, 2.0, 0.0]), None, "t",
               np.array([0, 1, 2, 2**62]), np.array([True, False, True, False])]
        t = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: fn(x, t), name, ("target", "label"))
    elif what == "x":
        bad = [None, normal(rng, (4,)), normal(rng, (4, 3, 1)), "x", 1.0]
        expect_error(lambda: fn(bad[int(rng.integers(len(bad)))], np.array([0, 1, 2, 0])), name,
                     ("x", "logits", "input", "target"))
    elif name == "multi_margin_loss" and what == "margin":
        expect_error(lambda: fn(x, np.array([0, 1, 2, 0]),
                                margin=[None, "1"][int(rng.integers(2))]),
                     name, ("margin",))
    elif name == "cross_entropy" and what == "label_smoothing":
        bad = [-0.1, 1.0 + 1e-6, float("nan"), float("inf"), -float("inf"), 2, None, "0.1",
               True, [0.1], 1j]
        ls = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: fn(x, np.array([0, 1, 2, 0]), label_smoothing=ls), name,
                     ("label_smoothing",))
        expect_error(lambda: nn.CrossEntropyLoss(label_smoothing=ls), "CrossEntropyLoss",
                     ("label_smoothing",))


# ============================================================================ sgemm
@fuzz(200)
@given(rngs(), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.booleans(),
       st.booleans(), st.sampled_from([1.0, 0.5, -2.0, 0.0]),
       st.sampled_from([0.0, 0.0, 1.0, -0.5]), st.sampled_from(ISAS),
       st.sampled_from(["c", "fortran", "rows", "T"]), st.sampled_from(["c", "fortran", "rows"]),
       st.booleans())
def test_sgemm_valid_matches_reference(rng, M, N, K, ta, tb, alpha, beta, isa, la, lb, overwrite):
    count("valid")

    def make(shape, how):
        a = normal(rng, shape)
        if how == "fortran":
            return np.asfortranarray(a)
        if how == "rows":  # a row slice: contiguous rows, row stride > cols
            big = np.zeros((shape[0], shape[1] + 3), np.float32)
            big[:, : shape[1]] = a
            return big[:, : shape[1]]
        if how == "T":
            return np.ascontiguousarray(a.T).T
        return a

    a = make((K, M) if ta else (M, K), la)
    b = make((N, K) if tb else (K, N), lb)
    c = normal(rng, (M, N)) if (beta != 0 or overwrite or rng.integers(2)) else None
    c0 = None if c is None else c.copy()
    if beta != 0 and c is None:
        return
    with using_isa(isa):
        out = cnnkit.ops.sgemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, c=c,
                               overwrite_c=overwrite and c is not None)
    A = (a.T if ta else a).astype(np.float64)
    B = (b.T if tb else b).astype(np.float64)
    ref = alpha * (A @ B) + (beta * c0 if beta != 0 else 0)
    bound = abs(alpha) * (np.abs(A) @ np.abs(B)) + (abs(beta) * np.abs(c0) if beta else 0)
    assert_close(out, ref, bound)
    if c is not None and not overwrite:
        np.testing.assert_array_equal(c, c0)  # c is an input unless overwrite_c=True
    if overwrite and c is not None:
        assert out is c or np.shares_memory(out, c)


@fuzz(120)
@given(rngs(), st.sampled_from(["a", "b", "c", "trans_a", "alpha", "beta_no_c", "overlap",
                                "shape"]))
def test_sgemm_invalid_arguments(rng, what):
    count("invalid")
    a, b = normal(rng, (3, 4)), normal(rng, (4, 5))
    sg = cnnkit.ops.sgemm
    if what in ("a", "b"):
        bad = [None, 1.0, normal(rng, (3,)), normal(rng, (2, 3, 4)), np.zeros((3, 4)),
               np.zeros((3, 4), np.int32), np.zeros((3, 4), np.float16),
               normal(rng, (6, 8))[::2, ::2], normal(rng, (3, 4))[::-1], "a",
               np.zeros((3, 4), np.bool_)]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: sg(v, b) if what == "a" else sg(a, v), "sgemm", (what,))
    elif what == "c":
        bad = [normal(rng, (3, 4)), np.zeros((3, 5)), "c", normal(rng, (5,))]
        v = bad[int(rng.integers(len(bad)))]
        expect_error(lambda: sg(a, b, c=v, beta=1.0), "sgemm", ("c",))
    elif what == "trans_a":
        v = [None, 2, "yes", 1.0][int(rng.integers(4))]
        expect_error(lambda: sg(a, b, trans_a=v), "sgemm", ("trans_a",))
    elif what == "alpha":
        v = [None, "1", [1.0], complex(1, 1), True][int(rng.integers(5))]
        expect_error(lambda: sg(a, b, alpha=v), "sgemm", ("alpha",))
    elif what == "beta_no_c":
        expect_error(lambda: sg(a, b, beta=1.0), "sgemm", ("beta", "c"))
    elif what == "overlap":
        buf = normal(rng, (4, 5))
        expect_error(lambda: sg(a, buf[:4, :5], c=buf[:3], overwrite_c=True), "sgemm", ("c",))
    else:
        expect_error(lambda: sg(a, normal(rng, (5, 5))), "sgemm", ("a", "b", "inner"))


# ============================================================================ _core directly
def _f(rng, *shape):
    return normal(rng, shape)


def _i8(rng, *shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


# name -> builder(rng) of a dict of valid keyword arguments
CORE_CALLS = {
    "conv2d_forward": lambda r: dict(x=_f(r, 2, 4, 5, 5), weight=_f(r, 6, 2, 3, 3), bias=_f(r, 6),
                                     stride=(1, 2), padding=(1, 0), dilation=(1, 1), groups=2),
    "conv2d_backward_data": lambda r: dict(diff_dst=_f(r, 2, 6, 5, 2), weight=_f(r, 6, 2, 3, 3),
                                           input_hw=(5, 5), stride=(1, 2), padding=(1, 0),
                                           dilation=(1, 1), groups=2),
    "conv2d_backward_weights": lambda r: dict(diff_dst=_f(r, 2, 6, 5, 2), x=_f(r, 2, 4, 5, 5),
                                              kernel_hw=(3, 3), stride=(1, 2), padding=(1, 0),
                                              dilation=(1, 1), groups=2, need_bias=True),
    "local_conv2d_forward": lambda r: dict(x=_f(r, 2, 3, 4, 4), weight=_f(r, 2, 2, 2, 3, 3, 3),
                                           bias=_f(r, 2, 2, 2), stride=(1, 1), padding=(0, 0)),
    "local_conv2d_backward": lambda r: dict(diff_dst=_f(r, 2, 2, 2, 2), x=_f(r, 2, 3, 4, 4),
                                            weight=_f(r, 2, 2, 2, 3, 3, 3), stride=(1, 1),
                                            padding=(0, 0), need_dx=True, need_bias=True),
    "tiled_conv2d_forward": lambda r: dict(x=_f(r, 2, 3, 4, 4), weight=_f(r, 2, 1, 2, 3, 3, 3),
                                           bias=_f(r, 2), stride=(1, 1), padding=(1, 1)),
    "tiled_conv2d_backward": lambda r: dict(diff_dst=_f(r, 2, 2, 4, 4), x=_f(r, 2, 3, 4, 4),
                                            weight=_f(r, 2, 1, 2, 3, 3, 3), stride=(1, 1),
                                            padding=(1, 1), need_dx=True, need_bias=True),
    "max_pool2d_forward": lambda r: dict(x=_f(r, 2, 3, 5, 5), kernel=(2, 2), stride=(2, 2),
                                         padding=(1, 1), ceil_mode=True),
    "max_pool2d_backward": lambda r: dict(dy=_f(r, 2, 3, 2, 2),
                                          indices=r.integers(0, 25, (2, 3, 2, 2)),
                                          input_hw=(5, 5)),
    "avg_pool2d_forward": lambda r: dict(x=_f(r, 2, 3, 5, 5), kernel=(3, 3), stride=(2, 2),
                                         padding=(1, 1), ceil_mode=False, count_include_pad=False),
    "avg_pool2d_backward": lambda r: dict(dy=_f(r, 2, 3, 3, 3), input_hw=(5, 5), kernel=(3, 3),
                                          stride=(2, 2), padding=(1, 1), ceil_mode=False,
                                          count_include_pad=False),
    "adaptive_avg_pool2d_forward": lambda r: dict(x=_f(r, 2, 3, 5, 5), output_hw=(3, 2)),
    "adaptive_avg_pool2d_backward": lambda r: dict(dy=_f(r, 2, 3, 3, 2), input_hw=(5, 5)),
    "relu_forward": lambda r: dict(x=_f(r, 3, 4)),
    "relu_backward": lambda r: dict(dy=_f(r, 3, 4), y=_f(r, 3, 4)),
    "leaky_relu_forward": lambda r: dict(x=_f(r, 3, 4), slope=0.1),
    "leaky_relu_backward": lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), slope=0.1),
    "elu_forward": lambda r: dict(x=_f(r, 3, 4), alpha=1.0),
    "elu_backward": lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), y=_f(r, 3, 4), alpha=1.0),
    "sigmoid_forward": lambda r: dict(x=_f(r, 3, 4)),
    "sigmoid_backward": lambda r: dict(dy=_f(r, 3, 4), y=_f(r, 3, 4)),
    "tanh_forward": lambda r: dict(x=_f(r, 3, 4)),
    "tanh_backward": lambda r: dict(dy=_f(r, 3, 4), y=_f(r, 3, 4)),
    "maxout_forward": lambda r: dict(x=_f(r, 2, 6, 3), pieces=3),
    "maxout_backward": lambda r: dict(dy=_f(r, 2, 2, 3),
                                      argmax=r.integers(0, 3, (2, 2, 3)).astype(np.uint8),
                                      pieces=3),
    "batch_norm_forward_train": lambda r: dict(x=_f(r, 3, 4, 2, 2), weight=_f(r, 4),
                                               bias=_f(r, 4), running_mean=_f(r, 4),
                                               running_var=np.ones(4, np.float32), momentum=0.1,
                                               eps=1e-5),
    "batch_norm_forward_eval": lambda r: dict(x=_f(r, 3, 4, 2, 2), weight=_f(r, 4), bias=_f(r, 4),
                                              running_mean=_f(r, 4),
                                              running_var=np.ones(4, np.float32), eps=1e-5),
    "batch_norm_backward": lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), weight=_f(r, 4),
                                          save_mean=_f(r, 4).astype(np.float64),
                                          save_invstd=np.ones(4, np.float32)),
    "batch_norm_backward_eval": lambda r: dict(dy=_f(r, 3, 4, 2), x=_f(r, 3, 4, 2),
                                               weight=_f(r, 4), running_mean=_f(r, 4),
                                               running_var=np.ones(4, np.float32), eps=1e-5),
    "batch_norm_stats": lambda r: dict(x=_f(r, 3, 4, 2, 2), shift=_f(r, 4)),
    "batch_norm_forward_from_stats": lambda r: dict(
        x=_f(r, 3, 4, 2), weight=_f(r, 4), bias=_f(r, 4),
        sums=np.abs(_f(r, 2, 4)).astype(np.float64), count=6.0, shift=_f(r, 4),
        running_mean=_f(r, 4), running_var=np.ones(4, np.float32), momentum=0.1, eps=1e-5),
    "batch_norm_backward_reduce": lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4),
                                                 save_mean=_f(r, 4).astype(np.float64),
                                                 save_invstd=np.ones(4, np.float32)),
    "batch_norm_backward_apply": lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), weight=_f(r, 4),
                                                save_mean=_f(r, 4).astype(np.float64),
                                                save_invstd=np.ones(4, np.float32),
                                                sums=_f(r, 2, 4).astype(np.float64), count=3.0),
    "lrn_forward": lambda r: dict(x=_f(r, 2, 5, 3), size=3, alpha=1e-3, beta=0.75, k=1.0),
    "lrn_backward": lambda r: dict(dy=_f(r, 2, 5, 3), x=_f(r, 2, 5, 3), y=_f(r, 2, 5, 3),
                                   scale=np.ones((2, 5, 3), np.float32), size=3, alpha=1e-3,
                                   beta=0.75, k=1.0),
    "group_norm_forward": lambda r: dict(x=_f(r, 2, 6, 3), num_groups=3, weight=_f(r, 6),
                                         bias=_f(r, 6), eps=1e-5),
    "group_norm_backward": lambda r: dict(dy=_f(r, 2, 6, 3), x=_f(r, 2, 6, 3), num_groups=3,
                                          weight=_f(r, 6), save_mean=_f(r, 2, 3).astype(np.float64),
                                          save_invstd=np.ones((2, 3), np.float32),
                                          need_weight_grads=True),
    "layer_norm_forward": lambda r: dict(x=_f(r, 2, 3, 4), normalized_shape=[3, 4],
                                         weight=_f(r, 3, 4), bias=_f(r, 3, 4), eps=1e-5),
    "layer_norm_backward": lambda r: dict(dy=_f(r, 2, 3, 4), x=_f(r, 2, 3, 4),
                                          normalized_shape=[3, 4], weight=_f(r, 3, 4),
                                          save_mean=_f(r, 2).astype(np.float64),
                                          save_invstd=np.ones(2, np.float32),
                                          need_weight_grads=True),
    "dropout_forward": lambda r: dict(x=_f(r, 3, 4), p=0.3, seed=7),
    "dropout_backward": lambda r: dict(dy=_f(r, 3, 4),
                                       mask=r.integers(0, 2, (3, 4)).astype(np.uint8), p=0.3),
    "linear_forward": lambda r: dict(x=_f(r, 3, 4), weight=_f(r, 5, 4), bias=_f(r, 5)),
    "linear_backward": lambda r: dict(dy=_f(r, 3, 5), x=_f(r, 3, 4), weight=_f(r, 5, 4),
                                      need_dx=True),
    "softmax_forward": lambda r: dict(x=_f(r, 3, 4)),
    "softmax_backward": lambda r: dict(dy=_f(r, 3, 4), y=_f(r, 3, 4)),
    "log_softmax_forward": lambda r: dict(x=_f(r, 3, 4)),
    "log_softmax_backward": lambda r: dict(dy=_f(r, 3, 4), y=_f(r, 3, 4)),
    "cross_entropy_forward": lambda r: dict(logits=_f(r, 3, 4), target=r.integers(0, 4, 3),
                                            label_smoothing=0.1),
    "cross_entropy_backward": lambda r: dict(probs=_f(r, 3, 4), target=r.integers(0, 4, 3),
                                             grad=1.0, label_smoothing=0.1),
    "multi_margin_loss_forward": lambda r: dict(x=_f(r, 3, 4), target=r.integers(0, 4, 3),
                                                margin=1.0),
    "multi_margin_loss_backward": lambda r: dict(x=_f(r, 3, 4), target=r.integers(0, 4, 3),
                                                 margin=1.0, grad=1.0),
    "mse_loss_forward": lambda r: dict(x=_f(r, 3, 4), y=_f(r, 3, 4)),
    "mse_loss_backward": lambda r: dict(x=_f(r, 3, 4), y=_f(r, 3, 4), grad=1.0),
    "sgemm": lambda r: dict(a=_f(r, 3, 4), b=_f(r, 4, 5)),
    "round_bf16": lambda r: dict(x=_f(r, 3, 4)),
    "linear_pack_bf16": lambda r: dict(weight=_f(r, 5, 4)),
    "conv2d_pack_bf16": lambda r: dict(weight=_f(r, 6, 4, 3, 3)),
    "sgd_update": lambda r: dict(param=_f(r, 3, 4), grad=_f(r, 3, 4), buf=_f(r, 3, 4), lr=0.1,
                                 momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=True,
                                 maximize=False, first=False),
    "resize_boxes": lambda r: dict(x=_f(r, 2, 3, 6, 7),
                                   boxes=np.array([[0.0, 1.0, 4.0, 5.0], [2.0, 0.0, 3.0, 7.0]]),
                                   size=(5, 4)),
    "color_jitter": lambda r: dict(x=_f(r, 2, 3, 4, 5), factors=r.uniform(0.5, 1.5, (2, 3)),
                                   order=np.array([[2, 0, 1], [-1, 1, 0]])),
    # int8 (issue 19): the row engine (uint8 NHWC activations)
    "quantize_u8": lambda r: dict(x=_f(r, 3, 4), inv_scale=3.0, zero_point=128),
    "conv2d_int8_rows": lambda r: _conv_rows_args(r),
    "conv2d_int8_rows_pack": lambda r: dict(weight=_i8(r, 6, 2, 3, 3), groups=2,
                                            dilation=(1, 2)),
    "linear_int8_rows": lambda r: _linear_rows_args(r),
    "linear_int8_rows_pack": lambda r: dict(weight=_i8(r, 5, 12), chw=(3, 2, 2)),
    "quantize_nhwc": lambda r: dict(x=_f(r, 2, 3, 4, 5), inv_scale=10.0, zero_point=128),
    "max_pool2d_nhwc_u8": lambda r: dict(x=_u8(r, 2, 5, 6, 3), kernel=(2, 2), stride=(2, 2),
                                         padding=(1, 1), ceil_mode=True),
}


def _u8(r, *shape):
    return r.integers(0, 256, shape, dtype=np.uint8)


def _conv_rows_args(r):
    w = _i8(r, 6, 2, 3, 3)
    return dict(x=_u8(r, 2, 5, 5, 4), weight=w, packed=_core.conv2d_int8_rows_pack(w, 2),
                weight_scale=np.abs(_f(r, 6)) + 0.01, bias=_f(r, 6), stride=(1, 2),
                padding=(1, 0), groups=2, relu=True, x_scale=0.1, x_zero_point=100,
                y_scale=0.5, y_zero_point=3)


def _linear_rows_args(r):
    w = _i8(r, 5, 12)
    return dict(x=_u8(r, 3, 12), weight=w, packed=_core.linear_int8_rows_pack(w),
                weight_scale=np.abs(_f(r, 5)) + 0.01, bias=_f(r, 5), relu=True, x_scale=0.1,
                x_zero_point=7)


# The bf16 entry points (autocast): the same calls with precision="bf16".
for _name in ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weights",
              "linear_forward", "linear_backward", "sgemm"):
    CORE_CALLS[_name + "@bf16"] = (lambda make: lambda r: dict(make(r), precision="bf16"))(
        CORE_CALLS[_name])
# Inference extras: the max pooling fused into the convolution (bf16_direct's in-cache pooling
# with 32 channels, the other algorithms' grouped pooling), the strided few-channel layer that
# bf16 runs as space to depth, and max pooling without the argmax.
CORE_CALLS["conv2d_forward@pool"] = lambda r: dict(
    x=_f(r, 3, 32, 9, 9), weight=_f(r, 24, 32, 3, 3), bias=_f(r, 24), stride=(1, 1),
    padding=(1, 1), dilation=(1, 1), groups=1, relu=True, precision="bf16",
    pool=((2, 2), (2, 2), (0, 0), False))
# the int8 convolution with a fused max pooling, float32 out
CORE_CALLS["conv2d_int8_rows@pool"] = lambda r: dict(
    _conv_rows_args(r), y_scale=None, pool=((2, 2), (1, 1), (0, 0), True))
CORE_CALLS["conv2d_forward@pool_fp32"] = lambda r: dict(
    x=_f(r, 2, 4, 7, 7), weight=_f(r, 6, 4, 3, 3), bias=_f(r, 6), stride=(1, 1), padding=(1, 1),
    dilation=(1, 1), groups=1, pool=((3, 3), (2, 2), (1, 1), True))
CORE_CALLS["conv2d_forward@s2d"] = lambda r: dict(
    x=_f(r, 2, 3, 19, 19), weight=_f(r, 16, 3, 11, 11), bias=_f(r, 16), stride=(4, 4),
    padding=(2, 2), dilation=(1, 1), groups=1, precision="bf16")
# fp32 inference with a weight cache (what a fused model's Conv2d passes)
CORE_CALLS["conv2d_forward@cache"] = lambda r: dict(
    x=_f(r, 1, 20, 9, 9), weight=_f(r, 24, 20, 3, 3), bias=_f(r, 24), stride=(1, 1),
    padding=(1, 1), dilation=(1, 1), groups=1, relu=True, cache=_core.ConvWeightCache())
CORE_CALLS["max_pool2d_forward@no_indices"] = lambda r: dict(
    CORE_CALLS["max_pool2d_forward"](r), indices=False)


def test_core_call_table_covers_every_public_core_function():
    public = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    runtime = {"cpu_info", "get_isa", "set_isa", "get_num_threads", "set_num_threads",
               "fma_peak_gflops", "bf16_peak_gflops", "get_conv_algorithm", "set_conv_algorithm"}
    classes = {"ConvWeightCache"}  # an argument of conv2d_forward@cache, not a function
    missing = public - runtime - classes - {name.split("@")[0] for name in CORE_CALLS}
    assert not missing, f"fuzz table lacks _core functions: {sorted(missing)}"


def _array_mutations(rng, a):
    """Ways to hand a core function a wrong array (each must raise TypeError or ValueError)."""
    out = [None, 1.0, "s", a.tolist() if a.size < 50 else [1.0]]
    if a.dtype == np.float32:
        out += [a.astype(np.float64), a.astype(np.float16), a.astype(np.int32)]
    else:
        out += [a.astype(np.float32), a.astype(np.int32), a.astype(np.bool_)]
    if a.ndim >= 1 and a.shape[-1] > 1:
        out += [layout(a, "strided"), a[..., ::-1]]
    if a.ndim >= 2 and a.shape[0] > 1 and a.shape[1] > 1:
        out.append(np.asfortranarray(a))
    out += [a.reshape(-1)[:0], a[None], a.reshape(-1) if a.ndim > 1 else a[None, None],
            np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype) if a.ndim else a]
    return out


_SCALAR_MUTATIONS = [0, -1, -(2**40), 2**31, 2**40, 2**62, 2**63, -(2**63), 1.5, float("nan"),
                     float("inf"), -float("inf"), None, "1", True, (0, 0), (-1, 1), (2**62, 1),
                     (1, 2**63), (1,), (1, 2, 3), 1e30]


@fuzz(600)
@given(rngs(), st.sampled_from(sorted(CORE_CALLS)), st.data())
def test_core_functions_survive_any_argument(rng, name, data):
    """Crash probe over every _core function: one argument replaced by a random wrong or
    extreme value. Wrong arrays must raise TypeError/ValueError naming the op; extreme numbers
    must compute or raise cleanly (ValueError/TypeError/MemoryError/OverflowError)."""
    count("core-probe")
    kwargs = CORE_CALLS[name](rng)
    name = name.split("@")[0]  # "conv2d_forward@bf16": the same function, another precision
    fn = getattr(_core, name)
    probe(lambda: fn(**kwargs))  # the valid call itself
    arg = data.draw(st.sampled_from(sorted(kwargs)))
    v = kwargs[arg]
    if isinstance(v, np.ndarray):
        muts = _array_mutations(rng, v)
        new = muts[int(rng.integers(len(muts)))]
        kwargs[arg] = new
        r = probe(lambda: fn(**kwargs))
        optional = ("bias", "weight", "running_mean", "running_var")
        definitely_bad = (new is None and arg not in optional) or isinstance(
            new, (float, str, list)) or (isinstance(new, np.ndarray) and new.dtype != v.dtype)
        if definitely_bad:
            assert isinstance(r, (TypeError, ValueError)), f"{name}({arg}={new!r}) returned"
        if isinstance(r, Exception):
            short = name.replace("_forward", "").replace("_backward", "")
            msg = str(r)
            assert short.split("_")[0] in msg or "incompatible function arguments" in msg, msg
    else:
        kwargs[arg] = _SCALAR_MUTATIONS[int(rng.integers(len(_SCALAR_MUTATIONS)))]
        probe(lambda: fn(**kwargs))


# ============================================================================ nn constructors
_LAYER_ARGS = {
    nn.Conv2d: (3, 4, 3), nn.LocallyConnected2d: (3, 4, 6, 3), nn.TiledConv2d: (3, 4, 3, 2),
    nn.MaxPool2d: (2,), nn.AvgPool2d: (2,), nn.AdaptiveAvgPool2d: (2,), nn.LeakyReLU: (0.1,),
    nn.ELU: (1.0,), nn.Maxout: (3,), nn.BatchNorm1d: (3,), nn.BatchNorm2d: (3,),
    nn.LocalResponseNorm: (3,), nn.Dropout: (0.5,), nn.Linear: (6, 4), nn.GroupNorm: (3, 3),
    nn.LayerNorm: (6,),
}


_LAYER_MUTATIONS = [v for v in _SCALAR_MUTATIONS if v != 2**31]


@fuzz(300)
@given(rngs(), st.sampled_from(sorted(_LAYER_ARGS, key=lambda c: c.__name__)), st.data())
def test_nn_layers_survive_bad_constructor_arguments(rng, cls, data):
    """A layer built from one bad argument fails cleanly (at construction or at the first call,
    with ValueError/TypeError naming the layer or its op) or computes on a valid input."""
    count("layer-probe")
    args = list(_LAYER_ARGS[cls])
    i = data.draw(st.integers(0, len(args) - 1))
    # not 2**31: BatchNorm1d(2**31) really allocates 4 x 8.6 GB of parameters and buffers (the
    # machine's RAM, not cnnkit's checks, would be the limit); 2**40 and up are refused
    args[i] = _LAYER_MUTATIONS[int(rng.integers(len(_LAYER_MUTATIONS)))]
    layer = probe(lambda: cls(*args))
    if isinstance(layer, Exception):  # MemoryError: e.g. BatchNorm2d(2**40) buffers
        assert isinstance(layer, (ValueError, TypeError, MemoryError)), repr(layer)
        return
    shape = {nn.Linear: (2, 6), nn.BatchNorm1d: (4, 3), nn.Maxout: (2, 6, 2)}.get(cls, (2, 3, 6, 6))
    r = probe(lambda: layer(cnnkit.tensor(normal(rng, shape))))
    if isinstance(r, Exception):
        assert isinstance(r, (ValueError, TypeError, MemoryError)), repr(r)


# ============================================================================ optimizers, data
_OPTIM_ARGS = {  # keyword arguments after params
    cnnkit.optim.SGD: dict(lr=0.1, momentum=0.9, weight_decay=1e-4),
    cnnkit.optim.Adam: dict(lr=1e-3, eps=1e-8, weight_decay=0.0),
    cnnkit.optim.AdamW: dict(lr=1e-3, eps=1e-8, weight_decay=1e-2),
    cnnkit.optim.RMSprop: dict(lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.5, weight_decay=0.0),
    cnnkit.optim.Adagrad: dict(lr=1e-2, lr_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                               weight_decay=0.0),
}


@fuzz(200)
@given(rngs(), st.sampled_from(sorted(_OPTIM_ARGS, key=lambda c: c.__name__)), st.data())
def test_optimizers_survive_bad_arguments(rng, cls, data):
    """An optimizer built with one bad hyper-parameter is refused (ValueError/TypeError) or
    takes a step; nothing else escapes."""
    count("optim-probe")
    kwargs = dict(_OPTIM_ARGS[cls])
    key = data.draw(st.sampled_from(sorted(kwargs)))
    kwargs[key] = _SCALAR_MUTATIONS[int(rng.integers(len(_SCALAR_MUTATIONS)))]
    layer = nn.Linear(3, 2)
    opt = probe(lambda: cls(layer.parameters(), **kwargs))
    if isinstance(opt, Exception):
        assert isinstance(opt, (ValueError, TypeError)), repr(opt)
        return
    layer(cnnkit.tensor(normal(rng, (4, 3)))).sum().backward()
    r = probe(opt.step)
    if isinstance(r, Exception):
        assert isinstance(r, (ValueError, TypeError)), repr(r)


_TRANSFORM_ARGS = {
    cnnkit.data.RandomCrop: (8,), cnnkit.data.CenterCrop: (8,),
    cnnkit.data.RandomHorizontalFlip: (0.5,), cnnkit.data.RandomResizedCrop: (8, (0.2, 1.0)),
    cnnkit.data.ColorJitter: (0.4, 0.4, 0.4, 0.1), cnnkit.data.PCALighting: (0.1,),
}


@fuzz(200)
@given(rngs(), st.sampled_from(sorted(_TRANSFORM_ARGS, key=lambda c: c.__name__)), st.data())
def test_transforms_survive_bad_arguments(rng, cls, data):
    """A transform built with one bad argument is refused cleanly, or transforms a batch of
    [0, 1] images into finite float32 images of its size (or refuses the batch cleanly)."""
    count("transform-probe")
    args = list(_TRANSFORM_ARGS[cls])
    i = data.draw(st.integers(0, len(args) - 1))
    args[i] = _LAYER_MUTATIONS[int(rng.integers(len(_LAYER_MUTATIONS)))]
    t = probe(lambda: cls(*args))
    if isinstance(t, Exception):
        assert isinstance(t, (ValueError, TypeError)), repr(t)
        return
    x = rng.random((3, 3, 10, 10)).astype(np.float32)
    if isinstance(t, cnnkit.data.PCALighting):
        fitted = probe(lambda: t.fit(x))
        if isinstance(fitted, Exception):
            assert isinstance(fitted, (ValueError, TypeError)), repr(fitted)
            return
    r = probe(lambda: t(x, rng=np.random.default_rng(0)))
    if isinstance(r, Exception):  # MemoryError: RandomResizedCrop(2**40) output
        assert isinstance(r, (ValueError, TypeError, MemoryError)), repr(r)
        return
    assert r.dtype == np.float32 and r.ndim == 4 and r.shape[:2] == (3, 3)
    assert np.isfinite(r).all()
