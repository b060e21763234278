"""cnnkit.distributed: data-parallel training over MPI ranks equals one process on the whole
global batch; all ranks agree bit for bit; a failing rank ends the job; the one-process
fallback; the sampler's shards; gradients that stay views of the flat allreduce buffer.

The multi-process tests launch ``mpirun`` (Open MPI) in a subprocess with a timeout and skip
only when ``mpirun`` or mpi4py is missing (.ci/run installs both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest

import cnnkit
import cnnkit as ck
from cnnkit import data, nn, optim
from cnnkit import distributed as dist

HERE = Path(__file__).resolve().parent
# The cnnkit the tests imported (the checkout's python/ in development, site-packages after
# `pip install .`, where the checkout's python/ has no built _core).
PYTHON_DIR = Path(cnnkit.__file__).resolve().parent.parent

needs_mpi = pytest.mark.skipif(
    shutil.which("mpirun") is None or not dist.is_available(),
    reason="needs Open MPI's mpirun and mpi4py (apt-get install openmpi-bin libopenmpi-dev; "
           "pip install 'cnnkit[mpi]')")


def mpirun(np_, *args, timeout=60):
    """Run ``mpirun -np np_ python args...`` as the tests' ranks: 1 OpenMP thread each, root
    allowed, oversubscribed (this machine has 2 cores), the same cnnkit as the tests."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), str(HERE)]
                                          + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_), sys.executable, *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def references():
    """One process on the whole batch of 64 (no mpirun): {"plain"/"bn": state_dict}."""
    threads = ck.get_num_threads()
    ck.set_num_threads(1)
    try:
        return {("bn" if bn else "plain"): worker.train(bn, distributed=False)
                for bn in (False, True)}
    finally:
        ck.set_num_threads(threads)


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_data_parallel_equals_one_process_on_the_global_batch(ranks, references, tmp_path):
    proc, _ = mpirun(ranks, HERE / "distributed_worker.py", "train", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for tag in ("plain", "bn"):  # bn: SyncBatchNorm across the ranks
        want, want_hist = references[tag]
        got = [np.load(tmp_path / f"{tag}-rank{r}.npz") for r in range(ranks)]
        assert int(got[0]["_size"]) == ranks
        for key, value in want.items():
            # each rank started from its own initialisation: the broadcast made them agree,
            # and the same averaged gradients kept them bit-identical
            for r in range(1, ranks):
                np.testing.assert_array_equal(got[r][key], got[0][key], err_msg=f"{tag} {key}")
            assert _rel_err(got[0][key], value) <= 1e-5, (tag, key)
        # metrics cover every rank's images
        np.testing.assert_allclose(got[0]["_loss"], want_hist.train_loss, rtol=1e-5)
        np.testing.assert_allclose(got[0]["_acc"], want_hist.train_acc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[0]["_val_acc"], want_hist.val_acc, rtol=0, atol=1e-12)


@needs_mpi
@pytest.mark.parametrize("launcher", [["-m", "mpi4py"], []], ids=["python-m-mpi4py", "plain"])
def test_a_failing_rank_ends_the_whole_job_promptly(launcher):
    """Rank 1 raises while rank 0 waits in a collective: MPI_Abort ends both (python -m mpi4py
    does it; without it, cnnkit.distributed's excepthook does)."""
    proc, seconds = mpirun(2, *launcher, HERE / "distributed_worker.py", "fail", timeout=60)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert "should never get here" not in proc.stdout
    assert seconds < 20, seconds


@needs_mpi
def test_command_line_distributed_training(tmp_path):
    proc, _ = mpirun(2, "-m", "mpi4py", "-m", "cnnkit", "train", "--distributed", "--sync-bn",
                     "--epochs", "1", "--threads", "1", "--quiet", "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("cnnkit train:") == 1 and "x 2 MPI ranks" in out   # rank 0 alone prints
    assert out.count("epoch 1/1") == 1 and "final test accuracy" in out
    _, _, ckpt = ck.train.load_model(tmp_path / "last.safetensors")
    assert ckpt["epoch"] == 1 and ckpt["history"]["train_acc"][0] > 0.3


# ------------------------------------------------------------------ one process, no mpirun
def test_single_process_fallback(references):
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    assert not dist.uses_mpi()
    ck.set_num_threads(1)
    for tag, bn in (("plain", False), ("bn", True)):
        state, hist = worker.train(bn, distributed=True)   # sync BN converted, world size 1
        want, want_hist = references[tag]
        for k in want:
            np.testing.assert_array_equal(state[k], want[k])
        assert hist.train_loss == want_hist.train_loss
    a = np.arange(5, dtype=np.float32)
    assert dist.allreduce_(a) is a and a.tolist() == [0, 1, 2, 3, 4]
    dist.barrier()


def test_distributed_sampler_shards_are_disjoint_and_cover_the_epoch():
    n, p = 103, 4
    shards = [dist.DistributedSampler(n, p, r, shuffle=True, seed=3) for r in range(p)]
    got = [s.indices(5) for s in shards]
    assert all(len(g) == len(s) == 26 for g, s in zip(got, shards))
    # the same epoch order on every rank, dealt round-robin, padded from its start
    order = np.random.default_rng([3, 5]).permutation(n)
    padded = np.concatenate([order, order[:1]])
    for r in range(p):
        np.testing.assert_array_equal(got[r], padded[r::p])
    assert sorted(np.concatenate(got).tolist()) == sorted(padded.tolist())
    assert not np.array_equal(shards[0].indices(6), got[0])        # a new order each epoch
    dropped = [dist.DistributedSampler(n, p, r, seed=3, drop_last=True).indices(5)
               for r in range(p)]
    assert all(len(d) == 25 for d in dropped)
    flat = np.concatenate(dropped)
    assert len(set(flat.tolist())) == 100 and set(flat.tolist()) <= set(order[:100].tolist())
    tiny = dist.DistributedSampler(3, 4, 3, shuffle=False)          # fewer samples than ranks
    assert tiny.indices(0).tolist() == [0]
    with pytest.raises(ValueError, match="rank"):
        dist.DistributedSampler(10, 2, 2)


def test_sharded_loader_batches_together_make_the_global_batch():
    """Rank r's b-th batch of 64 / p images are positions r, r + p, ... of the one-process
    loader's b-th batch of 64."""
    ds = worker.dataset()
    full = data.DataLoader(ds, 64, shuffle=True, seed=5, prefetch=False)
    full.set_epoch(1)
    want = [y.numpy() for _, y in full]
    for p in (2, 4):
        parts = []
        for r in range(p):
            loader = data.DataLoader(ds, 64 // p, seed=5, prefetch=False,
                                     sampler=dist.DistributedSampler(ds, p, r, seed=5))
            loader.set_epoch(1)
            parts.append([y.numpy() for _, y in loader])
        for b, labels in enumerate(want):
            merged = np.empty_like(labels)
            for r in range(p):
                merged[r::p] = parts[r][b]
            np.testing.assert_array_equal(merged, labels)
    with pytest.raises(ValueError, match="exclusive"):
        data.DataLoader(ds, 8, shuffle=True, sampler=dist.DistributedSampler(ds, 2, 0))


def test_gradients_are_views_of_the_flat_buffer_across_backward_and_zero_grad():
    ck.manual_seed(0)
    model = worker.build(batch_norm=True, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    reducer = dist.GradientAllreduce(model.parameters())
    x = ck.tensor(np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32))
    y = ck.tensor(np.array([1, 2, 3, 4]))
    for _ in range(2):
        opt.zero_grad()  # set_to_none: the next backward writes into the views again
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        loss2 = nn.CrossEntropyLoss()(model(x), y)  # a second backward accumulates in place
        loss2.backward()
        for p, view in zip(reducer.params, reducer.views):
            assert p.grad is view and np.shares_memory(p.grad, reducer.buffer)
        before = reducer.buffer.copy()
        reducer.allreduce()  # one process: the average is the gradient itself
        np.testing.assert_array_equal(reducer.buffer[:reducer.numel], before[:reducer.numel])
        assert all(p.grad is v for p, v in zip(reducer.params, reducer.views))
        opt.step()
    # the flat buffer holds exactly the gradients, in parameter order
    flat = np.concatenate([p.grad.ravel() for p in reducer.params])
    np.testing.assert_array_equal(reducer.buffer[:reducer.numel], flat)
    # a parameter no backward reached keeps grad None, as without the buffer
    opt.zero_grad()
    reducer.allreduce()
    assert all(p.grad is None for p in reducer.params)
    reducer.close()
    nn.CrossEntropyLoss()(model(x), y).backward()
    assert not np.shares_memory(model[0].weight.grad, reducer.buffer)


def test_accumulating_twice_without_the_buffer_is_unchanged():
    w = ck.tensor(np.ones(3, np.float32), requires_grad=True)
    (w * 2).sum().backward()
    g = w.grad
    (w * 3).sum().backward()
    assert w.grad.tolist() == [5, 5, 5] and g.tolist() == [2, 2, 2]   # not modified in place


def test_convert_sync_batchnorm_keeps_parameters_and_state_dict():
    model = worker.build(batch_norm=True, seed=0)
    params = list(model.parameters())
    keys = list(model.state_dict())
    model = dist.convert_sync_batchnorm(model)
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[6], dist.SyncBatchNorm)
    assert isinstance(model[1], nn.normalization._BatchNorm)
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert list(model.state_dict()) == keys
    with pytest.raises(ValueError):   # still checks the input rank (BatchNorm2d: 4-d only)
        model[1](ck.tensor(np.zeros((2, 8), np.float32)))
