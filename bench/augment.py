"""Does AlexNet-style heavy augmentation keep up with training?

Times the augmentation pipeline ``RandomResizedCrop(size of the input) + RandomHorizontalFlip +
ColorJitter(0.4, 0.4, 0.4) + PCALighting(0.1) + ChannelMean`` per batch of 128 images of
3x32x32 and 3x64x64 (float32 in [0, 1], synthetic), each stage alone, and the whole
DataLoader batch (fetch + pipeline + Tensor, ``prefetch=False`` so it is timed in this thread),
against one training step (forward, backward, SGD with momentum) of cnnkit's cifar_cnn at batch
128 on 3x32x32. The DataLoader prepares the next batch in a background thread while the step
runs, so augmentation is free as long as the loader time per batch is well below the step time
(and the cores it takes from the step's threads are spare): the last line measures that
directly, training steps fed by the prefetching DataLoader with and without the pipeline.
Medians over ``--runs`` timed calls after one warm-up call.

    PYTHONPATH=python python3 bench/augment.py
    PYTHONPATH=python python3 bench/augment.py --runs 20 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import cnnkit as ck
from cnnkit import data, models, nn, optim

BATCH = 128


def _median_time(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _pipeline(images, size):
    crop = data.RandomResizedCrop(size)
    flip = data.RandomHorizontalFlip()
    jitter = data.ColorJitter(0.4, 0.4, 0.4)
    light = data.PCALighting(0.1).fit(images)
    mean = data.ChannelMean().fit(images)
    return [("RandomResizedCrop", crop), ("RandomHorizontalFlip", flip),
            ("ColorJitter(0.4, 0.4, 0.4)", jitter), ("PCALighting(0.1)", light),
            ("ChannelMean", mean)]


def time_augmentation(side: int, runs: int) -> dict:
    rng = np.random.default_rng(0)
    images = rng.random((8 * BATCH, 3, side, side), dtype=np.float32)
    labels = rng.integers(0, 10, size=len(images))
    stages = _pipeline(images, side)
    pipe = data.Compose([t for _, t in stages])
    batch = images[:BATCH]
    g = np.random.default_rng(1)
    result = {"stages": {}}
    x = batch
    for name, t in stages:   # each stage on the output of the previous one
        inp = x
        result["stages"][name] = _median_time(lambda t=t, inp=inp: t(inp, rng=g), runs)
        x = t(inp, rng=g)
    result["pipeline"] = _median_time(lambda: pipe(batch, rng=g), runs)
    loader = data.DataLoader(data.ArrayDataset(images, labels), batch_size=BATCH, shuffle=True,
                             transform=pipe, prefetch=False)

    def one_epoch():
        for _ in loader:
            pass

    result["loader"] = _median_time(one_epoch, max(1, runs // 4)) / len(loader)
    return result


def _cifar_step():
    ck.manual_seed(0)
    model = models.cifar_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                    nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step(x, y):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def time_overlap(runs: int) -> tuple:
    """Per-batch wall time of cifar_cnn training fed by a prefetching DataLoader over 3x32x32
    images: (without augmentation, with the pipeline), medians over ``runs`` epochs of 6
    batches -- what the background thread really costs when it shares the cores."""
    rng = np.random.default_rng(0)
    images = rng.random((6 * BATCH, 3, 32, 32), dtype=np.float32)
    ds = data.ArrayDataset(images, rng.integers(0, 10, size=len(images)))
    pipe = data.Compose([t for _, t in _pipeline(images, 32)])
    step = _cifar_step()
    out = []
    for transform in (None, pipe):
        loader = data.DataLoader(ds, batch_size=BATCH, shuffle=True, transform=transform)

        def epoch(loader=loader):
            for x, y in loader:
                step(x, y)

        out.append(_median_time(epoch, runs) / len(loader))
    return tuple(out)


def time_step(runs: int) -> float:
    ck.manual_seed(0)
    model = models.cifar_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                    nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = ck.tensor(rng.random((BATCH, 3, 32, 32), dtype=np.float32))
    y = ck.tensor(rng.integers(0, 10, size=BATCH))

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    model.train()
    return _median_time(step, runs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="timed calls per measurement")
    ap.add_argument("--threads", type=int, default=None,
                    help="cnnkit threads for the training step (default: cnnkit's default)")
    args = ap.parse_args(argv)
    if args.threads:
        ck.set_num_threads(args.threads)
    info = ck.cpu_info()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {info['brand']} ({os.cpu_count()} logical CPUs, cnnkit {info['num_threads']} "
          f"threads, ISA {info['isa']}); load average {load:.2f}")
    step = time_step(args.runs)
    print(f"cifar_cnn training step, batch {BATCH}, 3x32x32: {1e3 * step:.1f} ms (median of "
          f"{args.runs})")
    for side in (32, 64):
        r = time_augmentation(side, args.runs)
        print(f"\naugmentation of {BATCH} images 3x{side}x{side} -> 3x{side}x{side}:")
        for name, t in r["stages"].items():
            print(f"  {name:<28} {1e3 * t:7.2f} ms")
        print(f"  {'pipeline (Compose)':<28} {1e3 * r['pipeline']:7.2f} ms")
        print(f"  {'DataLoader batch':<28} {1e3 * r['loader']:7.2f} ms   "
              f"= {r['loader'] / step:.2f} x the training step")
    plain, augmented = time_overlap(max(3, args.runs // 3))
    print(f"\ncifar_cnn training fed by the prefetching DataLoader (3x32x32, batch {BATCH}): "
          f"{1e3 * plain:.1f} ms per batch without augmentation, {1e3 * augmented:.1f} ms with "
          f"the pipeline ({100 * (augmented / plain - 1):+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
