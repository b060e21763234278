"""cnnkit.onnx.export: valid ONNX (checker, full_check) that onnxruntime runs with cnnkit's
results, for the ready-made models and for a model that uses every layer type."""

import builtins
import importlib.util
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit as ck
import cnnkit.onnx
from cnnkit import functional as F
from cnnkit import models, nn
from cnnkit.nn.utils import fuse

RTOL = 1e-4


def _rel_err(got, want):
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def _randomise_batch_norm(model, seed=0):
    """Running statistics and affine parameters away from the identity, so the exported
    BatchNormalization nodes have something to get wrong."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.5, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.2, c)
    return model


def _parity(model, shape, path, batches=(1, 3), seed=0, recheck=True):
    """Export, check, run in onnxruntime at several batch sizes; returns the ModelProto.
    (export itself runs the full check; ``recheck`` repeats it on the file written.)"""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    proto = cnnkit.onnx.export(model, shape, path)
    loaded = onnx.load(str(path)) if recheck else proto
    if recheck:
        onnx.checker.check_model(loaded, full_check=True)
    assert loaded.ir_version == cnnkit.onnx.IR_VERSION == 8
    assert [(o.domain, o.version) for o in loaded.opset_import] == [("", 17)]
    dims = loaded.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == list(shape)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    rng = np.random.default_rng(seed)
    for n in batches:                        # the batch dimension is dynamic
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        with ck.no_grad():
            want = model(ck.tensor(x)).numpy()
        (got,) = sess.run(None, {"input": x})
        assert got.shape == want.shape
        assert _rel_err(got, want) <= RTOL, (n, _rel_err(got, want))
    return proto


def _op_types(proto):
    return {n.op_type for n in proto.graph.node}


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, shape", [("digits_cnn", (1, 8, 8)), ("lenet5", (1, 28, 28)),
                                         ("cifar_cnn", (3, 32, 32)), ("resnet20", (3, 32, 32))])
def test_ready_made_models_run_in_onnxruntime(tmp_path, name, shape):
    ck.manual_seed(0)
    model = _randomise_batch_norm(models.build(name))
    proto = _parity(model, shape, tmp_path / f"{name}.onnx")
    ops = _op_types(proto)
    assert "Dropout" not in ops                      # removed at inference
    # parameters keep their state_dict names
    inits = {i.name for i in proto.graph.initializer}
    assert set(model.state_dict()) - inits <= {k for k in model.state_dict()
                                               if k.endswith("num_batches_tracked")}
    if name == "resnet20":
        assert {"Add", "GlobalAveragePool", "BatchNormalization", "Gemm"} <= ops


def test_alexnet_runs_in_onnxruntime(tmp_path):
    ck.manual_seed(0)
    model = models.alexnet(num_classes=10)
    # 240 MB of weights: one image, and the file is checked once (by export)
    proto = _parity(model, (3, 227, 227), tmp_path / "alexnet.onnx", batches=(1,),
                    recheck=False)
    assert {"Conv", "MaxPool", "LRN", "Gemm", "Relu", "Reshape"} <= _op_types(proto)


class EveryLayer(nn.Module):
    """Every layer type cnnkit has, in one network (with a residual connection)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)       # 13x13
        self.bn = nn.BatchNorm2d(8)
        self.leaky = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)      # -> 7x7
        self.lrn = nn.LocalResponseNorm(3, alpha=1e-2, beta=0.75, k=2.0)
        self.lrn_even = nn.LocalResponseNorm(4, alpha=1e-2, beta=0.6, k=1.5)
        self.local = nn.LocallyConnected2d(8, 6, 7, 3, padding=1)              # -> 7x7
        self.elu = nn.ELU(0.7)
        self.tiled = nn.TiledConv2d(6, 8, 3, (2, 3), padding=1)                # -> 7x7
        self.tanh = nn.Tanh()
        self.shortcut = nn.Conv2d(8, 8, 1, bias=False)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)        # -> 4x4
        self.avg_ex = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.maxout = nn.Maxout(2)                                             # 8 -> 4 ch
        self.adaptive = nn.AdaptiveAvgPool2d((3, 2))                           # uneven windows
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 3 * 2, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        y = self.pool(self.leaky(self.bn(self.conv(x))))
        y = self.lrn_even(self.lrn(y))
        z = self.tanh(self.tiled(self.elu(self.local(y))))
        y = F.relu(z + self.shortcut(y))                                       # residual Add
        y = self.avg_ex(self.avg(y))
        y = self.adaptive(self.maxout(y))
        y = self.drop(self.flatten(y))
        y = self.relu(self.bn1(self.fc(y))) * self.sigmoid(y.mean(dim=1, keepdim=True))
        return F.softmax(self.fc2(y), dim=1)


