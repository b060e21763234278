"""bf16 mixed precision (issue 15): rounding, the bf16 GEMM paths, conv / linear / matmul under
autocast, against an independent numpy emulation of the semantics (operands rounded to bf16,
nearest even; exact products; sums in float64 here, float32 in the kernels), and against the
float64 result of the unrounded operands."""

import threading

import numpy as np
import pytest
from conv_reference import conv2d as conv_ref
from conv_reference import conv2d_grads, tiled_conv2d

import cnnkit
import cnnkit.functional as F
import cnnkit.nn as nn

core = cnnkit._core
INFO = cnnkit.cpu_info()


def bf16(x):
    """numpy emulation of the rounding: RNE on the top 16 bits; denormals to signed zero;
    NaN stays NaN; +-inf stays +-inf."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    exp = u & 0x7F800000
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    out = np.where(exp == 0, u & 0x80000000, rounded)
    special = exp == 0x7F800000  # inf / NaN: truncate, keep NaN quiet
    quiet = np.where(u & 0x7FFFFF, np.uint64(0x40), np.uint64(0))
    out = np.where(special, ((u >> 16) | quiet) << 16, out)
    return out.astype(np.uint32).view(np.float32).reshape(x.shape)


def rel_err(got, want):
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(np.asarray(got, np.float64) - want).max()) / scale


def _fp32_level():
    for name in ("avx512", "avx2", "ref"):
        if name in INFO["supported_isas"]:
            return name
    return "ref"


# bf16 path -> the ISA level that selects it (the widening FMA kernel: AVX2 and AVX-512
# without AVX512-BF16; the reference: only when everything is forced to it)
PATHS = {"ref": "ref", "avx2": "avx512" if "avx512" in INFO["supported_isas"] else "avx2",
         "avx512_bf16": "avx512_bf16", "amx": "amx"}


@pytest.fixture(params=list(PATHS))
def bf16_path(request):
    level = PATHS[request.param]
    if level not in INFO["supported_isas"]:
        pytest.skip(f"bf16 path {request.param}: this CPU cannot run it "
                    f"({INFO['bf16_path_reason'] or 'level ' + level + ' unsupported'})")
    before = cnnkit.get_isa()
    cnnkit.set_isa(level)
    assert cnnkit.cpu_info()["bf16_path"] == request.param
    yield request.param
    cnnkit.set_isa(before)


# ------------------------------------------------------------------ rounding
def test_rounding_matches_the_emulation_on_special_values(bf16_path, rng):
    tiny = np.float32(1e-40)  # a float32 denormal
    specials = np.array([0.0, -0.0, 1.0, -1.0, tiny, -tiny, np.inf, -np.inf, np.nan,
                         3.4e38, -3.4e38, 1.17549435e-38, 65504.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8,
                         1.0 + 2**-8 + 2**-20], np.float32)
    got = core.round_bf16(specials)
    want = bf16(specials)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (got, want)
    # ties to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 -> 1; 1 + 3 2^-8 -> 1 + 2^-6
    assert got[13] == 1.0 and got[14] == np.float32(1.0 + 2**-6)
    x = (rng.standard_normal(10_001) * np.exp(rng.uniform(-80, 80, 10_001))).astype(np.float32)
    assert np.array_equal(core.round_bf16(x).view(np.uint32), bf16(x).view(np.uint32))


def test_round_bf16_refuses_bad_input():
    with pytest.raises(TypeError, match="round_bf16"):
        core.round_bf16(np.zeros(3, np.float64))


# ------------------------------------------------------------------ GEMM
# Around the tiles (ref 8x32, avx512_bf16 14x32, amx 32x32; K steps of 32 in pairs) and the
# K block (512): below, at and above each.
GEMM_SHAPES = [(1, 1, 1), (1, 33, 2), (7, 5, 3), (13, 31, 31), (14, 32, 32), (15, 33, 33),
               (16, 16, 64), (17, 47, 95), (31, 64, 1), (32, 32, 511), (33, 65, 512),
               (64, 96, 513), (100, 7, 1025)]


def test_widening_fma_kernel_gives_the_reference_bits(rng):
    """The AVX2 path widens the bf16 operands and sums with FMA in the reference's order: within
    one K block (<= 256 deep) every element has the reference's bits, epilogue included."""
    level = PATHS["avx2"]
    if level not in INFO["supported_isas"]:
        pytest.skip("no AVX2")
    before = cnnkit.get_isa()
    try:
        for M, N, K in ((1, 1, 1), (7, 5, 3), (13, 31, 31), (17, 47, 95), (33, 65, 256)):
            a = rng.standard_normal((M, K)).astype(np.float32)
            b = rng.standard_normal((K, N)).astype(np.float32)
            c0 = rng.standard_normal((M, N)).astype(np.float32)
            got = {}
            for isa in ("ref", level):
                cnnkit.set_isa(isa)
                assert cnnkit.cpu_info()["bf16_path"] == ("ref" if isa == "ref" else "avx2")
                got[isa] = (core.sgemm(a, b, precision="bf16"),
                            core.sgemm(a, b, alpha=0.5, beta=1.0, c=c0, precision="bf16"))
            for x, y in zip(got["ref"], got[level]):
                np.testing.assert_array_equal(x, y)
    finally:
        cnnkit.set_isa(before)


