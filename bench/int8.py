"""int8 inference, cnnkit against PyTorch's int8 (FX static quantization, ``x86`` backend).

For cifar_cnn (3x32x32) and AlexNet (3x227x227), built with ``cnnkit.models.build(name)``
after ``cnnkit.manual_seed(0)`` in eval mode, each of these runs in its own subprocess with
``OMP_NUM_THREADS=n``:

- ``cnnkit fp32``: ``nn.utils.fuse(model)``, calls inside ``cnnkit.no_grad()``;
- ``cnnkit int8``: ``cnnkit.quantization.quantize(model, calibration)`` (min/max);
- ``PyTorch int8``: the model's torch.nn twin (bench/train.py's ``_to_torch``, loaded with its
  state_dict), ``prepare_fx`` with ``get_default_qconfig_mapping("x86")``, the same
  calibration batches, ``convert_fx``; calls inside ``torch.no_grad()``;
- ``ONNX Runtime fp32``: the file ``cnnkit.onnx.export`` writes for the unfused eval model
  (CPUExecutionProvider, ``intra_op_num_threads=n``, graph optimizations ORT_ENABLE_ALL; ORT
  folds the batch norms itself);
- ``ONNX Runtime int8``: that file after ``quant_pre_process`` and ORT's own
  ``quantize_static`` (QDQ, int8 weights per channel, uint8 activations, min/max) with the same
  calibration batches.

Calibration: 4 batches of 32 images, inputs: standard normal (``numpy.random.default_rng``,
seed 1 for calibration, 0 for the timed inputs). Timed: the large batch (cifar_cnn 128,
AlexNet 16) as images/s from the median of ``--calls`` calls after 3 warm-up calls, and batch 1
as the p50 of its calls in ms. Fidelity: each int8 model's logits on 256 other images
against cnnkit fp32's: max |difference| / max |fp32 logit| and the share of equal top-1
classes (random images, so this measures closeness to fp32, not accuracy).

    PYTHONPATH=python python3 bench/int8.py                 # both models, 2 threads
    PYTHONPATH=python python3 bench/int8.py --models cifar_cnn --threads 1,2 --calls 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name  # noqa: E402

MODELS = {"cifar_cnn": ((3, 32, 32), 128), "alexnet": ((3, 227, 227), 16)}
MODES = {"cnnkit_fp32": "cnnkit fp32", "cnnkit_int8": "cnnkit int8", "torch_int8": "PyTorch int8",
         "ort_fp32": "ONNX Runtime fp32", "ort_int8": "ONNX Runtime int8"}


def calibration(shape, rng=None):
    """The calibration batches every int8 bench uses: 4 of 32 standard normal images of
    ``shape`` (from ``numpy.random.default_rng(1)`` unless ``rng`` is given)."""
    import numpy as np

    rng = np.random.default_rng(1) if rng is None else rng
    return [rng.standard_normal((32,) + tuple(shape)).astype(np.float32) for _ in range(4)]


def _data(name):
    import numpy as np

    shape, big = MODELS[name]
    cal_rng, rng = np.random.default_rng(1), np.random.default_rng(0)
    cal = calibration(shape, cal_rng)
    check = cal_rng.standard_normal((256,) + shape).astype(np.float32)
    return cal, check, {b: rng.standard_normal((b,) + shape).astype(np.float32) for b in (1, big)}


def _time(fn, calls):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _ort(mode, model, input_shape, threads, cal):
    """ONNX Runtime on cnnkit's fp32 export; for ort_int8 after ORT's own static quantization."""
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import cnnkit as ck

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(cal)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        # The unfused eval model: the exporter cannot write a max pool fused into a
        # convolution; ORT folds the batch norms and fuses ReLU itself.
        ck.onnx.export(model, input_shape, path)
        if mode == "ort_int8":
            pre, q = os.path.join(tmp, "pre.onnx"), os.path.join(tmp, "q.onnx")
            quant_pre_process(path, pre)
            quantize_static(pre, q, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            path = q
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    note = f"onnxruntime {ort.__version__}" + (", QDQ per channel, min/max"
                                               if mode == "ort_int8" else "")
    return (lambda x: sess.run(None, {"input": x})[0]), note


def torch_fx_int8(twin, cal):
    """PyTorch's post-training static quantization of the torch.nn module ``twin`` (FX,
    ``get_default_qconfig_mapping("x86")``), calibrated on the float32 batches ``cal``."""
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with torch.no_grad():
        prepared = prepare_fx(twin.eval(), get_default_qconfig_mapping("x86"),
                              example_inputs=(torch.from_numpy(cal[0]),))
        for xb in cal:
            prepared(torch.from_numpy(xb))
        return convert_fx(prepared)


def runner(mode, model, input_shape, threads, cal, to_torch=None):
    """``(call, note)``: ``call(x)`` runs the eval-mode cnnkit ``model`` on the float32 batch
    ``x`` in ``mode`` (one of MODES) and returns the logits as an array; ``cal`` is the list
    of calibration batches; ``to_torch`` builds the model's torch.nn twin (default: bench/train.py's
    ``_to_torch``)."""
    import numpy as np

    import cnnkit as ck

    if mode.startswith("cnnkit"):
        m = (ck.nn.utils.fuse(model) if mode == "cnnkit_fp32"
             else ck.quantization.quantize(model, cal))

        def call(x):
            with ck.no_grad():
                return m(ck.tensor(x)).data
        info = ck.cpu_info()
        return call, info["int8_path"] if mode == "cnnkit_int8" else info["isa"]
    if mode.startswith("ort"):
        return _ort(mode, model, input_shape, threads, cal)
    import torch

    if to_torch is None:
        from train import _to_torch as to_torch
    torch.set_num_threads(threads)
    twin = to_torch(model)
    twin.load_state_dict({k: torch.from_numpy(np.array(v))
                          for k, v in model.state_dict().items()}, strict=True)
    qt = torch_fx_int8(twin, cal)

    def call(x):
        with torch.no_grad():
            return qt(torch.from_numpy(x)).numpy()
    return call, f"torch {torch.__version__}, engine {torch.backends.quantized.engine}"


def worker(mode, name, threads, calls):
    import numpy as np

    import cnnkit as ck

    ck.set_num_threads(threads)
    ck.manual_seed(0)
    model = ck.models.build(name).eval()
    cal, check, xs = _data(name)
    ref_call, _ = runner("cnnkit_fp32", model, MODELS[name][0], threads, cal)
    call, note = runner(mode, model, MODELS[name][0], threads, cal)
    ref = np.concatenate([ref_call(check[i:i + 32]) for i in range(0, len(check), 32)])
    out = np.concatenate([call(check[i:i + 32]) for i in range(0, len(check), 32)])
    big = MODELS[name][1]
    return {"note": note,
            "big_img_s": big / _time(lambda: call(xs[big]), calls),
            "b1_ms": 1e3 * _time(lambda: call(xs[1]), calls * 3),
            "rel_err": float(np.abs(out - ref).max() / np.abs(ref).max()),
            "top1_agree": float((out.argmax(1) == ref.argmax(1)).mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", default="2")
    ap.add_argument("--modes", default=",".join(MODES), help=f"of {','.join(MODES)}")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2, help="processes per case (best is kept)")
    args = ap.parse_args(argv)
    if args.worker:
        mode, name = args.worker
        print(json.dumps(worker(mode, name, int(args.threads), args.calls)))
        return 0
    models = args.models.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    print(f"{cpu_name()}; each mode, model and thread count in its own process; best of "
          f"{args.rounds} processes")
    print("| model | threads | mode | img/s (large batch) | batch 1 p50 ms | rel. logit error "
          "vs fp32 | top-1 = fp32 | path |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for name in models:
        for t in threads:
            for mode in args.modes.split(","):
                best = None
                for _ in range(args.rounds):
                    env = dict(os.environ, OMP_NUM_THREADS=str(t))
                    cmd = [sys.executable, __file__, "--worker", mode, name, "--threads", str(t),
                           "--calls", str(args.calls)]
                    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
                    if r.returncode != 0:
                        print(f"{mode} {name} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
                        break
                    res = json.loads(r.stdout.strip().splitlines()[-1])
                    if best is None:
                        best = res
                    else:
                        best["big_img_s"] = max(best["big_img_s"], res["big_img_s"])
                        best["b1_ms"] = min(best["b1_ms"], res["b1_ms"])
                if best is None:
                    continue
                print(f"| {name} (batch {MODELS[name][1]}) | {t} | {MODES[mode]} | "
                      f"{best['big_img_s']:,.0f} | {best['b1_ms']:.2f} | {best['rel_err']:.3g} | "
                      f"{100 * best['top1_agree']:.1f} % | {best['note']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
