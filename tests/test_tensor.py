"""Tensor construction, arithmetic, reductions, shape ops and their gradients; output sizes."""

import numpy as np
import pytest

import cnnkit as ck


def leaf(v):
    return ck.tensor(np.asarray(v, dtype=np.float32), requires_grad=True)


def test_construction_dtypes_and_accessors():
    t = ck.tensor([[1.5, 2.0]])
    assert t.data.dtype == np.float32 and t.shape == (1, 2) and t.ndim == 2
    assert ck.tensor(np.zeros(3, np.float64)).dtype == np.float32
    labels = ck.tensor([1, 2, 3])
    assert labels.dtype == np.int64  # class labels stay integers
    assert ck.tensor([1, 2], requires_grad=True).dtype == np.float32
    assert ck.tensor(3.5).item() == 3.5
    with pytest.raises(ValueError):
        ck.tensor([1.0, 2.0]).item()
    src = np.ones(2, np.float32)
    c = ck.tensor(src)
    src[0] = 5
    assert c.data[0] == 1.0  # tensor() copies
    assert t.numpy() is t.data
    d = leaf([1.0]).detach()
    assert not d.requires_grad and d.grad_fn is None
    assert "requires_grad=True" in repr(leaf([1.0]))
    np.testing.assert_array_equal(np.asarray(t), t.data)


def test_arithmetic_values_with_scalars_and_arrays():
    a = ck.tensor([1.0, 2.0, 4.0])
    np.testing.assert_allclose((a + 1).data, [2, 3, 5])
    np.testing.assert_allclose((1 - a).data, [0, -1, -3])
    np.testing.assert_allclose((2 / a).data, [2, 1, 0.5])
    np.testing.assert_allclose((a ** 2).data, [1, 4, 16])
    np.testing.assert_allclose((-a).data, [-1, -2, -4])
    np.testing.assert_allclose((np.float32(2) * a).data, [2, 4, 8])
    np.testing.assert_allclose((np.array([1, 1, 1], np.float32) + a).data, [2, 3, 5])
    np.testing.assert_allclose(a.exp().log().data, a.data, rtol=1e-6)
    assert (a + 0.5).dtype == np.float32 and (a * np.float64(2)).dtype == np.float32
    assert ((a > 1.5).data == [False, True, True]).all()


@pytest.mark.parametrize(
    "op, grad",
    [
        (lambda a: (a * a).sum(), lambda v: 2 * v),
        (lambda a: (1.0 / a).sum(), lambda v: -1 / v**2),
        (lambda a: (a ** 3).sum(), lambda v: 3 * v**2),
        (lambda a: a.exp().sum(), np.exp),
        (lambda a: a.log().sum(), lambda v: 1 / v),
        (lambda a: (3.0 - a).sum(), lambda v: -np.ones_like(v)),
        (lambda a: a.mean(), lambda v: np.full_like(v, 1 / v.size)),
        (lambda a: a.sqrt().sum(), lambda v: 0.5 / np.sqrt(v)),
    ],
)
def test_elementwise_gradients(op, grad):
    v = np.array([[0.5, 1.0, 2.0], [3.0, 1.5, 0.7]], np.float32)
    a = leaf(v)
    op(a).backward()
    np.testing.assert_allclose(a.grad, grad(v.astype(np.float64)), rtol=1e-5)


def test_sum_mean_dims_keepdim():
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    a = leaf(v)
    s = a.sum(dim=(0, 2), keepdim=True)
    assert s.shape == (1, 3, 1)
    np.testing.assert_allclose(s.data.ravel(), v.sum((0, 2)))
    m = a.mean(dim=-1)
    assert m.shape == (2, 3)
    (s.sum() + (m * 4).sum()).backward()
    np.testing.assert_allclose(a.grad, np.full_like(v, 2.0))


