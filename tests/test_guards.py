"""Training guards (issue 9): a NaN/Inf loss or gradient stops fit with an error naming the
epoch, the step and the parameter, before the parameters or the last checkpoint change;
on_nonfinite="skip" drops such steps instead."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import data, guards, models, nn, optim, train
from cnnkit.tensor import Function


class Poisoned:
    """A loader over a list of batches, with NaN images at (epoch, step) (both 1-based)."""

    def __init__(self, batches, epoch, step):
        self.batches, self.epoch, self.step, self.current = batches, epoch, step, 1

    def set_epoch(self, e):
        self.current = e + 1

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for i, (x, y) in enumerate(self.batches, start=1):
            if (self.current, i) == (self.epoch, self.step):
                x = ck.tensor(np.full(x.shape, np.nan, np.float32))
            yield x, y


@pytest.fixture(scope="module")
def digits():
    tr, _ = data.load_digits()
    prep = data.ChannelMean(std=True).fit(tr.images)
    x = prep(tr.images[:160]) if callable(prep) else tr.images[:160]
    return [(ck.tensor(np.ascontiguousarray(x[i:i + 32], dtype=np.float32)),
             ck.tensor(np.asarray(tr.labels[i:i + 32]))) for i in range(0, 160, 32)]


def _setup(digits):
    ck.manual_seed(0)
    model = models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, Poisoned(digits, 0, 0)


def _state(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def test_nan_loss_stops_fit_naming_epoch_and_step_and_keeps_last_checkpoint(digits, tmp_path):
    model, opt, loader = _setup(digits)
    train.fit(model, loader, epochs=1, optimizer=opt, checkpoint_dir=tmp_path)
    last = (tmp_path / "last.safetensors").read_bytes()
    before = _state(model)
    with pytest.raises(guards.NonFiniteError) as info:
        train.fit(model, Poisoned(loader.batches, 2, 3), epochs=3, optimizer=opt,
                  checkpoint_dir=tmp_path, resume=tmp_path / "last.safetensors")
    e = info.value
    assert (e.epoch, e.step) == (2, 3) and "epoch 2, step 3" in str(e) and "loss" in str(e)
    assert (tmp_path / "last.safetensors").read_bytes() == last  # the last good checkpoint
    # the two good steps of epoch 2 changed the parameters; the bad one changed nothing
    after = _state(model)
    assert all(np.isfinite(v).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)


class _InfGrad(Function):
    """Identity forward; an Inf gradient backward (a layer whose backward overflows)."""

    def forward(self, w):
        return w

    def backward(self, g):
        return (np.full_like(g, np.inf),)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(64, 16)
        self.head = nn.Linear(16, 10)
        self.poison = False

    def forward(self, x):
        h = ck.functional.relu(self.features(x.reshape(x.shape[0], -1)))
        w = _InfGrad.apply(self.head.weight) if self.poison else self.head.weight
        return ck.functional.linear(h, w, self.head.bias)


def _batches(n=6):
    rng = np.random.default_rng(0)
    return [(ck.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32)),
             ck.tensor(rng.integers(0, 10, 8))) for _ in range(n)]


def test_nonfinite_gradient_names_the_parameter():
    ck.manual_seed(0)
    net = _Net()
    net.poison = True
    opt = optim.SGD(net.parameters(), lr=0.1)
    before = _state(net)
    with pytest.raises(guards.NonFiniteError) as info:
        train.fit(net, _batches(), epochs=1, optimizer=opt)
    assert info.value.parameter == "head.weight"
    assert "'head.weight'" in str(info.value) and "epoch 1, step 1" in str(info.value)
    assert all(np.array_equal(before[k], v) for k, v in _state(net).items())


def test_skip_mode_drops_bad_steps_and_trains_on():
    ck.manual_seed(0)
    net = _Net()
    opt = optim.SGD(net.parameters(), lr=0.1)
    batches = _batches()
    batches[2] = (ck.tensor(np.full((8, 1, 8, 8), np.inf, np.float32)), batches[2][1])
    with pytest.warns(RuntimeWarning, match="skipped step.*epoch 1, step 3"):
        hist = train.fit(net, batches, epochs=2, optimizer=opt, on_nonfinite="skip")
    assert len(hist) == 2 and all(np.isfinite(hist.train_loss))
    assert all(np.isfinite(p.data).all() for p in net.parameters())


def test_skip_mode_restores_batch_norm_running_statistics(digits):
    model, opt, loader = _setup(digits)
    with pytest.warns(RuntimeWarning):
        train.fit(model, Poisoned(loader.batches, 1, 2), epochs=1, optimizer=opt,
                  on_nonfinite="skip")
    assert all(np.isfinite(v).all() for v in _state(model).values())


def test_on_nonfinite_must_be_known():
    with pytest.raises(ValueError, match="on_nonfinite"):
        train.fit(_Net(), _batches(), epochs=1, optimizer=None, on_nonfinite="ignore")
