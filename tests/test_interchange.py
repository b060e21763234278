"""PyTorch weight interchange for the ready-made models: the same architectures written in
torch here (same state_dict keys); weights moved either way give the same logits."""

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import models
from cnnkit.io import from_torch_state_dict, to_torch_state_dict

RTOL = 1e-4


def _rel_err(got, want):
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


# ----------------------------------------------------------------------------- torch twins
def torch_cifar_cnn(torch, num_classes=10):
    tnn = torch.nn

    def cbr(cin, cout):
        return [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout),
                tnn.ReLU()]

    return tnn.Sequential(
        *cbr(3, 32), *cbr(32, 32), tnn.MaxPool2d(2), tnn.Dropout(0.25),
        *cbr(32, 64), *cbr(64, 64), tnn.MaxPool2d(2), tnn.Dropout(0.25),
        tnn.Flatten(),
        tnn.Linear(64 * 8 * 8, 512, bias=False), tnn.BatchNorm1d(512), tnn.ReLU(),
        tnn.Dropout(0.5), tnn.Linear(512, num_classes))


def torch_alexnet(torch, num_classes=10):
    tnn = torch.nn
    lrn = (5, 5e-4, 0.75, 2.0)
    features = tnn.Sequential(
        tnn.Conv2d(3, 96, 11, stride=4), tnn.ReLU(), tnn.MaxPool2d(3, stride=2),
        tnn.LocalResponseNorm(*lrn),
        tnn.Conv2d(96, 256, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, stride=2),
        tnn.LocalResponseNorm(*lrn),
        tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 384, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
        tnn.MaxPool2d(3, stride=2))
    classifier = tnn.Sequential(
        tnn.Dropout(0.5), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(),
        tnn.Dropout(0.5), tnn.Linear(4096, 4096), tnn.ReLU(),
        tnn.Linear(4096, num_classes))
    model = tnn.Sequential()
    model.add_module("features", features)
    model.add_module("flatten", tnn.Flatten())
    model.add_module("classifier", classifier)
    return model


def torch_resnet20(torch, num_classes=10):
    tnn, F = torch.nn, torch.nn.functional

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.shortcut = tnn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride=stride,
                                                          bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            stages, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(3):
                    blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                    cin = cout
                stages.append(tnn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.pool = tnn.AdaptiveAvgPool2d(1)
            self.flatten = tnn.Flatten()
            self.fc = tnn.Linear(64, num_classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(self.flatten(self.pool(x)))

    return ResNet()


CASES = {
    "cifar_cnn": (torch_cifar_cnn, (2, 3, 32, 32)),
    "resnet20": (torch_resnet20, (2, 3, 32, 32)),
    "alexnet": (torch_alexnet, (1, 3, 227, 227)),   # 58 M parameters: one image
}


def _randomise_torch_statistics(torch, model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(0.5 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(c, generator=g))
            m.num_batches_tracked.fill_(seed + 7)


@pytest.mark.parametrize("name", list(CASES))
def test_weights_move_both_ways_with_the_same_logits(name):
    torch = pytest.importorskip("torch")
    twin, shape = CASES[name]
    torch.manual_seed(0)
    ck.manual_seed(0)
    ours = models.build(name, num_classes=10)
    ours.eval()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)

    def logits_ours():
        with ck.no_grad():
            return ours(ck.tensor(x)).numpy()

    def logits_theirs(m):
        with torch.no_grad():
            return m(torch.from_numpy(x)).numpy()

    # PyTorch -> cnnkit: {k: v.numpy()} loads strictly (keys, shapes and 0-d counters agree)
    theirs = twin(torch).eval()
    with torch.no_grad():
        _randomise_torch_statistics(torch, theirs, 1)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    assert _rel_err(logits_ours(), logits_theirs(theirs)) <= RTOL
    sd = ours.state_dict()
    for k, v in theirs.state_dict().items():
        assert sd[k].shape == tuple(v.shape), k
        if k.endswith("num_batches_tracked"):
            assert sd[k].dtype == np.int64 and int(sd[k]) == 8

    # cnnkit -> PyTorch: to_torch_state_dict gives what torch.from_numpy and a strict
    # load_state_dict accept, with the dtypes torch keeps
    ck.manual_seed(2)
    ours = models.build(name, num_classes=10) if name != "alexnet" else ours
    if name == "alexnet":                # re-initialising 58 M weights is slow: perturb them
        for p in ours.parameters():
            p.data *= np.float32(1.25)
    ours.eval()
    exported = to_torch_state_dict(ours)
    assert list(exported) == list(theirs.state_dict())
    fresh = theirs                       # every parameter and buffer is overwritten
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()}, strict=True)
    for k, v in fresh.state_dict().items():
        assert v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
    assert _rel_err(logits_theirs(fresh), logits_ours()) <= RTOL
    # the exported arrays are copies: torch shares them, cnnkit's own must stay untouched
    first = next(iter(exported))
    exported[first][...] = 0
    assert np.abs(ours.state_dict()[first]).max() > 0


def test_torch_tensors_convert_without_torch_specific_code():
    torch = pytest.importorskip("torch")
    theirs = torch_resnet20(torch)
    sd = from_torch_state_dict(theirs.state_dict())
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["bn1.num_batches_tracked"].shape == () and sd["bn1.num_batches_tracked"].dtype \
        == np.int64
    ours = models.resnet20()
    ours.load_state_dict(sd)
    np.testing.assert_array_equal(ours.state_dict()["conv1.weight"],
                                  theirs.state_dict()["conv1.weight"].numpy())


def test_dtypes_and_layouts_are_normalised():
    state = {"w": np.arange(6, dtype=np.float64).reshape(2, 3).T, "n": np.array(3, np.int32),
             "b": np.ones(2, np.float32)}
    out = to_torch_state_dict(state)
    assert out["w"].dtype == np.float32 and out["w"].flags.c_contiguous
    np.testing.assert_array_equal(out["w"], state["w"])
    assert out["n"].shape == () and out["n"].dtype == np.int64
    assert out["b"] is not state["b"] and out["b"].flags.writeable


def test_interchange_needs_no_torch():
    """Importing cnnkit and moving weights never imports torch (or onnx)."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        "import cnnkit, cnnkit.io, cnnkit.onnx\n"
        "from cnnkit import models\n"
        "m = models.digits_cnn()\n"
        "sd = cnnkit.io.to_torch_state_dict(m)\n"
        "m.load_state_dict(cnnkit.io.from_torch_state_dict(sd))\n"
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ck.__file__)), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
