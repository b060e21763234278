"""Reliability (issue 9): threads, large tensors and allocation failures, inputs left untouched.

- Several Python threads calling cnnkit at once (the GIL is released in every kernel) get the
  results of serial calls, bit for bit; set_num_threads from another thread mid-computation
  does not crash; the same thread count gives the same bits, other counts agree to 1e-5 of the
  output's largest magnitude.
- A tensor over 2^31 elements computes correctly (``--run-slow``: ~17 GB of RAM); an output
  that cannot be allocated raises MemoryError or ValueError naming the op, never crashes.
- No op modifies the arrays it is given (batch-norm running statistics and sgemm's
  ``overwrite_c`` are the documented in-place updates).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cnnkit
import cnnkit.functional as F
import cnnkit.nn as nn
from cnnkit import _core


@pytest.fixture
def threads_restored():
    prev = cnnkit.get_num_threads()
    yield
    cnnkit.set_num_threads(prev)


def _r(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _workloads(seed=0):
    """name -> zero-argument function returning a tuple of arrays; sizes big enough that every
    op actually uses several threads."""
    rng = np.random.default_rng(seed)
    x, w, b = _r(rng, 4, 16, 24, 24), _r(rng, 32, 16, 3, 3), _r(rng, 32)
    dy = _r(rng, 4, 32, 24, 24)
    big = _r(rng, 600_000)
    lx = _r(rng, 8, 24, 40, 40)
    ly, ls = _core.lrn_forward(lx, 5, 1e-3, 0.75, 2.0)
    lin_x, lin_w = _r(rng, 256, 300), _r(rng, 200, 300)
    a, bm = _r(rng, 300, 200), _r(rng, 200, 250)
    return {
        "conv2d": lambda: (_core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1),),
        "conv2d_backward": lambda: (
            _core.conv2d_backward_data(dy, w, (24, 24), (1, 1), (1, 1), (1, 1), 1),
            *_core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)),
        "max_pool2d": lambda: _core.max_pool2d_forward(lx, (3, 3), (2, 2), (1, 1), False),
        "relu/sigmoid": lambda: (_core.relu_forward(big), _core.sigmoid_forward(big)),
        "lrn": lambda: (_core.lrn_forward(lx, 5, 1e-3, 0.75, 2.0)[0],
                        _core.lrn_backward(lx, lx, ly, ls, 5, 1e-3, 0.75, 2.0)),
        "mse": lambda: (np.float64(_core.mse_loss_forward(big, big[::-1].copy())),),
        "batch_norm": lambda: _core.batch_norm_forward_train(lx, None, None, None, None, 0.1,
                                                             1e-5),
        "linear": lambda: (_core.linear_forward(lin_x, lin_w, None),),
        "softmax": lambda: (_core.softmax_forward(lin_x),),
        "sgemm": lambda: (cnnkit.ops.sgemm(a, bm),),
    }


def test_concurrent_calls_give_the_serial_results_bitwise(threads_restored):
    cnnkit.set_num_threads(2)
    work = _workloads()
    serial = {k: f() for k, f in work.items()}
    jobs = [k for k in work for _ in range(3)]
    np.random.default_rng(1).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda k: (k, work[k]()), jobs))
    for k, got in results:
        for g, s in zip(got, serial[k]):
            np.testing.assert_array_equal(g, s, err_msg=f"{k}: concurrent result differs")


def test_set_num_threads_while_other_threads_compute(threads_restored):
    """Regression: mse_loss_forward and lrn_backward sized per-thread buffers with one read of
    the thread count and ran with a second read; a set_num_threads() in between from another
    Python thread made them write past the buffer (found by reading the code for this test)."""
    work = _workloads()
    cnnkit.set_num_threads(1)
    ref = {k: f() for k, f in work.items()}
    stop = threading.Event()

    def toggle():
        n = 0
        while not stop.is_set():
            cnnkit.set_num_threads(1 + n % 4)
            n += 1
            time.sleep(0.0005)

    errors = []

    def compute(names):
        try:
            for _ in range(4):
                for k in names:
                    for g, r in zip(work[k](), ref[k]):
                        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
                        scale = max(np.abs(r).max(initial=0), 1e-30)
                        assert np.abs(g - r).max(initial=0) <= 1e-5 * scale, k
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=toggle)
    t.start()
    names = list(work)
    workers = [threading.Thread(target=compute, args=(names[i::2],)) for i in range(2)]
    for w_ in workers:
        w_.start()
    for w_ in workers:
        w_.join()
    stop.set()
    t.join()
    assert not errors, errors


@pytest.mark.parametrize("isa", cnnkit.cpu_info()["supported_isas"])
def test_bitwise_per_thread_count_and_close_across_counts(isa, threads_restored):
    before = cnnkit.get_isa()
    cnnkit.set_isa(isa)
    try:
        work = _workloads(seed=3)
        per_count = {}
        for n in (1, 2, 3, 4):
            cnnkit.set_num_threads(n)
            first = {k: f() for k, f in work.items()}
            second = {k: f() for k, f in work.items()}
            for k in work:
                for a, b in zip(first[k], second[k]):
                    np.testing.assert_array_equal(a, b, err_msg=f"{k}, {n} threads, {isa}")
            per_count[n] = first
        for n in (2, 3, 4):
            for k in work:
                for a, r in zip(per_count[n][k], per_count[1][k]):
                    a, r = np.asarray(a, np.float64), np.asarray(r, np.float64)
                    scale = max(np.abs(r).max(initial=0), 1e-30)
                    err = np.abs(a - r).max(initial=0) / scale
                    assert err <= 1e-5, f"{k}: {n} vs 1 threads differ by {err:.2g} ({isa})"
    finally:
        cnnkit.set_isa(before)


# ---------------------------------------------------------------------------- large tensors
def test_unsatisfiable_outputs_raise_memory_or_value_error():
    x = np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(MemoryError, match="conv2d"):  # ~4e14 bytes: fits 63 bits, not in RAM
        F.conv2d(x, w, padding=10**7)
    with pytest.raises(ValueError, match="conv2d.*too large"):  # > 2^63 bytes
        F.conv2d(x, w, padding=2**40)
    with pytest.raises(ValueError, match="conv2d.*padding"):  # 2 * padding overflows int64
        F.conv2d(x, w, padding=2**62)
    with pytest.raises(MemoryError, match="adaptive_avg_pool2d"):
        F.adaptive_avg_pool2d(x, (2**22, 2**22))
    with pytest.raises(ValueError, match="max_pool2d_backward.*too large"):
        _core.max_pool2d_backward(x, np.zeros((1, 1, 4, 4), np.int64), (2**40, 2**40))
    with pytest.raises(MemoryError, match="conv2d_backward_data"):
        _core.conv2d_backward_data(np.ones((1, 1, 1, 1), np.float32), w, (2**23, 2**23),
                                   (2**23, 2**23), (0, 0), (1, 1), 1)
    # UBSan (scripts/sanitize.sh) caught dilation * (F - 1) == INT64_MAX overflowing on "+ 1"
    with pytest.raises(ValueError, match="conv2d.*dilation"):
        F.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32),
                 dilation=2**63 - 1)
    # UBSan: conv2d_backward_data computed weight channels * groups unchecked
    with pytest.raises(ValueError, match="conv2d_backward_data.*groups"):
        _core.conv2d_backward_data(np.ones((1, 1, 2, 2), np.float32),
                                   np.ones((1, 2, 3, 3), np.float32), (4, 4), (1, 1), (0, 0),
                                   (1, 1), 2**62)
    # and the process is fine afterwards
    np.testing.assert_array_equal(F.relu(x).numpy(), x)


BIG = 2**31 + 2**20  # elements: more than 2^31, a multiple of 2^20


@pytest.mark.slow
def test_relu_over_more_than_2_31_elements():
    pattern = np.linspace(-1, 1, 2**20, dtype=np.float32)
    x = np.empty(BIG, np.float32)
    x.reshape(-1, 2**20)[:] = pattern
    y = _core.relu_forward(x)
    want = np.maximum(pattern, 0)
    rows = y.reshape(-1, 2**20)
    for r in range(0, rows.shape[0], 128):
        assert (rows[r:r + 128] == want).all(), f"rows {r}..{r + 128}"
    assert y[-1] == 1.0 and y[2**31] == want[0] and y[2**31 + 2**19 + 7] == want[2**19 + 7]


@pytest.mark.slow
def test_conv2d_with_more_than_2_31_output_elements():
    """A 1x1 convolution of [1, 1, 2^15 + 32, 2^16] (2^31 + 2^21 elements) with bias: every
    index past 2^31 must be right (64-bit offsets in the GEMM and packing)."""
    H, W = 2**15 + 32, 2**16
    row = np.linspace(-2, 2, W, dtype=np.float32)
    x = np.empty((1, 1, H, W), np.float32)
    x[0, 0] = row
    x[0, 0, -1] = -row  # the last row differs, so a wrapped offset would show
    y = F.conv2d(x, np.full((1, 1, 1, 1), 0.5, np.float32), np.array([1.0], np.float32)).numpy()
    del x
    assert y.shape == (1, 1, H, W) and y.size > 2**31
    want = 0.5 * row.astype(np.float64) + 1.0
    for h in (0, 1, H // 2, 2**15 - 1, 2**15, 2**15 + 1, H - 2):
        np.testing.assert_allclose(y[0, 0, h], want, rtol=1e-6, atol=1e-6, err_msg=f"row {h}")
    np.testing.assert_allclose(y[0, 0, -1], -0.5 * row.astype(np.float64) + 1.0, rtol=1e-6,
                               atol=1e-6)
    for h in range(0, H - 1, 4096):
        np.testing.assert_allclose(y[0, 0, h:h + 4096 if h + 4096 < H - 1 else H - 1],
                                   np.broadcast_to(want, (min(4096, H - 1 - h), W)), rtol=1e-6,
                                   atol=1e-6)


# ---------------------------------------------------------------------------- inputs untouched
def _calls(rng):
    """(name, fn(args), args): every functional op and layer, forward and backward."""
    x4 = _r(rng, 2, 4, 6, 6)
    w = _r(rng, 6, 4, 3, 3)
    calls = [
        ("conv2d", lambda a: F.conv2d(*a, stride=1, padding=1), [x4, w, _r(rng, 6)]),
        ("local_conv2d", lambda a: F.local_conv2d(*a), [x4, _r(rng, 4, 4, 3, 4, 3, 3),
                                                        _r(rng, 3, 4, 4)]),
        ("tiled_conv2d", lambda a: F.tiled_conv2d(*a), [x4, _r(rng, 2, 2, 3, 4, 3, 3),
                                                        _r(rng, 3)]),
        ("max_pool2d", lambda a: F.max_pool2d(a[0], 2), [x4]),
        ("avg_pool2d", lambda a: F.avg_pool2d(a[0], 3, 2, 1), [x4]),
        ("adaptive_avg_pool2d", lambda a: F.adaptive_avg_pool2d(a[0], 4), [x4]),
        ("relu", lambda a: F.relu(a[0]), [x4]),
        ("leaky_relu", lambda a: F.leaky_relu(a[0], 0.2), [x4]),
        ("elu", lambda a: F.elu(a[0]), [x4]),
        ("sigmoid", lambda a: F.sigmoid(a[0]), [x4]),
        ("tanh", lambda a: F.tanh(a[0]), [x4]),
        ("maxout", lambda a: F.maxout(a[0], 2), [x4]),
        ("batch_norm", lambda a: F.batch_norm(a[0], None, None, a[1], a[2], True),
         [x4, _r(rng, 4), _r(rng, 4)]),
        ("local_response_norm", lambda a: F.local_response_norm(a[0], 3), [x4]),
        ("dropout", lambda a: F.dropout(a[0], 0.3), [x4]),
        ("linear", lambda a: F.linear(*a), [_r(rng, 5, 7), _r(rng, 3, 7), _r(rng, 3)]),
        ("softmax", lambda a: F.softmax(a[0], 1), [x4]),
        ("log_softmax", lambda a: F.log_softmax(a[0], -1), [x4]),
        ("cross_entropy", lambda a: F.cross_entropy(a[0], a[1]),
         [_r(rng, 5, 4), rng.integers(0, 4, 5)]),
        ("multi_margin_loss", lambda a: F.multi_margin_loss(a[0], a[1]),
         [_r(rng, 5, 4), rng.integers(0, 4, 5)]),
        ("mse_loss", lambda a: F.mse_loss(*a), [_r(rng, 5, 4), _r(rng, 5, 4)]),
    ]
    layers = [nn.Conv2d(4, 6, 3), nn.LocallyConnected2d(4, 3, 6, 3), nn.TiledConv2d(4, 3, 3, 2),
              nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(2), nn.ReLU(inplace=True),
              nn.LeakyReLU(inplace=True), nn.ELU(inplace=True), nn.Sigmoid(), nn.Tanh(),
              nn.Maxout(2), nn.BatchNorm2d(4), nn.LocalResponseNorm(3), nn.Dropout(inplace=True)]
    for layer in layers:
        calls.append((type(layer).__name__, lambda a, m=layer: m(a[0]), [x4]))
    linear = nn.Linear(7, 3)
    calls.append(("Linear", lambda a, m=linear: m(a[0]), [_r(rng, 5, 7)]))
    batch_norm_1d = nn.BatchNorm1d(7)
    calls.append(("BatchNorm1d", lambda a, m=batch_norm_1d: m(a[0]), [_r(rng, 5, 7)]))
    return calls


@pytest.mark.parametrize("as_tensor", [False, True])
def test_ops_never_modify_their_inputs(as_tensor):
    rng = np.random.default_rng(5)
    for name, fn, arrays in _calls(rng):
        saved = [a.copy() for a in arrays]
        args = [cnnkit.tensor(a, requires_grad=a.dtype == np.float32) if as_tensor else a
                for a in arrays]
        if as_tensor:  # Tensors share memory with the user's arrays: nothing may write there
            for a, t in zip(arrays, args):
                t.data = a
        out = fn(args)
        if as_tensor and out.requires_grad:
            (out * cnnkit.tensor(rng.standard_normal(out.shape).astype(np.float32))).sum() \
                .backward()
        for a, s in zip(arrays, saved):
            np.testing.assert_array_equal(a, s, err_msg=f"{name} modified an input")


def test_sgemm_leaves_c_alone_unless_overwrite_c():
    rng = np.random.default_rng(6)
    a, b, c = _r(rng, 4, 5), _r(rng, 5, 3), _r(rng, 4, 3)
    a0, b0, c0 = a.copy(), b.copy(), c.copy()
    out = cnnkit.ops.sgemm(a, b, beta=1.0, c=c)
    np.testing.assert_array_equal(c, c0)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    cnnkit.ops.sgemm(a, b, beta=1.0, c=c, overwrite_c=True)  # documented in place
    np.testing.assert_allclose(c, out, rtol=1e-6)


def test_empty_batch_with_unrepresentable_output_shape_is_refused():
    """N = 0 with outputs of 2^32 x 2^32 pixels: the strides would overflow int64 (UBSan found
    pybind11 computing them); refused up front with a ValueError naming the op and the shape."""
    from cnnkit import _core

    x = np.zeros((0, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"tiled_conv2d: output of shape \[0, 1, 4294967297"):
        _core.tiled_conv2d_forward(x, np.zeros((1, 1, 1, 1, 1, 1), np.float32), None, (1, 1),
                                   (2**31, 2**31))
    with pytest.raises(ValueError, match=r"conv2d: output of shape \[0, 1, 4294967297"):
        _core.conv2d_forward(x, np.zeros((1, 1, 1, 1), np.float32), None, (1, 1), (2**31, 2**31),
                             (1, 1), 1)
