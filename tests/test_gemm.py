"""sgemm against numpy float64, on every ISA path, around every block and tile size."""

import numpy as np
import pytest

import cnnkit
from cnnkit.ops import sgemm


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    r = alpha * (a64 @ b64)
    if beta != 0.0:
        r += beta * c.astype(np.float64)
    return r


def operands(rng, m, n, k, trans_a=False, trans_b=False):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


def check(got, want, k):
    assert got.dtype == np.float32 and got.shape == want.shape
    # float32 accumulation over k terms of unit-variance products
    tol = 2e-6 * np.sqrt(max(k, 1)) * 8
    scale = np.maximum(np.abs(want), np.sqrt(max(k, 1)))
    err = np.max(np.abs(got - want) / scale) if got.size else 0.0
    assert err < tol, f"max scaled error {err:.3g} >= {tol:.3g}"


SIZES_1_300 = [1, 2, 3, 5, 7, 13, 17, 31, 37, 61, 64, 97, 127, 128, 131, 199, 211, 256, 293, 300]
# Around micro-tiles (ref 4x16, avx2 6x16, avx512 14x32, neon 8x12) and block sizes (KC=384 on
# Zen 4, 576 on the Intel Xeon).
EDGE_MNK = [
    (13, 31, 383), (14, 32, 384), (15, 33, 385), (27, 63, 769), (28, 64, 768), (29, 65, 1153),
    (5, 15, 17), (6, 16, 16), (7, 17, 15), (3, 47, 4), (4, 48, 1), (1, 1, 1), (1, 300, 7),
    (300, 1, 7), (2, 3, 1), (41, 1000, 3), (1000, 41, 3), (12, 700, 2),
    (7, 11, 575), (8, 12, 576), (9, 13, 577), (16, 24, 5), (17, 25, 3),
]


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_all_transposes_edge_shapes(isa, rng, trans_a, trans_b):
    for m, n, k in EDGE_MNK:
        a, b = operands(rng, m, n, k, trans_a, trans_b)
        check(sgemm(a, b, trans_a=trans_a, trans_b=trans_b), reference(a, b, trans_a, trans_b), k)


def test_every_partial_tile(isa, rng):
    # every row count of every ISA's micro-tile (up to 16) against column counts on both
    # sides of each tile width, with beta = 1 so C is read and written at the edges
    for m in range(1, 17):
        for n in (*range(1, 14), 15, 16, 17, 24, 31, 32, 33):
            a, b = operands(rng, m, n, 5)
            c = rng.standard_normal((m, n)).astype(np.float32)
            want = reference(a, b, alpha=0.5, beta=1.0, c=c)
            check(sgemm(a, b, c=c, alpha=0.5, beta=1.0), want, 5)


def test_sizes_1_to_300(isa, rng):
    sizes = SIZES_1_300
    for i, m in enumerate(sizes):
        n = sizes[(i * 7 + 3) % len(sizes)]
        k = sizes[(i * 11 + 5) % len(sizes)]
        a, b = operands(rng, m, n, k)
        check(sgemm(a, b), reference(a, b), k)


def test_square_sizes_each_transpose(isa, rng):
    for s in (1, 2, 17, 64, 129, 300):
        for ta in (False, True):
            for tb in (False, True):
                a, b = operands(rng, s, s, s, ta, tb)
                check(sgemm(a, b, trans_a=ta, trans_b=tb), reference(a, b, ta, tb), s)


