"""cnnkit.save / cnnkit.load: safetensors + JSON metadata, exact round trips, atomic writes."""

import collections
import math
import os

import numpy as np
import pytest

import cnnkit as ck
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


# ----------------------------------------------------------------------------- whole models
@pytest.mark.parametrize("name, shape", [("digits_cnn", (2, 1, 8, 8)),
                                         ("cifar_cnn", (2, 3, 32, 32)),
                                         ("resnet20", (2, 3, 32, 32))])
def test_a_saved_model_comes_back_rebuilt_from_its_config(tmp_path, name, shape):
    ck.manual_seed(3)
    model = models.build(name, num_classes=7)
    model.eval()
    path = tmp_path / f"{name}.safetensors"
    ck.save(model, path)
    back = ck.load(path)                     # no architecture repeated by the caller
    assert type(back) is type(model) and back.config == model.config
    assert back.config["args"]["num_classes"] == 7
    assert back.training is False
    sd, bsd = model.state_dict(), back.state_dict()
    assert list(bsd) == list(sd)
    for k in sd:
        assert bsd[k].dtype == sd[k].dtype and bsd[k].shape == sd[k].shape, k
        np.testing.assert_array_equal(bsd[k], sd[k], err_msg=k)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with ck.no_grad():
        np.testing.assert_array_equal(back(ck.tensor(x)).numpy(), model(ck.tensor(x)).numpy())
    # the file is also a plain state dict under PyTorch's key names
    from safetensors.numpy import load_file

    assert set(load_file(str(path))) == set(sd)
    # and the metadata says which cnnkit wrote it
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta["cnnkit_version"] == ck.__version__ and meta["format"] == "cnnkit-checkpoint-1"


def test_models_nested_in_a_checkpoint_are_rebuilt_and_keep_their_mode(tmp_path):
    a, b = models.digits_cnn(width=8), models.lenet5()
    b.eval()
    ck.save({"student": a, "teacher": [b], "epoch": 2}, tmp_path / "two.safetensors")
    back = ck.load(tmp_path / "two.safetensors")
    assert back["epoch"] == 2
    assert back["student"].config == a.config and back["student"].training is True
    assert back["teacher"][0].config == b.config and back["teacher"][0].training is False
    np.testing.assert_array_equal(back["student"].state_dict()["0.weight"],
                                  a.state_dict()["0.weight"])


def test_a_model_without_config_cannot_be_saved_whole(tmp_path):
    from cnnkit import nn

    with pytest.raises(TypeError, match="Sequential.*no config.*state_dict"):
        ck.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "x.safetensors")
    assert not os.path.exists(tmp_path / "x.safetensors")


# ----------------------------------------------------------------------------- every state
def _train_checkpoint(model, opt, sched, prep, epoch=3):
    from cnnkit import train

    return train.checkpoint_dict(model, opt, sched, epoch=epoch, preprocessing=prep,
                                 metadata={"dataset": "digits", "classes": list("0123456789")})


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW"])
@pytest.mark.parametrize("sched_name", ["StepLR", "MultiStepLR", "CosineAnnealingLR",
                                        "ReduceLROnPlateau"])