@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
def test_gemm_matches_the_emulation(bf16_path, rng, M, N, K):
    if bf16_path == "ref" and M * N * K > 3e6:
        pytest.skip("the reference path is scalar; large shapes run on the fast paths")
    for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        got = core.sgemm(a, b, ta, tb, precision="bf16")
        A, B = bf16(a).astype(np.float64), bf16(b).astype(np.float64)
        want = (A.T if ta else A) @ (B.T if tb else B)
        assert rel_err(got, want) <= 1e-5, (ta, tb)


def test_gemm_alpha_beta_and_views(bf16_path, rng):
    a = rng.standard_normal((40, 70)).astype(np.float32)
    b = rng.standard_normal((70, 50)).astype(np.float32)
    c = rng.standard_normal((40, 50)).astype(np.float32)
    got = core.sgemm(a, b, False, False, 0.5, 2.0, c, False, precision="bf16")
    want = 0.5 * bf16(a).astype(np.float64) @ bf16(b) + 2.0 * c
    assert rel_err(got, want) <= 1e-5
    # beta = 0 never reads c (NaN in it does not leak)
    c[:] = np.nan
    got = core.sgemm(a, b, c=c, overwrite_c=True, precision="bf16")
    assert np.isfinite(got).all()
    # a Fortran-order view and a row slice
    got = core.sgemm(np.asfortranarray(a), b[:, ::1][:, :50], precision="bf16")
    assert rel_err(got, bf16(a).astype(np.float64) @ bf16(b)) <= 1e-5


