"""The explicit fusion passes (nn.utils.fuse_batch_norm_relu, nn.utils.fuse), Sequential as a
plain loop, eval_mode, and fit's use of the pass."""

import threading

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import autograd, data, models, nn, optim, train


def _ops(model, x):
    """The operations ``model(x)`` applies, by Function name (with BN's relu option)."""
    with autograd.record_applications() as applied:
        model(x)
    return [a.function.__name__ + ("+relu" if a.options.get("relu") else "") for a in applied]


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6), nn.ReLU(),
                         nn.Linear(6, 3))


def test_sequential_is_a_plain_loop(rng):
    """Without the pass a training BatchNorm + ReLU run as the two ops, each module once."""
    ck.manual_seed(0)
    x = ck.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
    ops = _ops(_net(), x)
    assert ops == ["Conv2dFunction", "BatchNormTrainFunction", "ReLUFunction", "Reshape",
                   "LinearFunction", "BatchNormTrainFunction", "ReLUFunction", "LinearFunction"]


def test_pass_marks_pairs_visibly_and_gives_the_same_bits(rng):
    ck.manual_seed(0)
    plain = _net()
    fused = nn.utils.fuse_batch_norm_relu(_net())
    fused.load_state_dict(plain.state_dict())
    assert fused[1].fused_relu and fused[2].fused and fused[5].fused_relu and fused[6].fused
    text = repr(fused)
    assert "BatchNorm2d(4, eps=1e-05" in text and "relu=True" in text
    assert "ReLU(fused=True)" in text and "ReLU(fused=True)" not in repr(plain)
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    probe = nn.utils.fuse_batch_norm_relu(_net())  # a copy: the probe moves its running stats
    ops = _ops(probe, ck.tensor(x))
    # 4-D: one fused op; [N, C] (BatchNorm1d): the two ops (the fused kernel wants planes)
    assert ops[1] == "BatchNormTrainFunction+relu" and ops[2] == "Reshape"
    assert ops[4:6] == ["BatchNormTrainFunction", "ReLUFunction"]
    ys = []
    for m in (plain, fused):
        xt = ck.tensor(x, requires_grad=True)
        y = m(xt)
        (y * ck.tensor(np.arange(y.numel(), dtype=np.float32).reshape(y.shape))).sum().backward()
        ys.append((y.data, xt.grad, [p.grad for p in m.parameters()],
                   [b.data.copy() for b in m.buffers()]))
    np.testing.assert_array_equal(ys[0][0], ys[1][0])
    np.testing.assert_array_equal(ys[0][1], ys[1][1])
    for a, b in zip(ys[0][2] + ys[0][3], ys[1][2] + ys[1][3]):
        np.testing.assert_array_equal(a, b)
    # eval mode: the same values too
    plain.eval(), fused.eval()
    np.testing.assert_array_equal(plain(ck.tensor(x)).data, fused(ck.tensor(x)).data)


def test_pass_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="fuse_batch_norm_relu: model must be a cnnkit.nn.Module, "
                                        "got function"):
        nn.utils.fuse_batch_norm_relu(lambda x: x)


def test_inference_fuse_of_a_marked_model_matches_the_plain_eval_model(rng):
    ck.manual_seed(1)
    plain = _net()
    for m in plain.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm1d) or isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[:] = rng.standard_normal(m.num_features)
            m.running_var.data[:] = rng.random(m.num_features) + 0.5
    marked = nn.utils.fuse_batch_norm_relu(nn.Sequential(*[m for m in _net()]))
    marked.load_state_dict(plain.state_dict())
    x = ck.tensor(rng.standard_normal((3, 3, 5, 5)).astype(np.float32))
    ref = plain.eval()(x).data
    for source in (plain, marked):
        f = nn.utils.fuse(source)
        assert f[0].fused_relu and isinstance(f[1], nn.Identity) and isinstance(f[2], nn.Identity)
        assert isinstance(f[5], nn.Identity) and type(f[6]) is nn.ReLU and not f[6].fused
        np.testing.assert_allclose(f(x).data, ref, rtol=1e-5, atol=1e-5)


def test_eval_mode_restores_each_flag_even_after_an_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 2))
    model[1].train(False)  # a module already in eval mode stays so
    with pytest.raises(RuntimeError):
        with nn.eval_mode(model):
            assert not any(m.training for m in model.modules())
            raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [True, True, False, True]
    with nn.utils.eval_mode(len):  # not a module: left alone
        pass


