"""The int8 row engine (issue 19): uint8 NHWC activations between int8 layers.

Convolutions (every stride, padding, dilation, group count, 1x1, the 3-channel first layer and
the shapes that take the gathered path) and linear layers on every ISA path, against an
integer model: exact int64 sums of (x - zero point) * w, then the epilogue. With unit scales
the fp32 output is float32(sum) itself, so the sums are checked bit for bit; the requantized
uint8 output is checked bit for bit across the ISA paths and against a float64 model of the
rounding (ties can differ only where float64 and fp32 fused arithmetic disagree)."""

import numpy as np
import pytest

import cnnkit
from cnnkit import _core

CASES = [
    # N, C, H, W, K, F, stride, pad, dilation, groups
    (1, 3, 11, 11, 8, 3, 1, 1, 1, 1),     # the 3-channel first layer (gathered rows)
    (2, 3, 35, 35, 6, 11, 4, 2, 1, 1),    # AlexNet conv1's shape, smaller
    (2, 16, 9, 7, 24, 3, 2, 1, 1, 1),     # stride 2
    (1, 32, 10, 10, 12, 1, 1, 0, 1, 1),   # 1x1
    (2, 64, 8, 8, 12, 3, 1, 2, 2, 1),     # dilation (one segment per tap)
    (1, 96, 7, 9, 36, 3, 1, 1, 1, 3),     # groups
    (1, 16, 6, 6, 16, 3, 1, 1, 1, 16),    # depthwise (gathered)
    (3, 5, 5, 5, 33, 5, 1, 0, 1, 1),      # odd channel count, output 1x1
    (1, 70, 13, 13, 40, 3, 1, 1, 1, 1),   # K = 630: several 64-deep steps and a tail
    (2, 32, 32, 32, 32, 3, 1, 1, 1, 1),   # cifar_cnn's conv2: full 32-pixel blocks
    (1, 64, 5, 40, 70, 3, 1, 1, 1, 1),    # output rows wider than a block, 3 column panels
]