# The engine's loops: several K blocks (AMX: 256 deep) summed in C, several B chunks per thread
# (the last one partial), several M blocks (an A block holds at most 4M values of all of K),
# and C rows that split cache lines or lie 4 KB apart (the AMX row kernel then sums into a
# buffer and writes C once).
@pytest.mark.parametrize("M,N,K,offset", [(70, 1100, 600, 0), (70, 1100, 600, 1),
                                          (64, 1024, 300, 0), (33, 1024, 300, 3),
                                          (2100, 40, 2048, 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_blocking_and_c_layouts(bf16_path, rng, M, N, K, offset, threads):
    if bf16_path == "ref" and M * N * K > 3e6:
        pytest.skip("the reference path is scalar; large shapes run on the fast paths")
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    store = np.empty(M * N + 16, np.float32)
    c = store[offset:offset + M * N].reshape(M, N)
    c[:] = rng.standard_normal((M, N))
    c0 = c.astype(np.float64)
    before = cnnkit.get_num_threads()
    cnnkit.set_num_threads(threads)
    try:
        got = core.sgemm(a, b, False, False, 0.5, 1.0, c, True, precision="bf16")
    finally:
        cnnkit.set_num_threads(before)
    assert np.shares_memory(got, store)
    want = 0.5 * (bf16(a).astype(np.float64) @ bf16(b)) + c0
    assert rel_err(got, want) <= 1e-5


def test_gemm_precision_argument_is_checked():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="sgemm: precision must be 'fp32' or 'bf16', got 'fp16'"):
        core.sgemm(a, a, precision="fp16")


def test_paths_agree_with_each_other(rng):
    a = rng.standard_normal((70, 300)).astype(np.float32)
    b = rng.standard_normal((300, 90)).astype(np.float32)
    before = cnnkit.get_isa()
    results = {}
    try:
        for path, level in PATHS.items():
            if level in INFO["supported_isas"]:
                cnnkit.set_isa(level)
                results[path] = core.sgemm(a, b, precision="bf16")
    finally:
        cnnkit.set_isa(before)
    ref = results["ref"]
    for path, got in results.items():
        assert rel_err(got, ref.astype(np.float64)) <= 1e-5, path


# ------------------------------------------------------------------ convolution
# (N, C, K, H, W, F, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 8, 12, 12, 3, 1, 1, 1, 1),      # 3 input channels (first layer)
    (1, 16, 32, 9, 9, 3, 1, 1, 1, 1),      # batch 1, stride-1 3x3 (transposed conv dX)
    (2, 8, 16, 11, 10, 3, 2, 1, 1, 1),     # stride 2 (col2im dX)
    (2, 6, 10, 13, 13, 5, 1, 2, 2, 1),     # dilation 2, padding 2
    (2, 8, 12, 9, 9, 3, 1, 1, 1, 4),       # groups
    (2, 16, 16, 8, 8, 3, 1, 1, 1, 16),     # depthwise
    (2, 24, 40, 7, 7, 1, 1, 0, 1, 1),      # 1x1
    (1, 3, 16, 35, 35, 11, 4, 2, 1, 1),    # AlexNet conv1: 11x11 stride 4
    (2, 33, 35, 6, 6, 3, 1, 1, 1, 1),      # channels past the tiles, K not a multiple of 32
    (1, 64, 48, 6, 6, 3, 1, 1, 1, 1),      # C F F = 576 > the K block (512)
    # bf16_direct on AMX: output rows of >= 16 pixels (runs within rows, the last one shifted),
    # K not a multiple of 32 (m = 24: through the buffer; m = 16 straight), odd reach, dilation
    (2, 32, 24, 18, 21, 3, 1, 1, 1, 1),
    (3, 20, 48, 17, 16, 3, 1, 2, 2, 1),
    (2, 48, 16, 20, 33, 5, 1, 0, 1, 1),
    (1, 32, 33, 16, 16, 2, 1, 0, 1, 1),    # even filter, no padding
    (2, 32, 40, 5, 32, 3, 1, 1, 1, 1),     # Wo = 32: the runs tile the rows, stored as planes
]


def _conv_case(rng, case):
    N, C, K, H, W, F_, s, p, d, g = case
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((K, C // g, F_, F_)) / np.sqrt(C // g * F_ * F_)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    return x, w, b, (s, s), (p, p), (d, d), g


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "N{}C{}K{}_{}x{}_F{}s{}p{}d{}g{}"
                         .format(*c))
def test_conv_passes_match_the_emulation(bf16_path, rng, case):
    x, w, b, s, p, d, g = _conv_case(rng, case)
    y = core.conv2d_forward(x, w, b, s, p, d, g, False, "bf16")
    want = conv_ref(bf16(x), bf16(w), b, s[0], p[0], d[0], g)
    assert rel_err(y, want) <= 1e-5, "forward"
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = core.conv2d_backward_data(dy, w, x.shape[2:], s, p, d, g, "bf16")
    dw, db = core.conv2d_backward_weights(dy, x, w.shape[2:], s, p, d, g, True, "bf16")
    dx_want, dw_want, _ = conv2d_grads(bf16(x), bf16(w), bf16(dy), s[0], p[0], d[0], g)
    assert rel_err(dx, dx_want) <= 1e-5, "backward data"
    assert rel_err(dw, dw_want) <= 1e-5, "backward weights"
    # the bias gradient is no product: it sums dY unrounded
    assert rel_err(db, dy.astype(np.float64).sum(axis=(0, 2, 3))) <= 1e-6


# (N, C, K, H): the first layer, one image (threads split the patch rows), small images taken
# several at a time (their dY rows copied side by side), 1x1
@pytest.mark.parametrize("N,C,K,H,F_", [(4, 3, 32, 32, 3), (1, 3, 16, 40, 3), (16, 8, 16, 8, 3),
                                        (4, 24, 40, 16, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_dot_weight_grad_rounds_as_it_reads(bf16_path, rng, N, C, K, H, F_, threads):
    """The dot-product weight gradient rounds the gathered patch rows and the copied dY rows
    itself (no rounded copy of the tensors): the bits of the fp32 dot products on operands
    rounded first; the bias gradient sums dY unrounded."""
    pad = F_ // 2
    shapes = ([N, C, H, H], [K, C, F_, F_], (1, 1), (pad, pad), (1, 1), 1)
    if core._conv2d_algorithms(*shapes, precision="bf16")[2] != "dot":
        pytest.skip("the dot products take no bf16 weight gradient of this layer here")
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    dy = rng.standard_normal((N, K, H, H)).astype(np.float32)
    before = cnnkit.get_num_threads()
    cnnkit.set_num_threads(threads)
    try:
        dw, db = core.conv2d_backward_weights(dy, x, (F_, F_), *shapes[2:], True, "bf16")
        dw_want, db_want = core.conv2d_backward_weights(core.round_bf16(dy), core.round_bf16(x),
                                                        (F_, F_), *shapes[2:], True)
        db_fp32 = core.conv2d_backward_weights(dy, x, (F_, F_), *shapes[2:], True)[1]
    finally:
        cnnkit.set_num_threads(before)
    np.testing.assert_array_equal(dw, dw_want)
    np.testing.assert_array_equal(db, db_fp32)
    assert not np.array_equal(db_want, db_fp32)


@pytest.mark.parametrize("C,K,H", [(8, 16, 10), (32, 32, 18), (32, 48, 9)])
def test_conv_fused_relu_in_bf16(bf16_path, rng, C, K, H):
    x, w, b, s, p, d, g = _conv_case(rng, (2, C, K, H, H, 3, 1, 1, 1, 1))
    y = core.conv2d_forward(x, w, b, s, p, d, g, True, "bf16")
    want = np.maximum(conv_ref(bf16(x), bf16(w), b, 1, 1, 1, 1), 0)
    assert rel_err(y, want) <= 1e-5
    y = core.conv2d_forward(x, w, None, s, p, d, g, True, "bf16")
    assert rel_err(y, np.maximum(conv_ref(bf16(x), bf16(w), None, 1, 1, 1, 1), 0)) <= 1e-5


def test_conv_bf16_direct_with_fewer_images_than_threads(rng):
    """Batch 1 on several threads: the blocks of one image are shared out."""
    if "amx" not in INFO["supported_isas"]:
        pytest.skip("bf16_direct needs AMX")
    before = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(2)
        # 20 x 20: runs shifted at the row ends; 3 x 48: 9 runs tiling the rows (odd count)
        for H, W in [(20, 20), (3, 48)]:
            x, w, b, s, p, d, g = _conv_case(rng, (1, 32, 40, H, W, 3, 1, 1, 1, 1))
            algs = core._conv2d_algorithms(list(x.shape), list(w.shape), s, p, d, g,
                                           precision="bf16")
            assert algs == ("bf16_direct",) * 3
            for relu in (False, True):
                y = core.conv2d_forward(x, w, b, s, p, d, g, relu, "bf16")
                want = conv_ref(bf16(x), bf16(w), b, 1, 1, 1, 1)
                assert rel_err(y, np.maximum(want, 0) if relu else want) <= 1e-5
    finally:
        cnnkit.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_conv_with_fused_max_pool_gives_the_bits_of_conv_then_pool(rng, threads, precision):
    """conv2d_forward(..., pool=...) (inference): bf16_direct pools each image's planes in
    cache (planes stored as they are when Wo % 16 == 0, through a plane buffer otherwise, per
    image with fewer images than threads); other algorithms pool a temporary."""
    before = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(threads)
        for N, C, K, H, W in [(3, 32, 32, 32, 32), (1, 32, 40, 20, 20), (3, 32, 48, 13, 13),
                              (2, 3, 16, 12, 12), (2, 32, 40, 5, 32)]:
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = (rng.standard_normal((K, C, 3, 3)) * 0.1).astype(np.float32)
            b = rng.standard_normal(K).astype(np.float32)
            for relu in (False, True):
                for pool in [((2, 2), (2, 2), (0, 0), False), ((3, 3), (2, 2), (1, 1), True)]:
                    y = core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu, precision)
                    want, _ = core.max_pool2d_forward(y, *pool, indices=False)
                    got = core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu,
                                              precision, pool=pool)
                    np.testing.assert_array_equal(got, want)
    finally:
        cnnkit.set_num_threads(before)


def test_conv_bf16_space_to_depth(rng):
    """Strided convolutions with few input channels (AlexNet's conv1) run on AMX as a stride-1
    bf16_direct convolution of the image's s x s phases: every pass against the emulation,
    batches that split into several image groups and one image on two threads, the fused
    max pooling bit for bit; where the phase grid gives another output size, not chosen."""
    if "amx" not in INFO["supported_isas"]:
        pytest.skip("bf16_s2d runs on bf16_direct (AMX)")
    shape = ([16, 3, 227, 227], [96, 3, 11, 11], (4, 4), (0, 0), (1, 1), 1)
    assert core._conv2d_algorithms(*shape, precision="bf16") == ("bf16_s2d",) * 3
    # phase grids ceil(Hp / s) - ceil(F / s) + 1 = Ho: 13 x 13 and 14 x 14 at 3 x 3 stride 2
    # (7 - 2 + 1 = 6), 12 x 12 at 5 x 5 stride 4 (3 - 2 + 1 = 2), 19 x 19 + 2 x 2 padding at
    # 11 x 11 stride 4 (6 - 3 + 1 = 4); batch 11 on 2 threads: image groups of 8 and 3
    before = cnnkit.get_num_threads()
    try:
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            for case in [(11, 4, 20, 13, 13, 3, 2, 0, 1, 1), (1, 8, 24, 14, 14, 3, 2, 0, 1, 1),
                         (3, 3, 40, 12, 12, 5, 4, 0, 1, 1), (2, 3, 16, 19, 19, 11, 4, 2, 1, 1)]:
                x, w, b, st, p, d, g = _conv_case(rng, case)
                algs = core._conv2d_algorithms(list(x.shape), list(w.shape), st, p, d, g,
                                               precision="bf16")
                assert algs == ("bf16_s2d",) * 3, (case, algs)
                y = core.conv2d_forward(x, w, b, st, p, d, g, True, "bf16")
                want = np.maximum(conv_ref(bf16(x), bf16(w), b, st[0], p[0], d[0], g), 0)
                assert rel_err(y, want) <= 1e-5, case
                dy = rng.standard_normal(y.shape).astype(np.float32)
                dx = core.conv2d_backward_data(dy, w, x.shape[2:], st, p, d, g, "bf16")
                dw, db = core.conv2d_backward_weights(dy, x, w.shape[2:], st, p, d, g, True,
                                                      "bf16")
                dx_want, dw_want, _ = conv2d_grads(bf16(x), bf16(w), bf16(dy), st[0], p[0],
                                                   d[0], g)
                assert rel_err(dx, dx_want) <= 1e-5, case
                assert rel_err(dw, dw_want) <= 1e-5, case
                assert rel_err(db, dy.astype(np.float64).sum(axis=(0, 2, 3))) <= 1e-6
                if y.shape[2] >= 2:
                    pool = ((2, 2), (2, 2), (0, 0), False)
                    got = core.conv2d_forward(x, w, b, st, p, d, g, True, "bf16", pool=pool)
                    ref, _ = core.max_pool2d_forward(y, *pool, indices=False)
                    np.testing.assert_array_equal(got, ref)
    finally:
        cnnkit.set_num_threads(before)
    # 16 x 16 + 1 x 1 padding at 4 x 4 stride 4: Ho = 4 but the phase grid gives 5 - 1 + 1
    algs = core._conv2d_algorithms([2, 3, 16, 16], [8, 3, 4, 4], (4, 4), (1, 1), (1, 1), 1,
                                   precision="bf16")
    assert "bf16_s2d" not in algs, algs


@pytest.mark.parametrize("case", CONV_CASES[:4] + CONV_CASES[6:8],
                         ids=lambda c: "N{}C{}K{}_{}x{}_F{}s{}p{}d{}g{}".format(*c))
def test_conv_bf16_is_close_to_the_exact_result(rng, case):
    """bf16 against float64 of the unrounded operands: <= 1e-2 relative, all three passes."""
    x, w, b, s, p, d, g = _conv_case(rng, case)
    y = core.conv2d_forward(x, w, b, s, p, d, g, False, "bf16")
    assert rel_err(y, conv_ref(x, w, b, s[0], p[0], d[0], g)) <= 1e-2
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_want, dw_want, _ = conv2d_grads(x, w, dy, s[0], p[0], d[0], g)
    dx = core.conv2d_backward_data(dy, w, x.shape[2:], s, p, d, g, "bf16")
    dw, _ = core.conv2d_backward_weights(dy, x, w.shape[2:], s, p, d, g, False, "bf16")
    assert rel_err(dx, dx_want) <= 1e-2
    assert rel_err(dw, dw_want) <= 1e-2


def test_conv_algorithms_in_bf16():
    """On AMX, bf16_direct (or the engine) runs bf16 convolutions, never Winograd, nor the fp32
    dot products but for fewer than 32 output channels; without AMX the bf16 list picks what
    fp32 picks (Winograd and the dot products then compute in fp32 on the rounded operands)."""
    shape = ([8, 32, 16, 16], [32, 32, 3, 3], (1, 1), (1, 1), (1, 1), 1)
    fp32 = core._conv2d_algorithms(*shape)
    bf = core._conv2d_algorithms(*shape, precision="bf16")
    if INFO["bf16_path"] == "amx":
        assert bf == ("bf16_direct",) * 3, (fp32, bf)
    else:
        # no AMX: what fp32 picks (Winograd here, on AVX2 and AVX-512), on rounded operands
        assert bf == fp32, (fp32, bf)
    # the first layer (3 channels) and strided layers take the GEMM engine's bf16 path
    assert core._conv2d_algorithms([8, 3, 32, 32], [32, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1,
                                   precision="bf16")[0] == "implicit_gemm"
    strided = ([8, 32, 32, 32], [32, 32, 3, 3], (2, 2), (1, 1), (1, 1), 1)
    want = (("implicit_gemm", "gemm_col2im", "gemm") if INFO["bf16_path"] == "amx"
            else core._conv2d_algorithms(*strided))
    assert core._conv2d_algorithms(*strided, precision="bf16") == want
    if INFO["bf16_path"] == "amx":
        # fewer output channels than an AMX panel's 32 rows: the weight gradient as fp32 dot
        # products on the rounded operands (LeNet-5's 6 and 16 channels)
        lenet2 = ([64, 6, 14, 14], [16, 6, 5, 5], (1, 1), (0, 0), (1, 1), 1)
        assert core._conv2d_algorithms(*lenet2, precision="bf16")[2] == "dot"
    before = cnnkit.get_conv_algorithm()
    try:
        cnnkit.set_conv_algorithm("winograd")
        if INFO["bf16_path"] == "amx":
            assert "winograd" not in core._conv2d_algorithms(*shape, precision="bf16")
    finally:
        cnnkit.set_conv_algorithm(before)
    isa = cnnkit.get_isa()
    try:
        for level in ("avx512_bf16", _fp32_level()):
            if level in INFO["supported_isas"]:
                cnnkit.set_isa(level)
                assert core._conv2d_algorithms(*shape, precision="bf16") == \
                    core._conv2d_algorithms(*shape), level
    finally:
        cnnkit.set_isa(isa)


def test_conv_precision_argument_is_checked(rng):
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv2d: precision must be 'fp32' or 'bf16'"):
        core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, False, "bfloat16")


# ------------------------------------------------------------------ autocast API
def test_autocast_api():
    assert cnnkit.bfloat16 is cnnkit.get_autocast_dtype()
    assert repr(cnnkit.bfloat16) == "cnnkit.bfloat16"
    assert not cnnkit.is_autocast_enabled()
    with cnnkit.autocast():
        assert cnnkit.is_autocast_enabled()
        with cnnkit.autocast(enabled=False):
            assert not cnnkit.is_autocast_enabled()
        assert cnnkit.is_autocast_enabled()
    assert not cnnkit.is_autocast_enabled()

    @cnnkit.autocast(dtype=cnnkit.bfloat16)
    def inside():
        return cnnkit.is_autocast_enabled()

    assert inside() and not cnnkit.is_autocast_enabled()
    with pytest.raises(TypeError, match="autocast: dtype must be cnnkit.bfloat16"):
        cnnkit.autocast(dtype=np.float16)
    with pytest.raises(TypeError, match="autocast: dtype must be cnnkit.bfloat16, got 'bf16'"):
        cnnkit.autocast("bf16")
    with pytest.raises(TypeError, match="autocast: enabled must be a bool"):
        cnnkit.autocast(enabled=1)


def test_autocast_is_per_thread():
    seen = []
    with cnnkit.autocast():
        t = threading.Thread(target=lambda: seen.append(cnnkit.is_autocast_enabled()))
        t.start()
        t.join()
    assert seen == [False]


def test_layers_under_autocast_keep_fp32_parameters_and_grads(rng):
    cnnkit.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 36, 5))
    x = cnnkit.tensor(rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
    with cnnkit.autocast():
        y = model(x)
    assert y.numpy().dtype == np.float32
    y.sum().backward()  # outside the block: the gradients still use bf16 operands
    for prm in model.parameters():
        assert prm.data.dtype == np.float32 and prm.grad.dtype == np.float32
    conv, lin = model[0], model[3]
    xa = x.numpy()
    h = np.maximum(conv_ref(bf16(xa), bf16(conv.weight.data), conv.bias.data, 1, 1, 1, 1), 0)
    want = bf16(h.reshape(4, -1).astype(np.float32)).astype(np.float64) @ \
        bf16(lin.weight.data).T.astype(np.float64) + lin.bias.data
    assert rel_err(y.numpy(), want) <= 1e-5
    # linear's weight gradient: bf16(dy)^T bf16(h) with dy = 1
    dw_want = np.ones((4, 5)).T @ bf16(h.reshape(4, -1).astype(np.float32)).astype(np.float64)
    assert rel_err(lin.weight.grad, dw_want) <= 1e-5


@pytest.mark.parametrize("n", [1, 4, 5, 16])
def test_linear_small_batch_rounds_the_weights_as_it_reads(bf16_path, rng, n):
    """Batches up to 16 stream W in place where the CPU has a bf16 dot-product tile: W rounded
    as the tile reads it (a denormal weight counts as zero, a 1 + 2^-8 one as 1), x rounded
    once; K below / at / above a 32-value step, output columns not a multiple of the tile's."""
    for k, out in ((32, 6), (33, 7), (95, 13), (1000, 1)):
        x = (rng.standard_normal((n, k)) * np.exp(rng.uniform(-20, 20, (n, k)))).astype(np.float32)
        w = rng.standard_normal((out, k)).astype(np.float32)
        b = rng.standard_normal(out).astype(np.float32)
        y = core.linear_forward(x, w, b, "bf16")
        want = bf16(x).astype(np.float64) @ bf16(w).T.astype(np.float64) + b
        assert rel_err(y, want) <= 1e-5, (n, k, out)
    # rounding of W as read: denormal weights times huge x give exactly 0 (unrounded: 1e-10
    # per product), 1 + 2^-8 (a tie) gives 1
    x = np.full((n, 64), 1e30, np.float32)
    w = np.full((3, 64), 1e-40, np.float32)
    assert np.array_equal(core.linear_forward(x, w, None, "bf16"), np.zeros((n, 3), np.float32))
    x = np.ones((n, 64), np.float32)
    w = np.full((3, 64), 1 + 2**-8, np.float32)
    assert np.array_equal(core.linear_forward(x, w, None, "bf16"), np.full((n, 3), 64, np.float32))


def test_linear_and_matmul_under_autocast(bf16_path, rng):
    for n in (1, 3, 16, 17, 100):  # batch 1, below / at / above the tile rows
        x = rng.standard_normal((n, 70)).astype(np.float32)
        w = rng.standard_normal((33, 70)).astype(np.float32)
        b = rng.standard_normal(33).astype(np.float32)
        y = core.linear_forward(x, w, b, "bf16")
        assert rel_err(y, bf16(x).astype(np.float64) @ bf16(w).T + b) <= 1e-5
        dy = rng.standard_normal((n, 33)).astype(np.float32)
        dx, dw, db = core.linear_backward(dy, x, w, True, "bf16")
        assert rel_err(dx, bf16(dy).astype(np.float64) @ bf16(w)) <= 1e-5
        assert rel_err(dw, bf16(dy).T.astype(np.float64) @ bf16(x)) <= 1e-5
        assert rel_err(db, dy.astype(np.float64).sum(0)) <= 1e-6
        # against the exact result of the unrounded operands
        assert rel_err(y, x.astype(np.float64) @ w.T + b) <= 1e-2
        assert rel_err(dw, dy.T.astype(np.float64) @ x) <= 1e-2
    a = cnnkit.tensor(rng.standard_normal((20, 40)).astype(np.float32), requires_grad=True)
    m = cnnkit.tensor(rng.standard_normal((40, 30)).astype(np.float32), requires_grad=True)
    with cnnkit.autocast():
        c = a @ m
    assert rel_err(c.numpy(), bf16(a.numpy()).astype(np.float64) @ bf16(m.numpy())) <= 1e-5
    g = rng.standard_normal((20, 30)).astype(np.float32)
    c.backward(cnnkit.tensor(g))
    assert rel_err(a.grad, bf16(g).astype(np.float64) @ bf16(m.numpy()).T) <= 1e-5
    assert rel_err(m.grad, bf16(a.numpy()).T.astype(np.float64) @ bf16(g)) <= 1e-5


@pytest.mark.parametrize("sa, sb", [((3, 20, 40), (40, 30)), ((2, 1, 5, 40), (3, 40, 7)),
                                     ((40,), (2, 40, 6)), ((4, 40), (40,)), ((40,), (40,))])
def test_batched_and_vector_matmul_under_autocast(bf16_path, rng, sa, sb):
    """N-D and 1-D float32 operands compute in bf16 too (issue 16): every SGEMM of the batch,
    forward and both gradients, with bf16 operands and float32 sums."""
    av = rng.standard_normal(sa).astype(np.float32)
    bv = rng.standard_normal(sb).astype(np.float32)
    a = cnnkit.tensor(av, requires_grad=True)
    b = cnnkit.tensor(bv, requires_grad=True)
    with cnnkit.autocast():
        c = a @ b
    g = rng.standard_normal(c.shape).astype(np.float32)
    c.backward(cnnkit.tensor(g))
    A, B, G = (bf16(v).astype(np.float64) for v in (av, bv, g))
    a2 = A[None] if A.ndim == 1 else A
    b2 = B[:, None] if B.ndim == 1 else B
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A2 = np.broadcast_to(a2, batch + a2.shape[-2:])
    B2 = np.broadcast_to(b2, batch + b2.shape[-2:])
    G2 = G.reshape(batch + (A2.shape[-2], B2.shape[-1]))
    assert rel_err(c.numpy(), np.matmul(A, B)) <= 1e-5

    def reduce(d, shape):  # sum over the batch dims the operand broadcast
        d = d.sum(axis=tuple(range(d.ndim - len(shape))))
        return d.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)

    da = reduce(np.einsum("...mn,...kn->...mk", G2, B2), a2.shape)
    db = reduce(np.einsum("...mk,...mn->...kn", A2, G2), b2.shape)
    assert rel_err(a.grad, da.reshape(av.shape)) <= 1e-5
    assert rel_err(b.grad, db.reshape(bv.shape)) <= 1e-5


def test_matmul_of_other_dtypes_under_autocast_is_refused():
    a = cnnkit.Tensor(np.ones((2, 3, 4)), dtype=np.float64)
    b = cnnkit.tensor(np.ones((4, 5), np.float32))
    with cnnkit.autocast(), pytest.raises(
            TypeError, match=r"matmul: under autocast both operands must be float32 .*got "
                             r"float64 @ float32 \(a: \[2, 3, 4\], b: \[4, 5\]\)"):
        a @ b
    with cnnkit.autocast(), pytest.raises(TypeError, match="matmul: under autocast"):
        cnnkit.tensor(np.ones((2, 3), np.int64)) @ cnnkit.tensor(np.ones((3, 2), np.int64))


@pytest.mark.parametrize("kind", ["local", "tiled"])
def test_local_and_tiled_conv_under_autocast(rng, kind):
    N, C, K, H, F_ = 2, 3, 4, 7, 3
    Ho = H - F_ + 1
    x = cnnkit.tensor(rng.standard_normal((N, C, H, H)).astype(np.float32), requires_grad=True)
    T = Ho if kind == "local" else 2
    w = cnnkit.tensor(rng.standard_normal((T, T, K, C, F_, F_)).astype(np.float32),
                      requires_grad=True)
    bshape = (K, Ho, Ho) if kind == "local" else (K,)
    b = cnnkit.tensor(rng.standard_normal(bshape).astype(np.float32), requires_grad=True)
    fn = F.local_conv2d if kind == "local" else F.tiled_conv2d
    with cnnkit.autocast():
        y = fn(x, w, b)
    yw = tiled_conv2d(bf16(x.numpy()), bf16(w.numpy()), None, 1, 0)
    yw = yw + (b.numpy()[None] if kind == "local" else b.numpy()[None, :, None, None])
    assert rel_err(y.numpy(), yw) <= 1e-5
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(cnnkit.tensor(g))
    axes = (0,) if kind == "local" else (0, 2, 3)
    assert rel_err(b.grad, g.astype(np.float64).sum(axis=axes)) <= 1e-6
    # the weight gradient from bf16 dY and x: compare with fp32 kernels on rounded operands
    _, dw, _ = getattr(core, f"{kind}_conv2d_backward")(
        bf16(g), bf16(x.numpy()), bf16(w.numpy()), (1, 1), (0, 0), True, False)
    assert rel_err(w.grad, dw.astype(np.float64)) <= 1e-6


# ------------------------------------------------------------------ packed weights (inference)
def test_packed_weights_give_the_same_bits(bf16_path, rng):
    """Prepacked weights (inference) give the bits of packing on every call, except for linear
    at batches <= 16 where the CPU has a bf16 dot-product tile: without packed weights those
    stream W in place, summing the same products in another order."""
    w = rng.standard_normal((33, 70)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    packed = core.linear_pack_bf16(w)
    assert packed.dtype == np.uint16 and packed.ndim == 1
    for n in (3, 40):
        x = rng.standard_normal((n, 70)).astype(np.float32)
        got = core.linear_forward(x, w, b, "bf16", packed)
        want = core.linear_forward(x, w, b, "bf16")
        if n > 16 or bf16_path in ("ref", "avx2", "amx"):
            assert np.array_equal(got, want), n
        else:
            assert rel_err(got, want.astype(np.float64)) <= 1e-6, n
    for case in ((2, 32, 40, 18, 18, 3, 1, 1, 1, 1), (1, 20, 8, 7, 9, 3, 1, 1, 2, 1),
                 (2, 3, 8, 9, 9, 3, 1, 1, 1, 1), (2, 8, 16, 11, 10, 3, 2, 1, 1, 1)):
        x, w, b, s, p, d, g = _conv_case(rng, case)
        packed = core.conv2d_pack_bf16(w)
        for relu in (False, True):
            assert np.array_equal(core.conv2d_forward(x, w, b, s, p, d, g, relu, "bf16", packed),
                                  core.conv2d_forward(x, w, b, s, p, d, g, relu, "bf16")), case


def test_packed_weights_are_checked(rng):
    w = rng.standard_normal((33, 70)).astype(np.float32)
    x = rng.standard_normal((3, 70)).astype(np.float32)
    packed = core.linear_pack_bf16(w)
    with pytest.raises(ValueError, match="linear_forward: packed must hold"):
        core.linear_forward(x, w, None, "bf16", packed[:-1])
    with pytest.raises(TypeError, match="linear_forward: packed must have dtype uint16"):
        core.linear_forward(x, w, None, "bf16", packed.astype(np.int32))
    with pytest.raises(ValueError, match="need precision='bf16'"):
        core.linear_forward(x, w, None, "fp32", packed)
    xc = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    wc = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    pc = core.conv2d_pack_bf16(wc)
    with pytest.raises(ValueError, match="conv2d: packed must hold"):
        core.conv2d_forward(xc, wc, None, (1, 1), (1, 1), (1, 1), 1, False, "bf16", pc[:10])
    with pytest.raises(ValueError, match="groups=1"):
        core.conv2d_forward(xc, rng.standard_normal((8, 2, 3, 3)).astype(np.float32), None,
                            (1, 1), (1, 1), (1, 1), 2, False, "bf16", pc)


def test_inference_cache_packs_once_and_sees_optimizer_steps(rng):
    from cnnkit import amp

    cnnkit.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16 * 64, 5))
    x = cnnkit.tensor(rng.standard_normal((2, 32, 8, 8)).astype(np.float32))
    opt = cnnkit.optim.SGD(model.parameters(), lr=0.1)
    with cnnkit.autocast(), cnnkit.no_grad():
        y1 = model(x).numpy()
        assert len(amp._state.cache) == 2  # the conv's and the linear layer's weights
        assert np.array_equal(model(x).numpy(), y1) and len(amp._state.cache) == 2
        for prm in model.parameters():
            prm.grad = np.ones_like(prm.data)
        opt.step()  # changes the weights in place: the cache must not serve the old packing
        assert len(amp._state.cache) == 0
        y2 = model(x).numpy()
    assert amp._state.cache is None  # dropped with the outermost block
    with cnnkit.autocast(), cnnkit.no_grad():
        y3 = model(x).numpy()
    assert not np.array_equal(y1, y2) and np.array_equal(y2, y3)
    # with grad enabled (training) nothing is cached
    with cnnkit.autocast():
        model(x)
        assert len(amp._state.cache) == 0