def test_fit_fuses_unless_told_not_to():
    tr, _ = data.load_digits()
    loader = data.DataLoader(data.ArrayDataset(tr.images[:64], tr.labels[:64]), 32)
    for fuse in (True, False):
        ck.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.Flatten(), nn.Linear(4 * 64, 10))
        opt = optim.SGD(model.parameters(), lr=0.01)
        train.fit(model, loader, epochs=1, optimizer=opt, progress=False, fuse=fuse)
        assert model[1].fused_relu is fuse and model[2].fused is fuse


def test_fit_drives_a_strategy_object():
    calls = []

    class Recorder(ck.distributed.Strategy):
        def setup(self, model, train_loader, val_loader=None):
            calls.append("setup")
            return super().setup(model, train_loader, val_loader)

        def after_backward(self):
            calls.append("after_backward")

        def reduce_metrics(self, seen, correct, total_loss):
            calls.append("reduce_metrics")
            return seen, correct, total_loss

        def end_epoch(self):
            calls.append("end_epoch")

        def evaluate(self, val_loader, loss=None):
            calls.append("evaluate")
            return super().evaluate(val_loader, loss)

        def close(self):
            calls.append("close")

    tr, _ = data.load_digits()
    ds = data.ArrayDataset(tr.images[:64], tr.labels[:64])
    ck.manual_seed(0)
    model = models.digits_cnn()
    hist = train.fit(model, data.DataLoader(ds, 32), data.DataLoader(ds, 64), epochs=1,
                     optimizer=optim.SGD(model.parameters(), lr=0.01), progress=False,
                     strategy=Recorder())
    assert calls == ["setup", "after_backward", "after_backward", "reduce_metrics", "end_epoch",
                     "evaluate", "close"]
    assert hist.val_acc[0] is not None
    with pytest.raises(ValueError, match="not both"):
        train.fit(model, data.DataLoader(ds, 32), epochs=1, progress=False,
                  optimizer=optim.SGD(model.parameters(), lr=0.01), strategy=Recorder(),
                  distributed=True)


def test_record_applications_sees_outermost_ops_of_this_thread_only(rng):
    x = ck.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    seen_elsewhere = []

    def other():
        seen_elsewhere.append(len(_ops(lambda t: (t * 2).sum(), x)))

    with autograd.record_applications() as outer:
        y = (x * 2 + 1).relu()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with autograd.record_applications() as inner:
            z = y.sum()
    assert [a.function.__name__ for a in outer] == ["Mul", "Add", "ReLUFunction"]
    assert [a.function.__name__ for a in inner] == ["Sum"] and inner[0].output is z
    assert seen_elsewhere == [2]
    with autograd.record_applications() as after:
        pass
    assert after == []


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1,
                                                                ceil_mode=True)])
def test_fuse_pools_in_the_conv_epilogue_with_the_same_bits(rng, precision, pool):
    """conv-BN-ReLU-MaxPool2d: the pooling runs in the convolution (inference), the same values
    bit for bit as the plain eval model; with a gradient asked for, it runs as its own op."""
    ck.manual_seed(2)
    plain = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), pool,
                          nn.Conv2d(32, 16, 3, padding=1), pool,  # no ReLU before this one
                          nn.Flatten()).eval()
    f = nn.utils.fuse(plain)
    assert f[0].fused_pool == ((pool_pair := _pair(pool.kernel_size)), _pair(pool.stride),
                               _pair(pool.padding), pool.ceil_mode) and pool_pair
    assert f[0].fused_relu and "max_pool=" in repr(f[0]) and f[4].fused_pool is not None
    assert all(isinstance(f[i], nn.Identity) for i in (1, 2, 3, 5))
    x = ck.tensor(rng.standard_normal((3, 32, 12, 12)).astype(np.float32))
    with ck.autocast(enabled=precision == "bf16"):
        # a gradient asked for: the pooling runs as its own op, the gradient reaches the input
        xg = ck.tensor(x.data, requires_grad=True)
        y = f(xg)
        y.sum().backward()
        assert xg.grad is not None and np.abs(xg.grad).sum() > 0
        with ck.no_grad():
            assert _ops(f, x).count("MaxPool2dFunction") == 0
            fused = f(x).data
            ref = plain(x).data
    np.testing.assert_array_equal(fused, y.data)  # the same bits as conv then max_pool2d
    # and the plain model's values (batch norm folded: rounding differs slightly)
    tol = 1e-4 if precision == "fp32" else 5e-2
    np.testing.assert_allclose(fused, ref, rtol=tol, atol=tol)


