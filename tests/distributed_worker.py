"""One rank of the multi-process tests in test_distributed.py (run under mpirun), and the
one-process reference they compare with (imported).

    mpirun -np 2 python tests/distributed_worker.py train OUT_DIR   # plain and sync-BN models
    mpirun -np 2 python tests/distributed_worker.py fail             # rank 1 raises
"""

from __future__ import annotations

import os
import sys

import numpy as np

GLOBAL_BATCH = 64
N_IMAGES = 256            # 4 steps of 64 per epoch
EPOCHS = 2                # 8 optimizer steps


def dataset():
    from cnnkit import data

    rng = np.random.default_rng(1234)
    images = rng.standard_normal((N_IMAGES, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, N_IMAGES).astype(np.int64)
    return data.ArrayDataset(images, labels)


def build(batch_norm: bool, seed: int):
    """A small CNN (with or without batch norm), initialised from ``seed``."""
    import cnnkit as ck
    from cnnkit import nn

    ck.manual_seed(seed)
    if batch_norm:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(8 * 4 * 4, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 10))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


def train(batch_norm: bool, distributed: bool, seed: int = 100):
    """(state_dict, history) after EPOCHS epochs on the global batch of 64, SGD with Nesterov
    momentum and weight decay. Distributed: every rank starts from a different initialisation
    (seed + rank) so that only the broadcast from rank 0 makes them agree."""
    from cnnkit import data, optim
    from cnnkit import distributed as dist
    from cnnkit import train as tr

    if distributed:
        seed += dist.rank()
    model = build(batch_norm, seed)
    if distributed and batch_norm:
        model = dist.convert_sync_batchnorm(model)
    loader = data.DataLoader(dataset(), GLOBAL_BATCH, shuffle=True, seed=5)
    val = data.DataLoader(dataset(), 100)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                    nesterov=True)
    hist = tr.fit(model, loader, val, epochs=EPOCHS, optimizer=opt, progress=False,
                  distributed=distributed)
    return model.state_dict(), hist


def main(argv):
    import cnnkit as ck
    from cnnkit import distributed as dist

    ck.set_num_threads(1)
    mode = argv[1]
    if mode == "train":
        out = argv[2]
        for batch_norm in (False, True):
            state, hist = train(batch_norm, distributed=True)
            tag = "bn" if batch_norm else "plain"
            np.savez(os.path.join(out, f"{tag}-rank{dist.rank()}.npz"),
                     **state, _loss=np.array(hist.train_loss), _acc=np.array(hist.train_acc),
                     _val_acc=np.array(hist.val_acc, dtype=np.float64),
                     _size=np.array(dist.world_size()))
    elif mode == "fail":
        dist.init()
        if dist.rank() == 1:
            raise RuntimeError("rank 1 fails on purpose")
        train(False, distributed=True)  # rank 0 waits in the first allreduce
        print("rank 0 should never get here", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