def test_training_checkpoint_round_trips_every_state(tmp_path, opt_name, sched_name):
    """Model, optimizer, scheduler, preprocessing, RNG, epoch, config and version survive a
    file; continuing from the file gives the same parameters and learning rates as never
    having stopped."""
    from cnnkit import data, train

    def build(seed):
        ck.manual_seed(seed)
        model = models.digits_cnn(width=4)
        kwargs = {"SGD": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
                  "Adam": {"lr": 1e-2, "betas": (0.8, 0.9)},
                  "AdamW": {"lr": 1e-2, "weight_decay": 0.1}}[opt_name]
        opt = getattr(optim, opt_name)(model.parameters(), **kwargs)
        s = optim.lr_scheduler
        sched = {"StepLR": lambda: s.StepLR(opt, step_size=2, gamma=0.5),
                 "MultiStepLR": lambda: s.MultiStepLR(opt, [1, 3], gamma=0.3),
                 "CosineAnnealingLR": lambda: s.CosineAnnealingLR(opt, T_max=5),
                 "ReduceLROnPlateau": lambda: s.ReduceLROnPlateau(opt, mode="max",
                                                                   patience=0)}[sched_name]()
        return model, opt, sched

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    loss_fn = ck.nn.CrossEntropyLoss()

    def steps(model, opt, sched, n):
        for _ in range(n):
            model.train()
            opt.zero_grad()
            loss_fn(model(ck.tensor(x)), y).backward()   # dropout draws from the global RNG
            opt.step()
            if isinstance(sched, optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(0.5)   # never improves: the lr drops
            else:
                sched.step()

    prep = data.ChannelMean(std=True).fit(rng.standard_normal((20, 1, 8, 8)))
    model, opt, sched = build(0)
    steps(model, opt, sched, 3)
    path = tmp_path / "ckpt.safetensors"
    ck.save(_train_checkpoint(model, opt, sched, prep), path)
    steps(model, opt, sched, 3)                        # the run that never stopped

    model2, opt2, sched2 = build(99)                   # different weights and RNG stream
    ck.manual_seed(12345)
    ckpt = ck.load(path)
    assert ckpt["epoch"] == 3 and ckpt["config"] == model.config
    assert ckpt["cnnkit_version"] == ck.__version__
    assert ckpt["optimizer"]["class"] == opt_name and ckpt["scheduler"]["class"] == sched_name
    assert ckpt["metadata"]["classes"] == list("0123456789")
    prep2 = data.preprocessing_from_state(ckpt["preprocessing"])
    assert type(prep2) is data.ChannelMean and prep2.std
    np.testing.assert_array_equal(prep2.mean, prep.mean)
    np.testing.assert_array_equal(prep2.scale, prep.scale)
    np.testing.assert_array_equal(prep2(x), prep(x))
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"]["state"])
    sched2.load_state_dict(ckpt["scheduler"]["state"])
    ck.random.generator().bit_generator.state = ckpt["rng"]["cnnkit"]
    steps(model2, opt2, sched2, 3)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert sched2.state_dict().keys() == sched.state_dict().keys()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v, err_msg=k)
    # train.load_model rebuilds the model and the preprocessing from the same file
    model3, prep3, _ = train.load_model(path)
    assert model3.config == model.config and not model3.training
    np.testing.assert_array_equal(prep3.mean, prep.mean)


def test_rng_state_round_trip_reproduces_dropout_masks(tmp_path):
    from cnnkit import functional as F

    ck.manual_seed(5)
    F.dropout(ck.tensor(np.ones((4, 4), np.float32)), 0.5)
    ck.save({"rng": ck.random.generator().bit_generator.state}, tmp_path / "r.safetensors")
    want = [F.dropout(ck.tensor(np.ones((8, 8), np.float32)), 0.5).numpy() for _ in range(3)]
    ck.manual_seed(6)
    ck.random.generator().bit_generator.state = ck.load(tmp_path / "r.safetensors")["rng"]
    got = [F.dropout(ck.tensor(np.ones((8, 8), np.float32)), 0.5).numpy() for _ in range(3)]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_transposed_weights_and_batch_norm_counters_round_trip_in_a_model(tmp_path):
    ck.manual_seed(0)
    model = models.cifar_cnn(num_classes=4)
    model.train()
    with ck.no_grad():
        model(ck.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32))))
    w = model[0].weight
    # a Fortran-ordered weight (as a transposing reader may leave it) saves by value
    w.data = np.asfortranarray(w.data)
    assert not w.data.flags.c_contiguous
    ck.save(model, tmp_path / "m.safetensors")
    back = ck.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back[0].weight.data, w.data)
    nbt = back.state_dict()["1.num_batches_tracked"]
    assert nbt.shape == () and nbt.dtype == np.int64 and int(nbt) == 1


# ----------------------------------------------------------------------------- bad files
def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