def test_fuse_leaves_a_pool_with_hooks_alone(rng):
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    m[2].register_forward_hook(lambda mod, inp, out: None)
    f = nn.utils.fuse(m)
    assert f[0].fused_relu and f[0].fused_pool is None and type(f[2]) is nn.MaxPool2d


def test_conv2d_pool_argument_is_checked(rng):
    core = ck._core
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="pool must be"):
        core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, pool="2x2")
    with pytest.raises(ValueError, match="conv2d max_pool: .*kernel_size"):
        core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, pool=((0, 2), (2, 2), (0, 0),
                                                                         False))
    with pytest.raises(ValueError, match="too small"):
        core.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, pool=((5, 5), (1, 1), (0, 0),
                                                                         False))


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ------------------------------------------------------------ fp32 inference weight cache
def _wino_net():
    # 3x3 layers with >= 16 channels: Winograd, whose transformed filters the cache keeps
    return nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 4 * 4, 5))


def _eval(model, x):
    with ck.no_grad():
        return model(x).numpy().copy()


def test_core_weight_cache_gives_the_same_bits_and_is_filled_once(rng):
    x = rng.standard_normal((1, 20, 11, 11)).astype(np.float32)
    w = rng.standard_normal((24, 20, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    plain = ck._core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu=True)
    cache = ck._core.ConvWeightCache()
    for _ in range(3):
        y = ck._core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu=True, cache=cache)
        assert np.array_equal(y, plain)
    if ck._core.get_conv_algorithm() == "auto" and ck.get_isa() != "ref":
        assert cache.entries == 1 and cache.nbytes > w.nbytes  # Winograd's U: 4x the filters
    with pytest.raises(TypeError, match="conv2d: cache must be a ConvWeightCache"):
        ck._core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, cache="cache")
    # bf16 (Winograd on the rounded operands where the CPU has no AMX): its own entry, the
    # same bits as without the cache
    plain16 = ck._core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu=True,
                                      precision="bf16")
    for _ in range(2):
        y16 = ck._core.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1, relu=True,
                                      precision="bf16", cache=cache)
        assert np.array_equal(y16, plain16)
    if ck._core._conv2d_algorithms(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1,
                                   "bf16")[0] == "winograd":
        assert cache.entries == 2


def test_fused_model_cache_is_used_and_follows_weight_changes(rng):
    ck.manual_seed(0)
    model = _wino_net().eval()
    fused = nn.utils.fuse(model)
    x = ck.tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32))
    ref = _eval(model, x)
    np.testing.assert_allclose(_eval(fused, x), ref, rtol=1e-4, atol=1e-5)
    conv = fused[0]
    assert conv.inference_cache and conv._weight_cache is not None
    held = conv._weight_cache[2]
    _eval(fused, x)
    assert conv._weight_cache[2] is held  # reused, not rebuilt

    # an optimizer step on the fused model's own weights
    opt = optim.SGD(fused.parameters(), lr=0.1)
    for p in fused.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    fresh = nn.utils.fuse(fused)  # a new copy: no cache yet
    assert fresh[0]._weight_cache is None
    np.testing.assert_array_equal(_eval(fused, x), _eval(fresh, x))

    # load_state_dict, nn.init, and a write into the array followed by weights_changed()
    fused.load_state_dict(nn.utils.fuse(model).state_dict())
    np.testing.assert_allclose(_eval(fused, x), ref, rtol=1e-4, atol=1e-5)
    nn.init.zeros_(fused[3].weight)
    assert np.array_equal(_eval(fused, x), _eval(nn.utils.fuse(fused), x))
    fused[3].weight.data[...] = 0.5
    ck.amp.weights_changed()
    assert np.array_equal(_eval(fused, x), _eval(nn.utils.fuse(fused), x))
    # a new weight array (p.data = ...) is noticed without weights_changed()
    fused[3].weight.data = np.full_like(fused[3].weight.data, 0.25)
    assert np.array_equal(_eval(fused, x), _eval(nn.utils.fuse(fused), x))


