"""cnnkit.train: a real training run on digits, exact resume, early stopping, the plateau
schedule on validation accuracy, checkpoints, evaluate, Ensemble, plots, the progress bar."""

import time

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import data, models, nn, optim, train
from cnnkit.ensemble import Ensemble


@pytest.fixture(scope="module")
def digits():
    tr, te = data.load_digits()
    prep = data.ChannelMean(std=True).fit(tr.images)
    return tr, te, prep


def _setup(digits, seed=0, lr=0.05, scheduler="step", augment=True):
    tr, te, prep = digits
    ck.manual_seed(seed)
    steps = [prep, data.RandomCrop(8, padding=1)] if augment else [prep]
    train_loader = data.DataLoader(tr, 32, shuffle=True, seed=seed, transform=data.Compose(steps))
    val_loader = data.DataLoader(te, 128, transform=prep)
    model = models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    if scheduler == "step":
        sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    else:
        sched = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=1)
    return model, opt, sched, train_loader, val_loader


def test_training_on_digits_reaches_95_percent_quickly(digits, tmp_path):
    ck.set_num_threads(2)
    t0 = time.perf_counter()
    model, opt, sched, tl, vl = _setup(digits, scheduler="plateau")
    hist = train.fit(model, tl, vl, epochs=10, optimizer=opt, scheduler=sched,
                     checkpoint_dir=tmp_path, preprocessing=digits[2],
                     metadata={"dataset": "digits"})
    seconds = time.perf_counter() - t0
    result = train.evaluate(model, vl)
    assert result.accuracy >= 0.95, hist
    assert seconds < 60
    assert len(hist) == 10 and hist.epoch == list(range(1, 11))
    assert hist.train_loss[-1] < hist.train_loss[0] / 3
    assert all(r > 0 for r in hist.images_per_s)
    assert hist.val_acc[-1] == pytest.approx(result.accuracy)
    # both checkpoints exist and load into a working model with its preprocessing
    best, prep, ckpt = train.load_model(tmp_path / "best.safetensors")
    assert ckpt["epoch"] == hist.best_epoch
    assert ckpt["metadata"] == {"dataset": "digits"}
    np.testing.assert_array_equal(prep.mean, digits[2].mean)
    assert train.evaluate(best, vl).accuracy == pytest.approx(hist.best_acc)
    last, _, ckpt = train.load_model(tmp_path / "last.safetensors")
    assert ckpt["epoch"] == 10 and ckpt["optimizer"]["class"] == "SGD"
    assert ckpt["scheduler"]["class"] == "ReduceLROnPlateau"
    assert train.evaluate(last, vl).accuracy == result.accuracy


def _params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_resume_equals_straight_run(digits, tmp_path):
    """2 epochs, then a fresh process-like restart from last.safetensors for 2 more, gives the
    same parameters, optimizer state and schedule as 4 epochs straight (same seed, threads)."""
    ck.set_num_threads(2)
    model, opt, sched, tl, vl = _setup(digits)
    straight = train.fit(model, tl, vl, epochs=4, optimizer=opt, scheduler=sched)
    want, want_opt = _params(model), opt.state_dict()

    model, opt, sched, tl, vl = _setup(digits)
    train.fit(model, tl, vl, epochs=2, optimizer=opt, scheduler=sched, checkpoint_dir=tmp_path)
    # a new model, optimizer and scheduler, built from a different seed: all must be restored
    model, opt, sched, tl, vl = _setup(digits, seed=0)
    ck.manual_seed(999)
    model = models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    resumed = train.fit(model, tl, vl, epochs=4, optimizer=opt, scheduler=sched,
                        resume=tmp_path / "last.safetensors")
    got = _params(model)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    got_opt = opt.state_dict()
    assert got_opt["param_groups"][0]["lr"] == want_opt["param_groups"][0]["lr"] == 0.0125
    for i, st in want_opt["state"].items():
        np.testing.assert_array_equal(got_opt["state"][i]["momentum_buffer"],
                                      st["momentum_buffer"])
    assert resumed.epoch == [1, 2, 3, 4]
    assert resumed.lr == straight.lr == [0.05, 0.05, 0.025, 0.025]
    assert resumed.train_loss == straight.train_loss
    assert resumed.val_acc == straight.val_acc


