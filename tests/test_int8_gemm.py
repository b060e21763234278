"""The int8 GEMM (issue 19): int8 A x uint8 B -> exact int32 sums, on every ISA path, bit for
bit against numpy's int64 product; the activations' quantization rule against a float64 model
of it."""

import numpy as np
import pytest

import cnnkit
from cnnkit import _core

# Around every int8 micro-tile (ref 8 x 32, avx512_vnni 14 x 32, amx 32 x 32), the 64-deep K
# step and the engine's K blocks (1024 and less).
M_EDGES = [1, 2, 7, 8, 9, 13, 14, 15, 16, 17, 28, 31, 32, 33, 47, 64, 65]
N_EDGES = [1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100]
K_EDGES = [1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 255, 256, 257, 511, 513, 1023, 1024, 1025, 2049]


def operands(rng, m, n, k, extreme=False):
    if extreme:  # every product at its largest magnitude: -128 * 255, the worst case for overflow
        return np.full((m, k), -128, np.int8), np.full((k, n), 255, np.uint8)
    return (rng.integers(-128, 128, (m, k)).astype(np.int8),
            rng.integers(0, 256, (k, n)).astype(np.uint8))


def exact(a, b):
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


def test_int8_path_is_reported():
    info = cnnkit.cpu_info()
    assert info["int8_path"] in ("ref", "avx512_vnni", "amx")
    if info["isa"] == "amx":
        assert info["int8_path"] == "amx"


def test_every_edge_shape_bit_exact(isa, rng):
    for i, m in enumerate(M_EDGES):
        for j, n in enumerate(N_EDGES):
            k = K_EDGES[(i * 5 + j * 3) % len(K_EDGES)]
            a, b = operands(rng, m, n, k)
            np.testing.assert_array_equal(_core.gemm_s8u8(a, b), exact(a, b),
                                          err_msg=f"{isa}: M={m} N={n} K={k}")


def test_every_k_tail_bit_exact(isa, rng):
    for k in K_EDGES:
        a, b = operands(rng, 17, 33, k)
        np.testing.assert_array_equal(_core.gemm_s8u8(a, b), exact(a, b), err_msg=f"K={k}")


def test_extreme_values_and_longest_k_do_not_overflow(isa, rng):
    for m, n, k in [(3, 5, 1), (33, 40, 4099), (2, 2, 65536)]:
        a, b = operands(rng, m, n, k, extreme=True)
        got = _core.gemm_s8u8(a, b)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, exact(a, b))
    a = np.full((4, 64), 127, np.int8)
    b = np.full((64, 4), 255, np.uint8)
    np.testing.assert_array_equal(_core.gemm_s8u8(a, b), np.full((4, 4), 127 * 255 * 64))


def test_large_and_threaded_results_are_identical(rng):
    a, b = operands(rng, 130, 1000, 700)
    want = exact(a, b)
    before = cnnkit.get_num_threads()
    try:
        for t in (1, 2, 3, 5):
            cnnkit.set_num_threads(t)
            np.testing.assert_array_equal(_core.gemm_s8u8(a, b), want, err_msg=f"{t} threads")
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


def test_float_b_is_quantized_while_packing_exactly_as_quantize_u8(isa, rng):
    for m, n, k in [(1, 1, 1), (14, 33, 65), (33, 100, 300), (5, 17, 1025)]:
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        x = (rng.standard_normal((k, n)) * 3).astype(np.float32)
        x.flat[::97] = np.nan
        x.flat[::89] = 1e9
        x.flat[5::89] = -1e9
        for inv_scale, zp in [(17.0, 128), (0.5, 0), (100.0, 255)]:
            q = _core.quantize_u8(x, inv_scale, zp)
            np.testing.assert_array_equal(q, quantize_model(x, inv_scale, zp))
            np.testing.assert_array_equal(_core.gemm_s8u8(a, x, inv_scale, zp), exact(a, q),
                                          err_msg=f"{isa}: {m}x{n}x{k} inv_scale {inv_scale}")


