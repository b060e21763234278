"""The int8 row engine's GEMM (issue 19): uint8 activation rows x int8 weights -> exact int32
sums, on every ISA path, bit for bit against numpy's int64 product (through linear_int8_rows
with unit scales, whose float32 output is float32(sum) itself); the activations' quantization
rule against a float64 model of it."""

import numpy as np
import pytest

import cnnkit
from cnnkit import _core

# Around every row block (ref 8, avx512_vnni 14, amx 16 / 32 rows), the 32-column weight
# panels and the 64-deep slices.
M_EDGES = [1, 2, 7, 8, 9, 13, 14, 15, 16, 17, 28, 31, 32, 33, 47, 64, 65]
N_EDGES = [1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100]
K_EDGES = [1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 255, 256, 257, 511, 513, 1023, 1024, 1025, 2049]


def operands(rng, m, n, k):
    return (rng.integers(0, 256, (m, k)).astype(np.uint8),
            rng.integers(-128, 128, (n, k)).astype(np.int8))


def sums(x, w, zp=0):
    """linear_int8_rows's output with unit scales: float32 of the exact sum_p (x - zp) w."""
    packed = _core.linear_int8_rows_pack(w)
    return _core.linear_int8_rows(x, w, packed, np.ones(w.shape[0], np.float32),
                                  x_zero_point=zp)


def exact(x, w, zp=0):
    return ((x.astype(np.int64) - zp) @ w.astype(np.int64).T).astype(np.float32)


def test_int8_path_is_reported():
    info = cnnkit.cpu_info()
    assert info["int8_path"] in ("ref", "avx2", "avx512_vnni", "amx")
    if info["isa"] in ("avx2", "amx"):
        assert info["int8_path"] == info["isa"]


def test_every_edge_shape_bit_exact(isa, rng):
    for i, m in enumerate(M_EDGES):
        for j, n in enumerate(N_EDGES):
            k = K_EDGES[(i * 5 + j * 3) % len(K_EDGES)]
            x, w = operands(rng, m, n, k)
            zp = int(rng.integers(0, 256))
            np.testing.assert_array_equal(sums(x, w, zp), exact(x, w, zp),
                                          err_msg=f"{isa}: M={m} N={n} K={k}")


def test_every_k_tail_bit_exact(isa, rng):
    for k in K_EDGES:
        x, w = operands(rng, 17, 33, k)
        np.testing.assert_array_equal(sums(x, w, 9), exact(x, w, 9), err_msg=f"K={k}")


def test_extreme_values_and_longest_k_do_not_overflow(isa):
    """K = 40000 and 65536 with every product at its largest magnitude: the sums reach
    -255 * 128 * 65536 = -2.14e9 (x = 255 by w = -128), as does the zero-point term 255 *
    colsum, added in (wrapping) int32 by the SIMD kernels: still the exact values."""
    for k in (40000, 65536):
        w = np.full((3, k), -128, np.int8)
        w[1] = 127
        x = np.full((4, k), 255, np.uint8)
        x[1] = 0
        for zp in (0, 255):
            got = sums(x, w, zp)
            np.testing.assert_array_equal(got, exact(x, w, zp), err_msg=f"K={k} zp={zp}")
    assert sums(np.full((1, 65536), 255, np.uint8), np.full((1, 65536), -128, np.int8))[0, 0] \
        == -255.0 * 128 * 65536
    np.testing.assert_array_equal(sums(np.full((4, 64), 255, np.uint8),
                                       np.full((4, 64), 127, np.int8)),
                                  np.full((4, 4), 127 * 255 * 64, np.float32))


def test_large_and_threaded_results_are_identical(rng):
    x, w = operands(rng, 130, 1000, 700)
    want = exact(x, w, 3)
    before = cnnkit.get_num_threads()
    try:
        for t in (1, 2, 3, 5):
            cnnkit.set_num_threads(t)
            np.testing.assert_array_equal(sums(x, w, 3), want, err_msg=f"{t} threads")
    finally:
        cnnkit.set_num_threads(before)


def quantize_model(x, inv_scale, zero_point):
    """The rule in float64 terms: the product is one float32 rounding, then round half to even."""
    prod = (x.astype(np.float32) * np.float32(inv_scale)).astype(np.float64)
    q = np.rint(np.nan_to_num(prod, nan=0.0, posinf=1e9, neginf=-1e9)) + zero_point
    return np.clip(q, 0, 255).astype(np.uint8)


