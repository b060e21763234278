"""Bad values for every option of every command: a one-line error, a non-zero exit, no
traceback, and nothing written (neither in the working folder nor next to the checkpoint).

The commands run in this process through cnnkit.cli.main (what the console script calls), so
an uncaught exception fails the test with its traceback; a few cases also run as a real
process to check the exit status and stderr as a user sees them."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit.cli import main

PYTHONPATH = str(Path(cnnkit.__file__).resolve().parent.parent)


def _tree(root: Path) -> dict:
    """Every file under root with its size and modification time."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained digits checkpoint, an image, a corrupt image, an empty folder, a plain file,
    a folder holding an earlier run."""
    root = tmp_path_factory.mktemp("cli_fuzz")
    run = root / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--threads", "1", "--out", str(run)]) == 0
    from PIL import Image

    img = root / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)).save(
        img)
    bad = root / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(range(200)))
    (root / "empty").mkdir()
    plain = root / "notes.txt"
    plain.write_text("not a checkpoint\n")
    return {"root": root, "ckpt": str(run / "best.safetensors"), "run": str(run),
            "img": str(img), "bad": str(bad), "empty": str(root / "empty"),
            "plain": str(plain)}


def _cases(w):
    c, img = w["ckpt"], w["img"]
    train = [["--epochs", v] for v in ("0", "-3", "1.5", "x", "")] + \
        [["--batch-size", v] for v in ("0", "-1", "y")] + \
        [["--lr", v] for v in ("nan", "inf", "-inf", "-0.1", "0", "1e9", "lr")] + \
        [["--momentum", v] for v in ("5", "1", "-0.1", "nan")] + \
        [["--weight-decay", v] for v in ("-1", "nan", "inf", "2")] + \
        [["--val-fraction", v] for v in ("-0.1", "1.5", "1", "nan")] + \
        [["--threads", v] for v in ("0", "-2", "100000", "two")] + \
        [["--early-stopping", v] for v in ("-1", "0", "inf")] + \
        [["--seed", v] for v in ("-1", "1.5", "s")] + \
        [["--model", "nope"], ["--model", "alexnet"],            # alexnet cannot take 1x8x8
         ["--dataset", "nope"], ["--dataset", "digits:/x"], ["--dataset", "cifar10"],
         ["--dataset", "mnist:/no/such/folder"], ["--dataset", "cifar10:/no/such.tar.gz"],
         ["--dataset", "folder:/no/such/folder"], ["--dataset", f"folder:{w['empty']}"],
         ["--scheduler", "step"], ["--augment", "heavy"], ["--monitor", "accuracy"],
         ["--precision", "fp8"], ["--recipe", "vgg"], ["--resume", "/no/such.safetensors"],
         ["--resume", w["plain"]], ["--resume", c, "--epochs", "1"], ["--sync-bn"],
         ["--tensorboard", w["plain"]], ["--out", w["plain"]], ["--out", w["run"]],
         ["--val-fraction", "0.9999"], ["--no-such-option"]]
    cases = [("train", a) for a in train]
    cases += [("eval", a) for a in (
        ["/no/such.safetensors"], [w["plain"]], [c, "--batch-size", "0"],
        [c, "--threads", "0"], [c, "--precision", "x"], [c, "--tta", "x"],
        [c, "--dataset", "nope"], [c, "--dataset", "mnist:/no/such"], [c, "/no/such2"], [])]
    cases += [("predict", a) for a in (
        [c], [c, "/no/such.jpg"], [c, img, "--top", "0"], [c, img, "--top", "-1"],
        [c, img, "--batch-size", "0"], [c, w["bad"]], [c, w["empty"]], [c, w["plain"]],
        ["/no/such.safetensors", img], [w["plain"], img], [c, img, "--tta", "x"],
        [c, img, "--threads", "0"], [c, img, "--precision", "x"])]
    cases += [("export", a) for a in (
        [c], [c, "--onnx", "/no/such/dir/m.onnx"], [c, "--onnx", "m.onnx", "--opset", "12"],
        [c, "--onnx", "m.onnx", "--opset", "99"], [c, "--onnx", "m.onnx", "--input", "3x"],
        [c, "--onnx", "m.onnx", "--input", "0x8x8"], [c, "--onnx", "m.onnx", "--input", "3x8x8"],
        [c, "--onnx", w["empty"]], ["/no/such.safetensors", "--onnx", "m.onnx"],
        [w["plain"], "--onnx", "m.onnx"])]
    cases += [("summary", a) for a in (
        ["nope"], ["alexnet", "--input", "abc"], ["alexnet", "--input", "3x0x2"],
        ["alexnet", "--input", "3x8x8"], ["alexnet", "--num-classes", "0"],
        ["alexnet", "--num-classes", "x"], [])]
    cases += [("plot", a) for a in (
        ["/no/such.safetensors"], [w["plain"]], [c, "--image", "-1"], [c, "--image", "100000"],
        [c, "--out", w["plain"]], [c, "--dataset", "nope"])]
    cases += [("bench", a) for a in (
        ["--threads", "0"], ["--seconds", "0"], ["--seconds", "nan"], ["--seconds", "-1"],
        ["--seconds", "inf"])]
    cases += [(None, a) for a in (["frobnicate"], [], ["--version-x"])]
    return cases


def _ids():
    fake = {k: k for k in ("ckpt", "run", "img", "bad", "empty", "plain")}
    return [f"{cmd}:{' '.join(a)}" for cmd, a in _cases(fake)]


@pytest.mark.parametrize("index", range(len(_ids())), ids=_ids())
def test_bad_option_values_fail_cleanly_and_write_nothing(world, tmp_path, monkeypatch,
                                                          capsys, index):
    pytest.importorskip("PIL")
    command, args = _cases(world)[index]
    argv = ([command] if command else []) + args
    monkeypatch.chdir(tmp_path)
    before, before_world = _tree(tmp_path), _tree(world["root"])
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: a one-line error, status 2
        code = e.code
    err = capsys.readouterr().err
    assert code not in (0, None), f"{argv} succeeded"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err                       # one line, not a usage dump
    assert lines[0].startswith("cnnkit") and ": error: " in lines[0], err
    assert _tree(tmp_path) == before, f"{argv} wrote files"
    assert _tree(world["root"]) == before_world, f"{argv} changed the checkpoint folder"


@pytest.mark.parametrize("argv", [["train", "--lr", "nan"], ["train", "--epochs", "0"],
                                  ["train", "--momentum", "5"],
                                  ["train", "--val-fraction", "1.5"]])
def test_as_a_process(tmp_path, argv):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "cnnkit", *argv], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cnnkit {argv[0]}: error: argument ")
    assert not list(tmp_path.iterdir())
