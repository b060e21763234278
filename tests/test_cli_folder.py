"""The folder -> train -> predict path of the command line, on small image folders in the
real formats (Pillow writes them): `cnnkit train --dataset folder:PATH`, `cnnkit predict`,
`cnnkit eval --tta`, `cnnkit export`, TensorBoard logs, and runs that never overwrite runs."""

import json
import os

import numpy as np
import pytest

from cnnkit.cli import main

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _picture(kind, rng, size):
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    mask = (x // 4) % 2 == 0 if kind == "stripes" else ((x - w / 2) ** 2 + (y - h / 2) ** 2
                                                          < (min(h, w) / 3) ** 2)
    fg, bg = rng.integers(0, 256, size=(2, 3))
    return np.where(mask[..., None], fg, bg).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two classes of JPEGs and PNGs of mixed sizes, one grayscale PNG among them."""
    root = tmp_path_factory.mktemp("photos") / "pics"
    rng = np.random.default_rng(0)
    for kind in ("discs", "stripes"):
        (root / kind).mkdir(parents=True)
        for i in range(14):
            size = (int(rng.integers(24, 60)), int(rng.integers(24, 60)))
            img = Image.fromarray(_picture(kind, rng, size))
            if i == 0:
                img.convert("L").save(root / kind / f"{i}.png")
            elif i % 3 == 0:
                img.save(root / kind / f"{i}.png")
            else:
                img.save(root / kind / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("work")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(["train", "--dataset", f"folder:{photos}@16", "--epochs", "2", "--quiet",
                     "--threads", "1", "--val-fraction", "0.2", "--augment", "alexnet"])
    finally:
        os.chdir(old)
    assert code == 0
    return cwd, cwd / "runs" / "cifar_cnn-folder"


def test_train_on_a_folder_writes_the_run(trained, capsys):
    cwd, run = trained
    assert (run / "best.safetensors").is_file() and (run / "last.safetensors").is_file()
    from cnnkit import train

    model, prep, ckpt = train.load_model(run / "best.safetensors")
    assert ckpt["metadata"]["classes"] == ["discs", "stripes"]
    assert ckpt["metadata"]["input_shape"] == [3, 16, 16]
    assert ckpt["metadata"]["args"]["augment"] == "alexnet"
    assert ckpt["config"]["args"]["input_size"] == [16, 16]


def test_predict_prints_the_top_classes_of_each_image(photos, trained, capsys, monkeypatch):
    cwd, run = trained
    monkeypatch.chdir(cwd)
    files = [str(photos / "discs" / "1.jpg"), str(photos / "stripes" / "0.png")]
    assert main(["predict", str(run / "best.safetensors"), *files, "--top", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for f, line in zip(files, lines):
        assert line.startswith(f"{f}: ")
        ranked = line.split(": ", 1)[1].split(", ")
        assert len(ranked) == 2                     # --top 5 of two classes
        probs = [float(r.split()[1].rstrip("%")) for r in ranked]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(100, abs=0.02)
        assert {r.split()[0] for r in ranked} == {"discs", "stripes"}


def test_predict_json_batches_a_folder_and_matches_the_model(photos, trained, capsys,
                                                             monkeypatch):
    from cnnkit import data, functional, train
    from cnnkit.tensor import Tensor, no_grad

    cwd, run = trained
    monkeypatch.chdir(cwd)
    assert main(["predict", str(run / "best.safetensors"), str(photos), "--json",
                 "--batch-size", "5", "--top", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    preds = doc["predictions"]
    assert len(preds) == 28 and doc["input_shape"] == [3, 16, 16]
    assert [p["file"] for p in preds] == sorted(p["file"] for p in preds)
    # the same numbers as the model on the same decoding and preprocessing
    model, prep, _ = train.load_model(run / "best.safetensors")
    x = np.stack([data.load_image(p["file"], 16) for p in preds[:6]])
    with no_grad():
        want = functional.softmax(model(Tensor(prep(x))), dim=1).data
    for p, w in zip(preds[:6], want):
        top = p["top"][0]
        assert top["class"] == ["discs", "stripes"][int(np.argmax(w))]
        assert top["probability"] == pytest.approx(float(w.max()), rel=1e-4)


def test_predict_tta_and_eval_tta(photos, trained, capsys, monkeypatch):
    cwd, run = trained
    monkeypatch.chdir(cwd)
    ckpt = str(run / "best.safetensors")
    assert main(["predict", ckpt, str(photos / "discs"), "--tta", "flip", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tta"] == "flip" and len(doc["predictions"]) == 14
    for tta in ("none", "flip", "ten_crop"):
        assert main(["eval", ckpt, "--tta", tta]) == 0
        out = capsys.readouterr().out
        assert "accuracy: " in out and "(6 images)" in out    # 20 % of 28 is the test split
        assert ("test-time augmentation" in out) == (tta != "none")
    assert main(["eval", ckpt, str(run / "last.safetensors"), "--tta", "ten_crop"]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 models" in out and "test-time augmentation ten_crop" in out
    assert "ensemble (mean softmax): " in out


def test_predict_names_a_broken_file(photos, trained, capsys, tmp_path):
    _, run = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not an image")
    assert main(["predict", str(run / "best.safetensors"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_export_uses_the_trained_input_size(trained, capsys, tmp_path):
    pytest.importorskip("onnx")
    _, run = trained
    out = tmp_path / "m.onnx"
    assert main(["export", str(run / "best.safetensors"), "--onnx", str(out)]) == 0
    assert "input [N, 3, 16, 16]" in capsys.readouterr().out and out.is_file()


def test_a_second_run_gets_a_fresh_folder_and_out_refuses_to_overwrite(photos, trained,
                                                                      capsys, monkeypatch):
    cwd, run = trained
    monkeypatch.chdir(cwd)
    before = (run / "best.safetensors").read_bytes()
    spec = f"folder:{photos}@16"
    assert main(["train", "--dataset", spec, "--epochs", "1", "--quiet", "--threads", "1",
                 "--augment", "none"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint: runs/cifar_cnn-folder-2/best.safetensors" in out
    assert (run / "best.safetensors").read_bytes() == before          # the first run is kept
    # an explicit --out holding a run: refused, naming the ways out
    assert main(["train", "--dataset", spec, "--epochs", "1", "--quiet", "--out",
                 str(run)]) == 2
    err = capsys.readouterr().err
    assert "already holds another run's checkpoints" in err
    assert "--resume" in err and "--overwrite" in err
    assert (run / "best.safetensors").read_bytes() == before
    # ... unless asked to
    other = cwd / "runs" / "cifar_cnn-folder-2"
    assert main(["train", "--dataset", spec, "--epochs", "1", "--quiet", "--threads", "1",
                 "--out", str(other), "--overwrite"]) == 0
    capsys.readouterr()
    # --resume continues in the run's own folder
    assert main(["train", "--resume", str(run / "last.safetensors"), "--epochs", "3",
                 "--quiet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: {run / 'best.safetensors'}" in out and "epoch 3/3" in out


def test_tensorboard_option(photos, capsys, monkeypatch, tmp_path):
    pytest.importorskip("tensorboardX")
    acc = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", f"folder:{photos}@16", "--epochs", "2", "--quiet",
                 "--threads", "1", "--tensorboard", "tb"]) == 0
    assert "tensorboard logs: tb" in capsys.readouterr().out
    ea = acc.EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("epoch/val_acc")] == [1, 2]
    assert "filters" in ea.Tags()["images"]


def test_a_corrupt_file_is_named_or_skipped_with_skip_bad(photos, tmp_path, capsys, monkeypatch):
    import shutil

    root = tmp_path / "pics"
    shutil.copytree(photos, root, ignore=shutil.ignore_patterns(".cnnkit-cache"))
    (root / "discs" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    monkeypatch.chdir(tmp_path)
    args = ["train", "--epochs", "1", "--quiet", "--threads", "1", "--augment", "none"]
    assert main(args + ["--dataset", f"folder:{root}@16"]) == 2
    err = capsys.readouterr().err
    assert "zz_broken.jpg" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    with pytest.warns(UserWarning, match=r"1 .*zz_broken\.jpg"):
        assert main(args + ["--dataset", f"folder:{root}@16,skip_bad"]) == 0
    assert "(20 train / 2 validation / 6 test images)" in capsys.readouterr().out