def test_matmul_2d_uses_sgemm_and_gradients():
    rng = np.random.default_rng(1)
    av, bv = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    a, b = leaf(av), leaf(bv)
    out = a @ b
    np.testing.assert_allclose(out.data, av @ bv, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    out.backward(g)
    np.testing.assert_allclose(a.grad, g @ bv.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.grad, av.T @ g, rtol=1e-5, atol=1e-5)


def test_matmul_with_transposed_views():
    rng = np.random.default_rng(4)
    xv, wv = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(
        (4, 5)).astype(np.float32)
    for _ in range(50):  # repeated: a heap corruption in sgemm showed up only after a while
        x, w = leaf(xv), leaf(wv)
        out = x @ w.T
        out.backward(np.ones((3, 4), np.float32))
    np.testing.assert_allclose(out.data, xv @ wv.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.grad, np.ones((4, 3)) @ xv, rtol=1e-5)
    np.testing.assert_allclose((leaf(xv).T @ leaf(xv)).data, xv.T @ xv, rtol=1e-5, atol=1e-5)


def test_matmul_vectors_and_batches():
    rng = np.random.default_rng(2)
    av = rng.standard_normal((2, 4, 3)).astype(np.float32)
    bv = rng.standard_normal((3, 5)).astype(np.float32)  # broadcast over the batch
    vv = rng.standard_normal(3).astype(np.float32)
    a, b, v = leaf(av), leaf(bv), leaf(vv)
    ((a @ b).sum() + (a @ v).sum()).backward()
    np.testing.assert_allclose(b.grad, av.sum(axis=(0, 1))[:, None] * np.ones((1, 5)), rtol=1e-5)
    np.testing.assert_allclose(
        a.grad, np.broadcast_to(bv.sum(1) + vv, av.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.grad, av.sum(axis=(0, 1)), rtol=1e-5)


# ---------------------------------------------------------------- matmul through SGEMM (issue 16)
def matmul_reference(a, b, g):
    """float64 ``a @ b`` and its gradients for the upstream gradient ``g``, plainly: 1-D operands
    promoted, the batch broadcast, each gradient summed over the batch dims its operand
    broadcast, the promotions undone."""
    a, b, g = (np.asarray(v, np.float64) for v in (a, b, g))
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A = np.broadcast_to(a2, batch + a2.shape[-2:])
    B = np.broadcast_to(b2, batch + b2.shape[-2:])
    G = g.reshape(batch + (A.shape[-2], B.shape[-1]))
    out = np.einsum("...mk,...kn->...mn", A, B)
    dA = np.einsum("...mn,...kn->...mk", G, B)
    dB = np.einsum("...mk,...mn->...kn", A, G)

    def reduce(d, shape):
        d = d.sum(axis=tuple(range(d.ndim - len(shape)))) if d.ndim > len(shape) else d
        return d.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)

    out_shape = batch + a2.shape[-2:-1] * (a.ndim > 1) + b2.shape[-1:] * (b.ndim > 1)
    return (out.reshape(out_shape), reduce(dA, a2.shape).reshape(a.shape),
            reduce(dB, b2.shape).reshape(b.shape))


MATMUL_SHAPES = [
    ((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((4, 5), (5, 3)),
    ((2, 4, 5), (5, 3)), ((4, 5), (2, 5, 3)), ((2, 4, 5), (2, 5, 3)), ((1, 4, 5), (3, 5, 2)),
    ((2, 1, 3, 4), (5, 4, 6)), ((5,), (2, 5, 3)), ((2, 3, 4, 5), (5,)),
    ((3, 1, 4, 5), (1, 2, 5, 1)),
    # zero-size dims: batch, rows, columns, inner
    ((0, 3, 4), (4, 5)), ((2, 0, 4), (4, 5)), ((2, 3, 4), (4, 0)), ((2, 3, 0), (0, 5)),
    ((3, 0), (0, 4)), ((0,), (0,)), ((2, 1, 3, 4), (0, 4, 2)), ((0, 1, 3, 4), (2, 4, 2)),
]


def check_matmul(av, bv, rng, rtol=2e-5):
    a, b = ck.tensor(av, requires_grad=True), ck.tensor(bv, requires_grad=True)
    # the tensors copy their data: run on the given (possibly strided) arrays themselves
    a.data, b.data = av, bv
    out = a @ b
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    want, da, db = matmul_reference(av, bv, g)
    assert out.dtype == np.float32 and out.shape == want.shape
    for got, ref in ((out.data, want), (a.grad, da), (b.grad, db)):
        assert got.shape == ref.shape and got.dtype == np.float32
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s)) or "0d")
def test_matmul_shapes_forward_and_gradients_match_float64(sa, sb, rng):
    check_matmul(rng.standard_normal(sa).astype(np.float32),
                 rng.standard_normal(sb).astype(np.float32), rng)