def test_a_model_with_every_layer_type_runs_in_onnxruntime(tmp_path):
    ck.manual_seed(1)
    model = _randomise_batch_norm(EveryLayer())
    proto = _parity(model, (4, 13, 13), tmp_path / "every.onnx")
    ops = _op_types(proto)
    assert {"Conv", "BatchNormalization", "LeakyRelu", "MaxPool", "LRN", "Elu", "Tanh",
            "AveragePool", "ReduceMax", "Gemm", "Relu", "Sigmoid", "Add", "Softmax",
            "MatMul", "Reshape", "ReduceMean"} <= ops
    assert "Dropout" not in ops
    # the dilated grouped convolution kept its attributes
    conv = next(n for n in proto.graph.node if n.op_type == "Conv" and "conv.weight" in n.input)
    attrs = {a.name: a for a in conv.attribute}
    assert attrs["group"].i == 2 and list(attrs["dilations"].ints) == [2, 2]


def test_unshared_convolutions_and_activations_alone(tmp_path):
    """Locally connected and tiled convolution (decomposed into standard ops) with stride,
    without bias, and the remaining activations (ELU, Sigmoid, log-softmax)."""
    ck.manual_seed(2)
    model = nn.Sequential(
        nn.LocallyConnected2d(3, 5, (9, 8), (3, 2), stride=2, padding=(1, 0), bias=False),
        nn.Sigmoid(),
        nn.TiledConv2d(5, 4, 2, (3, 2), stride=1, bias=True),
        nn.ELU(),
        nn.Flatten(),
    )
    _parity(model, (3, 9, 8), tmp_path / "unshared.onnx")

    class LogSoftmax(nn.Module):
        def forward(self, x):
            return F.log_softmax(x, dim=1)

    _parity(nn.Sequential(nn.Linear(6, 4), LogSoftmax()), (6,), tmp_path / "logsoftmax.onnx")


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, count_include_pad",
                         [c for c in itertools.product([2, 3], [1, 2, 3], [0, 1], [False, True],
                                                       [False, True]) if c[2] <= c[0] // 2])
def test_pooling_options(tmp_path, kernel, stride, padding, ceil_mode, count_include_pad):
    """ceil_mode (the last window overhanging the padding) and count_include_pad give the
    same windows and divisors in onnxruntime as in cnnkit."""
    model = nn.Sequential(
        nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad),
        nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode))
    _parity(model, (2, 11, 12), tmp_path / "pool.onnx", batches=(2,))


@pytest.mark.parametrize("output_size, ops", [(1, {"GlobalAveragePool"}),
                                              ((4, 5), {"AveragePool"}),   # windows tile 8x10
                                              ((2, 3), {"MatMul"}), ((3, 7), {"MatMul"})])
def test_adaptive_average_pooling_any_output_size(tmp_path, output_size, ops):
    proto = _parity(nn.Sequential(nn.AdaptiveAvgPool2d(output_size)), (3, 8, 10),
                    tmp_path / "adaptive.onnx", batches=(2,))
    assert _op_types(proto) == ops | {"Identity"}