def test_quantize_rule_rounding_ties_saturation_and_nan():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 1e30, -1e30, np.inf, -np.inf,
                  np.nan, 127.5, 128.5, -127.5, 0.0, -0.0, 1e-45], np.float32)
    for zp in (0, 1, 128, 255):
        got = _core.quantize_u8(x, 1.0, zp)
        np.testing.assert_array_equal(got, quantize_model(x, 1.0, zp), err_msg=f"zero point {zp}")
    # ties to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 (zero point 128)
    assert list(_core.quantize_u8(x[:6], 1.0, 128)) == [128, 130, 130, 128, 126, 126]
    assert _core.quantize_u8(np.array([np.nan], np.float32), 3.0, 77)[0] == 77


def test_quantize_matches_the_model_on_random_values(rng):
    x = (rng.standard_normal(10007) * 40).astype(np.float32)
    for inv_scale, zp in [(1.0, 0), (2.7, 128), (0.013, 3), (1 / 0.0473, 250)]:
        np.testing.assert_array_equal(_core.quantize_u8(x, inv_scale, zp),
                                      quantize_model(x, inv_scale, zp))


def test_empty_batch(isa):
    w = np.ones((3, 5), np.int8)
    y = _core.linear_int8_rows(np.zeros((0, 5), np.uint8), w, _core.linear_int8_rows_pack(w),
                               np.ones(3, np.float32))
    assert y.shape == (0, 3) and y.dtype == np.float32


def test_quantized_linear_approximates_the_float_product(rng):
    """The point of it all: int8 weights (per row, symmetric) and uint8 activations give the
    fp32 product to within the quantization steps."""
    m, n, k = 96, 64, 576
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.05
    x = np.abs(rng.standard_normal((m, k)).astype(np.float32))  # post-ReLU activations
    w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    wq = np.clip(np.rint(w / w_scale[:, None]), -127, 127).astype(np.int8)
    x_scale = float(x.max() / 255)
    xq = _core.quantize_u8(x, 1 / x_scale, 0)
    y = _core.linear_int8_rows(xq, wq, _core.linear_int8_rows_pack(wq), w_scale, None, False,
                               x_scale, 0)
    want = x.astype(np.float64) @ w.astype(np.float64).T
    rel = np.abs(y - want).max() / np.abs(want).max()
    assert rel < 0.02, rel


def test_bad_arguments_are_clear_errors():
    w = np.zeros((4, 3), np.int8)
    packed = _core.linear_int8_rows_pack(w)
    ones = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="linear_int8_rows: x must have dtype uint8, got int8"):
        _core.linear_int8_rows(np.zeros((2, 3), np.int8), w, packed, ones)
    with pytest.raises(TypeError, match="weight must have dtype int8, got uint8"):
        _core.linear_int8_rows(np.zeros((2, 3), np.uint8), w.view(np.uint8), packed, ones)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray of uint8, got list"):
        _core.linear_int8_rows([[1]], w, packed, ones)
    with pytest.raises(ValueError, match="x must be 2-D"):
        _core.linear_int8_rows(np.zeros(3, np.uint8), w, packed, ones)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.linear_int8_rows(np.zeros((3, 2), np.uint8).T, w, packed, ones)
    with pytest.raises(ValueError, match=r"in_features must be <= 65536"):
        _core.linear_int8_rows_pack(np.zeros((1, 65537), np.int8))
    with pytest.raises(ValueError, match=r"x_zero_point must be in \[0, 255\], got 256"):
        _core.linear_int8_rows(np.zeros((2, 3), np.uint8), w, packed, ones, x_zero_point=256)
    with pytest.raises(ValueError, match=r"packed has \d+ bytes, expected"):
        _core.linear_int8_rows(np.zeros((2, 3), np.uint8), w, packed[:-2].copy(), ones)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="inv_scale must be positive and finite"):
            _core.quantize_u8(np.zeros(3, np.float32), bad, 0)
        with pytest.raises(ValueError, match="x_scale must be positive and finite"):
            _core.linear_int8_rows(np.zeros((2, 3), np.uint8), w, packed, ones, x_scale=bad)
