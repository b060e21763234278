"""Modules: registration, state_dict keys and loading, init, repr, errors; layer forward and
backward against torch (those need the C++ ops: requires_core)."""

import math

import numpy as np
import pytest
from core_ops import (
    ADAPTIVE,
    AVGPOOL,
    BN,
    CONV,
    DROPOUT,
    LINEAR,
    LOCAL,
    LRN,
    MAXOUT,
    MAXPOOL,
    RELU,
    TILED,
    requires_core,
)

import cnnkit as ck
import cnnkit.functional as F
import cnnkit.nn as nn


def cifar_like(lib):
    return lib.Sequential(
        lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(8, 16, 3, padding=1, bias=False), lib.BatchNorm2d(16), lib.ReLU(),
        lib.AvgPool2d(2), lib.Flatten(), lib.Dropout(0.5), lib.Linear(16 * 2 * 2, 10),
    )


# ------------------------------------------------------------------ structure (no core needed)
def test_parameters_buffers_and_state_dict_keys():
    m = cifar_like(nn)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "5.weight",
                     "5.bias", "10.weight", "10.bias"]
    sd = m.state_dict()
    assert list(sd)[:7] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                            "1.running_var", "1.num_batches_tracked"]
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"].ndim == 0
    assert sd["0.weight"].shape == (8, 3, 3, 3) and sd["10.weight"].shape == (10, 64)
    assert all(isinstance(v, np.ndarray) for v in sd.values())


def test_state_dict_keys_and_shapes_match_torch_and_torch_weights_load_strictly():
    torch = pytest.importorskip("torch")
    ours, theirs = cifar_like(nn), cifar_like(torch.nn)
    tsd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    sd = ours.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        assert sd[k].shape == tsd[k].shape and sd[k].dtype == tsd[k].dtype, k
    result = ours.load_state_dict(tsd, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, tsd[k])


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    for build in (cifar_like, lambda lib: lib.Sequential(
            lib.Conv2d(3, 6, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=3),
            lib.LeakyReLU(0.2), lib.ELU(), lib.Sigmoid(), lib.Tanh(),
            lib.LocalResponseNorm(5), lib.BatchNorm1d(4), lib.BatchNorm2d(3, bias=False),
            lib.AdaptiveAvgPool2d((1, 1)),
            lib.Linear(4, 2, bias=False), lib.Identity(), lib.CrossEntropyLoss(), lib.MSELoss())):
        assert repr(build(nn)) == repr(build(torch.nn))


def test_load_state_dict_names_missing_unexpected_and_mis_shaped_keys():
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    sd = m.state_dict()
    del sd["1.running_var"]
    sd["2.weight"] = np.zeros(3, np.float32)
    sd["0.weight"] = np.zeros((3, 5), np.float32)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "1.running_var"' in msg
    assert 'Unexpected key(s) in state_dict: "2.weight"' in msg
    assert "size mismatch for 0.weight: copying a param with shape [3, 5]" in msg
    sd["0.weight"] = np.ones((3, 4), np.float32)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["2.weight"]
    assert (m[0].weight.data == 1).all()


def test_load_state_dict_copies_in_place():
    m = nn.BatchNorm2d(3)
    buf, w = m.running_mean.data, m.weight.data
    sd = {k: np.full_like(v, 2) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.running_mean.data is buf and m.weight.data is w and (buf == 2).all()


def test_train_eval_propagate_and_zero_grad():
    m = cifar_like(nn)
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert m[9].training
    for p in m.parameters():
        p.grad = np.ones_like(p.data)
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())



@pytest.mark.parametrize("grad", [True, False])
def test_forward_hooks_run_on_identity_inside_sequential_and_can_replace_the_output(grad):
    # Sequential skips calling an Identity that has no hooks; one with hooks must still run
    seen = []
    ident = nn.Identity()
    m = nn.Sequential(nn.Linear(3, 4), ident, nn.ReLU())
    x = ck.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    with ck.enable_grad() if grad else ck.no_grad():
        plain = m(x).data.copy()
        handle = ident.register_forward_hook(lambda mod, inp, out: seen.append(mod) or -out)
        hooked = m(x).data
        handle.remove()
        again = m(x).data
    assert seen == [ident]
    # the hook negated the Linear's output before the ReLU
    lin = m[0](x).data
    np.testing.assert_allclose(hooked, np.maximum(-lin, 0), rtol=1e-6)
    np.testing.assert_array_equal(again, plain)

