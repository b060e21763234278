"""fit(monitor=...): which epoch best.safetensors holds and what early stopping waits on
(Keras's ModelCheckpoint / EarlyStopping rules); fit(log_dir=...): TensorBoard event files,
read back with TensorBoard's own event reader."""

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import data, models, optim, train
from cnnkit.plot import first_conv
from cnnkit.train import History


def _history(val_loss, val_acc, monitor):
    n = len(val_loss)
    return History(epoch=list(range(1, n + 1)), train_loss=[1.0] * n, train_acc=[0.5] * n,
                   val_loss=list(val_loss), val_acc=list(val_acc), lr=[0.1] * n,
                   images_per_s=[1.0] * n, seconds=[1.0] * n, monitor=monitor)


def test_val_loss_picks_the_lowest_loss_and_the_first_of_equals():
    h = _history([0.5, 0.3, 0.4, 0.3, 0.35], [0.8, 0.9, 0.95, 0.9, 0.97], "val_loss")
    assert h.best_epoch == 2 and h.best_loss == 0.3 and h.best_acc == 0.9
    assert h.epochs_without_improvement == 3       # 0.3 again at epoch 4 is not better


def test_val_acc_picks_the_highest_accuracy_and_breaks_ties_by_the_loss():
    h = _history([0.5, 0.3, 0.4, 0.2, 0.35], [0.8, 0.9, 0.95, 0.95, 0.9], "val_acc")
    assert h.best_epoch == 4                        # 95 % twice: the lower loss wins
    assert h.best_acc == 0.95 and h.best_loss == 0.2
    # early stopping counts from the last strict rise of the accuracy (epoch 3)
    assert h.epochs_without_improvement == 2
    assert _history([0.4, 0.4], [0.9, 0.9], "val_acc").best_epoch == 1


def test_without_validation_the_training_metrics_stand_in():
    h = History(epoch=[1, 2, 3], train_loss=[0.9, 0.5, 0.7], train_acc=[0.5, 0.6, 0.8],
                val_loss=[None] * 3, val_acc=[None] * 3, monitor="val_loss")
    assert h.best_epoch == 2
    h.monitor = "val_acc"
    assert h.best_epoch == 3


def test_histories_saved_before_monitor_existed_keep_choosing_by_accuracy():
    d = _history([0.5, 0.1], [0.9, 0.8], "val_loss").as_dict()
    del d["monitor"]
    assert History.from_dict(d).monitor == "val_acc" and History.from_dict(d).best_epoch == 1


@pytest.fixture(scope="module")
def digits():
    tr, te = data.load_digits()
    prep = data.ChannelMean(std=True).fit(tr.images)
    return tr, te, prep


def _run(digits, tmp_path, **kw):
    tr, te, prep = digits
    ck.manual_seed(0)
    ck.set_num_threads(2)
    tl = data.DataLoader(tr, 64, shuffle=True, seed=0, transform=prep)
    vl = data.DataLoader(te, 256, transform=prep)
    model = models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = train.fit(model, tl, vl, epochs=kw.pop("epochs", 5), optimizer=opt,
                     checkpoint_dir=tmp_path, preprocessing=prep, **kw)
    return hist, vl


@pytest.mark.parametrize("monitor", ["val_loss", "val_acc"])
def test_best_checkpoint_is_the_best_epoch_under_the_monitor(digits, tmp_path, monitor):
    hist, vl = _run(digits, tmp_path, monitor=monitor)
    values = hist.val_loss if monitor == "val_loss" else [-a for a in hist.val_acc]
    want = 1 + min(range(len(values)), key=lambda i: (values[i], hist.val_loss[i]))
    assert hist.best_epoch == want
    best, _, ckpt = train.load_model(tmp_path / "best.safetensors")
    assert ckpt["epoch"] == want
    assert ckpt["early_stopping"]["monitor"] == monitor
    r = train.evaluate(best, vl, loss=ck.nn.CrossEntropyLoss())
    assert r.loss == pytest.approx(hist.best_loss, rel=1e-5)
    assert r.accuracy == pytest.approx(hist.best_acc)


def test_early_stopping_waits_on_the_monitor(digits, tmp_path):
    hist, _ = _run(digits, tmp_path, epochs=30, early_stopping=2, monitor="val_loss")
    assert hist.stopped_early and len(hist) < 30
    assert hist.epochs_without_improvement == 2
    assert hist.best_epoch == len(hist) - 2


def test_bad_monitor_and_early_stopping_values(digits, tmp_path):
    with pytest.raises(ValueError, match="fit: monitor must be one of"):
        _run(digits, tmp_path, monitor="accuracy")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="fit: early_stopping must be"):
            _run(digits, tmp_path, early_stopping=bad)


def test_tensorboard_event_files_hold_the_history(digits, tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    log_dir = tmp_path / "tb"
    hist, vl = _run(digits, tmp_path, epochs=3, log_dir=log_dir)
    ea = accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_s"):
        events = ea.Scalars(f"epoch/{name}")
        assert [e.step for e in events] == [1, 2, 3]
        np.testing.assert_allclose([e.value for e in events], getattr(hist, name), rtol=1e-6)
    steps = ea.Scalars("train/loss")
    n = len(digits[0])
    sizes = [min(64, n - 64 * i) for i in range(-(-n // 64))]   # the batches of one epoch
    assert [e.step for e in steps] == list(range(1, 3 * len(sizes) + 1))
    # the mean of the per-step losses, weighted by batch size, is the epoch's training loss
    first = [e.value for e in steps[:len(sizes)]]
    assert np.dot(first, sizes) / n == pytest.approx(hist.train_loss[0], rel=1e-5)
    np.testing.assert_allclose([e.value for e in ea.Scalars("train/lr")], 0.1, rtol=1e-6)
    assert "filters" in tags["images"]
    img = ea.Images("filters")
    assert [e.step for e in img] == [1, 2, 3]
    conv = first_conv(models.digits_cnn())
    k, f = conv.weight.shape[0], conv.weight.shape[2]
    cols = int(np.ceil(np.sqrt(k)))
    assert img[-1].width == cols * (f + 1) + 1


def test_filter_grid_scales_each_filter_and_lays_them_out():
    from cnnkit.tensorboard import filter_grid

    w = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    g = filter_grid(w)
    assert g.shape == (3, 2 * 3 + 1, 3 * 3 + 1)            # 5 filters: 2 rows of 3
    tile = g[:, 1:3, 1:3]
    np.testing.assert_allclose(tile, (w[0] - w[0].min()) / np.ptp(w[0]), rtol=1e-6)
    assert g[:, 0].max() == 0 and g[:, 4:7, 7:9].max() == 0  # padding, the empty 6th cell
    grey = filter_grid(w[:, :1])
    np.testing.assert_array_equal(grey[0], grey[1])
    with pytest.raises(ValueError, match="filter_grid"):
        filter_grid(w[0])
