"""Whole-model parity with PyTorch: same weights -> same logits, loss, gradients and parameters
after 5 SGD and 5 Adam steps; torch state_dicts load strictly."""

import numpy as np
import pytest
from core_ops import ADAPTIVE, BN, CE, CONV, LINEAR, MAXPOOL, RELU, requires_core

import cnnkit as ck
import cnnkit.nn as nn

needs_ops = requires_core(CONV, BN, RELU, MAXPOOL, ADAPTIVE, LINEAR, CE)


def cifar_net(lib):
    # no conv bias before batch norm: its gradient is zero up to rounding, which Adam would
    # blow up into lr-sized steps in random directions (in either library)
    def block(c_in, c_out):
        return [lib.Conv2d(c_in, c_out, 3, padding=1, bias=False), lib.BatchNorm2d(c_out),
                lib.ReLU(),
                lib.MaxPool2d(2)]

    return lib.Sequential(*block(3, 8), *block(8, 16), lib.Flatten(), lib.Dropout(0.5),
                          lib.Linear(16 * 2 * 2, 10))


def residual_net(lib):
    class Block(lib.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = lib.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = lib.BatchNorm2d(c_out)
            self.relu = lib.ReLU()
            self.conv2 = lib.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = lib.BatchNorm2d(c_out)
            self.shortcut = lib.Sequential()
            if stride != 1 or c_in != c_out:
                self.shortcut = lib.Sequential(lib.Conv2d(c_in, c_out, 1, stride=stride,
                                                          bias=False), lib.BatchNorm2d(c_out))

        def forward(self, x):
            h = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(h)) + self.shortcut(x))

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Sequential(lib.Conv2d(3, 8, 3, padding=1, bias=False),
                                       lib.BatchNorm2d(8), lib.ReLU())
            self.layer1 = Block(8, 8, 1)
            self.layer2 = Block(8, 16, 2)
            self.pool = lib.AdaptiveAvgPool2d(1)
            self.flatten = lib.Flatten()
            self.fc = lib.Linear(16, 10)

        def forward(self, x):
            return self.fc(self.flatten(self.pool(self.layer2(self.layer1(self.stem(x))))))

    return Net()


def rel_err(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(b).max(), 1e-12))


def _pair(torch, build):
    torch.manual_seed(0)
    theirs = build(torch.nn)
    ours = build(nn)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    for lib_model in (ours, theirs):
        lib_model.train()
        for m in lib_model.modules():  # dropout masks come from different generators
            if type(m).__name__ == "Dropout":
                m.eval()
    return ours, theirs


@pytest.mark.parametrize("build", [cifar_net, residual_net], ids=["cifar", "resnet"])
def test_torch_state_dict_loads_strictly(build):
    torch = pytest.importorskip("torch")
    theirs = build(torch.nn)
    ours = build(nn)
    tsd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(tsd)
    ours.load_state_dict(tsd, strict=True)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, tsd[k])
    # and back: ours -> torch
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


@needs_ops
@pytest.mark.parametrize("build", [cifar_net, residual_net], ids=["cifar", "resnet"])
@pytest.mark.parametrize("opt_name, kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=5e-4)),
    ("Adam", dict(lr=1e-3)),
])
def test_training_steps_match_torch(build, opt_name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(torch, build)
    opt_o = getattr(ck.optim, opt_name)(ours.parameters(), **kwargs)
    opt_t = getattr(torch.optim, opt_name)(theirs.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    tol = 1e-4
    for step in range(5):
        x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 10, 4)
        opt_o.zero_grad()
        opt_t.zero_grad()
        logits_o = ours(ck.tensor(x))
        logits_t = theirs(torch.tensor(x))
        assert rel_err(logits_o.data, logits_t.detach().numpy()) <= tol, f"logits, step {step}"
        loss_o = nn.CrossEntropyLoss()(logits_o, ck.tensor(y))
        loss_t = torch.nn.CrossEntropyLoss()(logits_t, torch.tensor(y))
        assert loss_o.item() == pytest.approx(loss_t.item(), rel=tol)
        loss_o.backward()
        loss_t.backward()
        grads = [(n, p.grad, q.grad.numpy()) for (n, p), (_, q) in
                 zip(ours.named_parameters(), theirs.named_parameters())]
        scale = max(np.abs(g).max() for _, _, g in grads)
        for name, a, b in grads:
            # relative to the tensor's largest gradient, floored at 1% of the model's largest
            err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-2 * scale)
            assert err <= tol, f"grad {name}, step {step}: {err:.2e}"
        opt_o.step()
        opt_t.step()
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        if k.endswith("num_batches_tracked"):
            assert v == tsd[k].item() == 5
        else:
            assert rel_err(v, tsd[k].numpy()) <= tol, f"{k} after 5 steps"
    # eval mode uses the running statistics: still the same logits
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with ck.no_grad(), torch.no_grad():
        assert rel_err(ours(ck.tensor(x)).data, theirs(torch.tensor(x)).numpy()) <= tol
