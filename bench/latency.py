"""Small-batch inference latency, cnnkit vs PyTorch vs ONNX Runtime: the same model and weights.

For cifar_cnn (3x32x32), AlexNet (3x227x227), resnet20 (3x32x32) and lenet5 (1x28x28), built
with ``cnnkit.models.build(name)`` after ``cnnkit.manual_seed(0)``, in eval mode, at batch 1, 2,
4 and 8 and with 2 and 1 threads: the p50 and p90 of the wall time of one forward call, in ms,
after 10 warm-up calls (60 timed calls per case by default, 20 for AlexNet; ``--calls``). The
input is the same for every framework (``numpy.random.default_rng(0)``, standard normal).

Every (framework or mode, model, thread count) runs in its own subprocess with
``OMP_NUM_THREADS=n``:

- cnnkit: ``nn.utils.fuse(model.eval())`` (batch norm folded, ReLU -- and a max pool right after
  a convolution -- run in the convolution's epilogue), fp32, calls inside ``cnnkit.no_grad()``,
  ``cnnkit.set_num_threads(n)``;
- PyTorch NCHW and PyTorch channels_last (model and input in ``torch.channels_last``): the cnnkit
  model rebuilt with ``torch.nn`` (bench/train.py's ``_to_torch``, plus twins of resnet's
  BasicBlock / ResNetCIFAR here) and loaded with its state_dict (strict); eval mode, calls
  inside ``torch.no_grad()``, ``torch.set_num_threads(n)``. Each worker first checks, once,
  that the twin's output matches cnnkit's to 1e-4 relative, and fails otherwise;
- ONNX Runtime (CPUExecutionProvider, intra_op_num_threads=n, inter_op_num_threads=1, graph
  optimizations ORT_ENABLE_ALL) on the file ``cnnkit.onnx.export`` writes. The fused model is
  exported where that works and gives cnnkit's output (to 1e-4 relative), else the *unfused*
  eval model: the exporter drops a max pool fused into a convolution (the graph then fails
  ``onnx.checker``), so cifar_cnn, AlexNet and lenet5 are exported unfused (ONNX Runtime does
  its own fusions), resnet20 fused. The table's notes say which was used.

Ratios are PyTorch's faster mode's p50 / cnnkit's p50 and ONNX Runtime's p50 / cnnkit's p50
(above 1: cnnkit is faster). A framework that is not installed is left out with a note.

int8 (a second table): ``cnnkit_int8`` (``cnnkit.quantization.quantize``), ``torch_int8``
(PyTorch FX static quantization, ``x86`` backend) and ``ort_int8`` (ONNX Runtime's
``quantize_static``, QDQ, per channel, of cnnkit's export), each calibrated on the same 4
batches of 32 standard normal images (bench/int8.py's ``runner``); ratios against cnnkit int8.
A model that a path cannot quantize gets a note instead of a column.

``--rounds R`` runs every worker R times, the frameworks taking turns, and reports per
framework the median over the rounds of each percentile: on a shared host whose speed changes
for minutes at a time (the same process can run 1.5-2x slower in one phase than in the next),
one process per framework compares phases, not frameworks.

    PYTHONPATH=python python3 bench/latency.py                  # prints the table
    PYTHONPATH=python python3 bench/latency.py --models cifar_cnn,lenet5 --batches 1 \\
        --threads 2 --calls 30
    PYTHONPATH=python python3 bench/latency.py --write-readme   # also writes README.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name, write_readme_table  # noqa: E402

MODELS = {  # name: (input shape, default timed calls)
    "cifar_cnn": ((3, 32, 32), 60),
    "alexnet": ((3, 227, 227), 20),
    "resnet20": ((3, 32, 32), 60),
    "lenet5": ((1, 28, 28), 60),
}
FRAMEWORKS = {  # name: (label, modules it needs)
    "cnnkit": ("cnnkit", ()),
    "torch": ("PyTorch NCHW", ("torch",)),
    "torch_cl": ("PyTorch channels_last", ("torch",)),
    "ort": ("ONNX Runtime", ("onnxruntime", "onnx")),
    "cnnkit_int8": ("cnnkit int8", ()),
    "torch_int8": ("PyTorch int8", ("torch",)),
    "ort_int8": ("ONNX Runtime int8", ("onnxruntime", "onnx")),
}
INT8 = ("cnnkit_int8", "torch_int8", "ort_int8")
FP32 = ("cnnkit", "torch", "torch_cl", "ort")
WARMUP = 10
RTOL = 1e-4


# --------------------------------------------------------------------------- models
def _cnnkit_model(name):
    """The eval-mode cnnkit model, unfused (what the twins mirror and the fallback export)."""
    import cnnkit as ck

    ck.manual_seed(0)
    return ck.models.build(name).eval()


def _to_torch(module):
    """The torch.nn twin of a cnnkit module tree: bench/train.py's, plus resnet's modules."""
    from train import _to_torch as twin

    return twin(module, _resnet_twin)


def _resnet_twin(module):
    """The twin of resnet's BasicBlock / ResNetCIFAR, None for any other module."""
    kind = type(module).__name__
    if kind == "BasicBlock":
        return _resnet_twins()[0](module)
    if kind == "ResNetCIFAR":
        return _resnet_twins()[1](module)
    return None