def strided_operands(rng):
    """Operands sgemm reads in place (transposed views, row slices, batch steps, Fortran order)
    and ones it cannot (column steps, negative strides, broadcast zero strides, a Fortran-ordered
    batch), as [a, b] pairs."""
    big = rng.standard_normal((4, 9, 12)).astype(np.float32)
    w = rng.standard_normal((6, 7)).astype(np.float32)
    return [
        (big[:, :5, :7], w.T),                                  # row slices @ a .T view
        (big[::2, 1:4, 2:9], w.T),                              # batch step
        (np.asfortranarray(big[0, :5, :7]), w.T),               # Fortran order
        (big[:, ::2, :7], w.T),                                 # row step
        (big[:, :5, ::3], w.T[::2]),                            # column steps
        (big[::-1, ::-1, :7], w.T[::-1]),                       # negative strides
        (np.swapaxes(big[:, :7, :5], -1, -2), w.T),             # every matrix transposed
        (np.asfortranarray(big[:2, :5, :7]), w.T),              # Fortran-ordered batch
        (np.broadcast_to(w.T[None, :5, :], (3, 5, 6)), w),      # zero batch stride
        (big[0, :5, 0], big[1, :5, :3]),                        # 1-D with a stride
        (big[1, :3, :5], big[2, 0, :5]),
        (big[:3, :4, :6], np.swapaxes(big[:3, :5, 6:], -1, -2)),  # [3,4,6] @ [3,6,5] views
    ]


def test_matmul_non_contiguous_inputs_match_float64(rng):
    for av, bv in strided_operands(rng):
        check_matmul(av, bv, rng)


def test_matmul_batch_errors_name_matmul_and_both_shapes():
    def mm(sa, sb):
        return ck.tensor(np.ones(sa, np.float32)) @ ck.tensor(np.ones(sb, np.float32))

    for sa, sb, match in [
        ((2, 3, 4), (3, 4, 5), r"matmul: batch dimensions \[2\] of a and \[3\] of b do not "
                               r"broadcast \(a: \[2, 3, 4\], b: \[3, 4, 5\]\)"),
        ((2, 1, 3, 4), (3, 2, 4, 5), r"batch dimensions \[2, 1\] of a and \[3, 2\] of b"),
        ((3, 4), (5, 6), r"matmul: a's last dimension \(4\) must equal b's second-to-last "
                         r"dimension \(5\) \(a: \[3, 4\], b: \[5, 6\]\)"),
        ((2, 3, 4), (3,), r"matmul: a's last dimension \(4\) must equal b's only dimension "
                          r"\(3\) \(a: \[2, 3, 4\], b: \[3\]\)"),
        ((4,), (2, 3, 5), r"a's last dimension \(4\) must equal b's second-to-last"),
    ]:
        with pytest.raises(ValueError, match=match):
            mm(sa, sb)
        with pytest.raises(ValueError):  # numpy rejects the same pairs
            np.matmul(np.ones(sa), np.ones(sb))
    with pytest.raises(ValueError, match=r"matmul: a must have at least 1 dimension.*a: \[\]"):
        ck.tensor(np.float32(2.0)) @ ck.tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"matmul: b must have at least 1 dimension"):
        ck.tensor(np.ones(3, np.float32)) @ ck.tensor(np.float32(2.0))


class _NoBlas:
    """numpy, minus every function that would hand float32 data to OpenBLAS."""

    def __getattr__(self, name):
        if name in ("matmul", "dot", "vdot", "inner", "outer", "einsum", "tensordot"):
            def refuse(*args, **kwargs):
                raise AssertionError(f"np.{name} called on a float32 matmul path")
            return refuse
        return getattr(np, name)


class _CountingCore:
    def __init__(self, core):
        self.core, self.calls = core, 0

    def sgemm(self, *args, **kwargs):
        self.calls += 1
        return self.core.sgemm(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.core, name)


