"""The int8 GEMM's dequantizing epilogue (issue 19), on every ISA path:
y = float(sum - zero_point * rowsum(a)) * scale[i] + bias[i], then ReLU, with one fp32 rounding
per step, against a float64 model that rounds at the same places (so: bit for bit)."""

import numpy as np
import pytest

from cnnkit import _core


def model(a, q, scale, bias, relu, zero_point):
    """The epilogue from exact integer sums, rounding to float32 where the kernels do."""
    sums = a.astype(np.int64) @ q.astype(np.int64)
    diff = sums - np.int64(zero_point) * a.astype(np.int64).sum(axis=1, keepdims=True)
    v = diff.astype(np.float32) * scale[:, None]  # float32 product: one rounding
    if bias is not None:
        v = v + bias[:, None]
    return np.maximum(v, np.float32(0)) if relu else v


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_dequantized_float_input_matches_the_model(isa, rng, relu, with_bias):
    for m, n, k in [(1, 1, 1), (14, 33, 65), (33, 70, 300), (8, 200, 1100), (65, 5, 2049)]:
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        x = (rng.standard_normal((k, n)) * 2).astype(np.float32)
        scale = (rng.random(m) * 1e-3 + 1e-4).astype(np.float32)
        bias = rng.standard_normal(m).astype(np.float32) if with_bias else None
        for inv_scale, zp in [(20.0, 128), (35.0, 0), (9.0, 255)]:
            q = _core.quantize_u8(x, inv_scale, zp)
            got = _core.qgemm(a, x, scale, bias, relu, inv_scale, zp)
            assert got.dtype == np.float32 and got.shape == (m, n)
            np.testing.assert_array_equal(got, model(a, q, scale, bias, relu, zp),
                                          err_msg=f"{isa}: {m}x{n}x{k} zp {zp}")


def test_dequantized_uint8_input_has_no_zero_point(isa, rng):
    a = rng.integers(-128, 128, (20, 90)).astype(np.int8)
    q = rng.integers(0, 256, (90, 45)).astype(np.uint8)
    scale = np.full(20, 0.01, np.float32)
    np.testing.assert_array_equal(_core.qgemm(a, q, scale), model(a, q, scale, None, False, 0))


def test_quantized_gemm_approximates_the_float_product(rng):
    """The point of it all: int8 weights (per row, symmetric) and uint8 activations give the
    fp32 product to within the quantization steps."""
    m, n, k = 64, 96, 576
    w = rng.standard_normal((m, k)).astype(np.float32) * 0.05
    x = np.abs(rng.standard_normal((k, n)).astype(np.float32))  # post-ReLU activations
    w_scale = np.abs(w).max(axis=1) / 127
    wq = np.clip(np.rint(w / w_scale[:, None]), -127, 127).astype(np.int8)
    x_scale = x.max() / 255
    y = _core.qgemm(wq, x, (w_scale * x_scale).astype(np.float32), None, False, 1 / x_scale, 0)
    want = w.astype(np.float64) @ x.astype(np.float64)
    rel = np.abs(y - want).max() / np.abs(want).max()
    assert rel < 0.02, rel


def test_epilogue_bad_arguments():
    a = np.zeros((3, 4), np.int8)
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"qgemm: scale must have shape \[3\]"):
        _core.qgemm(a, x, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"qgemm: bias must have shape \[3\]"):
        _core.qgemm(a, x, np.ones(3, np.float32), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="qgemm: scale must"):
        _core.qgemm(a, x, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"qgemm: zero_point must be in \[0, 255\]"):
        _core.qgemm(a, x, np.ones(3, np.float32), None, False, 1.0, -1)


def test_few_columns_split_rows_over_threads_with_the_same_bits(isa, rng):
    """Batch-1 linear layers (one column panel): the rows are split over the threads instead;
    every thread count gives the model's bits."""
    import cnnkit

    a = rng.integers(-128, 128, (300, 700)).astype(np.int8)
    before = cnnkit.get_num_threads()
    try:
        for n in (1, 5, 33):
            x = rng.standard_normal((700, n)).astype(np.float32)
            scale = (rng.random(300) * 1e-3).astype(np.float32)
            bias = rng.standard_normal(300).astype(np.float32)
            q = _core.quantize_u8(x, 30.0, 120)
            want = model(a, q, scale, bias, True, 120)
            for t in (1, 2, 3, 7):
                cnnkit.set_num_threads(t)
                np.testing.assert_array_equal(_core.qgemm(a, x, scale, bias, True, 30.0, 120),
                                              want, err_msg=f"N={n}, {t} threads")
                np.testing.assert_array_equal(
                    _core.gemm_s8u8(a, q), (a.astype(np.int64) @ q.astype(np.int64)))
    finally:
        cnnkit.set_num_threads(before)


def test_long_k_dequantizes_without_int32_overflow(isa):
    """K = 40000 and 65536, extreme weights, the largest zero point: zp * rowsum and the sums
    up to 2.1e9, their difference formed in (wrapping) int32 by the SIMD epilogues: still the
    model's bits."""
    for k in (40000, 65536):  # 65536: |sum - zp * rowsum| = 128 * 255 * K, the largest
        a = np.full((3, k), -128, np.int8)
        a[1] = 127
        q = np.full((k, 4), 255, np.uint8)
        q[:, 1] = 0
        x = q.astype(np.float32) - 255.0  # quantizes back to q with zero point 255
        scale = np.full(3, 1e-6, np.float32)
        np.testing.assert_array_equal(_core.quantize_u8(x, 1.0, 255), q)
        np.testing.assert_array_equal(_core.qgemm(a, x, scale, None, False, 1.0, 255),
                                      model(a, q, scale, None, False, 255), err_msg=f"K={k}")
