"""Training and inference speed, cnnkit vs PyTorch: the same model, data, hyper-parameters, seed.

Each framework and mode runs in its own subprocess with 2 threads (``cnnkit.set_num_threads(2)``,
``torch.set_num_threads(2)``), and the PyTorch model is the cnnkit model rebuilt layer by layer
with ``torch.nn`` and loaded with the cnnkit model's initial weights.

- images/s of a training step (forward, backward, SGD with momentum) and of inference (eval
  mode, no grad) for digits_cnn (batch 32, the digits recipe), lenet5 (28x28, batch 64),
  cifar_cnn (batch 128, synthetic CIFAR-sized data) and AlexNet (batch 16, synthetic 227x227
  data); the median over timed steps after warm-up; and each process's peak RSS;
- modes: cnnkit fp32 and bf16 (``cnnkit.autocast``; inference on ``nn.utils.fuse(model)``, batch
  norm folded into the convolution before it and ReLU fused, in both precisions; the timed
  inference calls inside one no_grad + autocast block, for both frameworks); PyTorch fp32,
  channels_last, bf16 autocast, channels_last + bf16 autocast, and ``torch.compile`` of
  channels_last + bf16 -- the table compares cnnkit's faster precision with PyTorch's fastest
  mode of each workload; and int8 inference for both (``cnnkit.quantization.quantize``, PyTorch
  FX static quantization with the x86 backend: bench/int8.py's ``runner``), compared apart;
- time to 98 % test accuracy on the bundled digits: digits_cnn, the DataLoader of cnnkit.data in
  both processes (ChannelMean with std, RandomCrop(8, padding=1), batch 32, seed 0), SGD lr 0.05
  Nesterov momentum 0.9 weight decay 5e-4; test accuracy after each epoch, training time only;
  then each trained model's test accuracy after post-training int8 quantization.

    PYTHONPATH=python python3 bench/train.py            # prints the table and writes README.md
    PYTHONPATH=python python3 bench/train.py --no-readme
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name, write_readme_table  # noqa: E402

THREADS = 2
CASES = {  # name: (model, input shape, batch, timed steps)
    "digits_cnn": ("digits_cnn", (1, 8, 8), 32, 60),
    "lenet5": ("lenet5", (1, 28, 28), 64, 30),
    "cifar_cnn": ("cifar_cnn", (3, 32, 32), 128, 8),
    "alexnet": ("alexnet", (3, 227, 227), 16, 4),
}
MODES = {"cnnkit": ["fp32", "bf16", "int8"],
         "torch": ["fp32", "channels_last", "bf16", "channels_last+bf16",
                   "compile(channels_last+bf16)", "int8"]}
TARGET = 0.98
MAX_EPOCHS = 40


def _cnnkit_model(name):
    """The model as cnnkit trains it: built, then batch norm + ReLU fused (what ``fit`` does
    first; the same values and state_dict as the plain model, which _to_torch mirrors)."""
    import cnnkit as ck

    ck.manual_seed(0)
    return ck.nn.utils.fuse_batch_norm_relu(ck.models.build(name))


def _to_torch(module, extra=None):
    """The torch.nn twin of a cnnkit module tree (same layers, same state_dict keys).
    ``extra(module)``, if given, twins the module kinds it knows (returns None for the others)."""
    import torch.nn as tnn

    from cnnkit import nn

    if extra is not None:
        twin = extra(module)
        if twin is not None:
            return twin
    kind = type(module).__name__
    if isinstance(module, nn.Sequential):
        out = tnn.Sequential()
        for name, child in module.named_children():
            out.add_module(name, _to_torch(child, extra))
        return out
    if kind == "Identity":
        return tnn.Identity()
    if kind == "AdaptiveAvgPool2d":
        return tnn.AdaptiveAvgPool2d(module.output_size)
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


def _median_time(fn, steps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def _both(a, b):
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(a)
    stack.enter_context(b)
    return stack


def worker_throughput(which, mode, case):
    """Training and inference images/s of one framework in one mode, and the peak RSS."""
    import contextlib
    import resource

    import numpy as np

    fw = _Framework(which)
    name, shape, batch, steps = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    if mode == "int8":  # inference only: bench/int8.py's paths, the same calibration batches
        from int8 import calibration, runner

        call, _ = runner(f"{which}_int8", _cnnkit_model(name).eval(), shape, THREADS,
                         calibration(shape), _to_torch)
        inference = _median_time(lambda: call(x), max(steps, 5))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return {"train": None, "infer": batch / inference, "rss_mb": rss}
    model = fw.model(name)
    if which == "cnnkit":
        ck = fw.ck
        amp = ck.autocast(enabled=mode == "bf16")
        xt, yt = fw.tensors(x, y)
        step = fw.step_fn(model, fw.sgd(model), xt, yt)
        model.train()
        with amp:
            train = _median_time(step, steps)
        infer_model = ck.nn.utils.fuse(fw.model(name).eval())

        def infer():
            infer_model(xt)

        # one autocast block around the inference loop, as a user serves batches (cnnkit packs
        # each bf16 weight once per block; PyTorch caches its weight casts the same way)
        infer_ctx = lambda: _both(ck.no_grad(), ck.autocast(enabled=mode == "bf16"))  # noqa: E731
    else:
        torch = fw.torch
        cl = "channels_last" in mode
        bf16 = "bf16" in mode
        fmt = torch.channels_last if cl else torch.contiguous_format
        if cl:
            model = model.to(memory_format=torch.channels_last)
        xt = torch.from_numpy(x).contiguous(memory_format=fmt)
        yt = torch.from_numpy(y)
        amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else (
            contextlib.nullcontext)
        opt = fw.sgd(model)
        loss_fn = torch.nn.CrossEntropyLoss()
        fwd = torch.compile(model) if mode.startswith("compile") else model

        def step():
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = loss_fn(fwd(xt), yt)
            loss.backward()
            opt.step()

        model.train()
        train = _median_time(step, steps)
        infer_model = fw.model(name).eval()
        if cl:
            infer_model = infer_model.to(memory_format=torch.channels_last)
        infer_fwd = torch.compile(infer_model) if mode.startswith("compile") else infer_model

        def infer():
            infer_fwd(xt)

        infer_ctx = lambda: _both(torch.no_grad(), amp())  # noqa: E731
    with infer_ctx():
        inference = _median_time(infer, max(steps, 5))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"train": batch / train, "infer": batch / inference, "rss_mb": rss}


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
        epochs = epoch
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
            break
    # post-training static quantization of the trained model, calibrated on 4 training
    # batches (cnnkit.quantization.quantize / PyTorch FX with the x86 backend)
    cal = [xb.data for xb, _ in zip((b for b, _ in loader), range(4))]
    if which == "torch":
        from int8 import torch_fx_int8

        q = torch_fx_int8(model, cal)
    else:
        q = fw.ck.quantization.quantize(model.eval(), cal)
    acc8 = float((fw.predict(q, test_x).argmax(axis=1) == te.labels).mean())
    return {"seconds": train_time if acc >= TARGET else None, "epochs": epochs, "accuracy": acc,
            "int8_accuracy": acc8}


def run_worker(which, task, mode="fp32"):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run([sys.executable, __file__, "--worker", which, task, "--mode", mode],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{which} {mode} {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "TASK"), help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--no-readme", action="store_true", help="print only")
    ap.add_argument("--rounds", type=int, default=2,
                    help="run every framework/mode process this many times per workload, in "
                         "turn, and report the medians (the machine is shared and noisy)")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--torch-modes", nargs="+", default=MODES["torch"], choices=MODES["torch"])
    args = ap.parse_args(argv)
    if args.worker:
        which, task = args.worker
        res = worker_digits(which) if task == "digits98" else worker_throughput(which, args.mode,
                                                                                task)
        print(json.dumps(res))
        return 0

    import statistics

    import torch

    import cnnkit as ck

    modes = [("cnnkit", m) for m in MODES["cnnkit"]] + [("torch", m) for m in args.torch_modes]
    rows = []
    rate = (lambda r: f"{r:,.0f}" if r >= 100 else f"{r:.1f}")  # noqa: E731
    for case in args.cases:
        name, _, batch, _ = CASES[case]
        runs = {m: [] for m in modes}
        for _ in range(max(1, args.rounds)):
            for which, mode in modes:
                try:
                    runs[(which, mode)].append(run_worker(which, case, mode))
                except RuntimeError as e:  # e.g. torch.compile without a working compiler
                    print(f"skipped: {str(e).splitlines()[0]}", flush=True)
        med = {m: {k: (statistics.median(r[k] for r in rs) if rs[0][k] is not None else None)
                   for k in ("train", "infer", "rss_mb")}
               for m, rs in runs.items() if rs}
        for what in ("train", "infer"):
            floats = [m for m in med if m[1] != "int8"]
            ours = max((m for m in floats if m[0] == "cnnkit"), key=lambda m: med[m][what])
            theirs = max((m for m in floats if m[0] == "torch"), key=lambda m: med[m][what])
            label = "training" if what == "train" else "inference"
            cells = " | ".join(rate(med[m][what]) if m in med and med[m][what] else "-"
                               for m in modes)
            ratio = f"{med[ours][what] / med[theirs][what]:.2f}x ({ours[1]} / {theirs[1]})"
            q8 = [med.get((w, "int8"), {}).get(what) for w in ("cnnkit", "torch")]
            if all(q8):
                ratio += f"; int8 {q8[0] / q8[1]:.2f}x"
            rows.append(f"| {name} {label}, batch {batch} | {cells} | {ratio} |")
            print(rows[-1], flush=True)
        rss = " | ".join(f"{med[m]['rss_mb']:,.0f}" if m in med else "-" for m in modes)
        rows.append(f"| {name} peak RSS (MB) | {rss} | |")
        print(rows[-1], flush=True)
    ours, theirs = run_worker("cnnkit", "digits98"), run_worker("torch", "digits98")

    def fmt(r):
        if r["seconds"] is None:
            return f"not reached in {r['epochs']} epochs ({100 * r['accuracy']:.1f} %)"
        return f"{r['seconds']:.2f} s ({r['epochs']} epochs)"

    speed = (f"{theirs['seconds'] / ours['seconds']:.2f}x" if ours["seconds"] and
             theirs["seconds"] else "-")
    info = ck.cpu_info()
    header = " | ".join(f"{w} {m}" for w, m in modes)
    table = "\n".join([
        f"`PYTHONPATH=python python3 bench/train.py --rounds {args.rounds}` — {THREADS} threads "
        f"each, every framework/mode in its own process, medians of {args.rounds} rounds; cnnkit "
        f"{ck.__version__} (isa {ck.get_isa()}, bf16 path {info['bf16_path']}) vs PyTorch "
        f"{torch.__version__}, same initial weights; {cpu_name()}. "
        "images/s; ratio: cnnkit's faster precision / PyTorch's fastest mode (fp32 and bf16 "
        "modes), then cnnkit int8 / PyTorch int8 (inference only: bench/int8.py's paths, "
        "calibrated on 4 batches of 32 standard normal images).",
        "",
        f"| workload | {header} | ratio (modes) |",
        "|---|" + "---:|" * len(modes) + "---|",
        *rows,
        "",
        f"digits_cnn, training time to {100 * TARGET:.0f} % test accuracy (fp32): cnnkit "
        f"{fmt(ours)}, PyTorch {fmt(theirs)}: {speed}. Test accuracy of those trained models "
        f"after post-training int8 quantization (4 training batches of calibration): cnnkit "
        f"{100 * ours['accuracy']:.1f} % -> {100 * ours['int8_accuracy']:.1f} %, PyTorch "
        f"{100 * theirs['accuracy']:.1f} % -> {100 * theirs['int8_accuracy']:.1f} %.",
    ])
    print()
    print(table)
    if not args.no_readme:
        write_readme_table("train-results", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