_TWINS = []


def _resnet_twins():
    """torch twins of cnnkit.models.resnet's BasicBlock and ResNetCIFAR (same attribute names,
    so the same state_dict keys, and the same forward)."""
    if _TWINS:
        return _TWINS
    import torch.nn as tnn
    import torch.nn.functional as tF

    class BasicBlock(tnn.Module):
        def __init__(self, m):
            super().__init__()
            for a in ("conv1", "bn1", "conv2", "bn2", "shortcut"):
                setattr(self, a, _to_torch(getattr(m, a)))

        def forward(self, x):
            out = tF.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return tF.relu(out + self.shortcut(x))

    class ResNetCIFAR(tnn.Module):
        def __init__(self, m):
            super().__init__()
            for a in ("conv1", "bn1", "layer1", "layer2", "layer3", "pool", "flatten", "fc"):
                setattr(self, a, _to_torch(getattr(m, a)))

        def forward(self, x):
            x = tF.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(self.flatten(self.pool(x)))

    _TWINS.extend([BasicBlock, ResNetCIFAR])
    return _TWINS


def _inputs(name, batches):
    import numpy as np

    shape = MODELS[name][0]
    return {b: np.random.default_rng(0).standard_normal((b,) + shape).astype(np.float32)
            for b in batches}


def _rel_err(y, ref):
    import numpy as np

    return float(np.abs(np.asarray(y) - ref).max() / max(float(np.abs(ref).max()), 1e-30))


# --------------------------------------------------------------------------- workers
def _percentiles(fn, calls):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()

    def q(p):  # linear interpolation between order statistics, as numpy's default
        pos = p * (len(times) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(times) - 1)
        return 1e3 * (times[lo] + (pos - lo) * (times[hi] - times[lo]))

    return {"p50": q(0.5), "p90": q(0.9)}


