"""Winograd F(4x4, 3x3) convolution: forward, backward data and backward weights against the
float64 reference, on every ISA, for 3x3 filters and the larger ones split into 3x3 pieces."""

import numpy as np
import pytest
from conv_reference import conv2d as conv_ref
from conv_reference import conv2d_grads

import cnnkit

core = cnnkit._core


@pytest.fixture
def algorithm():
    before = cnnkit.get_conv_algorithm()
    yield cnnkit.set_conv_algorithm
    cnnkit.set_conv_algorithm(before)


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-3))


def run_all(x, w, b, p, dy):
    H, W = x.shape[2:]
    F = w.shape[2:]
    y = core.conv2d_forward(x, w, b, (1, 1), (p, p), (1, 1), 1)
    dx = core.conv2d_backward_data(dy, w, (H, W), (1, 1), (p, p), (1, 1), 1)
    dw, db = core.conv2d_backward_weights(dy, x, F, (1, 1), (p, p), (1, 1), 1, True)
    return y, dx, dw, db


# (N, C, K, H, W, F, padding): tiles cut by the image edge (sizes not multiples of 4), inputs
# as small as the filter, tiles of one group spanning rows and images, 5x5 / 7x7 / 4x4 / 2x3
# filters (pieces), padding 0 .. F - 1.
CASES = [
    (2, 16, 16, 9, 11, 3, 1),
    (3, 17, 19, 13, 13, 3, 0),
    (1, 16, 16, 3, 3, 3, 0),
    (1, 5, 7, 3, 4, 3, 2),
    (2, 20, 24, 8, 8, 3, 1),
    (5, 16, 18, 6, 5, 3, 1),
    (2, 17, 19, 12, 10, 5, 2),
    (1, 16, 16, 7, 9, 5, 0),
    (2, 9, 11, 12, 10, 7, 3),
    (1, 3, 4, 8, 9, 4, 1),
    (2, 6, 5, 7, 6, 2, 1),
    # tile rows of a multiple of 4 tiles: runs of 4 tiles read and written with one access
    # (AVX-512), full and with a partial last tile, and image edges inside such runs
    (2, 16, 17, 16, 16, 3, 1),
    (3, 17, 16, 13, 29, 3, 1),
    (2, 16, 16, 16, 32, 5, 2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}C{}K{}_{}x{}_F{}_p{}".format(*c))
def test_winograd_matches_float64_reference(isa, algorithm, case):
    N, C, K, H, W, F, p = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, F, F)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    want = conv_ref(x, w, b, 1, p)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    dx_want, dw_want, db_want = conv2d_grads(x, w, dy, 1, p)
    algorithm("winograd")
    y, dx, dw, db = run_all(x, w, b, p, dy)
    # a few more float32 roundings than the direct sum; the bound is still ~100x tighter
    # than any wrong tap or tile would give
    assert rel_err(y, want) < 5e-5
    assert rel_err(dx, dx_want) < 5e-5
    assert rel_err(dw, dw_want) < 5e-5
    assert rel_err(db, db_want) < 1e-5
    # the direct path on the same data, as a cross-check of the switch itself
    algorithm("direct")
    y2 = core.conv2d_forward(x, w, b, (1, 1), (p, p), (1, 1), 1)
    assert rel_err(y2, want) < 2e-5
    assert not np.array_equal(y, y2) or C * F * F < 4  # different algorithms, different roundings


def _with_rounding_edges(a):
    """a with bf16 rounding's edge cases planted: ties (low half 0x8000, even and odd kept
    bit), the largest value that rounds down, denormals (-> signed zero) and -0."""
    u = a.view(np.uint32).reshape(-1)
    u[0::11] = (u[0::11] & 0xFFFF0000) | 0x8000
    u[1::11] = (u[1::11] & 0xFFFE0000) | 0x18000
    u[2::11] = (u[2::11] & 0xFFFF0000) | 0x7FFF
    u[3::11] = np.uint32(0x00012345) | (u[3::11] & 0x80000000)
    u[4::11] = 0x80000000
    return a


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 1, 4, 6, 11, 12, 13)],
                         ids=lambda c: "N{}C{}K{}_{}x{}_F{}_p{}".format(*c))
def test_winograd_in_bf16_rounds_as_it_reads(isa, algorithm, case):
    """bf16 Winograd rounds X, W and dY as its transforms read them (no rounded copies): the
    bits of fp32 Winograd on copies rounded first, in all three passes; the bias gradient sums
    dY unrounded."""
    N, C, K, H, W, F, p = case
    rng = np.random.default_rng(sum(case))
    x = _with_rounding_edges(rng.standard_normal((N, C, H, W)).astype(np.float32))
    w = _with_rounding_edges(rng.standard_normal((K, C, F, F)).astype(np.float32))
    b = rng.standard_normal(K).astype(np.float32)
    algorithm("winograd")
    shapes = ([N, C, H, W], [K, C, F, F], (1, 1), (p, p), (1, 1), 1)
    if core._conv2d_algorithms(*shapes, precision="bf16") != ("winograd",) * 3:
        pytest.skip("Winograd takes no bf16 convolution here (AMX: bf16_direct)")
    y = core.conv2d_forward(x, w, b, (1, 1), (p, p), (1, 1), 1, False, "bf16")
    dy = _with_rounding_edges(rng.standard_normal(y.shape).astype(np.float32))
    dx = core.conv2d_backward_data(dy, w, (H, W), (1, 1), (p, p), (1, 1), 1, "bf16")
    dw, db = core.conv2d_backward_weights(dy, x, (F, F), (1, 1), (p, p), (1, 1), 1, True, "bf16")
    xr, wr, dyr = core.round_bf16(x), core.round_bf16(w), core.round_bf16(dy)
    assert not np.array_equal(xr, x) and not np.array_equal(dyr, dy)
    y_want, dx_want, dw_want, _ = run_all(xr, wr, b, p, dyr)
    np.testing.assert_array_equal(y, y_want)
    np.testing.assert_array_equal(dx, dx_want)
    np.testing.assert_array_equal(dw, dw_want)
    np.testing.assert_array_equal(db, core.conv2d_backward_weights(dy, x, (F, F), (1, 1),
                                                                   (p, p), (1, 1), 1, True)[1])


