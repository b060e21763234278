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
