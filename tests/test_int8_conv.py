"""int8 convolution forward (issue 19): every stride, padding, dilation, group count, 1x1 and
the 3-channel first layer, on every ISA path, bit for bit against an integer model (numpy
im2col of the quantized input, exact int64 sums, then the epilogue with float32 roundings),
and close to the float convolution it approximates."""

import numpy as np
import pytest

from cnnkit import _core

CASES = [
    # N, C, H, W, K, F, stride, pad, dilation, groups
    (1, 3, 11, 11, 8, 3, 1, 1, 1, 1),     # the 3-channel first layer
    (2, 3, 35, 35, 6, 11, 4, 2, 1, 1),    # AlexNet conv1's shape, smaller
    (2, 16, 9, 7, 24, 3, 2, 1, 1, 1),     # stride 2
    (1, 8, 10, 10, 12, 1, 1, 0, 1, 1),    # 1x1
    (2, 12, 8, 8, 12, 3, 1, 2, 2, 1),     # dilation
    (1, 12, 7, 9, 18, 3, 1, 1, 1, 3),     # groups
    (1, 16, 6, 6, 16, 3, 1, 1, 1, 16),    # depthwise
    (3, 5, 5, 5, 33, 5, 1, 0, 1, 1),      # odd channel count, output 1x1
    (1, 70, 13, 13, 40, 3, 1, 1, 1, 1),   # K = 630: several 64-deep steps and a tail
]