def worker(framework, name, threads, batches, calls):
    """p50/p90 (ms) per batch for one framework on one model; plus notes."""
    import cnnkit as ck

    ck.set_num_threads(threads)
    xs = _inputs(name, batches)
    model = _cnnkit_model(name)
    fused = ck.nn.utils.fuse(model)
    check_x = xs[max(batches)]
    with ck.no_grad():
        ref = fused(ck.tensor(check_x)).data
    res = {"batches": {}, "note": None}

    if framework == "cnnkit":
        for b in batches:
            xt = ck.tensor(xs[b])
            with ck.no_grad():
                res["batches"][b] = _percentiles(lambda: fused(xt), calls)
        return res

    if framework in INT8:
        # bench/int8.py's three int8 paths: cnnkit.quantization.quantize, PyTorch FX static
        # quantization (x86 backend) and ORT's quantize_static of cnnkit's export, calibrated
        # on the same 4 batches of 32 standard normal images
        from int8 import calibration, runner

        try:
            call, _ = runner(framework, model, MODELS[name][0], threads,
                             calibration(MODELS[name][0]), _to_torch)
            call(check_x)
        except Exception as e:  # a layer without an int8 path (resnet's residual add), ...
            res["note"] = (f"{name}: no {FRAMEWORKS[framework][0]} column "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:160]})")
            return res
        for b in batches:
            res["batches"][b] = _percentiles(lambda: call(xs[b]), calls)
        return res

    if framework in ("torch", "torch_cl"):
        import numpy as np
        import torch

        torch.set_num_threads(threads)
        twin = _to_torch(model)
        twin.load_state_dict({k: torch.from_numpy(np.array(v))
                              for k, v in model.state_dict().items()}, strict=True)
        twin.eval()
        fmt = torch.contiguous_format
        if framework == "torch_cl":
            fmt = torch.channels_last
            twin = twin.to(memory_format=fmt)
        with torch.no_grad():
            y = twin(torch.from_numpy(check_x).contiguous(memory_format=fmt)).numpy()
            err = _rel_err(y, ref)
            if not err <= RTOL:
                raise SystemExit(f"{name}: the torch twin ({framework}) differs from cnnkit by "
                                 f"{err:.2e} relative (> {RTOL:g})")
            for b in batches:
                xt = torch.from_numpy(xs[b]).contiguous(memory_format=fmt)
                res["batches"][b] = _percentiles(lambda: twin(xt), calls)
        return res

    import tempfile

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess, why = None, []
    with tempfile.TemporaryDirectory() as tmp:
        for which, m in (("fused", fused), ("unfused", model)):
            path = os.path.join(tmp, f"{name}_{which}.onnx")
            try:
                ck.onnx.export(m, MODELS[name][0], path)
                s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                err = _rel_err(s.run(None, {"input": check_x})[0], ref)
            except Exception as e:  # an op without a translation, a graph onnx rejects, ...
                why.append(f"{which}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            if err <= RTOL:
                sess = s
                res["note"] = f"{name}: ONNX export of the {which} model"
                break
            why.append(f"{which}: output differs from cnnkit by {err:.2e} relative")
    if sess is None:
        res["note"] = f"{name}: no ONNX Runtime column, cnnkit's export failed ({'; '.join(why)})"
        return res
    if why:
        res["note"] += f" (the fused export failed: {why[0]})"
    for b in batches:
        feed = {"input": xs[b]}
        res["batches"][b] = _percentiles(lambda: sess.run(None, feed), calls)
    return res


def run_worker(framework, name, threads, batches, calls):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", framework, name, "--threads", str(threads),
           "--batches", ",".join(map(str, batches)), "--calls", str(calls)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} {name} threads={threads} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["batches"] = {int(b): v for b, v in res["batches"].items()}
    return res


def run_rounds(frameworks, name, threads, batches, calls, rounds):
    """Each framework's worker ``rounds`` times, the frameworks taking turns (a slow phase of a
    shared host then hits every framework alike); per framework and batch, the median over the
    rounds of each percentile."""
    runs = {fw: [] for fw in frameworks}
    for _ in range(rounds):
        for fw in frameworks:
            runs[fw].append(run_worker(fw, name, threads, batches, calls))
    res = {}
    for fw, rs in runs.items():
        merged = dict(rs[0])
        merged["batches"] = {}
        for b in rs[0]["batches"]:
            qs = [r["batches"][b] for r in rs if b in r["batches"]]
            merged["batches"][b] = {q: statistics.median(v[q] for v in qs) for q in qs[0]}
        res[fw] = merged
    return res


