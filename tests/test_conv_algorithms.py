"""Convolution's ordered lists of algorithms (cpp/src/conv/conv2d.cpp): the name the list
reports for a shape is the algorithm that runs, and every algorithm of every direction matches
the float64 reference on shapes that select it."""

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


def run_all(x, w, b, dy, stride, padding, dilation, groups):
    """The three passes, each followed by the algorithm it ran."""
    s, p, d = (stride,) * 2, (padding,) * 2, (dilation,) * 2
    y = core.conv2d_forward(x, w, b, s, p, d, groups)
    ran_fwd = core._conv2d_last_algorithms()[0]
    dx = core.conv2d_backward_data(dy, w, x.shape[2:], s, p, d, groups)
    ran_bwd_data = core._conv2d_last_algorithms()[1]
    dw, db = core.conv2d_backward_weights(dy, x, w.shape[2:], s, p, d, groups, True)
    ran_bwd_weights = core._conv2d_last_algorithms()[2]
    return (y, dx, dw, db), (ran_fwd, ran_bwd_data, ran_bwd_weights)


# (direction, algorithm, setting, (N, C, K, H, F, stride, padding, dilation, groups)): a shape
# and setting that select each entry of each list, on every ISA.
FWD, BWD_DATA, BWD_WEIGHTS = 0, 1, 2
SELECTIONS = [
    (FWD, "depthwise", "auto", (2, 16, 32, 12, 3, 1, 1, 1, 16)),
    (FWD, "winograd", "winograd", (2, 16, 16, 9, 3, 1, 1, 1, 1)),
    (FWD, "winograd", "winograd", (2, 16, 18, 10, 5, 1, 2, 1, 1)),
    (FWD, "gemm", "auto", (2, 32, 16, 8, 1, 1, 0, 1, 2)),
    (FWD, "implicit_gemm", "auto", (2, 8, 16, 11, 3, 2, 1, 1, 1)),
    (FWD, "implicit_gemm", "direct", (2, 16, 16, 9, 3, 1, 1, 1, 1)),
    (FWD, "implicit_gemm", "auto", (2, 8, 8, 13, 3, 1, 2, 2, 2)),
    (BWD_DATA, "depthwise", "auto", (2, 16, 16, 11, 3, 2, 1, 1, 16)),
    (BWD_DATA, "winograd", "winograd", (2, 16, 16, 9, 3, 1, 1, 1, 1)),
    (BWD_DATA, "implicit_gemm", "direct", (2, 16, 16, 9, 3, 1, 1, 1, 1)),
    (BWD_DATA, "implicit_gemm", "auto", (2, 16, 8, 8, 1, 1, 0, 1, 1)),  # dY's 1x1 GEMM
    (BWD_DATA, "implicit_gemm", "auto", (2, 32, 16, 10, 3, 1, 2, 2, 2)),
    (BWD_DATA, "gemm_col2im", "auto", (2, 16, 16, 13, 3, 2, 1, 1, 1)),
    (BWD_DATA, "gemm_col2im", "winograd", (2, 3, 16, 12, 3, 1, 1, 1, 1)),  # few channels
    (BWD_WEIGHTS, "depthwise", "auto", (2, 16, 32, 12, 3, 1, 1, 1, 16)),
    (BWD_WEIGHTS, "winograd", "winograd", (2, 16, 16, 9, 3, 1, 1, 1, 1)),
    (BWD_WEIGHTS, "dot", "auto", (2, 3, 16, 32, 3, 1, 1, 1, 1)),
    (BWD_WEIGHTS, "dot", "direct", (3, 16, 8, 24, 1, 1, 0, 1, 1)),
    (BWD_WEIGHTS, "gemm", "auto", (2, 96, 16, 8, 3, 1, 1, 1, 1)),
    (BWD_WEIGHTS, "gemm", "auto", (2, 32, 16, 6, 3, 2, 1, 1, 2)),
]


def _id(sel):
    direction, name, setting, shape = sel
    return f"{['fwd', 'bwd_data', 'bwd_weights'][direction]}-{name}-{setting}-" + "_".join(
        map(str, shape))


@pytest.mark.parametrize("selection", SELECTIONS, ids=_id)
def test_each_algorithm_is_selected_runs_and_matches_the_reference(isa, algorithm, selection):
    direction, name, setting, (N, C, K, H, F, S, P, D, G) = selection
    algorithm(setting)
    rng = np.random.default_rng(N * 1000 + C * 10 + K)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((K, C // G, F, F)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    reported = core._conv2d_algorithms(x.shape, w.shape, (S, S), (P, P), (D, D), G)
    assert reported[direction] == name
    y_want = conv_ref(x, w, b, S, P, D, G)
    dy = rng.standard_normal(y_want.shape).astype(np.float32)
    dx_want, dw_want, db_want = conv2d_grads(x, w, dy, S, P, D, G)
    got, ran = run_all(x, w, b, dy, S, P, D, G)
    assert ran == reported
    tol = 5e-5 if name == "winograd" else 2e-5
    want = (y_want, dx_want, dw_want, db_want)
    for i in range(4):
        assert got[i].shape == want[i].shape
        assert rel_err(got[i], want[i]) < tol, ("y", "dx", "dw", "db")[i]


# The walk that names the algorithm is the walk that runs it: over a sweep of shapes, under
# every setting, what ran is what was reported.
SWEEP = [
    (N, C, K, H, F, S, P, D, G)
    for (N, C, K, H) in [(1, 3, 16, 12), (2, 16, 16, 10), (2, 32, 32, 6), (4, 16, 8, 24)]
    for (F, S, P, D) in [(1, 1, 0, 1), (1, 2, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 1),
                         (3, 1, 2, 2)]
    for G in (1, 2, C)
    if C % G == 0 and K % G == 0 and H + 2 * P >= D * (F - 1) + 1
]


@pytest.mark.parametrize("setting", ["auto", "direct", "winograd"])
def test_what_runs_is_what_the_list_reports(isa, algorithm, setting, rng):
    algorithm(setting)
    for N, C, K, H, F, S, P, D, G in SWEEP:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = rng.standard_normal((K, C // G, F, F)).astype(np.float32)
        reported = core._conv2d_algorithms(x.shape, w.shape, (S, S), (P, P), (D, D), G)
        y = core.conv2d_forward(x, w, None, (S, S), (P, P), (D, D), G)
        _, ran = run_all(x, w, None, y, S, P, D, G)
        assert ran == reported, (N, C, K, H, F, S, P, D, G)


def test_empty_batch_runs_no_forward_algorithm(algorithm):
    algorithm("auto")
    x = np.zeros((0, 16, 8, 8), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    y = core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    dx = core.conv2d_backward_data(y, w, (8, 8), (1, 1), (1, 1), (1, 1), 1)
    dw, db = core.conv2d_backward_weights(y, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)
    assert y.shape == (0, 16, 8, 8) and dx.shape == (0, 16, 8, 8)
    ran = core._conv2d_last_algorithms()
    assert ran[:2] == (None, None)  # nothing to compute
    assert ran[2] == core._conv2d_algorithms(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)[2]
    assert not dw.any() and not db.any()  # an empty batch's gradients are zeros