def patches(xq, zp, F, stride, pad, dil):
    """[N, Ho * Wo, C, F, F] of x - zp (NHWC uint8 in), the padding 0."""
    N, H, W, C = xq.shape
    x = np.pad(xq.astype(np.int64) - zp, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Ho = (H + 2 * pad - dil * (F - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (F - 1) - 1) // stride + 1
    out = np.empty((N, Ho, Wo, C, F, F), np.int64)
    for fy in range(F):
        for fx in range(F):
            ys, xs = fy * dil, fx * dil
            out[..., fy, fx] = x[:, ys:ys + stride * Ho:stride, xs:xs + stride * Wo:stride]
    return out.reshape(N, Ho * Wo, C, F, F), Ho, Wo


def conv_sums(xq, zp, wq, case):
    """Exact sums [N, Ho, Wo, K] (int64)."""
    N, C, H, W, K, F, s, p, d, g = case
    cols, Ho, Wo = patches(xq, zp, F, s, p, d)
    Cg, Kg = C // g, K // g
    sums = np.empty((N, Ho * Wo, K), np.int64)
    for gi in range(g):
        w = wq[gi * Kg:(gi + 1) * Kg].reshape(Kg, -1).astype(np.int64)
        c = cols[:, :, gi * Cg:(gi + 1) * Cg].reshape(N, Ho * Wo, -1)
        sums[:, :, gi * Kg:(gi + 1) * Kg] = c @ w.T
    return sums.reshape(N, Ho, Wo, K)


def requant_model(sums, x_scale, w_scale, bias, y_scale, y_zp, relu):
    """The epilogue in float64 (mult and add rounded to fp32 as the engine's are)."""
    mult = (np.float64(x_scale) * w_scale.astype(np.float64) / np.float64(y_scale))
    mult = mult.astype(np.float32).astype(np.float64)
    add = 0.0 if bias is None else bias.astype(np.float64) / y_scale
    add = (add + y_zp).astype(np.float32).astype(np.float64)  # the zero point folded in
    v = sums.astype(np.float32).astype(np.float64) * mult + add
    return np.rint(np.clip(v, y_zp if relu else 0, 255)).astype(np.uint8)


def setup_conv(rng, case):
    N, C, H, W, K, F, s, p, d, g = case
    xq = rng.integers(0, 256, (N, H, W, C), dtype=np.uint8)
    wq = rng.integers(-127, 128, (K, C // g, F, F), dtype=np.int8)
    return xq, wq


def run_conv(xq, wq, packed, case, **kw):
    N, C, H, W, K, F, s, p, d, g = case
    return _core.conv2d_int8_rows(xq, wq, packed, kw.pop("w_scale"), kw.pop("bias", None),
                                  (s, s), (p, p), (d, d), g, **kw)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_conv_sums_are_exact(isa, rng, case):
    xq, wq = setup_conv(rng, case)
    K, g, d = case[4], case[9], case[8]
    packed = _core.conv2d_int8_rows_pack(wq, g, (d, d))
    zp = 37
    y = run_conv(xq, wq, packed, case, w_scale=np.ones(K, np.float32), x_scale=1.0,
                 x_zero_point=zp)
    want = conv_sums(xq, zp, wq, case).astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_conv_requantized_matches_the_model_and_the_reference(isa, rng, case):
    xq, wq = setup_conv(rng, case)
    K, g, d = case[4], case[9], case[8]
    packed = _core.conv2d_int8_rows_pack(wq, g, (d, d))
    w_scale = (rng.random(K) * 0.01 + 0.001).astype(np.float32)
    bias = (rng.standard_normal(K) * 2).astype(np.float32)
    x_scale, zp, y_scale, y_zp = 0.02, 11, 0.9, 7
    kw = dict(w_scale=w_scale, bias=bias, x_scale=x_scale, x_zero_point=zp, y_scale=y_scale,
              y_zero_point=y_zp, relu=True)
    y = run_conv(xq, wq, packed, case, **kw)
    assert y.dtype == np.uint8 and y.shape == conv_sums(xq, zp, wq, case).shape
    want = requant_model(conv_sums(xq, zp, wq, case), x_scale, w_scale, bias, y_scale, y_zp,
                         True)
    diff = np.abs(y.astype(np.int64) - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    before = _core.get_isa()
    _core.set_isa("ref")
    try:  # (packed again: the layout depends on the ISA, AMX reads more patches in place)
        ref = run_conv(xq, wq, _core.conv2d_int8_rows_pack(wq, g, (d, d)), case, **kw)
    finally:
        _core.set_isa(before)
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("pool", [((2, 2), (2, 2), (0, 0), False), ((3, 3), (2, 2), (1, 1), True)])
@pytest.mark.parametrize("u8", [True, False])
def test_fused_pool_is_the_pooled_output(isa, rng, pool, u8):
    case = (3, 16, 12, 12, 20, 3, 1, 1, 1, 1)
    xq, wq = setup_conv(rng, case)
    packed = _core.conv2d_int8_rows_pack(wq)
    kw = dict(w_scale=np.full(20, 0.003, np.float32), x_scale=0.05, x_zero_point=3, relu=True)
    if u8:
        kw.update(y_scale=0.5, y_zero_point=0)
    y = run_conv(xq, wq, packed, case, **kw)
    pooled = run_conv(xq, wq, packed, case, pool=pool, **kw)
    if u8:
        want = _core.max_pool2d_nhwc_u8(y, *pool)
    else:
        want = _core.max_pool2d_forward(y, *pool)[0]
    np.testing.assert_array_equal(pooled, want)


def test_max_pool_u8_matches_numpy(rng):
    x = rng.integers(0, 256, (2, 7, 9, 5), dtype=np.uint8)
    y = _core.max_pool2d_nhwc_u8(x, (3, 3), (2, 2), (1, 1), False)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # 0 never wins over a real byte
    want = np.empty((2, 4, 5, 5), np.uint8)
    for oy in range(4):
        for ox in range(5):
            want[:, oy, ox] = xp[:, 2 * oy:2 * oy + 3, 2 * ox:2 * ox + 3].max(axis=(1, 2))
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (4, 3, 32, 32), (2, 70, 3, 3), (5, 33)])
def test_quantize_nhwc_is_quantize_u8_transposed(isa, rng, shape):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[0], x.flat[-1] = np.nan, 1e30
    q = _core.quantize_nhwc(x, 7.5, 100)
    want = _core.quantize_u8(x, 7.5, 100)
    if len(shape) == 4:
        want = want.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(q, want)


# (128, 4096, 40): equal row blocks, staged rows (K a multiple of 2 KiB) per thread;
# (200, 8192, 40): several staged groups of blocks per thread
@pytest.mark.parametrize("M,K,N", [(1, 64, 10), (5, 100, 33), (33, 4096, 64), (128, 130, 512),
                                   (3, 1, 1), (128, 4096, 40), (200, 8192, 40)])
def test_linear_sums_and_requantization(isa, rng, M, K, N):
    x = rng.integers(0, 256, (M, K), dtype=np.uint8)
    wq = rng.integers(-127, 128, (N, K), dtype=np.int8)
    packed = _core.linear_int8_rows_pack(wq)
    zp = 200
    sums = (x.astype(np.int64) - zp) @ wq.astype(np.int64).T
    y = _core.linear_int8_rows(x, wq, packed, np.ones(N, np.float32), x_scale=1.0,
                               x_zero_point=zp)
    np.testing.assert_array_equal(y, sums.astype(np.float32))
    w_scale = (rng.random(N) * 0.01).astype(np.float32) + 1e-4
    bias = rng.standard_normal(N).astype(np.float32)
    q = _core.linear_int8_rows(x, wq, packed, w_scale, bias, False, 0.01, zp, 0.3, 128)
    want = requant_model(sums, 0.01, w_scale, bias, 0.3, 128, False)
    diff = np.abs(q.astype(np.int64) - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_linear_chw_permutation_matches_the_flattened_nchw_input(rng):
    C, H, W, N = 5, 3, 4, 7
    x = rng.integers(0, 256, (2, H, W, C), dtype=np.uint8)  # NHWC
    wq = rng.integers(-127, 128, (N, C * H * W), dtype=np.int8)  # columns (c, h, w)
    packed = _core.linear_int8_rows_pack(wq, (C, H, W))
    y = _core.linear_int8_rows(x.reshape(2, -1), wq, packed, np.ones(N, np.float32))
    want = x.transpose(0, 3, 1, 2).reshape(2, -1).astype(np.int64) @ wq.astype(np.int64).T
    np.testing.assert_array_equal(y, want.astype(np.float32))


def test_bad_arguments_are_refused(rng):
    xq, wq = setup_conv(rng, CASES[2])
    packed = _core.conv2d_int8_rows_pack(wq)
    ones = np.ones(24, np.float32)
    with pytest.raises(TypeError, match="x must have dtype uint8"):
        _core.conv2d_int8_rows(xq.astype(np.float32), wq, packed, ones)
    with pytest.raises(ValueError, match="packed has"):
        _core.conv2d_int8_rows(xq, wq, packed[:-1].copy(), ones)
    with pytest.raises(ValueError, match="packed (has|was made for groups=1)"):
        _core.conv2d_int8_rows(xq, wq, packed, ones, dilation=(2, 2))
    with pytest.raises(ValueError, match="weight_scale must have shape"):
        _core.conv2d_int8_rows(xq, wq, packed, ones[:3])
    with pytest.raises(ValueError, match="y_zero_point must be in"):
        _core.conv2d_int8_rows(xq, wq, packed, ones, y_scale=1.0, y_zero_point=300)
    with pytest.raises(ValueError, match="x_scale must be positive"):
        _core.conv2d_int8_rows(xq, wq, packed, ones, x_scale=0.0)
    with pytest.raises(ValueError, match="channels"):
        _core.conv2d_int8_rows(xq[..., :3].copy(), wq, packed, ones)
    lw = rng.integers(-127, 128, (4, 10), dtype=np.int8)
    lp = _core.linear_int8_rows_pack(lw)
    with pytest.raises(ValueError, match="x has 9 features"):
        _core.linear_int8_rows(np.zeros((2, 9), np.uint8), lw, lp, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="chw"):
        _core.linear_int8_rows_pack(lw, (2, 2, 2))
    with pytest.raises(ValueError, match="must be 4-D NCHW or 2-D"):
        _core.quantize_nhwc(np.zeros(3, np.float32), 1.0, 0)


def test_packing_with_a_huge_dilation_needs_no_image_offsets(rng):
    # The packing knows no image, so its dilation is not bounded by one: no offsets into an
    # image are computed there (a fuzz run found 2**62 * C overflowing under UBSan), and the
    # dilation must fit the pack's int32 trailer.
    xq, wq = setup_conv(rng, CASES[2])
    big = 2**31 - 1
    huge = _core.conv2d_int8_rows_pack(wq, 1, (big, big))
    two = _core.conv2d_int8_rows_pack(wq, 1, (2, 2))
    def engine(a):  # the panels start at the first 64-byte boundary; then the 16-byte trailer
        off = -a.ctypes.data % 64
        return a[off:off + a.size - 64 - 16]

    np.testing.assert_array_equal(engine(huge), engine(two))
    with pytest.raises(ValueError, match="larger than the padded input"):
        _core.conv2d_int8_rows(xq, wq, huge, np.ones(wq.shape[0], np.float32),
                               dilation=(big, big))
    for op in (lambda d: _core.conv2d_int8_rows_pack(wq, 1, d),
               lambda d: _core.conv2d_int8_rows(xq, wq, two, np.ones(wq.shape[0], np.float32),
                                                dilation=d)):
        with pytest.raises(ValueError, match=r"dilation must be in \[1, 2147483647\]"):
            op((2**62, 1))


def test_packed_for_another_isa_layout_is_refused(rng):
    if "amx" not in cnnkit.cpu_info()["supported_isas"]:
        pytest.skip("the layouts differ between AMX and the other paths only")
    case = CASES[0]  # the 3-channel layer: read in place on AMX, gathered elsewhere
    xq, wq = setup_conv(rng, case)
    before = _core.get_isa()
    _core.set_isa("amx")
    try:
        packed = _core.conv2d_int8_rows_pack(wq)
        _core.set_isa("ref")
        with pytest.raises(ValueError, match="another.* ISA"):
            run_conv(xq, wq, packed, case, w_scale=np.ones(8, np.float32))
    finally:
        _core.set_isa(before)


def test_conv_approximates_the_float_conv(rng):
    x = np.abs(rng.standard_normal((2, 16, 12, 12)).astype(np.float32))  # post-ReLU inputs
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    w_scale = (np.abs(w).reshape(32, -1).max(axis=1) / 127).astype(np.float32)
    wq = np.clip(np.rint(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    x_scale = float(x.max() / 255)
    xq = _core.quantize_nhwc(x, 1 / x_scale, 0)
    y = _core.conv2d_int8_rows(xq, wq, _core.conv2d_int8_rows_pack(wq), w_scale, None, (1, 1),
                               (1, 1), x_scale=x_scale)
    want = _core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    assert np.abs(y - want).max() / np.abs(want).max() < 0.02


@pytest.mark.parametrize("n", [1, 5])  # one image shared by the threads; images per thread
def test_conv_thread_counts_give_the_same_bits(rng, n):
    case = (n, 32, 13, 13, 40, 3, 1, 1, 1, 1)
    xq, wq = setup_conv(rng, case)
    packed = _core.conv2d_int8_rows_pack(wq)
    kw = dict(w_scale=np.full(40, 0.002, np.float32), x_scale=0.1, x_zero_point=5,
              y_scale=0.7, y_zero_point=2, relu=True)
    want = conv_sums(xq, 5, wq, case)
    before = cnnkit.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            cnnkit.set_num_threads(t)
            outs.append(run_conv(xq, wq, packed, case, **kw))
            sums = run_conv(xq, wq, packed, case, w_scale=np.ones(40, np.float32),
                            x_zero_point=5)
            np.testing.assert_array_equal(sums, want.astype(np.float32).transpose(0, 3, 1, 2))
    finally:
        cnnkit.set_num_threads(before)
    for other in outs[1:]:
        np.testing.assert_array_equal(other, outs[0])