# --------------------------------------------------------------------------- table
def _ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _version(module):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def _csv(kind, choices=None):
    def parse(s):
        items = [kind(v) for v in s.split(",") if v.strip()]
        bad = [v for v in items if choices is not None and v not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of "
                                             f"{', '.join(map(str, choices or ['ints']))}")
        return items
    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--models", type=_csv(str, MODELS), default=list(MODELS),
                    help=f"comma-separated, of {','.join(MODELS)} (default: all)")
    ap.add_argument("--batches", type=_csv(int), default=[1, 2, 4, 8],
                    help="comma-separated batch sizes (default 1,2,4,8)")
    ap.add_argument("--threads", type=_csv(int), default=[2, 1],
                    help="comma-separated thread counts (default 2,1)")
    ap.add_argument("--frameworks", type=_csv(str, FRAMEWORKS), default=list(FRAMEWORKS),
                    help=f"comma-separated, of {','.join(FRAMEWORKS)} (default: all)")
    ap.add_argument("--calls", type=int, default=None,
                    help=f"timed calls per case after {WARMUP} warm-up calls (default: 60, "
                         "AlexNet 20)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="processes per framework, model and thread count, the frameworks "
                         "taking turns; the table gives the median over them (default 1)")
    readme = ap.add_mutually_exclusive_group()
    readme.add_argument("--write-readme", action="store_true",
                        help="also write the table between README.md's latency-results markers")
    readme.add_argument("--no-readme", action="store_true", help="print only (the default)")
    args = ap.parse_args(argv)
    if args.worker:
        framework, name = args.worker
        calls = args.calls or MODELS[name][1]
        print(json.dumps(worker(framework, name, args.threads[0], args.batches, calls)))
        return 0

    import cnnkit as ck

    notes = []
    frameworks = []
    for fw in args.frameworks:
        missing = [m for m in FRAMEWORKS[fw][1] if importlib.util.find_spec(m) is None]
        if missing:
            notes.append(f"{FRAMEWORKS[fw][0]} left out: {', '.join(missing)} not installed.")
        else:
            frameworks.append(fw)

    rows, rows8 = [], []
    for name in args.models:
        calls = args.calls or MODELS[name][1]
        for threads in args.threads:
            res = run_rounds(frameworks, name, threads, args.batches, calls, args.rounds)
            for r in res.values():
                if r["note"] and r["note"] not in notes:
                    notes.append(r["note"])
            for b in args.batches:
                def get(fw, q="p50"):
                    r = res.get(fw)
                    return r["batches"][b][q] if r and b in r["batches"] else None

                q8, q890 = get("cnnkit_int8"), get("cnnkit_int8", "p90")
                if any(fw in res for fw in INT8):
                    ratio8 = (lambda t: f"{t / q8:.2f}x" if t and q8 else "-")  # noqa: E731
                    rows8.append(
                        f"| {name} | {b} | {threads} | {_ms(q8)} / {_ms(q890)} | "
                        f"{_ms(get('torch_int8'))} | {_ms(get('ort_int8'))} | "
                        f"{ratio8(get('torch_int8'))} | {ratio8(get('ort_int8'))} |")
                    print(rows8[-1], flush=True)
                if not any(fw in res for fw in FP32):
                    continue
                ours, ours90 = get("cnnkit"), get("cnnkit", "p90")
                pt = [v for v in (get("torch"), get("torch_cl")) if v is not None]
                best_pt = min(pt) if pt else None
                onnx = get("ort")
                ratio = (lambda t: f"{t / ours:.2f}x" if t and ours else "-")  # noqa: E731
                rows.append(
                    f"| {name} | {b} | {threads} | {_ms(ours)} / {_ms(ours90)} | "
                    f"{_ms(get('torch'))} | {_ms(get('torch_cl'))} | {_ms(onnx)} | "
                    f"{ratio(best_pt)} | {ratio(onnx)} | "
                    f"{f'{ours90 / ours:.2f}' if ours else '-'} |")
                print(rows[-1], flush=True)

    info = ck.cpu_info()
    versions = ", ".join(f"{label} {_version(pkg) or 'not installed'}"
                         for label, pkg in (("PyTorch", "torch"), ("onnxruntime", "onnxruntime")))
    calls = (f"{args.calls} timed calls" if args.calls else
             "60 timed calls (AlexNet 20)")
    if args.rounds > 1:
        calls += (f"; {args.rounds} rounds of processes, the frameworks taking turns, medians "
                  "over the rounds")
    cmd = " ".join(["PYTHONPATH=python python3 bench/latency.py", *(argv or sys.argv[1:])])
    table = "\n".join([
        f"`{cmd}` — {cpu_name()} ({platform.machine()}), cnnkit {ck.__version__} (isa "
        f"{info['isa']}, fp32, fused), {versions}. Each framework/mode, model and thread count "
        f"in its own process; {WARMUP} warm-up calls, then {calls}; latency of one forward call "
        "in ms. Ratios: the other framework's p50 / cnnkit's p50 (PyTorch: its faster mode); "
        "above 1, cnnkit is faster.",
        *(["", "| model | batch | threads | cnnkit p50 / p90 | PyTorch NCHW p50 | "
           "PyTorch channels_last p50 | ONNX Runtime p50 | PyTorch / cnnkit | ORT / cnnkit | "
           "cnnkit p90/p50 |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows] if rows else []),
        *(["", "int8 (post-training static quantization, calibrated on the same 4 batches of "
           "32 images; bench/int8.py's paths):", "",
           "| model | batch | threads | cnnkit int8 p50 / p90 | PyTorch int8 (x86) p50 | "
           "ONNX Runtime int8 p50 | PyTorch int8 / cnnkit int8 | ORT int8 / cnnkit int8 |",
           "|---|---:|---:|---:|---:|---:|---:|---:|", *rows8] if rows8 else []),
        *([""] + [f"- {n}" for n in notes] if notes else []),
    ])
    print()
    print(table)
    if args.write_readme:
        write_readme_table("latency-results", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
