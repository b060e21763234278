"""Per-op Python overhead: forward + backward of a tiny network, cnnkit vs PyTorch.

The network (Linear(32, 64) -> ReLU -> Linear(64, 10) -> cross-entropy, batch 1..4) is so
small that the arithmetic costs almost nothing: the time per step is the framework's overhead.
Dividing by the number of differentiable ops in the step (4 forward + 4 backward) gives the
overhead per op in microseconds. PyTorch runs in a separate subprocess (its threads and
allocator do not disturb ours), single-threaded like cnnkit here.

    PYTHONPATH=python python3 bench/overhead.py [--repeats 5] [--iters 2000]

If this build's _core lacks the layer ops (linear/relu/cross-entropy), the cnnkit side falls
back to measuring the same network written with Tensor arithmetic (matmul via sgemm, numpy
elsewhere) and says so: that measures the tape alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

OPS_PER_STEP = 8  # linear, relu, linear, loss: forward and backward each

TORCH_SCRIPT = r"""
import json, sys, time, torch
torch.set_num_threads(1)
batch, iters, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.randn(batch, 32); y = torch.randint(0, 10, (batch,))
def step():
    for p in net.parameters(): p.grad = None
    loss_fn(net(x), y).backward()
for _ in range(200): step()
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(iters): step()
    best = min(best, (time.perf_counter() - t) / iters)
print(json.dumps({"torch": torch.__version__, "step_s": best}))
"""


def cnnkit_step_fn(batch: int):
    import cnnkit as ck
    import cnnkit.nn as nn
    from cnnkit import _core

    ck.set_num_threads(1)
    ck.manual_seed(0)
    rng = np.random.default_rng(0)
    x = ck.tensor(rng.standard_normal((batch, 32)).astype(np.float32))
    y = ck.tensor(rng.integers(0, 10, batch))
    needed = ["linear_forward", "linear_backward", "relu_forward", "relu_backward",
              "cross_entropy_forward", "cross_entropy_backward"]
    missing = [n for n in needed if not hasattr(_core, n)]
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    if not missing:
        loss_fn = nn.CrossEntropyLoss()

        def step():
            net.zero_grad()
            loss_fn(net(x), y).backward()

        return step, "core ops (F.linear, F.relu, F.cross_entropy)", OPS_PER_STEP

    # tape-only stand-in: x W^T + b, ReLU as x * mask, squared error; 10 recorded ops
    # (T, @, +, *, T, @, +, -, **, mean), each with a backward: 20 per step
    w1, b1, w2, b2 = (p for p in net.parameters())
    target = ck.tensor(np.eye(10, dtype=np.float32)[y.data])

    def step():
        net.zero_grad()
        h = x @ w1.T + b1
        h = h * (h.data > 0)
        out = h @ w2.T + b2
        ((out - target) ** 2).mean().backward()

    return step, ("Tensor arithmetic only (this _core lacks " + ", ".join(missing)
                  + "): the tape's overhead, not the layer ops'"), 20


def best_time(step, iters: int, repeats: int) -> float:
    for _ in range(200):
        step()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters):
            step()
        best = min(best, (time.perf_counter() - t) / iters)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", default="1,2,4")
    args = ap.parse_args(argv)
    print(f"forward+backward of Linear(32,64)-ReLU-Linear(64,10)-loss, 1 thread, best of "
          f"{args.repeats} x {args.iters} steps; per op = step / {OPS_PER_STEP}")
    print(f"{'batch':>5}  {'cnnkit us/step':>14}  {'us/op':>7}  {'torch us/step':>13}  "
          f"{'us/op':>7}  {'ratio':>6}")
    what = None
    for batch in (int(b) for b in args.batches.split(",")):
        step, what, our_ops = cnnkit_step_fn(batch)
        ours = best_time(step, args.iters, args.repeats)
        try:
            out = subprocess.run([sys.executable, "-c", TORCH_SCRIPT, str(batch),
                                  str(args.iters), str(args.repeats)],
                                 capture_output=True, text=True, check=True)
            theirs = json.loads(out.stdout.strip().splitlines()[-1])["step_s"]
        except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as e:
            print(f"(torch unavailable: {e})")
            theirs = float("nan")
        print(f"{batch:>5}  {ours * 1e6:>14.1f}  {ours * 1e6 / our_ops:>7.1f}  "
              f"{theirs * 1e6:>13.1f}  {theirs * 1e6 / OPS_PER_STEP:>7.1f}  "
              f"{ours / theirs:>6.2f}")
    print(f"cnnkit side: {what}; us/op = step / {our_ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
