"""cnnkit.save / cnnkit.load: safetensors + JSON metadata, exact round trips, atomic writes."""

import collections
import math
import os

import cnnkit as ck
import numpy as np
import pytest
from cnnkit import models, optim


def test_state_dict_round_trip_keeps_keys_order_dtypes_and_0d(tmp_path):
    ck.manual_seed(0)
    model = models.digits_cnn()
    sd = model.state_dict()
    path = tmp_path / "m.safetensors"
    ck.save(sd, path)
    back = ck.load(path)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype, k
        assert back[k].shape == sd[k].shape, k
        np.testing.assert_array_equal(back[k], sd[k])
    # batch norm's num_batches_tracked is a 0-d int64 and must stay 0-d
    assert back["1.num_batches_tracked"].shape == ()
    assert back["1.num_batches_tracked"].dtype == np.int64
    # and the file is a plain safetensors file with PyTorch's key names
    from safetensors.numpy import load_file

    assert set(load_file(str(path))) == set(sd)
    fresh = models.digits_cnn()
    fresh.load_state_dict(back)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


def test_views_are_saved_by_value_and_loaded_c_contiguous(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    views = {
        "transposed": a.T,
        "fortran": np.asfortranarray(a),
        "strided": a[::2, ::-3],
        "scalar": np.array(3.5, dtype=np.float32),
        "int_scalar": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "float64": np.linspace(0, 1, 5),
        "bool": np.array([True, False]),
    }
    ck.save(views, tmp_path / "v.safetensors")
    back = ck.load(tmp_path / "v.safetensors")
    for k, v in views.items():
        assert back[k].shape == v.shape, k
        assert back[k].dtype == v.dtype, k
        assert back[k].flags.c_contiguous, k
        np.testing.assert_array_equal(back[k], v)


def test_nested_python_values_round_trip(tmp_path):
    obj = {
        "epoch": 3,
        "lr": 0.05,
        "best": -math.inf,
        "name": "digits_cnn",
        "flag": True,
        "nothing": None,
        "betas": (0.9, 0.999),
        "by_index": {0: {"momentum_buffer": np.ones((2, 2), np.float32), "step": 4}, 1: {}},
        "milestones": collections.Counter({5: 1, 8: 2}),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "rng": {"state": 2**127 + 12345, "inc": 2**100},
        "list": [1, "two", np.arange(3), [np.float32(1.5)]],
        "numpy_scalar": np.float64(2.5),
    }
    ck.save(obj, tmp_path / "n.safetensors")
    back = ck.load(tmp_path / "n.safetensors")
    assert back["epoch"] == 3 and back["lr"] == 0.05 and back["best"] == -math.inf
    assert back["name"] == "digits_cnn" and back["flag"] is True and back["nothing"] is None
    assert back["betas"] == (0.9, 0.999) and isinstance(back["betas"], tuple)
    assert set(back["by_index"]) == {0, 1}
    np.testing.assert_array_equal(back["by_index"][0]["momentum_buffer"], np.ones((2, 2)))
    assert back["by_index"][0]["step"] == 4 and back["by_index"][1] == {}
    assert back["milestones"] == collections.Counter({5: 1, 8: 2})
    assert isinstance(back["milestones"], collections.Counter)
    assert list(back["ordered"]) == ["b", "a"]
    assert back["rng"] == {"state": 2**127 + 12345, "inc": 2**100}
    assert back["list"][:2] == [1, "two"]
    np.testing.assert_array_equal(back["list"][2], np.arange(3))
    assert back["list"][3] == [1.5]
    assert back["numpy_scalar"] == 2.5 and type(back["numpy_scalar"]) is float


def test_optimizer_and_scheduler_state_survive_a_file(tmp_path):
    ck.manual_seed(1)
    model = models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = optim.lr_scheduler.MultiStepLR(opt, [2, 4], gamma=0.5)
    for p in model.parameters():
        p.grad = np.full_like(p.data, 0.01)
    opt.step()
    sched.step()
    ck.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
            tmp_path / "o.safetensors")
    back = ck.load(tmp_path / "o.safetensors")
    model2 = models.digits_cnn()
    model2.load_state_dict(model.state_dict())
    opt2 = optim.SGD(model2.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched2 = optim.lr_scheduler.MultiStepLR(opt2, [2, 4], gamma=0.5)
    opt2.load_state_dict(back["optimizer"])
    sched2.load_state_dict(back["scheduler"])
    for o, s, m in ((opt, sched, model), (opt2, sched2, model2)):
        for p in m.parameters():
            p.grad = np.full_like(p.data, 0.02)
        o.step()
        s.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.05
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    ck.save({"w": np.zeros(3, np.float32)}, path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        ck.save({"w": np.ones(3, np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before            # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # and no temporary file is left
    ck.save({"w": np.ones(3, np.float32)}, path)  # a successful write replaces it
    np.testing.assert_array_equal(ck.load(path)["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        ck.load(tmp_path / "nope.safetensors")
    good = tmp_path / "good.safetensors"
    ck.save({"w": np.arange(1000, dtype=np.float32)}, good)
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="cut.safetensors.*truncated"):
        ck.load(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, this is not a checkpoint")
    with pytest.raises(ValueError, match="junk.safetensors"):
        ck.load(junk)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ValueError, match="tiny.safetensors"):
        ck.load(tiny)
    with pytest.raises(TypeError, match="cannot store a set"):
        ck.save({"s": {1, 2}}, tmp_path / "x.safetensors")
