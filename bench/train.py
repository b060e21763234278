"""Training speed, cnnkit vs PyTorch: the same model, data, hyper-parameters and seed.

Each framework runs in its own subprocess with 2 threads (``cnnkit.set_num_threads(2)``,
``torch.set_num_threads(2)``), and the PyTorch model is the cnnkit model rebuilt layer by layer
with ``torch.nn`` and loaded with the cnnkit model's initial weights.

- images/s of a training step (forward, backward, SGD with momentum) for digits_cnn (batch 32,
  the digits recipe), cifar_cnn (batch 128, synthetic CIFAR-sized data) and AlexNet (batch 16,
  synthetic 227x227 data); the median over timed steps after warm-up;
- time to 98 % test accuracy on the bundled digits: digits_cnn, the DataLoader of cnnkit.data in
  both processes (ChannelMean with std, RandomCrop(8, padding=1), batch 32, seed 0), SGD lr 0.05
  Nesterov momentum 0.9 weight decay 5e-4; test accuracy after each epoch, training time only.

    PYTHONPATH=python python3 bench/train.py            # prints the table and writes README.md
    PYTHONPATH=python python3 bench/train.py --no-readme
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
from _common import write_readme_table  # noqa: E402

THREADS = 2
CASES = {  # name: (model, input shape, batch, timed steps)
    "digits_cnn": ("digits_cnn", (1, 8, 8), 32, 60),
    "cifar_cnn": ("cifar_cnn", (3, 32, 32), 128, 8),
    "alexnet": ("alexnet", (3, 227, 227), 16, 4),
}
TARGET = 0.98
MAX_EPOCHS = 40


def _cnnkit_model(name):
    """The model as cnnkit trains it: built, then batch norm + ReLU fused (what ``fit`` does
    first; the same values and state_dict as the plain model, which _to_torch mirrors)."""
    import cnnkit as ck

    ck.manual_seed(0)
    return ck.nn.utils.fuse_batch_norm_relu(ck.models.build(name))


def _to_torch(module):
    """The torch.nn twin of a cnnkit module tree (same layers, same state_dict keys)."""
    import torch.nn as tnn

    from cnnkit import nn

    kind = type(module).__name__
    if isinstance(module, nn.Sequential):
        out = tnn.Sequential()
        for name, child in module.named_children():
            out.add_module(name, _to_torch(child))
        return out
    if kind == "Conv2d":
        return tnn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                          module.stride, module.padding, module.dilation, module.groups,
                          bias=module.bias is not None)
    if kind in ("BatchNorm2d", "BatchNorm1d"):
        # affine= (not bias=, which only newer PyTorch accepts): both have weight and bias
        return getattr(tnn, kind)(module.num_features, module.eps, module.momentum,
                                  affine=module.weight is not None)
    if kind == "Linear":
        return tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if kind == "MaxPool2d":
        return tnn.MaxPool2d(module.kernel_size, module.stride, module.padding,
                             ceil_mode=module.ceil_mode)
    if kind == "LocalResponseNorm":
        return tnn.LocalResponseNorm(module.size, module.alpha, module.beta, module.k)
    if kind == "Dropout":
        return tnn.Dropout(module.p)
    if kind == "ReLU":
        return tnn.ReLU()
    if kind == "Flatten":
        return tnn.Flatten()
    raise TypeError(f"no torch twin for {kind}")


class _Framework:
    """The few calls the benchmark needs, for one framework."""

    def __init__(self, which):
        self.which = which
        if which == "torch":
            import torch

            torch.set_num_threads(THREADS)
            torch.manual_seed(0)
            self.torch = torch
        else:
            import cnnkit as ck

            ck.set_num_threads(THREADS)
            self.ck = ck

    def model(self, name):
        m = _cnnkit_model(name)
        if self.which == "cnnkit":
            return m
        import numpy as np

        t = _to_torch(m)
        t.load_state_dict({k: self.torch.from_numpy(np.array(v)) for k, v in
                           m.state_dict().items()})
        return t

    def sgd(self, model):
        if self.which == "torch":
            return self.torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                        weight_decay=5e-4, nesterov=True)
        return self.ck.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                 weight_decay=5e-4, nesterov=True)

    def tensors(self, x, y):
        if self.which == "torch":
            return self.torch.from_numpy(x), self.torch.from_numpy(y)
        return self.ck.tensor(x), self.ck.tensor(y)

    def step_fn(self, model, opt, x, y):
        if self.which == "torch":
            loss_fn = self.torch.nn.CrossEntropyLoss()

            def step():
                opt.zero_grad(set_to_none=True)
                out = model(x)
                loss = loss_fn(out, y)
                loss.backward()
                opt.step()
                return out
        else:
            loss_fn = self.ck.nn.CrossEntropyLoss()

            def step():
                opt.zero_grad()
                out = model(x)
                loss = loss_fn(out, y)
                loss.backward()
                opt.step()
                return out
        return step

    def predict(self, model, x):
        if self.which == "torch":
            with self.torch.no_grad():
                return model(self.torch.from_numpy(x)).numpy()
        with self.ck.no_grad():
            return model(self.ck.tensor(x)).data


def worker_throughput(which, case):
    import numpy as np

    fw = _Framework(which)
    name, shape, batch, steps = CASES[case]
    model = fw.model(name)
    model.train()
    opt = fw.sgd(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    x, y = fw.tensors(x, y)
    step = fw.step_fn(model, opt, x, y)
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    return {"images_per_s": batch / median, "step_s": median}


def worker_digits(which):

    from cnnkit import data

    fw = _Framework(which)
    tr, te = data.load_digits()
    prep = data.ChannelMean(std=True).fit(tr.images)
    loader = data.DataLoader(tr, 32, shuffle=True, seed=0,
                             transform=data.Compose([prep, data.RandomCrop(8, padding=1)]))
    test_x = prep(te.images)
    model = fw.model("digits_cnn")
    opt = fw.sgd(model)
    loss_fn = (fw.torch.nn.CrossEntropyLoss() if which == "torch"
               else fw.ck.nn.CrossEntropyLoss())
    train_time, acc = 0.0, 0.0
    for epoch in range(1, MAX_EPOCHS + 1):
        model.train()
        t = time.perf_counter()
        for xb, yb in loader:
            if which == "torch":
                xb, yb = fw.torch.from_numpy(xb.data), fw.torch.from_numpy(yb.data)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        train_time += time.perf_counter() - t
        model.eval()
        acc = float((fw.predict(model, test_x).argmax(axis=1) == te.labels).mean())
        if acc >= TARGET:
            return {"seconds": train_time, "epochs": epoch, "accuracy": acc}
    return {"seconds": None, "epochs": MAX_EPOCHS, "accuracy": acc}


def run_worker(which, task):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run([sys.executable, __file__, "--worker", which, task],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{which} {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "TASK"), help=argparse.SUPPRESS)
    ap.add_argument("--no-readme", action="store_true", help="print only")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate the two frameworks' processes this many times per workload "
                         "and report the medians (the machine is shared and noisy)")
    args = ap.parse_args(argv)
    if args.worker:
        which, task = args.worker
        res = worker_digits(which) if task == "digits98" else worker_throughput(which, task)
        print(json.dumps(res))
        return 0

    import statistics

    import torch

    import cnnkit as ck

    rows = []
    for case, (name, _, batch, _) in CASES.items():
        ck_rates, pt_rates, ratios = [], [], []
        for _ in range(max(1, args.rounds)):
            a, b = (run_worker("cnnkit", case)["images_per_s"],
                    run_worker("torch", case)["images_per_s"])
            ck_rates.append(a)
            pt_rates.append(b)
            ratios.append(a / b)
        ours = {"images_per_s": statistics.median(ck_rates)}
        theirs = {"images_per_s": statistics.median(pt_rates)}
        ratio = statistics.median(ratios)
        rate = (lambda r: f"{r:,.0f}" if r >= 100 else f"{r:.1f}")  # noqa: E731
        rows.append(f"| {name} training, batch {batch} (images/s) | "
                    f"{rate(ours['images_per_s'])} | {rate(theirs['images_per_s'])} | "
                    f"{ratio:.2f}x |")
        print(rows[-1], flush=True)
    ours, theirs = run_worker("cnnkit", "digits98"), run_worker("torch", "digits98")

    def fmt(r):
        if r["seconds"] is None:
            return f"not reached in {r['epochs']} epochs ({100 * r['accuracy']:.1f} %)"
        return f"{r['seconds']:.2f} s ({r['epochs']} epochs)"

    speed = (f"{theirs['seconds'] / ours['seconds']:.2f}x" if ours["seconds"] and
             theirs["seconds"] else "-")
    rows.append(f"| digits_cnn: training time to {100 * TARGET:.0f} % test accuracy | "
                f"{fmt(ours)} | {fmt(theirs)} | {speed} |")
    print(rows[-1], flush=True)
    info = ck.cpu_info()
    table = "\n".join([
        f"`PYTHONPATH=python python3 bench/train.py --rounds {args.rounds}` — {THREADS} threads "
        f"each, medians of {args.rounds} alternating process pairs, cnnkit "
        f"{ck.__version__} ({ck.get_isa()}) vs PyTorch {torch.__version__}, separate processes, "
        f"same initial weights; {info.get('brand', platform.processor()).strip()}. "
        "Ratio: cnnkit / PyTorch throughput (time: PyTorch / cnnkit).",
        "",
        "| workload | cnnkit | PyTorch | ratio |",
        "|---|---:|---:|---:|",
        *rows,
    ])
    print()
    print(table)
    if not args.no_readme:
        write_readme_table("train-results", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
