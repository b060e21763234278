"""The cnnkit command, run in a subprocess as a user would (python -m cnnkit, which is what the
console script calls): what the README shows."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnkit

PYTHONPATH = str(Path(cnnkit.__file__).resolve().parent.parent)
ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd, timeout=120):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "cnnkit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`cnnkit train` with no arguments, as the README's first command runs it."""
    cwd = tmp_path_factory.mktemp("cli")
    t0 = time.perf_counter()
    r = run("train", cwd=cwd)
    return r, cwd, time.perf_counter() - t0


def test_train_without_arguments(trained):
    r, cwd, seconds = trained
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("cnnkit train: digits_cnn on digits (1293 train / 144 validation / "
                          "360 test images), 15 epochs")
    assert "epoch 1/15  loss" in out and "epoch 15/15  loss" in out
    acc = float(re.search(r"final test accuracy: ([\d.]+)%", out).group(1))
    assert acc >= 97.0, out
    # best.safetensors (lowest validation loss) is at least as good as the last epoch
    best = re.search(r"best checkpoint \(epoch \d+, lowest validation loss [\d.]+, validation "
                     r"accuracy [\d.]+%\): test accuracy ([\d.]+)%", out)
    assert best and float(best.group(1)) >= acc, out
    path = re.search(r"checkpoint: (\S+)", out).group(1)
    assert path == os.path.join("runs", "digits_cnn-digits", "best.safetensors")
    assert (cwd / path).is_file() and (cwd / "runs/digits_cnn-digits/last.safetensors").is_file()
    assert seconds < 60


def test_eval_prints_accuracy_per_class_and_confusion(trained):
    _, cwd, _ = trained
    r = run("eval", "runs/digits_cnn-digits/best.safetensors", cwd=cwd)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("runs/digits_cnn-digits/best.safetensors (digits_cnn, epoch ")
    assert re.match(r"accuracy: 9\d\.\d\d% \(360 images\)", lines[1])
    assert lines[2].startswith("top-5 accuracy: ")
    assert "per-class accuracy:" in lines and len([line for line in lines if "%" in line]) == 12
    i = lines.index("confusion matrix (rows: true class, columns: predicted):")
    rows = [list(map(int, line.split()[1:])) for line in lines[i + 2:i + 12]]
    assert sum(map(sum, rows)) == 360
    r = run("eval", "runs/digits_cnn-digits/best.safetensors",
            "runs/digits_cnn-digits/last.safetensors", cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert "ensemble of 2 models on digits test set (360 images):" in r.stdout
    assert re.search(r"ensemble \(mean softmax\): \d+\.\d\d%", r.stdout)


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    r = run("train", "--epochs", "2", "--out", "run", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("train", "--resume", "run/last.safetensors", "--epochs", "3", "--quiet",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "epoch 3/3  loss" in r.stdout
    assert "epoch 1/3" not in r.stdout and "epoch 2/3" not in r.stdout
    assert "checkpoint: run/best.safetensors" in r.stdout   # the resumed run's folder


def test_summary_alexnet(tmp_path):
    r = run("summary", "alexnet", "--input", "3x227x227", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for vol in ("[55x55x96]", "[27x27x96]", "[27x27x256]", "[13x13x256]", "[13x13x384]",
                "[6x6x256]", "[4096]", "[1000]"):
        assert vol in out, vol
    assert "Total params: 62,378,344" in out
    r = run("summary", "alexnet", "--input", "3x227", cwd=tmp_path)
    assert r.returncode != 0 and "CxHxW" in r.stderr


def test_plot_writes_three_pngs(trained):
    pytest.importorskip("matplotlib")
    _, cwd, _ = trained
    r = run("plot", "runs/digits_cnn-digits/best.safetensors", "--out", "plots", cwd=cwd)
    assert r.returncode == 0, r.stderr
    written = re.findall(r"wrote (\S+)", r.stdout)
    assert [os.path.basename(p) for p in written] == [
        "best-curves.png", "best-filters.png", "best-activations.png"]
    for p in written:
        assert (cwd / p).read_bytes()[:4] == b"\x89PNG"


def test_bench_prints_a_table(tmp_path):
    r = run("bench", "--quick", "--seconds", "0.05", "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 threads" in r.stdout
    assert ("| model | batch | train img/s fp32 | train img/s bf16 | inference img/s fp32 | "
            "inference img/s bf16 | inference img/s int8 |") in r.stdout
    assert re.search(r"\| digits_cnn \| 64 \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d,]+ \|",
                     r.stdout)
    assert "bf16 path " + cnnkit.cpu_info()["bf16_path"] in r.stdout
    assert "int8 path " + cnnkit.cpu_info()["int8_path"] in r.stdout


@pytest.mark.parametrize("command, option", [
    ("", "COMMAND"), ("train", "--resume"), ("eval", "CHECKPOINT"), ("summary", "--input"),
    ("plot", "--image"), ("bench", "--quick"),
])
def test_help(tmp_path, command, option):
    r = run(*([command] if command else []), "--help", cwd=tmp_path)
    assert r.returncode == 0 and option in r.stdout and r.stdout.startswith("usage: cnnkit")


def test_train_help_shows_percent_signs_once(tmp_path):
    r = run("train", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "%%" not in r.stdout
    assert re.search(r"10%\s+of\s+the\s+training\s+set", r.stdout)


def test_missing_data_is_a_clear_error(tmp_path):
    r = run("train", "--dataset", f"mnist:{tmp_path}", cwd=tmp_path)
    assert r.returncode == 2
    assert "cnnkit train: error: load_mnist: expected train-images-idx3-ubyte" in r.stderr
    assert "Traceback" not in r.stderr


def test_console_script_is_declared():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["cnnkit"] == "cnnkit.cli:main"
    assert "scikit-learn" in " ".join(meta["project"]["dependencies"])
    assert meta["project"]["optional-dependencies"]["plot"] == ["matplotlib>=3.5"]