def test_winograd_fused_relu_and_bias(algorithm, rng):
    x = rng.standard_normal((3, 16, 10, 7)).astype(np.float32)
    w = rng.standard_normal((20, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    algorithm("winograd")
    y = core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, True)
    assert rel_err(y, np.maximum(conv_ref(x, w, b, 1, 1), 0)) < 5e-5
    assert (y >= 0).all()
    y = core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    assert rel_err(y, conv_ref(x, w, None, 1, 1)) < 5e-5


def test_winograd_writes_only_the_output(algorithm, rng):
    """Edge tiles are masked: a 4x4 tile hanging over the image edge must not write past it."""
    x = rng.standard_normal((3, 16, 5, 5)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    algorithm("winograd")
    y = core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1)  # 3x3 output: 1 partial tile
    assert y.shape == (3, 16, 3, 3)
    assert rel_err(y, conv_ref(x, w, None, 1, 0)) < 5e-5


def test_auto_uses_winograd_where_it_pays(isa, algorithm, rng):
    """auto picks Winograd for wide 3x3 layers where SIMD transforms exist (its results then
    differ from the direct path's by roundings) and the direct path for narrow ones and where
    the transforms are the reference loops (ref, and neon, which has no Winograd kernels):
    bitwise equal."""
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    narrow = rng.standard_normal((8, 32, 3, 3)).astype(np.float32)
    results = {}
    for name in ("auto", "direct", "winograd"):
        algorithm(name)
        results[name] = (core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1),
                         core.conv2d_forward(x, narrow, None, (1, 1), (1, 1), (1, 1), 1))
    np.testing.assert_array_equal(results["auto"][1], results["direct"][1])
    wide = "direct" if isa in ("ref", "neon") else "winograd"
    np.testing.assert_array_equal(results["auto"][0], results[wide][0])
    assert not np.array_equal(results["winograd"][0], results["direct"][0])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_auto_backward_passes_go_direct_with_few_tiles(isa, algorithm, precision):
    """The backward passes transform the filters on every call; with few tiles to spread that
    over (batch 1 at 13x13, 512 channels at 7x7 and batch 8) auto runs them direct, while the
    forward pass (whose filter transform inference caches) and well-tiled layers keep
    Winograd."""
    algorithm("auto")
    if isa in ("ref", "neon") or (precision == "bf16" and cnnkit.cpu_info()["bf16_path"] == "amx"):
        pytest.skip(f"no automatic Winograd on {isa} in {precision}")

    def algos(n, c, h, k):
        return core._conv2d_algorithms([n, c, h, h], [k, c, 3, 3], (1, 1), (1, 1), (1, 1), 1,
                                       precision)

    for few in (algos(1, 256, 13, 384), algos(8, 512, 7, 512)):
        assert few[0] == "winograd" and few[1] != "winograd" and few[2] != "winograd", few
    for many in (algos(128, 32, 32, 32), algos(16, 256, 13, 384), algos(8, 128, 28, 128)):
        assert many == ("winograd",) * 3, many


def test_winograd_deterministic_for_a_thread_count(algorithm, rng):
    x = rng.standard_normal((4, 16, 20, 20)).astype(np.float32)
    dy = rng.standard_normal((4, 24, 20, 20)).astype(np.float32)
    algorithm("winograd")
    before = cnnkit.get_num_threads()
    try:
        for t in (1, 2, 3):
            cnnkit.set_num_threads(t)
            a = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)[0]
            b = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)[0]
            np.testing.assert_array_equal(a, b)
    finally:
        cnnkit.set_num_threads(before)


def test_conv_algorithm_setting(algorithm):
    assert cnnkit.get_conv_algorithm() in ("auto", "direct", "winograd")
    algorithm("direct")
    assert cnnkit.get_conv_algorithm() == "direct"
    msg = "set_conv_algorithm: name must be 'auto', 'direct' or 'winograd', got 'fast'"
    with pytest.raises(ValueError, match=msg):
        cnnkit.set_conv_algorithm("fast")
    with pytest.raises(TypeError, match="set_conv_algorithm: name must be a str, got int"):
        cnnkit.set_conv_algorithm(3)
    assert cnnkit.get_conv_algorithm() == "direct"


def test_conv_algorithm_environment_variable():
    import os
    import subprocess
    import sys
    code = "import cnnkit; print(cnnkit.get_conv_algorithm())"
    env = dict(os.environ, CNNKIT_CONV_ALGORITHM="direct")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "direct", out.stderr
    env["CNNKIT_CONV_ALGORITHM"] = "bogus"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "'bogus'" in out.stderr