def test_corrupt_truncated_and_foreign_files_raise_value_error_naming_file(tmp_path):
    import io
    import zipfile

    good = tmp_path / "good.safetensors"
    ck.save({"w": np.arange(1000, dtype=np.float32), "step": 3}, good)
    data = good.read_bytes()
    n = int.from_bytes(data[:8], "little")
    cases = {
        # a flipped bit in the tensor data: only the checksum can see it
        "bitflip.safetensors": (_flip(data, 8 + n + 1234), "corrupt.*checksum"),
        # half the file (an interrupted copy)
        "half.safetensors": (data[: len(data) // 2], "truncated"),
        # just the length prefix
        "prefix.safetensors": (data[:8], "truncated|not a safetensors"),
        # the header's JSON broken
        "header.safetensors": (data[:8] + b"#" + data[9:], "corrupt safetensors header"),
        "empty.safetensors": (b"", "too short"),
        # foreign files: a zip (what torch.save writes), a PNG, a .npy, JSON
        "model.pt": (None, "not a safetensors"),
        "image.png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a safetensors"),
        "array.npy": (None, "not a safetensors"),
        "list.safetensors": ((8).to_bytes(8, "little") + b"[1,2,3] ", "not a safetensors"),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    cases["model.pt"] = (buf.getvalue(), cases["model.pt"][1])
    buf = io.BytesIO()
    np.save(buf, np.arange(10.0))
    cases["array.npy"] = (buf.getvalue(), cases["array.npy"][1])
    for name, (content, problem) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}.*({problem})"):
            ck.load(p)
    # cnnkit metadata that does not parse
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "meta.safetensors"),
              metadata={"cnnkit": "{not json"})
    with pytest.raises(ValueError, match="meta.safetensors.*corrupt cnnkit metadata"):
        ck.load(tmp_path / "meta.safetensors")
    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "dangling.safetensors"),
              metadata={"cnnkit": '{"x": {"__array__": "missing"}}'})
    with pytest.raises(ValueError, match="dangling.safetensors.*inconsistent"):
        ck.load(tmp_path / "dangling.safetensors")
    # a safetensors file from another program is not foreign: it loads as its tensors
    save_file({"b": np.ones(3, np.float32), "a": np.zeros(2, np.int64)},
              str(tmp_path / "other.safetensors"))
    other = ck.load(tmp_path / "other.safetensors")
    assert set(other) == {"a", "b"} and other["a"].dtype == np.int64


def test_loading_into_a_different_architecture_names_the_keys(tmp_path):
    path = tmp_path / "digits.safetensors"
    ck.save(models.digits_cnn().state_dict(), path)
    sd = ck.load(path)
    with pytest.raises(RuntimeError) as e:
        models.digits_cnn(width=16).load_state_dict(sd)
    assert "size mismatch for 0.weight" in str(e.value)
    assert "[32, 1, 3, 3]" in str(e.value) and "[16, 1, 3, 3]" in str(e.value)
    with pytest.raises(RuntimeError) as e:
        models.lenet5().load_state_dict(sd)
    msg = str(e.value)
    assert 'Unexpected key(s) in state_dict: "1.weight"' in msg        # digits' batch norm
    assert 'Missing key(s) in state_dict: "0.bias"' in msg              # lenet's conv bias
    # a whole-model file whose config no longer matches its tensors is refused by name
    model = models.digits_cnn()
    ck.save(model, path)
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), "np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["cnnkit"] = meta["cnnkit"].replace('"width": 32', '"width": 8')
    del meta["crc32"]
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="(?s)edited.safetensors.*size mismatch for 0.weight"):
        ck.load(tmp_path / "edited.safetensors")


# ----------------------------------------------------------------------------- atomicity
_SAVER = r"""
import sys
import numpy as np
import cnnkit as ck

path, start = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
i = start
while True:
    # 2 MB of tensors whose every value says which save wrote them
    ck.save({"i": i, "w": np.full(500_000, i, np.float32), "b": np.full((3, 7), -i, np.int64)},
            path)
    print(i, flush=True)
    i += 1
"""


def test_a_save_killed_at_random_moments_never_damages_the_previous_checkpoint(tmp_path):
    """SIGKILL a process that saves over the same file again and again, at random moments
    (while it writes, fsyncs or renames): the file is always a complete checkpoint, the
    last one the process finished or the one it was renaming into place."""
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "ckpt.safetensors"
    ck.save({"i": 0, "w": np.full(500_000, 0, np.float32), "b": np.full((3, 7), 0, np.int64)},
            path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ck.__file__)), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1")
    rnd = random.Random(7)
    last, rounds = 0, 8
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), str(last + 1)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        finished = [int(line) for line in proc.stdout.read().split()]
        proc.wait()
        proc.stdout.close()
        back = ck.load(path)                      # never truncated, never a mix of two saves
        i = back["i"]
        np.testing.assert_array_equal(back["w"], np.full(500_000, i, np.float32))
        np.testing.assert_array_equal(back["b"], np.full((3, 7), -i, np.int64))
        # the newest finished save is there, or the one after it (renamed, not yet reported)
        newest = finished[-1] if finished else last
        assert i in (newest, newest + 1), (i, newest)
        last = i
    # only stray temporary files of killed writes may remain beside the checkpoint
    assert all(n == "ckpt.safetensors" or n.startswith(".tmp-") for n in os.listdir(tmp_path))