def test_custom_module_registers_nested_children_and_shared_parameters():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.scale = nn.Parameter(np.ones(1, np.float32))
            self.register_buffer("count", np.zeros(1, np.float32))
            self.not_a_param = np.zeros(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Block(), Block()
            self.b.fc = self.a.fc  # shared: counted once

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # PyTorch's order: a module's own parameters, then its children's
    assert names == ["a.scale", "a.fc.weight", "a.fc.bias", "b.scale"]
    assert "a.count" in net.state_dict() and "a.not_a_param" not in net.state_dict()
    assert [n for n, _ in net.named_modules()] == ["", "a", "a.fc", "b"]
    with pytest.raises(TypeError):
        net.a.scale = np.ones(1)


# ------------------------------------------------------------------ initialisation
def test_default_init_matches_torch_bounds_and_statistics():
    ck.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    fan_in = 16 * 9
    bound = 1 / math.sqrt(fan_in)
    w = conv.weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert w.var() == pytest.approx(bound**2 / 3, rel=0.1)  # uniform on [-b, b]
    assert np.abs(conv.bias.data).max() <= bound
    lin = nn.Linear(100, 50)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.bias.data).max() <= 0.1
    g = nn.Conv2d(8, 8, 3, groups=4)
    assert g.weight.shape == (8, 2, 3, 3)
    assert np.abs(g.weight.data).max() <= 1 / math.sqrt(2 * 9)
    bn = nn.BatchNorm2d(5)
    assert (bn.weight.data == 1).all() and (bn.bias.data == 0).all()
    assert (bn.running_var.data == 1).all() and bn.num_batches_tracked.item() == 0


def test_init_functions():
    ck.manual_seed(1)
    w = ck.tensor(np.zeros((256, 128, 3, 3), np.float32))
    nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
    assert w.data.std() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.data.std() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.data).max() <= math.sqrt(6 / (128 * 9))
    nn.init.xavier_uniform_(w, gain=2.0)
    a = 2.0 * math.sqrt(6 / (128 * 9 + 256 * 9))
    assert np.abs(w.data).max() <= a and np.abs(w.data).max() > 0.99 * a
    nn.init.xavier_normal_(w)
    assert w.data.std() == pytest.approx(math.sqrt(2 / (128 * 9 + 256 * 9)), rel=0.02)
    nn.init.normal_(w, 3.0, 0.5)
    assert w.data.mean() == pytest.approx(3.0, abs=0.01)
    nn.init.uniform_(w, -2, -1)
    assert w.data.min() >= -2 and w.data.max() <= -1
    assert nn.init.constant_(w, 0.25) is w and (w.data == 0.25).all()
    nn.init.zeros_(w)
    assert (w.data == 0).all()
    nn.init.ones_(w)
    assert (w.data == 1).all()
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(ck.tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError):
        nn.init.kaiming_normal_(w, mode="fan_sideways")


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("relu", None), ("tanh", None), ("sigmoid", None), ("linear", None),
                        ("conv2d", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                        ("leaky_relu", math.sqrt(5)), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param))


def test_locally_connected_and_tiled_parameter_shapes():
    lc = nn.LocallyConnected2d(3, 4, input_size=(8, 6), kernel_size=3, stride=1, padding=1)
    assert lc.output_size == (8, 6)
    assert lc.weight.shape == (8, 6, 4, 3, 3, 3) and lc.bias.shape == (4, 8, 6)
    assert np.abs(lc.weight.data).max() <= 1 / math.sqrt(27)
    lc2 = nn.LocallyConnected2d(2, 5, 7, 3, stride=2, bias=False)
    assert lc2.weight.shape == (3, 3, 5, 2, 3, 3) and lc2.bias is None
    tc = nn.TiledConv2d(3, 4, kernel_size=(3, 5), tile_size=2)
    assert tc.weight.shape == (2, 2, 4, 3, 3, 5) and tc.bias.shape == (4,)
    assert list(tc.state_dict()) == ["weight", "bias"]