def im2col(x, F, stride, pad, dil):
    N, C, H, W = x.shape
    Ho = (H + 2 * pad - dil * (F - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (F - 1) - 1) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((N, C, F, F, Ho, Wo), x.dtype)
    for fy in range(F):
        for fx in range(F):
            ys, xs = fy * dil, fx * dil
            cols[:, :, fy, fx] = xp[:, :, ys:ys + stride * Ho:stride, xs:xs + stride * Wo:stride]
    return cols.reshape(N, C * F * F, Ho * Wo), Ho, Wo


def model(x, wq, scale, bias, case, inv_scale, zp, relu):
    N, C, H, W, K, F, s, p, d, g = case
    q = _core.quantize_u8(x, inv_scale, zp).astype(np.int64)
    # padding is a real 0, which quantizes to the zero point
    q = np.pad(q - zp, ((0, 0), (0, 0), (p, p), (p, p)))
    cols, Ho, Wo = im2col(q, F, s, 0, d)
    Cg, Kg = C // g, K // g
    sums = np.empty((N, K, Ho * Wo), np.int64)
    for gi in range(g):
        w = wq[gi * Kg:(gi + 1) * Kg].reshape(Kg, -1).astype(np.int64)
        sums[:, gi * Kg:(gi + 1) * Kg] = np.einsum("kr,nrj->nkj", w,
                                                   cols[:, gi * Cg * F * F:(gi + 1) * Cg * F * F])
    v = sums.astype(np.float32) * scale[None, :, None]
    if bias is not None:
        v = v + bias[None, :, None]
    if relu:
        v = np.maximum(v, np.float32(0))
    return v.reshape(N, K, Ho, Wo)


def quantized_weights(rng, K, Cg, F):
    w = (rng.standard_normal((K, Cg, F, F)) * 0.1).astype(np.float32)
    w_scale = (np.abs(w).reshape(K, -1).max(axis=1) / 127).astype(np.float32)
    wq = np.clip(np.rint(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    return w, wq, w_scale


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_int8_conv_matches_the_integer_model(isa, rng, case):
    N, C, H, W, K, F, s, p, d, g = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w, wq, w_scale = quantized_weights(rng, K, C // g, F)
    x_scale = np.float32(6.0 / 255)
    inv, zp = float(1 / x_scale), 118
    scale = (w_scale * x_scale).astype(np.float32)
    bias = rng.standard_normal(K).astype(np.float32)
    for b, relu in [(None, False), (bias, True)]:
        got = _core.conv2d_forward_int8(x, wq, scale, b, (s, s), (p, p), (d, d), g, relu, inv, zp)
        want = model(x, wq, scale, b, case, inv, zp, relu)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_int8_conv_approximates_the_float_conv(rng):
    x = np.abs(rng.standard_normal((2, 16, 12, 12)).astype(np.float32))
    w, wq, w_scale = quantized_weights(rng, 32, 16, 3)
    x_scale = float(x.max() / 255)
    y = _core.conv2d_forward_int8(x, wq, (w_scale * x_scale).astype(np.float32), None, (1, 1),
                                  (1, 1), (1, 1), 1, False, 1 / x_scale, 0)
    want = _core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    assert np.abs(y - want).max() / np.abs(want).max() < 0.02


def test_int8_conv_bad_arguments(rng):
    x = np.zeros((1, 4, 5, 5), np.float32)
    wq = np.zeros((6, 4, 3, 3), np.int8)
    scale = np.ones(6, np.float32)
    with pytest.raises(TypeError, match="conv2d_int8: weight must have dtype int8, got float32"):
        _core.conv2d_forward_int8(x, wq.astype(np.float32), scale)
    with pytest.raises(ValueError, match=r"conv2d_int8: scale must have shape \[6\]"):
        _core.conv2d_forward_int8(x, wq, np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"x_zero_point must be in \[0, 255\], got 300"):
        _core.conv2d_forward_int8(x, wq, scale, None, (1, 1), (0, 0), (1, 1), 1, False, 1.0, 300)
    with pytest.raises(ValueError, match="x_inv_scale must be positive and finite"):
        _core.conv2d_forward_int8(x, wq, scale, None, (1, 1), (0, 0), (1, 1), 1, False, 0.0, 0)
    with pytest.raises(ValueError, match="conv2d"):
        _core.conv2d_forward_int8(np.zeros((1, 3, 5, 5), np.float32), wq, scale)


def test_packed_weights_give_the_same_bits_and_are_checked(isa, rng):
    for case in (CASES[2], CASES[5], CASES[8]):
        N, C, H, W, K, F, s, p, d, g = case
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        _, wq, w_scale = quantized_weights(rng, K, C // g, F)
        scale = (w_scale * np.float32(0.02)).astype(np.float32)
        args = (x, wq, scale, None, (s, s), (p, p), (d, d), g, True, 50.0, 100)
        packed = _core.conv2d_int8_pack(wq, g)
        assert packed.dtype == np.int8 and packed.ndim == 1
        np.testing.assert_array_equal(_core.conv2d_forward_int8(*args, packed),
                                      _core.conv2d_forward_int8(*args))
    with pytest.raises(ValueError, match="packed has 3 bytes, expected"):
        _core.conv2d_forward_int8(*args, np.zeros(3, np.int8))
    a = rng.integers(-128, 128, (50, 300)).astype(np.int8)
    xb = rng.standard_normal((7, 300)).astype(np.float32)
    sc = np.full(50, 0.01, np.float32)
    np.testing.assert_array_equal(
        _core.qgemm(a, xb, sc, None, False, 20.0, 3, True, _core.int8_pack(a)),
        _core.qgemm(a, xb, sc, None, False, 20.0, 3, True))
    with pytest.raises(ValueError, match="qgemm: packed has"):
        _core.qgemm(a, xb, sc, None, False, 20.0, 3, True, _core.int8_pack(a[:10]))


@pytest.mark.parametrize("pool", [((2, 2), (2, 2), (0, 0), False), ((3, 3), (2, 2), (1, 1), True)])
def test_fused_max_pool_is_the_pooled_output(isa, rng, pool):
    for case in (CASES[0], CASES[5]):
        N, C, H, W, K, F, s, p, d, g = case
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        _, wq, w_scale = quantized_weights(rng, K, C // g, F)
        scale = (w_scale * np.float32(0.02)).astype(np.float32)
        args = (x, wq, scale, None, (s, s), (p, p), (d, d), g, True, 50.0, 100)
        full = _core.conv2d_forward_int8(*args)
        want = _core.max_pool2d_forward(full, *pool, False)[0]
        np.testing.assert_array_equal(_core.conv2d_forward_int8(*args, None, pool), want)
        np.testing.assert_array_equal(
            _core.conv2d_forward_int8(*args, _core.conv2d_int8_pack(wq, g), pool), want)
    with pytest.raises(TypeError, match="conv2d_int8: pool must be"):
        _core.conv2d_forward_int8(*args, None, (2, 2))