# ----------------------------------------------------------------------------- fused models
def _fused_parity(model, shape, path, pools):
    """``nn.utils.fuse(model)`` exported: onnx.checker passes, every MaxPool2d folded into a
    Conv2d is a MaxPool node again, and onnxruntime computes what the fused model computes."""
    pytest.importorskip("onnx")
    fused = fuse(model.eval())
    assert sum(isinstance(m, nn.Conv2d) and m.fused_pool is not None
               for m in fused.modules()) == pools   # the case under test: pools were fused
    if importlib.util.find_spec("onnxruntime") is None:
        cnnkit.onnx.export(fused, shape, path)         # runs onnx.checker (full_check)
        pytest.skip("onnxruntime is not installed: the fused model's graph passed "
                    "onnx.checker, its values were not compared")
    proto = _parity(fused, shape, path, batches=(2,))
    assert sum(n.op_type == "MaxPool" for n in proto.graph.node) == pools
    return proto


@pytest.mark.parametrize("name, shape, pools", [("lenet5", (1, 28, 28), 2),
                                                ("cifar_cnn", (3, 32, 32), 2)])
def test_fused_ready_made_models_run_in_onnxruntime(tmp_path, name, shape, pools):
    ck.manual_seed(0)
    model = _randomise_batch_norm(models.build(name))
    _fused_parity(model, shape, tmp_path / f"{name}_fused.onnx", pools)


@pytest.mark.parametrize("conv, pool", [
    (lambda: nn.Conv2d(3, 8, 3, padding=1), lambda: nn.MaxPool2d(2, 2)),
    (lambda: nn.Conv2d(3, 8, 3, padding=1),
     lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)),                   # 10x11 -> 6x6
    # the pooling's input is the convolution's output (4x5), not the model's input
    (lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2),
     lambda: nn.MaxPool2d(2, 2, ceil_mode=True)),                              # 4x5 -> 2x3
], ids=["2x2", "3x3-pad-ceil", "strided-dilated-conv-ceil"])
@pytest.mark.parametrize("bn_relu", [True, False], ids=["bn-relu", "conv-only"])
def test_fused_conv_max_pool_exports_the_pooling(tmp_path, conv, pool, bn_relu):
    """Conv2d (+BatchNorm2d+ReLU) + MaxPool2d fused into one Conv2d exports as Conv (Relu)
    MaxPool with the same windows, so the Linear after it sees the pooled size."""
    ck.manual_seed(3)
    conv, pool = conv(), pool()
    convs = [conv, nn.BatchNorm2d(8), nn.ReLU()] if bn_relu else [conv]
    body = nn.Sequential(*convs, pool)
    with ck.no_grad():
        features = body(ck.tensor(np.zeros((1, 3, 10, 11), np.float32))).shape[1:]
    model = _randomise_batch_norm(nn.Sequential(
        *convs, pool, nn.Flatten(), nn.Linear(int(np.prod(features)), 5)))
    _fused_parity(model, (3, 10, 11), tmp_path / "fused.onnx", pools=1)


# ----------------------------------------------------------------------------- group / layer norm
class GroupLayerNorm(nn.Module):
    """GroupNorm and LayerNorm with and without their affine parameters, on [N, C, H, W]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.gn = nn.GroupNorm(3, 6)
        self.gn_plain = nn.GroupNorm(2, 6, eps=1e-3, affine=False)
        self.ln = nn.LayerNorm((5, 5))
        self.ln_no_bias = nn.LayerNorm(5, bias=False)
        self.ln_plain = nn.LayerNorm((6, 5, 5), eps=1e-3, elementwise_affine=False)

    def forward(self, x):
        y = self.gn_plain(self.gn(self.conv(x)))
        return self.ln_plain(self.ln_no_bias(self.ln(y)))


def _randomise_parameters(model, seed=0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.5, 0.5, p.shape)
    return model


def _run_in_onnxruntime(model, shape, path, opset, batches=(1, 3)):
    """Export at ``opset`` and compare onnxruntime with cnnkit; returns the op types."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    proto = cnnkit.onnx.export(model, shape, path, opset=opset)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(opset)
    for n in batches:
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        with ck.no_grad():
            want = model(ck.tensor(x)).numpy()
        (got,) = sess.run(None, {"input": x})
        assert got.shape == want.shape
        assert _rel_err(got, want) <= RTOL, (n, _rel_err(got, want))
    return _op_types(proto)