# ------------------------------------------------------------------ training
def test_fit_precision_is_checked():
    from cnnkit.train import fit

    model = nn.Linear(2, 2)
    opt = cnnkit.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"fit: precision must be one of \('fp32', 'bf16'\)"):
        fit(model, [], epochs=1, optimizer=opt, precision="fp16")
    with pytest.raises(TypeError, match="fit: precision must be a str"):
        fit(model, [], epochs=1, optimizer=opt, precision=16)


def test_cifar_style_loss_tracks_fp32_over_30_steps(rng):
    def run(bf16_on):
        cnnkit.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 16, 10))
        opt = cnnkit.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        data = np.random.default_rng(3)
        centers = data.standard_normal((10, 3, 16, 16)).astype(np.float32)
        losses = []
        for _ in range(30):
            y = data.integers(0, 10, 64)
            x = centers[y] + 3.0 * data.standard_normal((64, 3, 16, 16)).astype(np.float32)
            opt.zero_grad()
            with cnnkit.autocast(enabled=bf16_on):
                loss = loss_fn(model(cnnkit.tensor(x)), cnnkit.tensor(y))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return np.array(losses)

    fp32, bf = run(False), run(True)
    assert fp32[-5:].mean() < 0.6 * fp32[:5].mean()  # it learns (2.6 -> ~1.0)
    rel = np.abs(bf - fp32) / np.abs(fp32)
    assert rel.max() <= 0.05, rel


