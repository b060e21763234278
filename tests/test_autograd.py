"""The tape: the lecture's examples, branching graphs, reuse, accumulation, no_grad."""

import sys

import numpy as np
import pytest

import cnnkit as ck


def leaf(v):
    return ck.tensor(v, requires_grad=True)


def test_lecture_example_f_equals_x_plus_y_times_z():
    x, y, z = leaf(-2.0), leaf(5.0), leaf(-4.0)
    q = x + y
    f = q * z
    f.backward()
    assert f.item() == -12.0
    assert x.grad == -4.0 and y.grad == -4.0 and z.grad == 3.0
    # intermediate nodes keep no .grad (PyTorch semantics), the leaves do
    assert q.grad is None


def test_add_distributes_max_routes_mul_switches():
    x, y = leaf(3.0), leaf(-1.0)
    (x + y).backward(np.float32(2.0))
    assert x.grad == 2.0 and y.grad == 2.0  # add: both get the upstream gradient

    a = leaf([4.0, 7.0, 1.0])
    a.max().backward(np.float32(5.0))
    np.testing.assert_array_equal(a.grad, [0.0, 5.0, 0.0])  # max: only the winner

    u, v = leaf(3.0), leaf(-2.0)
    (u * v).backward(np.float32(1.5))
    assert u.grad == -3.0 and v.grad == 4.5  # mul: each gets the other's value


def test_max_over_dim_routes_to_argmax_and_returns_indices():
    a = leaf([[1.0, 9.0, 2.0], [8.0, 0.0, 3.0]])
    values, indices = a.max(dim=1)
    np.testing.assert_array_equal(values.data, [9.0, 8.0])
    np.testing.assert_array_equal(indices.data, [1, 0])
    values.backward(np.array([1.0, 2.0], np.float32))
    np.testing.assert_array_equal(a.grad, [[0, 1, 0], [2, 0, 0]])


def test_reused_tensor_gradients_add_up():
    x = leaf(3.0)
    y = x * x + x  # x used three times
    y.backward()
    assert x.grad == pytest.approx(2 * 3.0 + 1)


def test_branching_graph_residual_connection():
    # y = relu-free residual block: h = x*w; out = (h + x) * h ; grads by hand
    x, w = leaf([1.0, -2.0]), leaf([3.0, 0.5])
    h = x * w
    out = ((h + x) * h).sum()
    out.backward()
    xv, wv = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    hv = xv * wv
    # d/dh = (h + x) + h ; d/dx(direct) = h
    dh = 2 * hv + xv
    np.testing.assert_allclose(x.grad, dh * wv + hv, rtol=1e-6)
    np.testing.assert_allclose(w.grad, dh * xv, rtol=1e-6)


def test_each_function_runs_backward_once_in_a_diamond():
    calls = []

    from cnnkit.tensor import Function

    class Double(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            calls.append(1)
            return (g * 2,)

    x = leaf([1.0, 2.0])
    d = Double.apply(x)
    y = (d * 3 + d * 4).sum()  # two paths from d to y
    y.backward()
    assert len(calls) == 1  # gradients of both paths summed before d's backward
    np.testing.assert_array_equal(x.grad, [14.0, 14.0])


def test_gradients_accumulate_until_zeroed():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_no_grad_records_nothing_and_restores():
    x = leaf([1.0, 2.0])
    with ck.no_grad():
        y = x * 2
        assert not ck.is_grad_enabled()
    assert ck.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()

    @ck.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None


def test_deep_chain_does_not_hit_recursion_limit():
    x = leaf(1.0)
    y = x
    n = sys.getrecursionlimit() * 3
    for _ in range(n):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_broadcasting_gradients_reduce_over_broadcast_axes():
    a = leaf(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = leaf([10.0, 20.0, 30.0])      # broadcast over rows
    c = leaf(np.ones((2, 1), np.float32))  # broadcast over columns
    out = (a * b + c).sum()
    out.backward()
    np.testing.assert_array_equal(b.grad, a.data.sum(0))
    np.testing.assert_array_equal(c.grad, [[3.0], [3.0]])
    np.testing.assert_array_equal(a.grad, np.broadcast_to(b.data, (2, 3)))


def test_backward_needs_grad_for_non_scalar_and_checks_shape():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match="one-element"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3, np.float32))
    y.backward(np.array([1.0, -1.0], np.float32))
    np.testing.assert_array_equal(x.grad, [2.0, -2.0])