def test_large_blocks_and_threads(isa, rng):
    # Crosses the M block (1008 rows), several K blocks and the per-thread B chunks.
    for m, n, k in [(1009, 70, 400), (2017, 33, 50), (130, 2000, 800), (256, 729, 2304 // 4)]:
        a, b = operands(rng, m, n, k)
        check(sgemm(a, b), reference(a, b), k)


@pytest.mark.parametrize("alpha,beta",
                         [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 0.75), (0.0, 2.0)])
def test_alpha_beta(isa, rng, alpha, beta):
    for m, n, k in [(1, 1, 1), (15, 33, 385), (50, 70, 90)]:
        for ta in (False, True):
            a, b = operands(rng, m, n, k, ta, not ta)
            c = rng.standard_normal((m, n)).astype(np.float32)
            c_before = c.copy()
            got = sgemm(a, b, trans_a=ta, trans_b=not ta, alpha=alpha, beta=beta, c=c)
            check(got, reference(a, b, ta, not ta, alpha, beta, c), k)
            np.testing.assert_array_equal(c, c_before)  # c is an input unless overwrite_c


def test_beta_zero_never_reads_c(isa, rng):
    a, b = operands(rng, 20, 40, 30)
    c = np.full((20, 40), np.nan, dtype=np.float32)
    got = sgemm(a, b, beta=0.0, c=c, overwrite_c=True)
    assert got is c
    assert np.isfinite(c).all()
    check(c, reference(a, b), 30)


def test_overwrite_c_in_place_accumulates(isa, rng):
    a, b = operands(rng, 33, 65, 17)
    c = rng.standard_normal((33, 65)).astype(np.float32)
    want = reference(a, b, beta=1.0, c=c)
    out = sgemm(a, b, beta=1.0, c=c, overwrite_c=True)
    assert out is c
    check(c, want, 17)


def test_zero_sized_dimensions(isa, rng):
    for m, n, k in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)]:
        a, b = operands(rng, m, n, k)
        got = sgemm(a, b)
        assert got.shape == (m, n)
        np.testing.assert_array_equal(got, np.zeros((m, n), np.float32))
    # K == 0 with beta: C = beta * C
    c = rng.standard_normal((3, 4)).astype(np.float32)
    got = sgemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), beta=2.0, c=c)
    np.testing.assert_allclose(got, 2.0 * c, rtol=1e-6)


def test_views_are_used_without_copies(isa, rng):
    base = rng.standard_normal((40, 50)).astype(np.float32)
    b = rng.standard_normal((30, 20)).astype(np.float32)
    # A row slice (leading dimension 50 > 30 columns), a Fortran-ordered array and a .T view.
    a_slice = base[3:23, 5:35]
    check(sgemm(a_slice, b), reference(a_slice, b), 30)
    a_f = np.asfortranarray(rng.standard_normal((20, 30)).astype(np.float32))
    check(sgemm(a_f, b), reference(a_f, b), 30)
    check(sgemm(b.T, a_f.T), reference(b.T, a_f.T), 30)
    check(sgemm(b, a_f, trans_a=True, trans_b=True), reference(b, a_f, True, True), 20)


def test_isa_paths_agree_with_reference_path(rng):
    a, b = operands(rng, 77, 135, 401)
    before = cnnkit.get_isa()
    try:
        cnnkit.set_isa("ref")
        ref = sgemm(a, b)
        for name in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(name)
            np.testing.assert_allclose(sgemm(a, b), ref, rtol=1e-4, atol=1e-4)
    finally:
        cnnkit.set_isa(before)


def test_deterministic(isa, rng):
    a, b = operands(rng, 200, 300, 500)
    r1 = sgemm(a, b)
    r2 = sgemm(a, b)
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("m,n,k", [(150, 260, 700), (2100, 40, 1500), (1500, 16, 5000)])
def test_thread_counts_agree(rng, m, n, k):
    # Each thread owns whole output tiles and sums k in the same order: bitwise equal. The last
    # two shapes have one thread column (B read in place, or one column panel): each thread
    # packs its own A panels into a region of its own across several M and K blocks, with no
    # barrier.
    a, b = operands(rng, m, n, k)
    before = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(1)
        one = sgemm(a, b)
        check(one, reference(a, b), k)
        for t in (2, 3, 4):
            cnnkit.set_num_threads(t)
            np.testing.assert_array_equal(sgemm(a, b), one)
    finally:
        cnnkit.set_num_threads(before)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("trans_a", [False, True])
