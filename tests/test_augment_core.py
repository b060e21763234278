"""The augmentation kernels of the C++ core (_core.resize_boxes, _core.color_jitter) against
plainly written float64 references, the float32 numpy formulas they replaced, thread-count
determinism and argument checking."""

import threading

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import _core
from cnnkit.data import transforms as T


def _images(seed, shape):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# --------------------------------------------------------------------------- references
def _interp_weights(out_len, in_len, starts, lengths):
    """Per-image interpolation matrices [n, out_len, in_len] (float64) resampling the window
    [start, start + length) of an axis (the numpy code resize_boxes replaced): PIL's bilinear,
    output pixel i samples at start + (i + 0.5) * scale, triangle filter stretched by
    max(scale, 1), restricted to the window, rows normalised to sum 1."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 1, 1)
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1, 1, 1)
    scale = lengths / out_len
    support = np.maximum(scale, 1.0)
    center = starts + (np.arange(out_len).reshape(1, -1, 1) + 0.5) * scale
    j = np.arange(in_len, dtype=np.float64).reshape(1, 1, -1)
    w = np.maximum(0.0, 1.0 - np.abs(j + 0.5 - center) / support)
    w *= (j >= starts) & (j < starts + lengths)
    return w / w.sum(axis=2, keepdims=True)


def _resize_reference(x, boxes, size):
    ry = _interp_weights(size[0], x.shape[2], boxes[:, 0], boxes[:, 2])
    rx = _interp_weights(size[1], x.shape[3], boxes[:, 1], boxes[:, 3])
    return np.einsum("nyh,nchw,nxw->ncyx", ry, x.astype(np.float64), rx)


def _gray64(img):
    return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]


def _jitter_reference(img, f, steps):
    """One image [C, H, W] in float64 through the steps (0 brightness, 1 contrast,
    2 saturation, -1 skip) with factors f[3]."""
    y = img.astype(np.float64)
    for op in steps:
        if op == 0:
            y = np.clip(f[0] * y, 0, 1)
        elif op == 1:
            m = _gray64(y).mean() if y.shape[0] == 3 else y.mean()
            y = np.clip(f[1] * y + (1 - f[1]) * m, 0, 1)
        elif op == 2:
            y = np.clip(f[2] * y + (1 - f[2]) * _gray64(y)[None], 0, 1)
    return y


# The float32 numpy formulas ColorJitter used before the core kernel (batch x [n, C, H, W],
# one factor per image): the kernel keeps their roundings.
def _f32_gray(x):
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def _f32_blend(x, other, f):
    f = f.astype(np.float32).reshape(-1, 1, 1, 1)
    return np.clip(f * x + (1.0 - f) * other, 0.0, 1.0)


_F32_OPS = (
    lambda x, f: np.clip(x * f.astype(np.float32).reshape(-1, 1, 1, 1), 0.0, 1.0),
    lambda x, f: _f32_blend(x, (_f32_gray(x) if x.shape[1] == 3 else x[:, 0])
                            .mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
                            .reshape(-1, 1, 1, 1), f),
    lambda x, f: _f32_blend(x, _f32_gray(x)[:, None], f),
    T._adjust_hue,
)


def _old_color_jitter(t, x, rng):
    """ColorJitter.__call__ as it was: per step, each active op on the images it is due for."""
    factors, order = t.get_params(len(x), rng)
    active = [k for k, name in enumerate(t.OPS) if getattr(t, name) is not None]
    out = x.copy()
    for step in range(4):
        for k in active:
            sel = order[:, step] == k
            if sel.any():
                out[sel] = _F32_OPS[k](out[sel], factors[k][sel])
    return out


def _random_boxes(rng, n, hh, ww):
    hs = rng.integers(1, hh + 1, n)
    ws = rng.integers(1, ww + 1, n)
    hs[:2], ws[:2] = 1, 1          # one-pixel windows
    hs[2:3], ws[2:3] = hh, ww      # the whole image
    tops = rng.integers(0, hh - hs + 1)
    lefts = rng.integers(0, ww - ws + 1)
    return np.stack([tops, lefts, hs, ws], axis=1).astype(np.float64)


# --------------------------------------------------------------------------- resize_boxes
@pytest.mark.parametrize("n,c,src,dst", [(9, 3, (16, 16), (16, 16)), (7, 1, (12, 20), (30, 9)),
                                         (5, 3, (40, 33), (7, 11)), (4, 3, (9, 13), (9, 13)),
                                         (3, 1, (5, 6), (1, 1)), (4, 2, (20, 7), (64, 3))])
def test_resize_boxes_matches_float64_reference(n, c, src, dst):
    rng = np.random.default_rng(sum(src) + sum(dst))
    x = _images(n, (n, c, *src))
    boxes = _random_boxes(rng, n, *src)
    out = _core.resize_boxes(x, boxes, dst)
    assert out.shape == (n, c, *dst) and out.dtype == np.float32
    np.testing.assert_allclose(out, _resize_reference(x, boxes, dst), rtol=0, atol=5e-7)
    # the transforms' entry points are this kernel
    t = boxes.T.astype(np.int64)
    np.testing.assert_array_equal(T._resize_boxes(x, *t, dst), out)
    # a one-pixel window is that pixel everywhere, exactly
    for i in range(2):
        top, left = int(boxes[i, 0]), int(boxes[i, 1])
        np.testing.assert_array_equal(out[i], np.broadcast_to(x[i, :, top:top + 1,
                                                                left:left + 1], out[i].shape))


def test_resize_boxes_batch_one_identity_and_resize():
    x = _images(1, (1, 3, 11, 17))
    whole = np.array([[0.0, 0.0, 11.0, 17.0]])
    np.testing.assert_array_equal(_core.resize_boxes(x, whole, (11, 17)), x)   # exact
    for size in [(5, 8), (23, 40), (11, 3)]:
        out = _core.resize_boxes(x, whole, size)
        np.testing.assert_allclose(out, _resize_reference(x, whole, size), rtol=0, atol=5e-7)
        np.testing.assert_array_equal(T.resize(x, size), out)
        np.testing.assert_array_equal(T.resize(x[0], size), out[0])
    assert _core.resize_boxes(np.zeros((0, 3, 4, 4), np.float32), np.zeros((0, 4)),
                              (2, 3)).shape == (0, 3, 2, 3)


# --------------------------------------------------------------------------- color_jitter
def _random_orders(rng, n, k):
    order = np.array([rng.permutation(3) for _ in range(n)])
    order = np.concatenate([order, np.full((n, max(0, k - 3)), -1)], axis=1)
    order = np.where(rng.random(order.shape) < 0.25, -1, order)   # skips
    return np.ascontiguousarray(np.array([rng.permutation(row) for row in order])[:, :k])


@pytest.mark.parametrize("c,k", [(3, 3), (3, 4), (1, 3), (3, 1), (3, 0)])
def test_color_jitter_matches_float64_reference(c, k):
    rng = np.random.default_rng(10 * c + k)
    n = 12
    x = _images(c + k, (n, c, 7, 9))
    x[0] = 0.5                       # constant image
    x[1, :, :3] = 0.0                # black rows
    factors = rng.uniform(0.0, 2.0, (n, 3))
    factors[2] = (0.0, 1.0, 2.0)
    order = _random_orders(rng, n, k)
    if c == 1:
        order = np.where(order == 2, -1, order)
    out = _core.color_jitter(x, factors, order)
    assert out.shape == x.shape and out.dtype == np.float32 and out is not x
    for i in range(n):
        np.testing.assert_allclose(out[i], _jitter_reference(x[i], factors[i], order[i]),
                                   rtol=0, atol=2e-6)
    # and the float32 numpy formulas it replaced, step by step: the same bits on x86-64 (the
    # tolerance leaves room for the rounding of the mean and for FMA contraction elsewhere)
    ref = x.copy()
    for i in range(n):
        for op in order[i]:
            if op >= 0:
                ref[i:i + 1] = _F32_OPS[op](ref[i:i + 1], factors[i:i + 1, op])
    np.testing.assert_allclose(out, ref, rtol=0, atol=2.5e-7)
    np.testing.assert_array_equal(_core.color_jitter(x, factors, np.full((n, k), -1)), x)


@pytest.mark.parametrize("kw", [dict(brightness=0.4, contrast=0.4, saturation=0.4),
                                dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
                                dict(contrast=(0.2, 1.9), hue=0.5), dict(hue=0.3),
                                dict(saturation=0.8)])
def test_color_jitter_transform_matches_the_numpy_implementation(kw):
    x = _images(3, (33, 3, 6, 5))
    t = T.ColorJitter(**kw)
    new = t(x, rng=np.random.default_rng(4))
    old = _old_color_jitter(t, x, np.random.default_rng(4))
    np.testing.assert_allclose(new, old, rtol=0, atol=2.5e-7)
    one = _old_color_jitter(t, x[:1], np.random.default_rng(5))[0]
    np.testing.assert_allclose(t(x[0], rng=np.random.default_rng(5)), one, rtol=0, atol=2.5e-7)


# --------------------------------------------------------------------------- threads
def test_thread_count_does_not_change_results():
    x = _images(5, (64, 3, 32, 32))
    rng = np.random.default_rng(6)
    boxes = _random_boxes(rng, 64, 32, 32)
    factors = rng.uniform(0.6, 1.4, (64, 3))
    order = _random_orders(rng, 64, 3)
    before = ck.get_num_threads()
    try:
        got = []
        for nt in (1, 2):
            ck.set_num_threads(nt)
            got.append((_core.resize_boxes(x, boxes, (32, 32)),
                        _core.resize_boxes(x, boxes, (13, 45)),
                        _core.color_jitter(x, factors, order)))
    finally:
        ck.set_num_threads(before)
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)
    # threads= caps the count (the transforms pass 1 off the main thread)
    np.testing.assert_array_equal(_core.resize_boxes(x, boxes, (32, 32), threads=1), got[0][0])
    np.testing.assert_array_equal(_core.color_jitter(x, factors, order, threads=1), got[0][2])
    for op, args in [(_core.resize_boxes, (x, boxes, (4, 4))),
                     (_core.color_jitter, (x, factors, order))]:
        for bad in [-1, 513]:
            with pytest.raises(ValueError, match=r"threads must be in \[0, 512\]"):
                op(*args, threads=bad)


def test_transforms_on_a_background_thread_give_the_same_result():
    x = _images(7, (40, 3, 20, 20))
    pipe = [T.RandomResizedCrop(16), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
            lambda a, rng: T.resize(a, 9)]
    main = [t(x, rng=np.random.default_rng(1)) for t in pipe]
    seen = {}
    worker = threading.Thread(target=lambda: seen.update(
        threads=T._threads(), out=[t(x, rng=np.random.default_rng(1)) for t in pipe]))
    worker.start()
    worker.join()
    assert T._threads() == 0 and seen["threads"] == 1
    for a, b in zip(main, seen["out"]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- errors
def test_resize_boxes_bad_arguments():
    x = _images(0, (2, 3, 8, 6))
    boxes = np.array([[0.0, 0.0, 8.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(TypeError, match="resize_boxes: x must have dtype float32"):
        _core.resize_boxes(x.astype(np.float64), boxes, (4, 4))
    with pytest.raises(TypeError, match="resize_boxes: boxes must have dtype float64"):
        _core.resize_boxes(x, boxes.astype(np.float32), (4, 4))
    with pytest.raises(TypeError, match="resize_boxes: x must be C-contiguous"):
        _core.resize_boxes(x[..., ::-1], boxes, (4, 4))
    for bad_x in [x[0], x[None]]:
        with pytest.raises(ValueError, match="resize_boxes: x must be 4-D"):
            _core.resize_boxes(bad_x, boxes, (4, 4))
    for bad in [boxes[:1], np.ascontiguousarray(boxes[:, :3]), np.zeros((3, 4)), boxes.reshape(-1)]:
        with pytest.raises(ValueError, match="resize_boxes: boxes must"):
            _core.resize_boxes(x, bad, (4, 4))
    for size in [(0, 4), (4, -1)]:
        with pytest.raises(ValueError, match=r"resize_boxes: size must be \(h, w\) with h, w >= 1"):
            _core.resize_boxes(x, boxes, size)
    for box in [(0, 0, 9, 6), (0, 1, 8, 6), (-1, 0, 2, 2), (0, 0, 0, 3), (0, 0, 3, 0),
                (0.5, 0, 2, 2), (0, 0, 2.5, 2), (np.nan, 0, 2, 2), (0, 0, np.inf, 2)]:
        b = boxes.copy()
        b[1] = box
        with pytest.raises(ValueError, match=r"resize_boxes: boxes\[1\] = .* inside the image "
                                             r"of 8 x 6"):
            _core.resize_boxes(x, b, (4, 4))


def test_color_jitter_bad_arguments():
    x = _images(0, (2, 3, 4, 4))
    f = np.ones((2, 3))
    order = np.array([[0, 1, 2], [2, -1, 0]])
    with pytest.raises(TypeError, match="color_jitter: x must have dtype float32"):
        _core.color_jitter(x.astype(np.float64), f, order)
    with pytest.raises(TypeError, match="color_jitter: factors must have dtype float64"):
        _core.color_jitter(x, f.astype(np.float32), order)
    with pytest.raises(TypeError, match="color_jitter: order must have dtype int64"):
        _core.color_jitter(x, f, order.astype(np.int32))
    with pytest.raises(ValueError, match="color_jitter: x must be 4-D"):
        _core.color_jitter(x[0], f, order)
    for bad_f in [f[:1], np.ones((2, 4)), f.reshape(-1)]:
        with pytest.raises(ValueError, match="color_jitter: factors must"):
            _core.color_jitter(x, bad_f, order)
    for bad_o in [order[:1], order.reshape(-1)]:
        with pytest.raises(ValueError, match="color_jitter: order must"):
            _core.color_jitter(x, f, bad_o)
    for v in [3, -2, 7]:
        bad_o = order.copy()
        bad_o[1, 1] = v
        with pytest.raises(ValueError, match=r"color_jitter: order\[1, 1\] must be -1"):
            _core.color_jitter(x, f, bad_o)
    with pytest.raises(ValueError, match="each op at most once, got contrast twice"):
        _core.color_jitter(x, f, np.array([[1, 1, 0], [0, 1, 2]]))
    for v in [-0.5, np.nan, np.inf]:
        bad_f = f.copy()
        bad_f[0, 2] = v
        with pytest.raises(ValueError, match=r"color_jitter: factors\[0, 2\] \(saturation\)"):
            _core.color_jitter(x, bad_f, order)
    gray = _images(1, (2, 1, 4, 4))
    with pytest.raises(ValueError, match="color_jitter: saturation needs RGB"):
        _core.color_jitter(gray, f, order)
    two = _images(1, (2, 2, 4, 4))
    with pytest.raises(ValueError, match="color_jitter: contrast needs 1- or 3-channel"):
        _core.color_jitter(two, f, np.array([[0, -1, 1], [-1, -1, -1]]))
    # brightness alone takes any number of channels, an empty batch nothing
    out = _core.color_jitter(two, f * 0.5, np.array([[0, -1, -1], [-1, 0, -1]]))
    np.testing.assert_array_equal(out, two * np.float32(0.5))
    assert _core.color_jitter(x[:0], f[:0], order[:0]).shape == (0, 3, 4, 4)