def test_unused_input_gets_no_gradient():
    x, y = leaf(1.0), leaf(2.0)
    (x * 3).backward()
    assert y.grad is None


def test_detach_cuts_the_graph():
    x = leaf(2.0)
    y = x * x
    z = y.detach() * x
    z.backward()
    assert x.grad == 4.0  # only the direct path


def test_random_expression_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    av = rng.standard_normal((3, 4)).astype(np.float32)
    bv = rng.standard_normal((4,)).astype(np.float32)
    cv = rng.uniform(0.5, 2.0, (3, 1)).astype(np.float32)
    wv = rng.standard_normal((4, 5)).astype(np.float32)

    def expr(lib, a, b, c, w):
        h = (a * b - c) / c
        h = h @ w
        h = (h.exp() * 0.1 + (c ** 2).log()) ** 2
        return h.mean(dim=0).sum() + h.max() - (-h).sum(dim=1, keepdim=True).mean()

    ours = [leaf(v) for v in (av, bv, cv, wv)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (av, bv, cv, wv)]
    r1 = expr(ck, *ours)
    r2 = expr(torch, *theirs)
    r1.backward()
    r2.backward()
    np.testing.assert_allclose(r1.item(), r2.item(), rtol=1e-5)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_grad_accumulator_receives_leaf_gradients_until_removed():
    """Tensor.register_grad_accumulator: the leaf-gradient hook cnnkit.distributed uses."""
    w = ck.tensor(np.ones(3, np.float32), requires_grad=True)
    got = []
    handle = w.register_grad_accumulator(lambda t, g: got.append((t, g.copy())))
    (w * 2).sum().backward()
    (w * w).sum().backward()  # w reaches the product twice: two deliveries
    assert w.grad is None and [t is w for t, _ in got] == [True, True, True]
    assert [g.tolist() for _, g in got] == [[2, 2, 2], [1, 1, 1], [1, 1, 1]]
    with pytest.raises(RuntimeError, match="already has one"):
        w.register_grad_accumulator(lambda t, g: None)
    handle.remove()
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3, 3, 3] and len(got) == 3
    with pytest.raises(TypeError, match="accumulator must be callable .* got int"):
        w.register_grad_accumulator(3)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 1).register_grad_accumulator(lambda t, g: None)


def test_leaf_gradients_never_alias_other_arrays(rng):
    """A leaf's .grad may be the very array a cnnkit function returned (no copy of AlexNet's
    151 MB weight gradient), but never an array anything else holds: the upstream gradient,
    the same array handed to two inputs, the caller's seed, or one a user Function keeps."""
    a, b = leaf(rng.standard_normal((3, 4)).astype(np.float32)), leaf(
        rng.standard_normal((3, 4)).astype(np.float32))
    seed = np.ones((3, 4), np.float32)
    (a + b).backward(seed)  # Add hands the upstream gradient to both inputs
    assert a.grad is not b.grad and a.grad is not seed and b.grad is not seed
    a.grad[...] = 5.0  # in place, as zero_grad(set_to_none=False) does
    assert np.all(b.grad == 1.0) and np.all(seed == 1.0)

    kept = np.full((2,), 7.0, np.float32)

    class KeepsItsGradient(ck.autograd.Function):
        def forward(self, x):
            return x * 2

        def backward(self, g):
            return kept

    x = leaf(np.zeros(2, np.float32))
    KeepsItsGradient.apply(x).backward(np.ones(2, np.float32))
    assert x.grad is not kept
    x.grad[...] = 0.0
    assert np.all(kept == 7.0)

    # a convolution's and a linear layer's weight gradients: correct, owned by the leaf
    conv = ck.nn.Conv2d(2, 3, 3)
    fc = ck.nn.Linear(3 * 3 * 3, 2)
    inp = ck.tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    fc(conv(inp).reshape(2, -1)).sum().backward()
    for p in (conv.weight, fc.weight):
        assert p.grad.shape == p.shape and p.grad.flags.writeable
    g1 = conv.weight.grad.copy()
    conv.weight.grad = None
    fc(conv(inp).reshape(2, -1)).sum().backward()
    np.testing.assert_array_equal(conv.weight.grad, g1)
