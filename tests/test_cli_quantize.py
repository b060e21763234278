"""`cnnkit quantize` (issue 19): a training checkpoint to an int8 one that eval and predict
accept, the accuracy before and after printed, clear refusals."""

import re

import numpy as np
import pytest
from test_cli import run

import cnnkit


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cliq")
    r = run("train", "--epochs", "5", "--quiet", "--out", "run", cwd=cwd)
    assert r.returncode == 0, r.stderr
    q = run("quantize", "run/best.safetensors", "--out", "int8.safetensors", cwd=cwd)
    return cwd, q


def test_quantize_prints_both_accuracies_and_writes_an_int8_checkpoint(quantized):
    cwd, q = quantized
    assert q.returncode == 0, q.stderr
    m = re.search(r"digits test accuracy: fp32 ([\d.]+)%, int8 ([\d.]+)% \(360 images\)",
                  q.stdout)
    assert m, q.stdout
    fp32, int8 = float(m.group(1)), float(m.group(2))
    assert int8 >= fp32 - 0.6  # 0.5 points, plus one image of 360 (0.28) of slack in print
    ckpt = cnnkit.load(cwd / "int8.safetensors")
    assert ckpt["quantized"]["per_channel"] is True
    assert ckpt["model"]["0.weight_int8"].dtype == np.int8
    e = run("eval", "int8.safetensors", cwd=cwd)
    assert e.returncode == 0, e.stderr
    assert "on digits test set (int8)" in e.stdout
    assert f"accuracy: {int8:.2f}%" in e.stdout


def test_quantize_refusals(quantized):
    cwd, _ = quantized
    r = run("quantize", "int8.safetensors", "--out", "again.safetensors", cwd=cwd)
    assert r.returncode != 0 and "is already quantized" in r.stderr
    r = run("quantize", "run/best.safetensors", "--out", "int8.safetensors", cwd=cwd)
    assert r.returncode != 0 and "exists; pass --overwrite" in r.stderr
    r = run("quantize", "run/best.safetensors", "--out", "nowhere/q.safetensors", cwd=cwd)
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = run("quantize", "run/best.safetensors", "--out", "q.safetensors",
            "--calibration-batches", "0", cwd=cwd)
    assert r.returncode == 2 and "--calibration-batches" in r.stderr


def test_an_int8_checkpoint_exports_to_onnx(quantized):
    pytest.importorskip("onnx")
    cwd, _ = quantized
    r = run("export", "int8.safetensors", "--onnx", "int8.onnx", cwd=cwd)
    assert r.returncode == 0, r.stderr
    import onnx

    ops = {n.op_type for n in onnx.load(str(cwd / "int8.onnx")).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