def test_empty_dimensions(isa):
    assert _core.gemm_s8u8(np.zeros((0, 5), np.int8), np.zeros((5, 3), np.uint8)).shape == (0, 3)
    assert _core.gemm_s8u8(np.zeros((2, 5), np.int8), np.zeros((5, 0), np.uint8)).shape == (2, 0)
    np.testing.assert_array_equal(
        _core.gemm_s8u8(np.zeros((2, 0), np.int8), np.zeros((0, 3), np.uint8)), np.zeros((2, 3)))


def test_bad_arguments_are_clear_errors():
    a = np.zeros((2, 3), np.int8)
    b = np.zeros((3, 4), np.uint8)
    with pytest.raises(TypeError, match="gemm_s8u8: a must have dtype int8, got uint8"):
        _core.gemm_s8u8(b, b)
    with pytest.raises(TypeError, match="gemm_s8u8: b must have dtype uint8, got int8"):
        _core.gemm_s8u8(a, a.T.copy())
    with pytest.raises(TypeError, match="b must be a numpy.ndarray of uint8 or float32, got list"):
        _core.gemm_s8u8(a, [[1]])
    with pytest.raises(ValueError,
                       match=r"inner dimensions differ: a is \[2, 3\] and b is \[4, 4\]"):
        _core.gemm_s8u8(a, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="a must be 2-D"):
        _core.gemm_s8u8(np.zeros(3, np.int8), b)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.gemm_s8u8(np.zeros((3, 2), np.int8).T, b)
    with pytest.raises(ValueError, match=r"K must be <= 65536"):
        _core.gemm_s8u8(np.zeros((1, 65537), np.int8), np.zeros((65537, 1), np.uint8))
    with pytest.raises(ValueError, match=r"zero_point must be in \[0, 255\], got 256"):
        _core.gemm_s8u8(a, np.zeros((3, 4), np.float32), 1.0, 256)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="inv_scale must be positive and finite"):
            _core.quantize_u8(np.zeros(3, np.float32), bad, 0)


def test_float_b_pack_tails_of_every_width_and_k_quad(isa, rng):
    # The quantizing pack's tails: every column count of a 32-wide panel (one or two 16-lane
    # halves, masked) against K that ends inside a k quad, a 64-deep slice and a K block.
    for n in range(1, 34):
        k = [1, 2, 3, 5, 62, 65, 1023, 1026, 1027][n % 9]
        a = rng.integers(-128, 128, (3, k)).astype(np.int8)
        x = (rng.standard_normal((k, n)) * 50).astype(np.float32)
        x.flat[::7] = np.nan
        x.flat[3::11] = np.inf
        x.flat[5::13] = -np.inf
        q = _core.quantize_u8(x, 1.7, 100)
        np.testing.assert_array_equal(_core.gemm_s8u8(a, x, 1.7, 100), exact(a, q),
                                      err_msg=f"{isa}: N={n} K={k}")


def test_tile_blocks_accumulate_across_k_blocks(isa, rng):
    # The AMX kernel's four block kinds (16 or 32 live rows x 16 or 32 live columns go through C
    # itself, the rest through its local buffer) on K past the engine's largest K block (4096),
    # so every kind both starts C and adds to it; extreme operands catch a sum started twice.
    for m, n, k in [(16, 16, 4160), (32, 16, 4097), (16, 48, 4200), (48, 64, 8193),
                    (31, 17, 4161), (17, 31, 4100), (1, 33, 4097), (33, 1, 4097)]:
        a, b = operands(rng, m, n, k)
        np.testing.assert_array_equal(_core.gemm_s8u8(a, b), exact(a, b),
                                      err_msg=f"{isa}: M={m} N={n} K={k}")
        a, b = operands(rng, m, n, k, extreme=True)
        np.testing.assert_array_equal(_core.gemm_s8u8(a, b), exact(a, b),
                                      err_msg=f"{isa}: extreme M={m} N={n} K={k}")


def test_c_row_stride_of_4_kib(isa, rng):
    # N = 1024: C rows 4 KiB apart, every row of a tile store on the same L1 set.
    a, b = operands(rng, 40, 1024, 300)
    np.testing.assert_array_equal(_core.gemm_s8u8(a, b), exact(a, b), err_msg=isa)