def test_float32_matmul_never_calls_numpy_matmul(monkeypatch, rng):
    import cnnkit.ops.arithmetic as arithmetic
    import cnnkit.ops.gemm as gemm

    f32 = np.float32
    cases = [(rng.standard_normal(sa).astype(f32), rng.standard_normal(sb).astype(f32))
             for sa, sb in MATMUL_SHAPES] + strided_operands(rng)
    counting = _CountingCore(gemm._core)
    monkeypatch.setattr(gemm, "np", _NoBlas())
    monkeypatch.setattr(arithmetic, "np", _NoBlas())
    monkeypatch.setattr(gemm, "_core", counting)
    for av, bv in cases:
        a, b = ck.tensor(av, requires_grad=True), ck.tensor(bv, requires_grad=True)
        a.data, b.data = av, bv
        counting.calls = 0
        out = a @ b
        out.backward(np.ones(out.shape, np.float32))
        batch = np.broadcast_shapes(av.shape[:-2], bv.shape[:-2])
        if np.prod(batch) > 0:  # forward, dA, dB: at least one sgemm each
            assert counting.calls >= 3, (av.shape, bv.shape, counting.calls)


def test_matmul_folds_a_batch_times_a_matrix_into_one_gemm(monkeypatch, rng):
    """[B, M, K] @ [K, N] (Linear on 3-D input) is one [B*M, K] x [K, N] GEMM forward and one
    GEMM per gradient; a broadcast batch is one GEMM per matrix."""
    import cnnkit.ops.gemm as gemm

    counting = _CountingCore(gemm._core)
    monkeypatch.setattr(gemm, "_core", counting)
    for sa, sb, calls in [((3, 4, 5, 6), (6, 2), 3), ((4, 5, 6), (1, 6, 2), 3),
                          ((2, 4, 5), (2, 5, 3), 2 + 2 + 2), ((2, 1, 3, 4), (5, 4, 6), 10 * 3)]:
        counting.calls = 0
        av = rng.standard_normal(sa).astype(np.float32)
        bv = rng.standard_normal(sb).astype(np.float32)
        a, b = ck.tensor(av, requires_grad=True), ck.tensor(bv, requires_grad=True)
        out = a @ b
        g = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(g)
        assert counting.calls == calls, (sa, sb, counting.calls)
        want, da, db = matmul_reference(av, bv, g)
        np.testing.assert_allclose(out.data, want, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(a.grad, da, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(b.grad, db, rtol=2e-5, atol=2e-5)


def test_matmul_results_and_gradients_are_arrays_of_their_own(rng):
    """The GEMMs write into the result array itself (no view of a temporary), so autograd can
    adopt a gradient as a leaf's .grad without copying it."""
    from cnnkit.ops.gemm import MatMul

    for sa, sb in [((4, 6), (6, 2)), ((3, 4, 6), (6, 2)), ((6,), (6, 2)), ((2, 1, 3, 6), (5, 6, 2)),
                   ((2, 3, 6), (6,)), ((6,), (6,))]:
        fn = MatMul()
        fn.needs_input_grad = (True, True)
        av = rng.standard_normal(sa).astype(np.float32)
        bv = rng.standard_normal(sb).astype(np.float32)
        out = fn.forward(av, bv)
        da, db = fn.backward(np.ones(out.shape, np.float32))
        for x, shape in ((out, out.shape), (da, sa), (db, sb)):
            assert x.base is None and x.flags.c_contiguous and x.shape == shape


def test_matmul_of_other_dtypes_keeps_numpy_semantics():
    a64 = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    b64 = np.arange(8, dtype=np.float64).reshape(4, 2) / 3
    out = ck.Tensor(a64, dtype=np.float64) @ ck.Tensor(b64, dtype=np.float64)
    # computed in float64 by numpy, stored as float32 like every cnnkit op's result
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, (a64 @ b64).astype(np.float32))
    ia = np.arange(6, dtype=np.int64).reshape(2, 3) * 1_000_003
    ib = np.arange(6, dtype=np.int64).reshape(3, 2)
    iout = ck.tensor(ia) @ ck.tensor(ib)
    assert iout.dtype == np.int64
    np.testing.assert_array_equal(iout.data, ia @ ib)  # exact integers, no float rounding


def test_shape_ops_gradients():
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    a = leaf(v)
    w = np.random.default_rng(3).standard_normal((4, 3, 2)).astype(np.float32)
    p = a.permute(2, 1, 0)
    assert p.shape == (4, 3, 2)
    t = a.transpose(0, 2)
    f = a.flatten(1)
    assert f.shape == (2, 12)
    r = a.reshape(6, 4)
    out = (p * w).sum() + (t * w).sum() + (f * 2).sum() + r.sum() + a.T.sum()
    out.backward()
    np.testing.assert_allclose(a.grad, 2 * np.transpose(w, (2, 1, 0)) + 2 + 1 + 1)
    assert a.unsqueeze(1).shape == (2, 1, 3, 4) and a.unsqueeze(1).squeeze(1).shape == (2, 3, 4)


def test_indexing_gradient_accumulates_repeated_indices():
    a = leaf([1.0, 2.0, 3.0, 4.0])
    idx = ck.tensor([0, 2, 0])
    (a[idx] * ck.tensor([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(a.grad, [101.0, 0.0, 10.0, 0.0])
    b = leaf(np.arange(12).reshape(3, 4))
    b[1:, ::2].sum().backward()
    np.testing.assert_array_equal(b.grad, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])
    c = leaf(np.arange(6).reshape(2, 3))
    c[np.arange(2), ck.tensor([2, 0])].sum().backward()  # gather-like picking, as in losses
    np.testing.assert_array_equal(c.grad, [[0, 0, 1], [1, 0, 0]])


def test_rpow_and_abs():
    a = leaf([1.0, -2.0])
    (2.0 ** a).sum().backward()
    np.testing.assert_allclose(a.grad, np.log(2) * 2.0 ** np.array([1.0, -2.0]), rtol=1e-6)
    b = leaf([1.0, -2.0])
    b.abs().sum().backward()
    np.testing.assert_array_equal(b.grad, [1.0, -1.0])


# ------------------------------------------------------------------ conv_output_size
def test_conv_output_size_lecture_values():
    assert ck.conv_output_size(7, 3) == 5
    assert ck.conv_output_size(7, 3, stride=2) == 3
    assert ck.conv_output_size(227, 11, stride=4) == 55    # AlexNet CONV1
    assert ck.conv_output_size(32, 5, padding=2) == 32     # "same" padding
    assert ck.conv_output_size(7, 3, stride=3) == 2        # floor, like PyTorch
    assert ck.conv_output_size(10, 3, dilation=2) == 6
    assert ck.conv_output_size((227, 32), (11, 5), (4, 1), (0, 2)) == (55, 32)


def test_conv_output_size_strict_explains_the_arithmetic():
    with pytest.raises(ValueError) as e:
        ck.conv_output_size(7, 3, stride=3, strict=True)
    assert str(e.value) == "input 7, filter 3, stride 3: (7 - 3)/3 + 1 = 2.33, does not fit"
    with pytest.raises(ValueError, match=r"\(7 \+ 2\*1 - 3\)/4 \+ 1 = 2.50"):
        ck.conv_output_size(7, 3, stride=4, padding=1, strict=True)
    assert ck.conv_output_size(7, 3, stride=2, strict=True) == 3


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, 5), "filter 5 is larger than the input 3"),
        ((3, 7, 1, 1), "padded by 1 on each side \\(5\\)"),
        ((7, 3, 0), "stride must be >= 1, got 0"),
        ((7, 3, 1, -1), "padding must be >= 0, got -1"),
        ((7, 3, 1, 0, 0), "dilation must be >= 1, got 0"),
    ],
)
def test_conv_output_size_errors_name_values(args, match):
    with pytest.raises(ValueError, match=match):
        ck.conv_output_size(*args)


def test_conv_output_size_matches_torch_formula():
    torch = pytest.importorskip("torch")
    for n, k, s, p, d in [(9, 3, 2, 1, 1), (17, 5, 3, 2, 2), (8, 2, 2, 0, 1), (31, 4, 3, 1, 1)]:
        conv = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        out = conv(torch.zeros(1, 1, n, n)).shape[-1]
        assert ck.conv_output_size(n, k, s, p, d) == out


def test_manual_seed_is_reproducible():
    ck.manual_seed(123)
    a = ck.nn.Linear(4, 3).weight.data.copy()
    ck.manual_seed(123)
    b = ck.nn.Linear(4, 3).weight.data.copy()
    c = ck.nn.Linear(4, 3).weight.data.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