def test_weight_cache_only_in_fused_eval_inference(rng):
    ck.manual_seed(0)
    model = _wino_net().eval()
    x = ck.tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32))
    _eval(model, x)
    assert model[0]._weight_cache is None  # not fused: never cached
    fused = nn.utils.fuse(model)
    fused(x)  # gradient mode on
    assert fused[0]._weight_cache is None
    fused.train()
    with ck.no_grad():
        fused(x)
    assert fused[0]._weight_cache is None
    fused.eval()
    # bf16: the bf16 engine takes its own packed weights; Winograd (bf16 where the CPU has no
    # AMX) keeps its filters from the rounded weights in the cache, under their own key
    with ck.no_grad(), ck.autocast():
        first = fused(x).numpy().copy()
        again = fused(x).numpy()
    np.testing.assert_array_equal(first, again)
    conv = fused[0]
    algorithm = ck._core._conv2d_algorithms(x.shape, conv.weight.shape, conv.stride, conv.padding,
                                            conv.dilation, conv.groups, "bf16")[0]
    assert conv._weight_cache[2].entries == (1 if algorithm == "winograd" else 0)


def test_copies_of_a_fused_model_start_without_a_cache(rng):
    import copy

    ck.manual_seed(0)
    fused = nn.utils.fuse(_wino_net().eval())
    x = ck.tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32))
    y = _eval(fused, x)
    twin = copy.deepcopy(fused)
    assert twin[0]._weight_cache is None and fused[0]._weight_cache is not None
    assert np.array_equal(_eval(twin, x), y)


def test_fused_model_cache_from_several_threads(rng):
    ck.manual_seed(0)
    fused = nn.utils.fuse(_wino_net().eval())
    xs = [ck.tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32)) for _ in range(4)]
    refs = [_eval(nn.utils.fuse(fused), x) for x in xs]
    bad = []

    def work(i):
        for _ in range(10):
            if not np.array_equal(_eval(fused, xs[i]), refs[i]):
                bad.append(i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert bad == []


def test_layers_call_the_core_directly_only_when_nothing_is_recorded(rng):
    """Under no_grad, Conv2d / Linear / ReLU / Flatten / eval Dropout skip Function.apply: the
    same bits as the recorded path; record_applications (the ONNX exporter) still sees every
    op, hooks still run, and bad input still gets the layer's error."""
    ck.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 5), nn.ReLU()).eval()
    x = ck.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    recorded = model(x).numpy()  # gradients on: the Function path
    with ck.no_grad():
        direct = model(x).numpy()
        assert np.array_equal(direct, recorded)
        with autograd.record_applications() as applied:
            model(x)
        names = [a.function.__name__ for a in applied]
        assert names == ["Conv2dFunction", "ReLUFunction", "Reshape", "LinearFunction",
                         "ReLUFunction"]
        seen = []
        h = model[4].register_forward_hook(lambda m, i, o: seen.append(o.shape))
        model(x)
        h.remove()
        assert seen == [(2, 5)]
        with pytest.raises(ValueError, match="expected input with 3 channels"):
            model(ck.tensor(np.zeros((1, 4, 6, 6), np.float32)))
        with pytest.raises(ValueError, match="288 features"):
            model[4](ck.tensor(np.zeros((1, 7), np.float32)))
    # the result of a direct call is a plain tensor: no graph, no gradient
    with ck.no_grad():
        y = model(x)
    assert y.grad_fn is None and not y.requires_grad


def test_fuse_folds_the_pairs_a_module_declares(rng):
    ck.manual_seed(0)
    model = models.build("resnet20")
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):  # non-trivial statistics
            mod.running_mean.data[...] = rng.random(mod.running_mean.shape) * 0.2
            mod.running_var.data[...] = 0.5 + rng.random(mod.running_var.shape)
    model.eval()
    fused = nn.utils.fuse(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert fused.conv1.fused_relu and fused.layer1[0].conv1.fused_relu
    assert not fused.layer1[0].conv2.fused_relu  # the block adds the shortcut first
    x = ck.tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    np.testing.assert_allclose(_eval(fused, x), _eval(model, x), rtol=1e-4, atol=1e-5)

    class Block(nn.Module):
        fuse_pairs = (("conv", "bn", False),)

        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x))

    hooked = Block().eval()
    hooked.bn.register_forward_hook(lambda m, i, o: None)
    assert isinstance(nn.utils.fuse(hooked).bn, nn.BatchNorm2d)  # a hook sees BN's output
