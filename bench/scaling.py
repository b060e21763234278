"""Thread scaling, cnnkit against PyTorch, each framework in its own process per thread count.

For 1, 2, 4, ... threads: images/s of a cifar_cnn training step (batch 128, the step of
bench/train.py), SGEMM 2048^3 (cnnkit.ops.sgemm vs torch.mm) and a VGG-style 3x3 convolution
128->128 at 56x56, batch 16, forward + both backward passes (GFLOP/s). Meant for a machine with
more cores than this project's 2 (the table says which machine it ran on).

    PYTHONPATH=python python3 bench/scaling.py --threads 1 2 4 8 16 [--write-readme] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train as train_bench  # noqa: E402  (bench/train.py: the shared training-step worker)
from _common import write_readme_table  # noqa: E402


def best(fn, repeats=5):
    fn()
    b = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t)
    return b


def worker(which, threads):
    import numpy as np

    train_bench.THREADS = threads
    res = {"cifar_cnn": train_bench.worker_throughput(which, "cifar_cnn")["images_per_s"]}
    rng = np.random.default_rng(0)
    n = 2048
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    N, C, H, K = 16, 128, 56, 128
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    w = (rng.standard_normal((K, C, 3, 3), dtype=np.float32) * 0.05).astype(np.float32)
    dy = rng.standard_normal((N, K, H, H), dtype=np.float32)
    if which == "torch":
        import torch

        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        res["sgemm"] = 2 * n**3 / best(lambda: torch.mm(at, bt)) / 1e9
        xt, wt, dyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        bwd = torch.ops.aten.convolution_backward

        def conv():
            torch.nn.functional.conv2d(xt, wt, None, 1, 1)
            bwd(dyt, xt, wt, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False])
    else:
        import cnnkit

        core = cnnkit._core
        res["sgemm"] = 2 * n**3 / best(lambda: cnnkit.ops.sgemm(a, b)) / 1e9

        def conv():
            core.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
            core.conv2d_backward_data(dy, w, (H, H), (1, 1), (1, 1), (1, 1), 1)
            core.conv2d_backward_weights(dy, x, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)
    res["conv"] = 3 * 2.0 * N * K * H * H * C * 9 / best(conv, 3) / 1e9
    print(json.dumps(res))


def run(which, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--worker", which, str(threads)],
                         capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"{which} at {threads} threads failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    cpu = platform.processor() or platform.machine()
    try:
        import cnnkit

        cpu = (cnnkit.cpu_info()["brand"]
               + f" ({os.cpu_count()} logical CPUs, ISA {cnnkit.get_isa()})")
    except Exception:  # noqa: BLE001
        pass
    lines = [
        f"`python3 bench/scaling.py --threads {' '.join(map(str, args.threads))}` on {cpu}; "
        "each framework in its own process per thread count.",
        "",
        "| threads | cifar_cnn train img/s cnnkit / PyTorch | speed-up "
        "| SGEMM 2048 GFLOP/s cnnkit / PyTorch "
        "| VGG 3x3 conv fwd+bwd GFLOP/s cnnkit / PyTorch |",
        "|---:|---|---:|---|---|",
    ]
    for t in args.threads:
        ck, pt = run("cnnkit", t), run("torch", t)
        row = (f"| {t} | {ck['cifar_cnn']:.0f} / {pt['cifar_cnn']:.0f} "
               f"| {ck['cifar_cnn'] / pt['cifar_cnn']:.2f}x "
               f"| {ck['sgemm']:.0f} / {pt['sgemm']:.0f} | {ck['conv']:.0f} / {pt['conv']:.0f} |")
        print(row, flush=True)
        lines.append(row)
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    if args.write_readme:
        write_readme_table("scaling-results", table)


if __name__ == "__main__":
    main()
