"""Every script in examples/ runs in a subprocess, as a reader would run it, and prints what the
lecture's slide shows (issue 10).
A new example without a test here fails test_every_example_is_tested."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cnnkit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PYTHONPATH = str(Path(cnnkit.__file__).resolve().parent.parent)
TESTED = set()


def run_example(name, *args, timeout=180):
    TESTED.add(name)
    env = dict(os.environ, PYTHONPATH=PYTHONPATH + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_conv_arithmetic():
    out = run_example("conv_arithmetic.py")
    assert "stride 1: (W - F + 2P)/S + 1 = (7 - 3 + 2*0)/1 + 1 = 5  -> 5x5 output" in out
    assert "stride 2: (W - F + 2P)/S + 1 = (7 - 3 + 2*0)/2 + 1 = 3  -> 3x3 output" in out
    assert "stride 3: input 7, filter 3, stride 3: (7 - 3)/3 + 1 = 2.33, does not fit" in out
    assert "output volume: 32x32x10" in out
    assert "= 750 + 10 = 760" in out
    for f, p in ((3, 1), (5, 2), (7, 3)):
        assert f"F = {f}, P = {p}: (W - F + 2P)/S + 1 = (32 - {f} + 2*{p})/1 + 1 = 32" in out


def test_why_convolution():
    out = run_example("why_convolution.py")
    counts = {m.group(1).strip(): int(m.group(2).replace(",", ""))
              for m in re.finditer(r"^  (.+?)\s{2,}([\d,]+)$", out, re.M)}
    assert counts["fully connected"] == 32 * 32 * 30 * 30 * 16 + 30 * 30 * 16
    assert counts["locally connected"] == 30 * 30 * 16 * 9 + 16 * 30 * 30
    assert counts["tiled (2x2 tiles)"] == 4 * 16 * 9 + 16
    assert counts["convolutional"] == 16 * 9 + 16
    assert "max |conv(shift(x)) - shift(conv(x))| = 0  (equal: True)" in out
    assert "(unchanged: True)" in out


def test_backprop():
    out = run_example("backprop.py")
    assert "forward:  q = x + y = 3, f = q * z = -12" in out
    assert "df/dq = z = -4, df/dz = q = 3, dq/dx = dq/dy = 1" in out
    assert "f = -12; x.grad = -4, y.grad = -4, z.grad = 3" in out
    assert "add distributes: a + b -> a.grad = 2, b.grad = 2" in out
    assert "max routes: max(a, b) -> a.grad = 2, b.grad = 0" in out
    assert "mul swaps: a * b -> a.grad = 2 * b = -2, b.grad = 2 * a = 6" in out


def test_activations(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_example("activations.py", tmp_path)
    rows = {line[:17].strip(): line[17:].split() for line in out.splitlines()
            if line[:17].strip() in ("sigmoid", "tanh", "ReLU", "Leaky ReLU (0.1)", "ELU")}
    assert len(rows) == 5
    assert float(rows["sigmoid"][4]) == pytest.approx(0.25, abs=1e-3)  # max gradient 1/4
    assert float(rows["sigmoid"][2]) < 0.01 and float(rows["tanh"][2]) < 0.01  # saturated
    assert float(rows["ReLU"][2]) == 0.0 and float(rows["Leaky ReLU (0.1)"][2]) == 0.1
    assert "maxout of (x, -0.5 x) at x = -4, 0, 4: 2, 0, 4" in out
    assert (tmp_path / "activations.png").stat().st_size > 10_000


def test_preprocessing_init():
    out = run_example("preprocessing_init.py")
    assert "MeanImage:   mean of shape [1, 8, 8]" in out
    assert "ChannelMean: mean of shape [1, 1, 1]" in out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    names = re.findall(r"\S.*?(?=\s{2,}|$)", lines[start][len("layer "):].strip())
    table = [line.split() for line in lines[start + 1:start + 11]]
    assert len(table) == 10 and len(names) == 7
    stds = {n: [float(row[i + 1]) for row in table] for i, n in enumerate(names)}
    assert stds["tanh, std 0.01"][-1] < 1e-6 < stds["tanh, std 0.01"][0]   # shrinks
    assert stds["ReLU, std 0.01"][-1] < 1e-6
    assert min(stds["tanh, std 1"]) > 0.9                                  # saturated
    assert all(0.4 < s < 1.5 for s in stds["ReLU, He"])                    # steady
    assert all(0.4 < s < 1.0 for s in stds["tanh, 0.01 + BN"] + stds["ReLU, 0.01 + BN"])


def test_alexnet():
    out = run_example("alexnet.py")
    assert re.search(r"features\.0 \(Conv2d\)\s+\[55x55x96\]\s+34,944", out)
    assert "Total params: 62,378,344" in out
    assert "34,848 weights (~35K)" in out
    assert ("batch 128, SGD lr 0.01 momentum 0.9 weight decay 0.0005, augmented (alexnet), "
            "recipe alexnet") in out
    assert "optimizer: SGD(lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0005)" in out
    assert "ReduceLROnPlateau(mode='max', factor=0.1" in out
    assert "dropout 0.5, 0.5" in out
    assert "augmentation: RandomResizedCrop, RandomHorizontalFlip, ColorJitter" in out
    assert "dry run: nothing trained" in out


def test_ensemble():
    out = run_example("ensemble.py")
    members = [float(v) for v in re.findall(r"member \(seed \d\): ([\d.]+)%", out)]
    ensemble = float(re.search(r"ensemble \(mean softmax of 3\): ([\d.]+)%", out).group(1))
    assert len(members) == 3 and all(70 < m <= 100 for m in members)
    assert ensemble >= min(members)


def test_filters_activations(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_example("filters_activations.py", tmp_path)
    acc = float(re.search(r"digits_cnn after 4 epochs: ([\d.]+)% test accuracy", out).group(1))
    assert acc > 85
    assert "first layer: weight [32, 1, 3, 3] (32 filters)" in out
    for name in ("filters.png", "activations.png"):
        assert (tmp_path / name).stat().st_size > 5_000
        assert f"wrote {tmp_path / name}" in out


def test_own_images():
    pytest.importorskip("PIL")
    out = run_example("own_images.py", "--epochs", "10")
    assert re.search(r"classes checks, discs, stripes; 144 train / 36 test images of 3x32x32", out)
    assert "epoch 10/10  loss" in out
    acc = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    assert acc > 50, out     # three classes: chance is 33 %
    preds = re.findall(r"^(\w+)/000\.jpg: (\w+) [\d.]+%, (\w+) [\d.]+%$", out, re.M)
    assert [p[0] for p in preds] == ["checks", "discs", "stripes"]
    assert "cnnkit predict " in out


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {name for name in dir(sys.modules[__name__]) if name.startswith("test_")}
    missing = [s for s in scripts if f"test_{s[:-3]}" not in tested]
    assert not missing, f"examples without a test in tests/test_examples.py: {missing}"

