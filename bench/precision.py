"""cnnkit fp32 against cnnkit bf16 on one model, in alternating fresh processes.

bench/train.py compares every framework and mode once or twice; on a shared, noisy machine
that cannot tell two close figures apart. This runs the same workload in fp32 and in bf16
(``cnnkit.autocast``) as pairs of processes started one after the other, ``--pairs`` times,
and prints every pair, so a difference shows as the same sign in each pair:

- training: SGD (momentum 0.9) steps on one fixed batch (cifar_cnn 128, AlexNet 16), 2
  warm-up steps, then ``--steps`` timed;
- inference: ``nn.utils.fuse(model.eval())`` under ``no_grad`` (and ``autocast`` for bf16),
  2 warm-up calls, then ``--calls`` timed.

    PYTHONPATH=python python3 bench/precision.py --model cifar_cnn --what train --pairs 3
    PYTHONPATH=python python3 bench/precision.py --model alexnet --what infer
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name  # noqa: E402

MODELS = {"cifar_cnn": ((3, 32, 32), 128), "alexnet": ((3, 227, 227), 16)}


def worker(model_name, what, precision, count, threads):
    import numpy as np

    import cnnkit as ck

    shape, batch = MODELS[model_name]
    ck.set_num_threads(threads)
    ck.manual_seed(0)
    rng = np.random.default_rng(0)
    x = ck.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = ck.tensor(rng.integers(0, 10, batch).astype(np.int64))
    model = ck.models.build(model_name)
    bf16 = precision == "bf16"
    if what == "train":
        model.train()
        opt = ck.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad()
            ck.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        ctx = ck.autocast(enabled=bf16)
    else:
        fused = ck.nn.utils.fuse(model.eval())

        def step():
            fused(x)
        ctx = contextlib.ExitStack()
        ctx.enter_context(ck.no_grad())
        ctx.enter_context(ck.autocast(enabled=bf16))
    with ctx:
        for _ in range(2):
            step()
        t0 = time.perf_counter()
        for _ in range(count):
            step()
        return batch * count / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="cifar_cnn")
    ap.add_argument("--what", choices=("train", "infer"), default="train")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--calls", type=int, default=30, help="timed inference calls")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", metavar="PRECISION", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    count = args.steps if args.what == "train" else args.calls
    if args.worker:
        print(worker(args.model, args.what, args.worker, count, args.threads))
        return 0
    print(f"{cpu_name()}; {args.model} {args.what}, {args.threads} threads, images/s, "
          f"each figure its own process")
    print("| pair | cnnkit fp32 | cnnkit bf16 | bf16 / fp32 |\n|---:|---:|---:|---:|")
    for i in range(args.pairs):
        res = {}
        for precision in ("fp32", "bf16"):
            cmd = [sys.executable, __file__, "--model", args.model, "--what", args.what,
                   "--steps", str(args.steps), "--calls", str(args.calls), "--threads",
                   str(args.threads), "--worker", precision]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
            res[precision] = float(out.stdout.strip().splitlines()[-1])
        print(f"| {i + 1} | {res['fp32']:,.0f} | {res['bf16']:,.0f} | "
              f"{res['bf16'] / res['fp32']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