def test_few_rows_times_a_large_b(isa, rng, m, trans_a):
    """Up to 4 rows times a B too large to pack cheaply, read in place (AVX-512: the rows
    kernel, 8 rows of B at a time): K not a multiple of 8, N not a multiple of 32, alpha, beta,
    a B view with ldb > N; the same bits on 1, 2 and 3 threads."""
    k, n = 203, 1000  # K * N > 64 Ki floats
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    wide = rng.standard_normal((k, n + 24)).astype(np.float32)
    b = wide[:, 3:n + 3]  # rows n + 24 apart
    c = rng.standard_normal((m, n)).astype(np.float32)
    before = cnnkit.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            cnnkit.set_num_threads(t)
            got = sgemm(a, b, trans_a=trans_a, alpha=0.5, beta=-2.0, c=c)
            check(got, reference(a, b, trans_a, False, 0.5, -2.0, c), k)
            results.append(got)
            plain = sgemm(a, b, trans_a=trans_a)
            check(plain, reference(a, b, trans_a), k)
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
    finally:
        cnnkit.set_num_threads(before)


# ---- bad input -------------------------------------------------------------------------------


def test_wrong_dtype_is_type_error():
    a = np.ones((3, 4), np.float64)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match=r"sgemm: a must have dtype float32, got float64"):
        sgemm(a, b)
    with pytest.raises(TypeError, match=r"sgemm: b must have dtype float32, got int64"):
        sgemm(b.T.copy(), np.ones((4, 5), np.int64))
    with pytest.raises(TypeError, match=r"sgemm: a must be a numpy.ndarray of float32, got list"):
        sgemm([[1.0]], b)
    with pytest.raises(TypeError, match="sgemm: c must have dtype float32"):
        sgemm(a.astype(np.float32), b, c=np.ones((3, 5)), beta=1.0)


def test_wrong_ndim_is_value_error():
    with pytest.raises(ValueError, match=r"sgemm: a must be 2-D, got shape \[3, 4, 1\]"):
        sgemm(np.ones((3, 4, 1), np.float32), np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"sgemm: b must be 2-D, got shape \[4\]"):
        sgemm(np.ones((3, 4), np.float32), np.ones(4, np.float32))


def test_non_contiguous_is_type_error():
    a = np.ones((6, 8), np.float32)[::2, ::2]
    with pytest.raises(TypeError, match=r"sgemm: a of shape \[3, 4\] has strides"):
        sgemm(a, np.ones((4, 5), np.float32))
    neg = np.ones((4, 5), np.float32)[::-1]
    with pytest.raises(TypeError, match="sgemm: b of shape"):
        sgemm(np.ones((3, 4), np.float32), neg)


def test_mismatched_shapes_name_both():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"op\(a\) is \[3, 4\] and op\(b\) is \[5, 6\]"):
        sgemm(a, b)
    with pytest.raises(ValueError, match=r"op\(a\) is \[4, 3\] and op\(b\) is \[6, 5\]"):
        sgemm(a, b, trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match=r"c must have shape \[3, 6\]"):
        sgemm(a, np.ones((4, 6), np.float32), c=np.ones((6, 3), np.float32), beta=1.0)


def test_beta_without_c_and_bad_flags():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="beta=0.5 scales c, but no c was given"):
        sgemm(a, b, beta=0.5)
    with pytest.raises(TypeError, match="trans_a must be a bool"):
        sgemm(a, b, trans_a="yes")
    with pytest.raises(TypeError, match="alpha must be a real number"):
        sgemm(a, b, alpha=None)


def test_overwrite_rejects_readonly_and_aliasing():
    a = np.ones((4, 4), np.float32)
    c = np.zeros((4, 4), np.float32)
    c.setflags(write=False)
    with pytest.raises(TypeError, match="sgemm: c is read-only"):
        sgemm(a, a.copy(), c=c, overwrite_c=True)
    with pytest.raises(ValueError, match="c shares memory with a or b"):
        sgemm(a, a.copy(), c=a, overwrite_c=True)
