"""conv2d, locally connected and tiled convolution against float64 references, on every ISA."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from conv_reference import conv2d as conv_ref
from conv_reference import conv2d_grads, out_size, tiled_conv2d

import cnnkit

core = cnnkit._core


def fwd(x, w, b=None, s=1, p=0, d=1, g=1, relu=False):
    return core.conv2d_forward(x, w, b, (s, s) if np.isscalar(s) else s,
                               (p, p) if np.isscalar(p) else p,
                               (d, d) if np.isscalar(d) else d, g, relu)


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def assert_close(got, want, rtol=2e-5, what=""):
    scale = max(np.abs(want).max(), 1e-3)
    err = np.abs(got - want).max() / scale
    assert err <= rtol, f"{what}: max error {err:.2e} (relative to max |want| {scale:.2e})"


def all_grid():
    # (N, C, K, H, W, Fh, Fw, stride, padding, dilation, groups)
    grid = []
    for C, K, F, s, p, d in itertools.product([1, 3, 5, 16, 33], [1, 3, 5, 16, 33],
                                              [1, 2, 3, 5, 7, 11],
                                              [1, 2, 3, 4], [0, 1, 2, 3], [1, 2]):
        grid.append((C, K, F, s, p, d))
    rng = np.random.default_rng(7)
    picked = [grid[i] for i in rng.choice(len(grid), size=60, replace=False)]
    configs = []
    for i, (C, K, F, s, p, d) in enumerate(picked):
        N = (1, 2, 3)[i % 3]
        eff = d * (F - 1) + 1
        H = max(eff - 2 * p, 1) + (i % 5)          # as small as the kernel allows, and a bit more
        W = max(eff - 2 * p, 1) + (i * 3) % 7      # non-square
        Fw = F if i % 4 else max(1, F - 1)         # some non-square kernels
        effw = d * (Fw - 1) + 1
        W = max(W, effw - 2 * p, 1)
        configs.append((N, C, K, H, W, F, Fw, s, p, d, 1))
    # groups and depthwise
    configs += [
        (2, 4, 6, 9, 8, 3, 3, 1, 1, 1, 2), (1, 6, 4, 7, 10, 3, 5, 2, 2, 1, 2),
        (3, 16, 16, 9, 9, 3, 3, 1, 1, 1, 16), (2, 8, 16, 11, 7, 5, 5, 2, 2, 2, 8),
        (2, 33, 33, 6, 6, 3, 3, 1, 1, 1, 33), (1, 3, 3, 5, 5, 1, 1, 1, 0, 1, 3),
        (2, 12, 8, 13, 13, 3, 3, 3, 1, 2, 4),
    ]
    return configs


CONFIGS = all_grid()


@pytest.mark.parametrize("cfg", CONFIGS,
                         ids=lambda c: "N{}C{}K{}_{}x{}_F{}x{}_s{}p{}d{}g{}".format(*c))
def test_forward_and_gradients_match_reference(isa, cfg):
    N, C, K, H, W, Fh, Fw, s, p, d, g = cfg
    rng = np.random.default_rng(hash(cfg) % 2**32)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // g, Fh, Fw)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    y = fwd(x, w, b, s, p, d, g)
    want = conv_ref(x, w, b, s, p, d, g)
    assert y.shape == want.shape
    assert_close(y, want, what="forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_want, dw_want, db_want = conv2d_grads(x, w, dy, s, p, d, g)
    dx = core.conv2d_backward_data(dy, w, (H, W), pair(s), pair(p), pair(d), g)
    dw, db = core.conv2d_backward_weights(dy, x, (Fh, Fw), pair(s), pair(p), pair(d), g, True)
    assert_close(dx, dx_want, what="backward data")
    assert_close(dw, dw_want, what="backward weights")
    assert_close(db, db_want, what="bias gradient")


def test_fused_relu_and_no_bias(isa, rng):
    x = rng.standard_normal((2, 5, 9, 9)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    assert_close(fwd(x, w, b, 1, 1, relu=True), np.maximum(conv_ref(x, w, b, 1, 1), 0))
    assert_close(fwd(x, w, None, 2, 0), conv_ref(x, w, None, 2, 0))
    dw, db = core.conv2d_backward_weights(np.ones((2, 7, 7, 7), np.float32), x, (3, 3), (1, 1),
                                          (0, 0), (1, 1), 1, False)
    assert db is None and dw.shape == (7, 5, 3, 3)


def test_reference_kernels_agree(rng):
    x = rng.standard_normal((2, 6, 10, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    args = ((2, 1), (1, 2), (2, 1), 2)
    y = core._conv2d_forward_ref(x, w, b, *args)
    assert_close(y, conv_ref(x, w, b, (2, 1), (1, 2), (2, 1), 2))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_want, dw_want, db_want = conv2d_grads(x, w, dy, (2, 1), (1, 2), (2, 1), 2)
    assert_close(core._conv2d_backward_data_ref(dy, w, (10, 9), *args), dx_want)
    dw, db = core._conv2d_backward_weights_ref(dy, x, (3, 2), *args, True)
    assert_close(dw, dw_want)
    assert_close(db, db_want)


def test_isa_paths_agree_with_reference_path(rng):
    x = rng.standard_normal((3, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((3, 24, 14, 14)).astype(np.float32)
    before = cnnkit.get_isa()
    try:
        cnnkit.set_isa("ref")
        ref = (fwd(x, w, None, 1, 1),
               core.conv2d_backward_data(dy, w, (14, 14), (1, 1), (1, 1), (1, 1), 1),
               core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)[0])
        for name in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(name)
            got = (fwd(x, w, None, 1, 1),
                   core.conv2d_backward_data(dy, w, (14, 14), (1, 1), (1, 1), (1, 1), 1),
                   core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)[0])
            for a, r in zip(got, ref):
                assert_close(a, r, rtol=1e-5, what=name)
    finally:
        cnnkit.set_isa(before)


def test_finite_differences(rng):
    """Gradients of L = sum(conv(x, w) * r) against centred differences of the forward kernel."""
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    s, p, d = (2, 1), (1, 1), (1, 2)
    r = rng.standard_normal(fwd(x, w, None, s, p, d).shape).astype(np.float32)

    def loss(xv, wv):
        return float(np.sum(fwd(xv, wv, None, s, p, d).astype(np.float64) * r))

    dx = core.conv2d_backward_data(r, w, (6, 5), s, p, d, 1)
    dw, _ = core.conv2d_backward_weights(r, x, (3, 2), s, p, d, 1, False)
    eps = 1e-2
    for _ in range(12):
        i = tuple(rng.integers(0, n) for n in x.shape)
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num = (loss(xp, w) - loss(xm, w)) / (2 * eps)
        assert abs(num - dx[i]) <= 2e-3 * max(1.0, abs(num)), (i, num, dx[i])
        j = tuple(rng.integers(0, n) for n in w.shape)
        wp, wm = w.copy(), w.copy()
        wp[j] += eps
        wm[j] -= eps
        num = (loss(x, wp) - loss(x, wm)) / (2 * eps)
        assert abs(num - dw[j]) <= 2e-3 * max(1.0, abs(num)), (j, num, dw[j])


def test_translation_equivariance(isa, rng):
    x = np.zeros((1, 2, 20, 20), np.float32)
    x[:, :, 4:16, 4:16] = rng.standard_normal((1, 2, 12, 12))
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    y = fwd(x, w, None, 1, 1)
    shifted = np.roll(x, shift=(1, 1), axis=(2, 3))
    y_shifted = fwd(shifted, w, None, 1, 1)
    np.testing.assert_allclose(y_shifted[:, :, 2:-1, 2:-1], y[:, :, 1:-2, 1:-2],
                               rtol=1e-5, atol=1e-5)


def test_lecture_examples():
    # 32x32x3 input, ten 5x5 filters, stride 1, pad 2 -> 32x32x10, 10*(5*5*3) + 10 = 760 parameters.
    x = np.zeros((1, 3, 32, 32), np.float32)
    w = np.zeros((10, 3, 5, 5), np.float32)
    b = np.zeros(10, np.float32)
    assert fwd(x, w, b, 1, 2).shape == (1, 10, 32, 32)
    assert w.size + b.size == 760
    # 7x7 input, 3x3 filter: stride 1 -> 5x5, stride 2 -> 3x3,
    # stride 3 -> 2 (floored; 2.33 does not fit)
    x7 = np.zeros((1, 1, 7, 7), np.float32)
    w3 = np.zeros((1, 1, 3, 3), np.float32)
    assert fwd(x7, w3, None, 1).shape[2:] == (5, 5)
    assert fwd(x7, w3, None, 2).shape[2:] == (3, 3)
    assert fwd(x7, w3, None, 3).shape[2:] == (2, 2)
    assert out_size(7, 3, 3, 0, 1) == 2


# ---- locally connected and tiled --------------------------------------------------------------


def local_args(s, p):
    return pair(s), pair(p)


@pytest.mark.parametrize("N,C,K,H,W,F,s,p,T", [
    (2, 3, 4, 7, 6, 3, 1, 0, (2, 2)), (1, 2, 5, 9, 9, 3, 2, 1, (3, 1)),
    (3, 1, 2, 5, 8, 2, 1, 1, (1, 3)), (2, 4, 3, 6, 6, 3, 1, 1, (1, 1)),
])
def test_tiled_conv_matches_reference(isa, rng, N, C, K, H, W, F, s, p, T):
    Ho, Wo = out_size(H, F, s, p, 1), out_size(W, F, s, p, 1)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((T[0], T[1], K, C, F, F)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    y = core.tiled_conv2d_forward(x, w, b, pair(s), pair(p))
    assert_close(y, tiled_conv2d(x, w, b, s, p))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = core.tiled_conv2d_backward(dy, x, w, pair(s), pair(p), True, True)
    # Gradients by linearity of the float64 reference: d/dx sum(y * dy) etc., via finite bases.
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want_db = dy.astype(np.float64).sum(axis=(0, 2, 3))
    assert_close(db, want_db)
    # dW[bank] = sum over that bank's positions of dy (x) patch; dX via the adjoint.
    xp = np.pad(x64, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    want_dw = np.zeros_like(w64)
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * s : i * s + F, j * s : j * s + F]
            want_dw[i % T[0], j % T[1]] += np.einsum("nk,ncyx->kcyx", dy[:, :, i, j], patch)
            dxp[:, :, i * s : i * s + F, j * s : j * s + F] += np.einsum(
                "nk,kcyx->ncyx", dy[:, :, i, j], w64[i % T[0], j % T[1]])
    assert_close(dw, want_dw)
    assert_close(dx, dxp[:, :, p : p + H, p : p + W])


def test_tiled_with_t1_is_conv2d(isa, rng):
    x = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y_tiled = core.tiled_conv2d_forward(x, w[None, None], b, (1, 1), (1, 1))
    assert_close(y_tiled, fwd(x, w, b, 1, 1), rtol=1e-5)
    dy = rng.standard_normal(y_tiled.shape).astype(np.float32)
    dx, dw, db = core.tiled_conv2d_backward(dy, x, w[None, None], (1, 1), (1, 1), True, True)
    assert_close(dx, core.conv2d_backward_data(dy, w, (8, 9), (1, 1), (1, 1), (1, 1), 1), rtol=1e-5)
    assert_close(dw[0, 0],
                 core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)[0],
                 rtol=1e-5)


def test_tiled_with_output_size_tiles_is_locally_connected(isa, rng):
    N, C, K, H, W, F, s, p = 2, 3, 4, 7, 8, 3, 2, 1
    Ho, Wo = out_size(H, F, s, p, 1), out_size(W, F, s, p, 1)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((Ho, Wo, K, C, F, F)).astype(np.float32)
    y_local = core.local_conv2d_forward(x, w, None, (s, s), (p, p))
    y_tiled = core.tiled_conv2d_forward(x, w, None, (s, s), (p, p))
    np.testing.assert_array_equal(y_local, y_tiled)
    bias = rng.standard_normal((K, Ho, Wo)).astype(np.float32)
    assert_close(core.local_conv2d_forward(x, w, bias, (s, s), (p, p)),
                 tiled_conv2d(x, w, bias, s, p, per_position_bias=True))
    dy = rng.standard_normal(y_local.shape).astype(np.float32)
    dx_l, dw_l, db_l = core.local_conv2d_backward(dy, x, w, (s, s), (p, p), True, True)
    dx_t, dw_t, _ = core.tiled_conv2d_backward(dy, x, w, (s, s), (p, p), True, True)
    np.testing.assert_allclose(dx_l, dx_t, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dw_l, dw_t, rtol=1e-6, atol=1e-6)
    assert db_l.shape == (K, Ho, Wo)
    assert_close(db_l, dy.astype(np.float64).sum(axis=0))


def test_local_backward_skips_what_is_not_needed(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2, 3, 3)).astype(np.float32)
    dx, dw, db = core.local_conv2d_backward(np.ones((1, 2, 3, 3), np.float32), x, w, (1, 1), (0, 0),
                                            False, False)
    assert dx is None and db is None and dw.shape == w.shape


# ---- determinism, threads, memory -------------------------------------------------------------


def test_bitwise_deterministic_for_a_thread_count(rng):
    x = rng.standard_normal((6, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 8, 12, 12)).astype(np.float32)
    before = cnnkit.get_num_threads()
    try:
        for t in (1, 2, 3):
            cnnkit.set_num_threads(t)
            a = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)
            b = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            y1, y2 = fwd(x, w, None, 1, 1), fwd(x, w, None, 1, 1)
            np.testing.assert_array_equal(y1, y2)
        cnnkit.set_num_threads(1)
        one = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)[0]
        cnnkit.set_num_threads(2)
        two = core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)[0]
        # Different thread counts sum in different orders: equal to float32 rounding, measured
        # against the gradient's scale (entries near zero come from cancelling sums).
        assert np.abs(one - two).max() <= 1e-5 * np.abs(one).max()
    finally:
        cnnkit.set_num_threads(before)


def test_alexnet_conv1_batch128_memory_is_bounded():
    """No full-batch column matrix: 363 x 387200 floats would be 562 MB on top of x and y."""
    code = """