@pytest.mark.parametrize("opset", [13, 16, 17])
def test_group_and_layer_norm_run_in_onnxruntime(tmp_path, opset):
    """LayerNorm: LayerNormalization from opset 17, the decomposition before; GroupNorm:
    InstanceNormalization over [N, G, -1] and the per-channel affine."""
    ck.manual_seed(3)
    model = _randomise_parameters(GroupLayerNorm())
    ops = _run_in_onnxruntime(model, (3, 5, 5), tmp_path / "norms.onnx", opset)
    assert "InstanceNormalization" in ops
    assert ("LayerNormalization" in ops) == (opset >= 17)
    if opset < 17:
        assert {"ReduceMean", "Sub", "Pow", "Sqrt", "Div"} <= ops


@pytest.mark.parametrize("opset", [13, 17])
def test_group_and_layer_norm_on_features(tmp_path, opset):
    """[N, C] inputs: GroupNorm over channel groups of a Linear's output, LayerNorm after it."""
    ck.manual_seed(4)
    model = _randomise_parameters(nn.Sequential(nn.Linear(6, 8), nn.GroupNorm(4, 8),
                                                nn.LayerNorm(8), nn.Linear(8, 3)), seed=1)
    _run_in_onnxruntime(model, (6,), tmp_path / "features.onnx", opset)


# ----------------------------------------------------------------------------- errors, CLI
def test_missing_onnx_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match=r'pip install "cnnkit\[onnx\]"'):
        cnnkit.onnx.export(models.digits_cnn(), (1, 8, 8), None)


def test_an_op_without_translation_is_named(tmp_path):
    pytest.importorskip("onnx")

    class Cropping(nn.Module):
        def forward(self, x):
            return x[:, :, 1:3]

    with pytest.raises(NotImplementedError, match="Index"):
        cnnkit.onnx.export(Cropping(), (2, 4, 4), tmp_path / "x.onnx")
    assert not os.path.exists(tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="without the batch dimension"):
        cnnkit.onnx.export(models.digits_cnn(), (0, 8, 8), tmp_path / "x.onnx")


def test_export_restores_training_mode(tmp_path):
    pytest.importorskip("onnx")
    model = models.digits_cnn()
    model.train()
    cnnkit.onnx.export(model, (1, 8, 8), tmp_path / "m.onnx")
    assert all(m.training for m in model.modules())


def test_command_line_export(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ck.manual_seed(0)
    model = _randomise_batch_norm(models.digits_cnn(width=8))
    from cnnkit import train

    ck.save(train.checkpoint_dict(model, epoch=1), tmp_path / "best.safetensors")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ck.__file__)), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "cnnkit", "export", "best.safetensors", "--onnx",
                        "digits.onnx"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "digits.onnx" in r.stdout and "[N, 1, 8, 8]" in r.stdout
    sess = ort.InferenceSession(str(tmp_path / "digits.onnx"),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    model.eval()
    with ck.no_grad():
        want = model(ck.tensor(x)).numpy()
    assert _rel_err(sess.run(None, {"input": x})[0], want) <= RTOL
    # a whole saved model works too, and a wrong path is a clean error
    ck.save(model, tmp_path / "model.safetensors")
    r = subprocess.run([sys.executable, "-m", "cnnkit", "export", "model.safetensors", "--onnx",
                        "m2.onnx", "--input", "1x8x8"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "m2.onnx")
    r = subprocess.run([sys.executable, "-m", "cnnkit", "export", "nope.safetensors", "--onnx",
                        "x.onnx"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 2 and "nope.safetensors" in r.stderr