def test_shape_errors_name_the_layer():
    x = ck.tensor(np.zeros((8, 4, 32, 32), np.float32))
    with pytest.raises(ValueError) as e:
        nn.Conv2d(3, 16, kernel_size=3)(x)
    assert str(e.value) == ("Conv2d(3, 16, kernel_size=3): expected input with 3 channels, "
                            "got [8, 4, 32, 32]")
    with pytest.raises(ValueError, match=r"Conv2d\(4, 2, kernel_size=5\): input \[1, 4, 3, 3\]"):
        nn.Conv2d(4, 2, 5)(ck.tensor(np.zeros((1, 4, 3, 3), np.float32)))
    with pytest.raises(ValueError, match=r"expected a 4-D input \[N, 3, H, W\], got \[3, 32, 32\]"):
        nn.Conv2d(3, 1, 3)(ck.tensor(np.zeros((3, 32, 32), np.float32)))
    with pytest.raises(ValueError, match=r"Linear\(in_features=10.*10 features.*\[4, 9\]"):
        nn.Linear(10, 5)(ck.tensor(np.zeros((4, 9), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3.*3 channels.*\[2, 4, 5, 5\]"):
        nn.BatchNorm2d(3)(ck.tensor(np.zeros((2, 4, 5, 5), np.float32)))
    with pytest.raises(ValueError, match=r"LocallyConnected2d\(3, 4, input_size=8, "
                                         r"kernel_size=3\): expected input of spatial size"):
        nn.LocallyConnected2d(3, 4, 8, 3)(ck.tensor(np.zeros((1, 3, 9, 8), np.float32)))
    with pytest.raises(ValueError, match=r"Maxout\(pieces=3\).*divisible by 3.*\[1, 4, 2, 2\]"):
        nn.Maxout(3)(ck.tensor(np.zeros((1, 4, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="at most half"):
        nn.MaxPool2d(2, padding=2)(ck.tensor(np.zeros((1, 1, 8, 8), np.float32)))


def test_missing_core_op_raises_attribute_error_naming_it(monkeypatch):
    from cnnkit import _core

    if hasattr(_core, "relu_forward"):
        monkeypatch.delattr(_core, "relu_forward")
    with pytest.raises(AttributeError, match="relu_forward"):
        F.relu(ck.tensor([1.0, -1.0]))


def test_fuse_leaves_original_untouched_and_replaces_folded_modules():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU())
    m[1].running_mean.data[...] = [1, 2, 3, 4]
    m[1].running_var.data[...] = [4, 4, 1, 1]
    m[1].weight.data[...] = 2
    m[1].bias.data[...] = 0.5
    f = nn.utils.fuse(m)
    assert m.training and isinstance(m[1], nn.BatchNorm2d) and not m[0].fused_relu
    assert not f.training
    assert [type(x).__name__ for x in f] == ["Conv2d", "Identity", "Identity", "Linear",
                                             "Identity", "ReLU"]
    assert f[0].fused_relu and "relu=True" in repr(f[0])
    s = 2 / np.sqrt(np.array([4, 4, 1, 1]) + 1e-5)
    np.testing.assert_allclose(f[0].weight.data, m[0].weight.data * s[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(f[0].bias.data, (m[0].bias.data - [1, 2, 3, 4]) * s + 0.5,
                               rtol=1e-6)


# ------------------------------------------------------------------ layers against torch
def _pair_run(torch, ours_mod, theirs_mod, x, grad_seed=7):
    """Forward and backward through both with the same upstream gradient."""
    xo = ck.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yo, yt = ours_mod(xo), theirs_mod(xt)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = np.random.default_rng(grad_seed).standard_normal(yt.shape).astype(np.float32)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    for (n, p), (_, q) in zip(ours_mod.named_parameters(), theirs_mod.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=n)


def _same_weights(ours, theirs):
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


CONV_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=6, kernel_size=(3, 2), stride=2, padding=(1, 0)),
    dict(in_channels=4, out_channels=6, kernel_size=3, dilation=2, groups=2, bias=False),
    dict(in_channels=2, out_channels=5, kernel_size=1),
]


@requires_core(CONV)
@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Conv2d(**kw)
    ours = nn.Conv2d(**kw)
    _same_weights(ours, theirs)
    x = np.random.default_rng(0).standard_normal((2, kw["in_channels"], 9, 8)).astype(np.float32)
    _pair_run(torch, ours, theirs, x)


def local_conv_ref(x, w, b, stride, padding, tiled=False):
    """float64 loops over output positions: the unshared-weights definition."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n = x.shape[0]
    k, fh, fw = w.shape[2], w.shape[4], w.shape[5]
    ho = (x.shape[2] - fh) // stride + 1
    wo = (x.shape[3] - fw) // stride + 1
    y = np.zeros((n, k, ho, wo))
    for i in range(ho):
        for j in range(wo):
            wij = w[i % w.shape[0], j % w.shape[1]] if tiled else w[i, j]
            patch = x[:, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
            y[:, :, i, j] = np.einsum("ncfg,kcfg->nk", patch, wij)
            if b is not None:
                y[:, :, i, j] += b if tiled else b[:, i, j]
    return y


@requires_core(LOCAL)
def test_locally_connected_forward_reference_and_gradcheck():
    ck.manual_seed(3)
    m = nn.LocallyConnected2d(2, 3, input_size=5, kernel_size=3, stride=1, padding=1)
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = m(ck.tensor(x))
    ref = local_conv_ref(x, m.weight.data, m.bias.data, 1, 1)
    np.testing.assert_allclose(y.data, ref, rtol=1e-4, atol=1e-5)
    xt = ck.tensor(x[:1, :, :, :], requires_grad=True)
    m2 = nn.LocallyConnected2d(2, 2, input_size=5, kernel_size=2, stride=2)
    assert ck.gradcheck(lambda a: m2(a), (ck.tensor(x[:1], requires_grad=True),))
    assert ck.gradcheck(lambda w, b: F.local_conv2d(xt, w, b, 2), (m2.weight, m2.bias))


@requires_core(TILED)
def test_tiled_conv_forward_reference_and_gradcheck():
    ck.manual_seed(4)
    m = nn.TiledConv2d(2, 3, kernel_size=3, tile_size=2, stride=1, padding=1)
    x = np.random.default_rng(2).standard_normal((2, 2, 6, 5)).astype(np.float32)
    y = m(ck.tensor(x))
    np.testing.assert_allclose(y.data, local_conv_ref(x, m.weight.data, m.bias.data, 1, 1, True),
                               rtol=1e-4, atol=1e-5)
    # tile size 1 is an ordinary convolution
    t1 = nn.TiledConv2d(2, 3, kernel_size=3, tile_size=1)
    c = nn.Conv2d(2, 3, 3)
    c.weight.data[...] = t1.weight.data[0, 0]
    c.bias.data[...] = t1.bias.data
    if hasattr(ck._core, "conv2d_forward"):
        np.testing.assert_allclose(t1(ck.tensor(x)).data, c(ck.tensor(x)).data, rtol=1e-4,
                                   atol=1e-5)
    small = nn.TiledConv2d(2, 2, kernel_size=2, tile_size=2)
    assert ck.gradcheck(lambda a: small(a), (ck.tensor(x[:1, :, :4, :4], requires_grad=True),))
    assert ck.gradcheck(lambda w, b: small(ck.tensor(x[:1, :, :4, :4])),
                        (small.weight, small.bias))


POOL_CASES = [
    ("MaxPool2d", MAXPOOL, dict(kernel_size=2)),
    ("MaxPool2d", MAXPOOL, dict(kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d", MAXPOOL, dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("AvgPool2d", AVGPOOL, dict(kernel_size=2)),
    ("AvgPool2d", AVGPOOL, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", AVGPOOL, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("AdaptiveAvgPool2d", ADAPTIVE, dict(output_size=(3, 2))),
    ("AdaptiveAvgPool2d", ADAPTIVE, dict(output_size=1)),
]


@pytest.mark.parametrize("name, ops, kw", POOL_CASES)
def test_pooling_matches_torch(name, ops, kw):
    if not all(hasattr(ck._core, o) for o in ops):
        pytest.skip(f"cnnkit._core lacks {', '.join(ops)} (not merged yet)")
    torch = pytest.importorskip("torch")
    # distinct values: no ties for max pooling
    x = np.random.default_rng(5).permutation(2 * 3 * 9 * 7).reshape(2, 3, 9, 7)
    x = (x / 10.0).astype(np.float32)
    _pair_run(torch, getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), x)


ACT_CASES = [
    ("ReLU", {}, ("relu_forward", "relu_backward")),
    ("LeakyReLU", {"negative_slope": 0.2}, ("leaky_relu_forward", "leaky_relu_backward")),
    ("ELU", {"alpha": 0.7}, ("elu_forward", "elu_backward")),
    ("Sigmoid", {}, ("sigmoid_forward", "sigmoid_backward")),
    ("Tanh", {}, ("tanh_forward", "tanh_backward")),
]


@pytest.mark.parametrize("name, kw, ops", ACT_CASES)
def test_activations_match_torch(name, kw, ops):
    if not all(hasattr(ck._core, o) for o in ops):
        pytest.skip(f"cnnkit._core lacks {', '.join(ops)} (not merged yet)")
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((3, 4, 5)).astype(np.float32)
    x[np.abs(x) < 1e-2] = 0.5  # away from the kink
    _pair_run(torch, getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), x)


@requires_core(MAXOUT)
def test_maxout_reference():
    x = np.random.default_rng(8).permutation(2 * 6 * 3).reshape(2, 6, 3).astype(np.float32)
    xt = ck.tensor(x, requires_grad=True)
    y = nn.Maxout(3)(xt)
    ref = x.reshape(2, 2, 3, 3).max(axis=2)
    np.testing.assert_array_equal(y.data, ref)
    y.sum().backward()
    winners = (x.reshape(2, 2, 3, 3) == ref[:, :, None]).reshape(x.shape)
    np.testing.assert_array_equal(xt.grad, winners.astype(np.float32))


@requires_core(BN)
@pytest.mark.parametrize("cls, shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm1d", (6, 3)),
                                        ("BatchNorm1d", (4, 3, 7))])
def test_batch_norm_train_and_eval_match_torch(cls, shape):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, cls)(3, momentum=0.3), getattr(torch.nn, cls)(3, momentum=0.3)
    rng = np.random.default_rng(9)
    theirs.weight.data = torch.tensor(rng.uniform(0.5, 2, 3).astype(np.float32))
    theirs.bias.data = torch.tensor(rng.standard_normal(3).astype(np.float32))
    _same_weights(ours, theirs)
    for step in range(2):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        _pair_run(torch, ours, theirs, x, grad_seed=step)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)
    assert ours.num_batches_tracked.item() == 2
    ours.eval()
    theirs.eval()
    _pair_run(torch, ours, theirs, rng.standard_normal(shape).astype(np.float32))
    assert ours.num_batches_tracked.item() == 2  # eval does not count batches


@requires_core(BN)
def test_batch_norm_cumulative_momentum_none():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.BatchNorm2d(2, momentum=None), torch.nn.BatchNorm2d(2, momentum=None)
    rng = np.random.default_rng(10)
    for _ in range(3):
        x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
        ours(ck.tensor(x))
        theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-5)


@requires_core(LRN)
def test_local_response_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(11).standard_normal((2, 7, 4, 3)).astype(np.float32) * 3
    kw = dict(size=5, alpha=1e-2, beta=0.75, k=2.0)
    _pair_run(torch, nn.LocalResponseNorm(**kw), torch.nn.LocalResponseNorm(**kw), x)


@requires_core(DROPOUT)
def test_dropout_statistics_seed_and_modes():
    x = ck.tensor(np.ones((200, 100), np.float32), requires_grad=True)
    d = nn.Dropout(0.3)
    ck.manual_seed(5)
    y = d(x)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.backward(np.full(y.shape, 2.0, np.float32))
    np.testing.assert_allclose(x.grad, np.where(kept, 2 / 0.7, 0), rtol=1e-6)
    ck.manual_seed(5)
    np.testing.assert_array_equal(d(x).data, y.data)  # same seed, same mask
    assert not np.array_equal(d(x).data, y.data)      # the next call draws a new mask
    d.eval()
    assert d(x) is x


@requires_core(LINEAR)
def test_linear_matches_torch_including_extra_leading_dims():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Linear(5, 3), torch.nn.Linear(5, 3)
    _same_weights(ours, theirs)
    rng = np.random.default_rng(12)
    _pair_run(torch, ours, theirs, rng.standard_normal((4, 5)).astype(np.float32))
    ours.zero_grad()
    theirs.zero_grad()
    _pair_run(torch, ours, theirs, rng.standard_normal((2, 3, 5)).astype(np.float32))


LOSS_CASES = [
    ("CrossEntropyLoss", {}, ("cross_entropy_forward", "cross_entropy_backward")),
    ("MultiMarginLoss", {"margin": 0.7},
     ("multi_margin_loss_forward", "multi_margin_loss_backward")),
]


@pytest.mark.parametrize("name, kw, ops", LOSS_CASES)
def test_classification_losses_match_torch(name, kw, ops):
    if not all(hasattr(ck._core, o) for o in ops):
        pytest.skip(f"cnnkit._core lacks {', '.join(ops)} (not merged yet)")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6)
    xo, xt = ck.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo = getattr(nn, name)(**kw)(xo, ck.tensor(t))
    lt = getattr(torch.nn, name)(**kw)(xt, torch.tensor(t))
    assert lo.shape == () and lo.item() == pytest.approx(lt.item(), rel=1e-5)
    (lo * 3).backward()
    (lt * 3).backward()
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


@requires_core("mse_loss_forward", "mse_loss_backward")
def test_mse_loss_matches_torch_both_arguments():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal(
        (2, 3, 4)).astype(np.float32)
    ao, bo = ck.tensor(a, requires_grad=True), ck.tensor(b, requires_grad=True)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    lo, lt = nn.MSELoss()(ao, bo), torch.nn.MSELoss()(at, bt)
    assert lo.item() == pytest.approx(lt.item(), rel=1e-5)
    lo.backward()
    lt.backward()
    np.testing.assert_allclose(ao.grad, at.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(bo.grad, bt.grad.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        F.mse_loss(ao, ck.tensor(np.zeros(3, np.float32)))


@requires_core("softmax_forward", "softmax_backward", "log_softmax_forward",
               "log_softmax_backward")
@pytest.mark.parametrize("dim", [1, 0, -1])
def test_softmax_and_log_softmax_any_dim_match_torch(dim):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(15).standard_normal((3, 4, 2)).astype(np.float32)
    g = np.random.default_rng(16).standard_normal((3, 4, 2)).astype(np.float32)
    for ours_fn, theirs_fn in [(F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)]:
        xo, xt = ck.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = ours_fn(xo, dim), theirs_fn(xt, dim)
        np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        yo.backward(g)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


@requires_core(CONV, BN, RELU, LINEAR)
def test_fuse_output_matches_unfused_eval_model():
    ck.manual_seed(6)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)), nn.Flatten(),
                      nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5))
    rng = np.random.default_rng(17)
    for _ in range(3):  # give the running statistics non-trivial values
        m(ck.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32)))
    m.eval()
    x = ck.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    f = nn.utils.fuse(m)
    assert f[0].fused_relu and isinstance(f[3][1], nn.Identity) and isinstance(f[6], nn.Identity)
    np.testing.assert_allclose(f(x).data, m(x).data, rtol=1e-4, atol=1e-5)
    # the fused ReLU is differentiable too
    assert ck.gradcheck(lambda a: f[0](a), (ck.tensor(x.data[:1, :, :4, :4] + 0.01,
                                                      requires_grad=True),))