import resource, numpy as np, cnnkit
x = np.ones((128, 3, 227, 227), np.float32)
w = np.full((96, 3, 11, 11), 0.01, np.float32)
y = np.empty((128, 96, 55, 55), np.float32)   # touch the output's size up front
y[:] = 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = cnnkit._core.conv2d_forward(x, w, None, (4, 4), (0, 0), (1, 1), 1)
del y
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024.0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    grew_mb = float(r.stdout.strip())
    # The output itself is 149 MB; the workspaces are per thread and small.
    assert grew_mb < 149 + 64, f"peak RSS grew by {grew_mb:.0f} MB"


# ---- bad input --------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    x = np.zeros((2, 4, 8, 8), np.float32)
    w = np.zeros((6, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"weight has 3 input channels but x has 4 channels"):
        fwd(x, w)
    with pytest.raises(ValueError, match=r"stride must be >= 1, got \(0, 0\)"):
        fwd(x, np.zeros((6, 4, 3, 3), np.float32), s=0)
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(-1, -1\)"):
        fwd(x, np.zeros((6, 4, 3, 3), np.float32), p=-1)
    with pytest.raises(ValueError, match=r"kernel \(9 x 9 with dilation\) "
                                         r"is larger than the padded input \(8 x 8\)"):
        fwd(x, np.zeros((6, 4, 9, 9), np.float32))
    with pytest.raises(ValueError, match=r"input channels \(4\) must be divisible by groups \(3\)"):
        fwd(x, np.zeros((6, 1, 3, 3), np.float32), g=3)
    with pytest.raises(ValueError,
                       match=r"output channels \(5\) must be divisible by groups \(2\)"):
        fwd(x, np.zeros((5, 2, 3, 3), np.float32), g=2)
    with pytest.raises(TypeError, match=r"conv2d: x must have dtype float32, got float64"):
        fwd(x.astype(np.float64), np.zeros((6, 4, 3, 3), np.float32))
    with pytest.raises(TypeError, match=r"conv2d: weight must be C-contiguous"):
        fwd(x, np.zeros((3, 3, 4, 6), np.float32).transpose(3, 2, 1, 0))
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D, got shape \[4, 8, 8\]"):
        fwd(x[0], np.zeros((6, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \[6\], got \[5\]"):
        fwd(x, np.zeros((6, 4, 3, 3), np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError,
                       match=r"conv2d_backward_data: diff_dst must have shape \[2, 6, 6, 6\]"):
        core.conv2d_backward_data(np.zeros((2, 6, 5, 5), np.float32),
                                  np.zeros((6, 4, 3, 3), np.float32),
                                  (8, 8), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"local_conv2d: weight must be "
                                         r"\[Ho, Wo, K, C, Fh, Fw\] = \[6, 6, 2, 4, 3, 3\]"):
        core.local_conv2d_forward(x, np.zeros((5, 5, 2, 4, 3, 3), np.float32), None, (1, 1), (0, 0))


# ---- PyTorch parity ---------------------------------------------------------------------------


def test_parity_with_torch(rng):
    torch = pytest.importorskip("torch")
    configs = [(4, 3, 8, 17, 15, 3, 2, 1, 1, 1), (2, 8, 8, 9, 9, 3, 1, 2, 2, 8),
               (3, 6, 10, 12, 12, 5, 1, 2, 1, 2),
               (2, 16, 32, 8, 8, 1, 1, 0, 1, 1), (2, 3, 16, 23, 23, 11, 4, 0, 1, 1)]
    for N, C, K, H, W, F, s, p, d, g in configs:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C // g, F, F)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        yt = torch.nn.functional.conv2d(xt, wt, bt, s, p, d, g)
        dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.tensor(dy))
        y = fwd(x, w, b, s, p, d, g)
        dx = core.conv2d_backward_data(dy, w, (H, W), pair(s), pair(p), pair(d), g)
        dw, db = core.conv2d_backward_weights(dy, x, (F, F), pair(s), pair(p), pair(d), g, True)
        assert_close(y, yt.detach().numpy(), rtol=1e-4)
        assert_close(dx, xt.grad.numpy(), rtol=1e-4)
        assert_close(dw, wt.grad.numpy(), rtol=1e-4)
        assert_close(db, bt.grad.numpy(), rtol=1e-4)
