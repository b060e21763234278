"""Layer benchmarks (issue 4): forward and backward time of cnnkit vs PyTorch, 2 threads.

    PYTHONPATH=python python3 bench/layers.py [--runs 7] [--repeat 3] [--quick]

Each side runs in its own process (this script with --side cnnkit / --side torch), so the two
thread runtimes never spin against each other, and PyTorch gets OMP_WAIT_POLICY=PASSIVE: on
this shared 2-core machine an actively spinning idle OpenMP worker competes with the main
thread whenever another process wants a core, which turns a 0.4 ms op into 8 ms (a scheduler
time slice). cnnkit's own threads ignore the variable (they spin 200 us, then sleep).
Each run times an inner loop of >= 20 ms; the table gives the median
over --runs runs (and the best). GB/s counts the bytes an op must move at least once (inputs
read + outputs written, indices/masks/saved tensors included) divided by the median time.
Writes bench/results/layers.json and bench/results/layers.md.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"

SHAPES = {
    "alex1": (16, 96, 55, 55),
    "alex2": (16, 256, 27, 27),
    "cifar1": (128, 32, 32, 32),
    "cifar2": (128, 64, 16, 16),
    # larger than the 32 MB L3 (134 MB): these rows show the fraction of DRAM bandwidth
    "big": (32, 64, 128, 128),
}

# (op, shape key, extra) in table order
CASES = [
    ("max_pool 3x3/2", "alex1", None), ("max_pool 3x3/2", "alex2", None),
    ("max_pool 2x2/2", "cifar1", None), ("max_pool 2x2/2", "cifar2", None),
    ("avg_pool 2x2/2", "cifar1", None), ("avg_pool 3x3/2", "alex1", None),
    ("batch_norm train", "alex1", None), ("batch_norm train", "alex2", None),
    ("batch_norm train", "cifar1", None), ("batch_norm train", "cifar2", None),
    ("lrn 5", "alex1", None), ("lrn 5", "alex2", None),
    ("relu", "alex1", None), ("relu", "cifar1", None),
    ("leaky_relu", "cifar1", None), ("elu", "cifar1", None),
    ("sigmoid", "cifar1", None), ("tanh", "cifar1", None),
    ("dropout 0.5", "alex1", None), ("dropout 0.5", "cifar1", None),
    ("linear", "fc6", (16, 9216, 4096)), ("linear", "fc-cifar", (128, 4096, 256)),
    ("cross_entropy", "1000 cls", (16, 1000)), ("cross_entropy", "10 cls", (128, 10)),
    ("relu", "big", None), ("batch_norm train", "big", None), ("dropout 0.5", "big", None),
    ("max_pool 2x2/2", "big", None),
    ("group_norm G=8", "cifar1", None), ("group_norm G=32", "alex2", None),
    ("layer_norm", "tokens", (4096, 512)), ("layer_norm", "cifar-fc", (128, 4096)),
]


def timeit(fn, runs, min_time=0.02):
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / one))
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        ts.append((time.perf_counter() - t0) / inner)
    return statistics.median(ts), min(ts)


def nbytes(*arrays):
    return int(sum(a.nbytes if hasattr(a, "nbytes") else a.numel() * a.element_size()
                   for a in arrays))


def shape_of(key, extra):
    return SHAPES.get(key, extra)


# ---------------------------------------------------------------- cnnkit side
def cnnkit_case(op, key, extra, rng):
    from cnnkit import _core as C

    if op.startswith("linear"):
        n, fin, fout = extra
        x, w, b = (rng.standard_normal(s, dtype=np.float32)
                   for s in ((n, fin), (fout, fin), (fout,)))
        y = C.linear_forward(x, w, b)
        dy = np.ones_like(y)
        dx, dw, db = C.linear_backward(dy, x, w, True)
        return (lambda: C.linear_forward(x, w, b), nbytes(x, w, b, y),
                lambda: C.linear_backward(dy, x, w, True), nbytes(dy, x, w, dx, dw, db))
    if op.startswith("layer_norm"):
        n, c = extra
        x, w, b = (rng.standard_normal(s, dtype=np.float32) for s in ((n, c), (c,), (c,)))
        y, m, s = C.layer_norm_forward(x, (c,), w, b, 1e-5)
        dy = rng.standard_normal((n, c), dtype=np.float32)
        return (lambda: C.layer_norm_forward(x, (c,), w, b, 1e-5), nbytes(x, y),
                lambda: C.layer_norm_backward(dy, x, (c,), w, m, s), nbytes(dy, x, x))
    if op.startswith("cross_entropy"):
        n, c = extra
        x = rng.standard_normal((n, c), dtype=np.float32)
        t = rng.integers(0, c, n).astype(np.int64)
        _, p = C.cross_entropy_forward(x, t)
        return (lambda: C.cross_entropy_forward(x, t), nbytes(x, t, p),
                lambda: C.cross_entropy_backward(p, t, 1.0), nbytes(p, t, p))
    shape = SHAPES[key]
    x = rng.standard_normal(shape, dtype=np.float32)
    if op.startswith("max_pool"):
        k = 3 if "3x3" in op else 2
        y, idx = C.max_pool2d_forward(x, (k, k), (2, 2), (0, 0), False)
        dy = np.ones_like(y)
        dx = C.max_pool2d_backward(dy, idx, shape[2:])
        return (lambda: C.max_pool2d_forward(x, (k, k), (2, 2), (0, 0), False), nbytes(x, y, idx),
                lambda: C.max_pool2d_backward(dy, idx, shape[2:]), nbytes(dy, idx, dx))
    if op.startswith("avg_pool"):
        k = 3 if "3x3" in op else 2
        y = C.avg_pool2d_forward(x, (k, k), (2, 2), (0, 0), False, True)
        dy = np.ones_like(y)
        return (lambda: C.avg_pool2d_forward(x, (k, k), (2, 2), (0, 0), False, True), nbytes(x, y),
                lambda: C.avg_pool2d_backward(dy, shape[2:], (k, k), (2, 2), (0, 0), False, True),
                nbytes(dy, x))
    if op.startswith("batch_norm"):
        c = shape[1]
        w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        y, m, s = C.batch_norm_forward_train(x, w, b, rm, rv, 0.1, 1e-5)
        dy = rng.standard_normal(shape, dtype=np.float32)
        return (lambda: C.batch_norm_forward_train(x, w, b, rm, rv, 0.1, 1e-5), nbytes(x, y),
                lambda: C.batch_norm_backward(dy, x, w, m, s), nbytes(dy, x, x))
    if op.startswith("group_norm"):
        c, g = shape[1], int(op.split("=")[1])
        w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
        y, m, s = C.group_norm_forward(x, g, w, b, 1e-5)
        dy = rng.standard_normal(shape, dtype=np.float32)
        return (lambda: C.group_norm_forward(x, g, w, b, 1e-5), nbytes(x, y),
                lambda: C.group_norm_backward(dy, x, g, w, m, s), nbytes(dy, x, x))
    if op.startswith("lrn"):
        y, s = C.lrn_forward(x, 5, 1e-4, 0.75, 2.0)
        dy = np.ones_like(y)
        return (lambda: C.lrn_forward(x, 5, 1e-4, 0.75, 2.0), nbytes(x, y, s),
                lambda: C.lrn_backward(dy, x, y, s, 5, 1e-4, 0.75, 2.0), nbytes(dy, x, y, s, x))
    if op.startswith("dropout"):
        y, mask = C.dropout_forward(x, 0.5, 1)
        return (lambda: C.dropout_forward(x, 0.5, 1), nbytes(x, y, mask),
                lambda: C.dropout_backward(y, mask, 0.5), nbytes(y, mask, y))
    fwd = getattr(C, op + "_forward")
    bwd = getattr(C, op + "_backward")
    arg = {"leaky_relu": (0.01,), "elu": (1.0,)}.get(op, ())
    y = fwd(x, *arg)
    dy = np.ones_like(y)
    if op == "leaky_relu":
        b = lambda: bwd(dy, x, 0.01)  # noqa: E731
    elif op == "elu":
        b = lambda: bwd(dy, x, y, 1.0)  # noqa: E731
        return (lambda: fwd(x, *arg), nbytes(x, y), b, nbytes(dy, x, y, y))
    else:
        b = lambda: bwd(dy, y)  # noqa: E731
    return (lambda: fwd(x, *arg), nbytes(x, y), b, nbytes(dy, y, y))


# ---------------------------------------------------------------- torch side
def torch_case(op, key, extra, rng):
    import torch
    import torch.nn.functional as F

    def graph(make):
        # forward with autograd on (training semantics), backward = the graph's backward only
        y = make()
        dy = torch.ones_like(y) if y.dim() else torch.tensor(1.0)
        inputs = [t for t in leaves if t.requires_grad]
        return (lambda: make(),
                lambda: torch.autograd.grad(y, inputs, dy, retain_graph=True))

    if op.startswith("linear"):
        n, fin, fout = extra
        leaves = [torch.randn(n, fin, requires_grad=True),
                  torch.randn(fout, fin, requires_grad=True),
                  torch.randn(fout, requires_grad=True)]
        return graph(lambda: F.linear(*leaves))
    if op.startswith("layer_norm"):
        n, c = extra
        leaves = [torch.randn(n, c, requires_grad=True), torch.randn(c, requires_grad=True),
                  torch.randn(c, requires_grad=True)]
        return graph(lambda: F.layer_norm(leaves[0], (c,), leaves[1], leaves[2], 1e-5))
    if op.startswith("cross_entropy"):
        n, c = extra
        leaves = [torch.randn(n, c, requires_grad=True)]
        t = torch.randint(0, c, (n,))
        return graph(lambda: F.cross_entropy(leaves[0], t))
    shape = SHAPES[key]
    x = torch.randn(*shape, requires_grad=True)
    leaves = [x]
    if op.startswith("max_pool"):
        k = 3 if "3x3" in op else 2
        return graph(lambda: F.max_pool2d(x, k, 2))
    if op.startswith("avg_pool"):
        k = 3 if "3x3" in op else 2
        return graph(lambda: F.avg_pool2d(x, k, 2))
    if op.startswith("batch_norm"):
        c = shape[1]
        w, b = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
        rm, rv = torch.zeros(c), torch.ones(c)
        leaves += [w, b]
        return graph(lambda: F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5))
    if op.startswith("group_norm"):
        c, g = shape[1], int(op.split("=")[1])
        w, b = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
        leaves += [w, b]
        return graph(lambda: F.group_norm(x, g, w, b, 1e-5))
    if op.startswith("lrn"):
        return graph(lambda: F.local_response_norm(x, 5, 1e-4, 0.75, 2.0))
    if op.startswith("dropout"):
        return graph(lambda: F.dropout(x, 0.5, training=True))
    f = {"relu": F.relu, "leaky_relu": F.leaky_relu, "elu": F.elu, "sigmoid": torch.sigmoid,
         "tanh": torch.tanh}[op]
    return graph(lambda: f(x))


def run_side(side, runs, cases):
    rng = np.random.default_rng(0)
    res = {}
    for op, key, extra in cases:
        if side == "torch":
            f, b = torch_case(op, key, extra, rng)
            bf = bb = 0
        else:
            f, bf, b, bb = cnnkit_case(op, key, extra, rng)
        tf = timeit(f, runs)
        tb = timeit(b, runs)
        res[f"{op}|{key}"] = {"fwd": tf, "bwd": tb, "fwd_bytes": bf, "bwd_bytes": bb}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--side", choices=["cnnkit", "torch"], help="(internal) run one side")
    ap.add_argument("--quick", action="store_true", help="one shape per op")
    ap.add_argument("--only", help="comma-separated op names (e.g. group_norm,layer_norm)")
    ap.add_argument("--write-readme", action="store_true",
                    help="also put the table into README.md (layers-results section)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternate cnnkit and PyTorch processes this many times; report the "
                         "median over repeats of each side's per-process median")
    args = ap.parse_args()
    cases = CASES
    if args.only:
        names = args.only.split(",")
        cases = [c for c in CASES if c[0].split()[0] in names]
    if args.quick:
        seen, cases = set(), []
        for c in CASES:
            if c[0] not in seen:
                seen.add(c[0])
                cases.append(c)
    if args.side == "torch":
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_side("torch", args.runs, cases)))
        return
    import cnnkit

    cnnkit.set_num_threads(args.threads)
    if args.side == "cnnkit":
        print(json.dumps(run_side("cnnkit", args.runs, cases)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")

    def side(name):
        cmd = [sys.executable, __file__, "--side", name, "--runs", str(args.runs),
               "--threads", str(args.threads)] + (["--quick"] if args.quick else []) + \
            (["--only", args.only] if args.only else [])
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                         env=env).stdout)
    ours_all, theirs_all = [], []
    for _ in range(max(1, args.repeat)):  # alternate A and B: noise hits both sides alike
        ours_all.append(side("cnnkit"))
        try:
            theirs_all.append(side("torch"))
        except (subprocess.CalledProcessError, json.JSONDecodeError) as e:
            print(f"PyTorch side failed ({e}); reporting cnnkit only", file=sys.stderr)

    def combine(all_runs):
        if not all_runs:
            return {}
        out = {}
        for k in all_runs[0]:
            r = {d: (statistics.median(x[k][d][0] for x in all_runs),
                     min(x[k][d][1] for x in all_runs)) for d in ("fwd", "bwd")}
            r.update(fwd_bytes=all_runs[0][k]["fwd_bytes"], bwd_bytes=all_runs[0][k]["bwd_bytes"])
            out[k] = r
        return out

    ours, theirs = combine(ours_all), combine(theirs_all)
    rows = []
    lines = [
        f"cnnkit {cnnkit.__version__} ({cnnkit.get_isa()}) vs PyTorch, {args.threads} threads, "
        "OMP_WAIT_POLICY=PASSIVE for PyTorch (cnnkit's own threads ignore it); "
        f"median over {args.repeat} alternating process pairs of the median of {args.runs} runs "
        "(ms); speedup = PyTorch time / cnnkit time; "
        "GB/s = minimum bytes moved / cnnkit median time.",
        "",
        "| op | shape | cnnkit fwd | torch fwd | speedup | GB/s "
        "| cnnkit bwd | torch bwd | speedup | GB/s | fwd+bwd speedup |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, key, extra in cases:
        k = f"{op}|{key}"
        o, t = ours[k], theirs.get(k)
        shape = "x".join(map(str, shape_of(key, extra)))
        of, ob = o["fwd"][0], o["bwd"][0]
        row = {"op": op, "shape": shape, "cnnkit_fwd_ms": of * 1e3, "cnnkit_bwd_ms": ob * 1e3,
               "cnnkit_fwd_best_ms": o["fwd"][1] * 1e3, "cnnkit_bwd_best_ms": o["bwd"][1] * 1e3,
               "fwd_gbs": o["fwd_bytes"] / of / 1e9, "bwd_gbs": o["bwd_bytes"] / ob / 1e9}
        if t:
            tf, tb = t["fwd"][0], t["bwd"][0]
            row.update(torch_fwd_ms=tf * 1e3, torch_bwd_ms=tb * 1e3, fwd_speedup=tf / of,
                       bwd_speedup=tb / ob, total_speedup=(tf + tb) / (of + ob))
            lines.append(f"| {op} | {key} {shape} | {of*1e3:.3f} | {tf*1e3:.3f} | {tf/of:.2f}x | "
                         f"{row['fwd_gbs']:.1f} | {ob*1e3:.3f} | {tb*1e3:.3f} | {tb/ob:.2f}x | "
                         f"{row['bwd_gbs']:.1f} | {(tf+tb)/(of+ob):.2f}x |")
        else:
            lines.append(f"| {op} | {key} {shape} | {of*1e3:.3f} | - | - | {row['fwd_gbs']:.1f} | "
                         f"{ob*1e3:.3f} | - | - | {row['bwd_gbs']:.1f} | - |")
        rows.append(row)
    md = "\n".join(lines) + "\n"
    print(md)
    if args.only:  # a subset: printed, never over the full tables
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "layers.json").write_text(json.dumps(rows, indent=1))
    (OUT / "layers.md").write_text(md)
    if args.write_readme:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import write_readme_table

        write_readme_table("layers-results", f"`python3 bench/layers.py --runs {args.runs} "
                           f"--repeat {args.repeat} --write-readme`: " + md)


if __name__ == "__main__":
    main()