def test_digits_cnn_trains_to_97_percent_in_bf16():
    from cnnkit import data, models, optim
    from cnnkit.train import evaluate, fit

    cnnkit.manual_seed(0)
    train_set, test_set = data.load_dataset("digits")
    prep = data.ChannelMean(std=True).fit(train_set.images)
    train = data.DataLoader(train_set, batch_size=64, shuffle=True, transform=prep)
    test = data.DataLoader(test_set, batch_size=256, transform=prep)
    model = models.build("digits_cnn")
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fit(model, train, epochs=15, optimizer=opt, progress=False, precision="bf16")
    with cnnkit.autocast():
        acc = evaluate(model, test).accuracy
    assert acc >= 0.97, acc


def test_cpu_info_names_the_bf16_path_and_why_not_a_faster_one():
    info = cnnkit.cpu_info()
    assert info["bf16_path"] in ("amx", "avx512_bf16", "avx2", "ref")
    feats = info["features"]
    if info["bf16_path"] == "amx":
        assert info["bf16_path_reason"] == ""
        assert feats["amx_bf16"] and feats["os_grants_amx_tiles"]
    before = cnnkit.get_isa()
    try:
        cnnkit.set_isa("ref")
        forced = cnnkit.cpu_info()
        assert forced["bf16_path"] == "ref"
        reason = forced["bf16_path_reason"]
        assert reason.startswith("amx: ") and "avx512_bf16: " in reason, reason
        if feats["amx_bf16"] and feats["os_grants_amx_tiles"]:
            assert "forced off by CNNKIT_ISA / set_isa('ref')" in reason
        elif not feats["amx_bf16"]:
            assert "the CPU has no AMX-BF16" in reason
    finally:
        cnnkit.set_isa(before)