def test_plateau_schedule_steps_on_validation_accuracy_and_early_stopping(digits, tmp_path):
    # a learning rate too small to change any prediction: accuracy plateaus at once
    model, opt, sched, tl, vl = _setup(digits, lr=1e-12, scheduler="plateau", augment=False)
    model.eval()   # frozen batch-norm statistics so validation accuracy cannot move
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0
    hist = train.fit(model, tl, vl, epochs=20, optimizer=opt, scheduler=sched,
                     early_stopping=3, monitor="val_acc")
    assert hist.stopped_early and len(hist) == 4     # epoch 1 sets the best, 3 bad epochs
    assert len(set(hist.val_acc)) == 1
    # patience 1: the lr drops after the second bad epoch (epoch 3), the new lr is used in 4
    assert hist.lr == pytest.approx([1e-12, 1e-12, 1e-12, 1e-13])


def test_callbacks_can_stop_and_progress_bar_is_quiet_without_a_terminal(digits, capsys):
    model, opt, sched, tl, vl = _setup(digits)
    seen = []

    def cb(epoch, logs):
        seen.append((epoch, round(logs["val_acc"], 4)))
        return epoch == 2

    hist = train.fit(model, tl, vl, epochs=5, optimizer=opt, callbacks=[cb])
    assert len(hist) == 2 and [e for e, _ in seen] == [1, 2]
    err = capsys.readouterr().err
    assert "epoch 1/5" not in err          # stderr is not a terminal under pytest
    model, opt, sched, tl, vl = _setup(digits)
    hist = train.fit(model, tl, None, epochs=1, optimizer=opt, progress=True, verbose=True)
    out = capsys.readouterr()
    assert "epoch 1/1" in out.err and "img_s" in out.err    # the tqdm bar
    assert out.out.startswith("epoch 1/1  loss ")           # the per-epoch line
    assert hist.val_acc == [None] and hist.best_acc == hist.train_acc[0]


class _Fixed(nn.Module):
    """Returns preset scores for consecutive batches."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.i = scores, 0

    def forward(self, x):
        n = x.shape[0]
        out = self.scores[self.i:self.i + n]
        self.i = (self.i + n) % len(self.scores)
        return ck.tensor(out)


def test_evaluate_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 5])
    scores = np.zeros((8, 6), np.float32)
    pred = np.array([0, 1, 1, 1, 2, 0, 3, 4])
    scores[np.arange(8), pred] = 1.0
    scores[7, 5] = 0.5      # right class second: top-5 counts it
    ds = data.ArrayDataset(np.zeros((8, 1, 1, 1), np.float32), labels)
    r = train.evaluate(_Fixed(scores), data.DataLoader(ds, 3), loss=None)
    assert r.accuracy == pytest.approx(5 / 8) and r.count == 8
    assert r.top5 == pytest.approx(1.0)
    assert r.confusion[0].tolist() == [1, 1, 0, 0, 0, 0]
    assert r.confusion[5].tolist() == [0, 0, 0, 0, 1, 0]
    assert r.confusion.sum() == 8
    np.testing.assert_allclose(r.per_class_accuracy[[0, 1, 2, 3, 5]], [0.5, 1, 0.5, 1, 0])
    assert np.isnan(r.per_class_accuracy[4])   # no image of class 4
    few = train.evaluate(_Fixed(scores[:, :4]), data.DataLoader(
        data.ArrayDataset(np.zeros((6, 1, 1, 1), np.float32), labels[:6]), 4))
    assert few.top5 is None


def test_ensemble_averages_softmax_probabilities(rng):
    ck.manual_seed(3)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(4, 3)) for _ in range(3)]
    x = rng.standard_normal((5, 1, 2, 2)).astype(np.float32)
    ens = Ensemble(members)
    probs = ens(ck.tensor(x)).data

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    want = np.mean([softmax(m(ck.tensor(x)).data.astype(np.float64)) for m in members], axis=0)
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    labels = want.argmax(axis=1)
    report = ens.evaluate(data.DataLoader(data.ArrayDataset(x, labels), 2))
    assert report["ensemble"] == 1.0 and len(report["members"]) == 3
    assert all(0 <= a <= 1 for a in report["members"])


def test_plots_write_pngs(digits, tmp_path):
    pytest.importorskip("matplotlib")
    from cnnkit import plot

    model, opt, sched, tl, vl = _setup(digits)
    hist = train.fit(model, tl, vl, epochs=2, optimizer=opt)
    paths = [plot.plot_history(hist, tmp_path / "curves.png"),
             plot.plot_filters(model, tmp_path / "filters.png"),
             plot.plot_activations(model, digits[2](digits[1].images[0]),
                                   tmp_path / "act.png")]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert model.training    # plot_activations restored the mode
    with pytest.raises(ValueError, match="no Conv2d"):
        plot.plot_filters(nn.Sequential(nn.Linear(2, 2)), tmp_path / "x.png")
