"""Memory-bound kernels on a tensor larger than L3 (32 x 64 x 128 x 128 floats = 134 MB).

Fresh output arrays cost page faults (the kernel zeroes every new page), which on this machine
take as long as the op itself; with `out=` buffers reused, the table shows what the kernels
move. Reference: a plain numpy copy and add on the same arrays. Best of 7, 2 threads.

    PYTHONPATH=python python3 bench/bandwidth.py [--write-readme]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import write_readme_table

import cnnkit


def best(f, n=7):
    f()
    b = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    cnnkit.set_num_threads(args.threads)
    core = cnnkit._core
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 128, 128), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    y = core.relu_forward(x)
    out = np.empty_like(x)
    rows = [
        ("relu forward, out= reused (read x, write y)", lambda: core.relu_forward(x, out=out), 2),
        ("relu forward, new output array", lambda: core.relu_forward(x), 2),
        ("relu backward, out= reused (read dy, y; write dx)",
         lambda: core.relu_backward(dy, y, out=out), 3),
        ("tanh forward, out= reused", lambda: core.tanh_forward(x, out=out), 2),
        ("numpy copyto (1 thread)", lambda: np.copyto(out, x), 2),
        ("numpy add into out (1 thread)", lambda: np.add(x, dy, out=out), 3),
    ]
    lines = [f"`python3 bench/bandwidth.py`: {args.threads} threads, "
             f"tensor of {x.nbytes / 1e6:.0f} MB "
             "(> 32 MB L3), best of 7; GB/s counts each array read or written once.", "",
             "| kernel | ms | GB/s |", "|---|---:|---:|"]
    for name, f, streams in rows:
        t = best(f)
        lines.append(f"| {name} | {t * 1e3:.2f} | {streams * x.nbytes / t / 1e9:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        write_readme_table("bandwidth-results", table)


if __name__ == "__main__":
    main()
