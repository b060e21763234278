"""Data-parallel training across processes and machines on MPI (mpi4py + Open MPI), the way
Horovod does it: every rank holds the whole model, trains on its shard of each global batch, and
the gradients are averaged with one allreduce before every optimizer step.

    mpirun -np 4 python -m mpi4py -m cnnkit train --distributed --batch-size 256
    mpirun -np 4 python -m mpi4py my_script.py        # my_script calls fit(..., distributed=True)

Without mpi4py, or outside ``mpirun``, everything here runs as one process (world size 1), so
the same script runs anywhere. MPI is used when mpi4py's ``MPI`` module is already imported
(``python -m mpi4py``) or a launcher's environment (Open MPI, PMI, PMIx: mpirun, srun)
says there are several ranks (then a missing mpi4py is an error, not a silent fallback);
``CNNKIT_MPI=0`` turns it off.

The pieces, each usable on its own:

- :func:`init`, :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`,
  :func:`abort`; :func:`allreduce_`, :func:`broadcast_` on numpy arrays in place.
- :func:`broadcast_parameters`: rank 0's parameters and buffers to every rank.
- :class:`DistributedSampler`: each rank's disjoint, seeded shard of every epoch.
- :class:`GradientAllreduce`: the parameters' ``.grad`` arrays are views into one flat float32
  buffer (``Tensor`` accumulates into a preassigned gradient array in place), averaged by one
  ``Allreduce(MPI.IN_PLACE, ...)`` per step.
- :class:`SyncBatchNorm` / :func:`convert_sync_batchnorm`: batch statistics of the global
  batch (allreduce of each channel's sum and sum of squares, and of the backward's two sums).
  Without it each rank normalises with its own shard's statistics (Horovod's and PyTorch DDP's
  default) and :class:`DataParallel` averages the running statistics at the end of each epoch.
- :class:`DataParallel`: what ``train.fit(..., distributed=True)`` uses.

Determinism: with the same global batch, ``fit(distributed=True)`` on p ranks sees the same
images per step as one process (rank r's local batch b holds the global batch b's positions
r, r + p, r + 2p, ...) and so reaches the same parameters up to float rounding of the gradient
sums; all ranks hold bit-identical parameters (each receives the same allreduced buffer and
applies the same update). Random augmentation and dropout masks differ from a one-process run
(each rank draws its own).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .tensor import Function

__all__ = [
    "init", "is_available", "is_initialized", "uses_mpi", "rank", "world_size", "is_main",
    "barrier", "abort", "allreduce_", "broadcast_", "broadcast_parameters", "DistributedSampler",
    "GradientAllreduce", "SyncBatchNorm", "convert_sync_batchnorm", "average_buffers",
    "shard_loader", "evaluate", "DataParallel",
]

# environment variables by which MPI launchers announce the world size
# (not SLURM_NTASKS: it is set for a whole allocation, also around a plain one-process run)
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class _State:
    initialized = False
    comm = None      # mpi4py.MPI.Comm or None (one process)
    MPI = None       # the mpi4py.MPI module when in use
    rank = 0
    size = 1


_state = _State()


# --------------------------------------------------------------------------- set-up
def is_available() -> bool:
    """Whether mpi4py can be imported (it needs an MPI library, e.g. Open MPI)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def _launched_under_mpi() -> bool:
    if "mpi4py.MPI" in sys.modules:
        return True
    for var in _LAUNCHER_SIZE_VARS:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def init() -> int:
    """Join the MPI job if there is one (idempotent); returns the world size.

    One process (world size 1, no MPI calls) when mpi4py is missing, when not launched by an
    MPI launcher, or with ``CNNKIT_MPI=0``. Under MPI with several ranks, an unhandled
    exception on any rank calls ``MPI_Abort`` so the whole job ends instead of hanging in a
    collective (``python -m mpi4py`` does the same; this covers ``mpirun python script.py``).
    """
    if _state.initialized:
        return _state.size
    use = os.environ.get("CNNKIT_MPI", "").strip().lower() not in ("0", "false", "no", "off")
    if use and _launched_under_mpi():
        try:
            from mpi4py import MPI
        except ImportError as e:
            # each rank would train alone and all would write the same checkpoints
            raise ImportError("cnnkit.distributed: started by an MPI launcher with several "
                              "ranks, but mpi4py cannot be imported (pip install "
                              f"'cnnkit[mpi]'; CNNKIT_MPI=0 runs each rank alone): {e}") from e

        _state.MPI, _state.comm = MPI, MPI.COMM_WORLD
        _state.rank, _state.size = _state.comm.Get_rank(), _state.comm.Get_size()
        if _state.size > 1:
            _install_excepthook()
    _state.initialized = True
    return _state.size


def _install_excepthook() -> None:
    previous = sys.excepthook

    def abort_on_exception(exc_type, exc, tb):
        try:
            sys.stderr.write(f"cnnkit.distributed: unhandled exception on rank {_state.rank} "
                             f"of {_state.size}; aborting all ranks\n")
            previous(exc_type, exc, tb)
            sys.stderr.flush()
        finally:
            _state.comm.Abort(1)

    sys.excepthook = abort_on_exception


def is_initialized() -> bool:
    """Whether :func:`init` has run in this process."""
    return _state.initialized


def uses_mpi() -> bool:
    """Whether this process talks to other ranks (MPI in use and world size > 1)."""
    init()
    return _state.size > 1


def rank() -> int:
    """This process's rank in [0, world_size())."""
    init()
    return _state.rank


_this_rank = rank  # for DistributedSampler, whose argument shadows the name


def world_size() -> int:
    """Number of processes in the job (1 without MPI)."""
    return init()


def is_main() -> bool:
    """Whether this is rank 0 (the one that prints and writes checkpoints)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if uses_mpi():
        _state.comm.Barrier()


def abort(code: int = 1) -> None:
    """End every rank of the job now (``MPI_Abort``); plain ``sys.exit`` with one process."""
    if uses_mpi():
        sys.stdout.flush()
        sys.stderr.flush()
        _state.comm.Abort(int(code))
    sys.exit(code)


# --------------------------------------------------------------------------- collectives
def allreduce_(array: np.ndarray, op: str = "sum") -> np.ndarray:
    """Reduce a contiguous numpy array across ranks in place (``MPI.IN_PLACE``): ``"sum"``,
    ``"max"`` or ``"min"``. Returns the array."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable):
        raise TypeError("allreduce_: array must be a writable C-contiguous numpy array")
    if uses_mpi():
        MPI = _state.MPI
        mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        _state.comm.Allreduce(MPI.IN_PLACE, array, op=mpi_op)
    return array


def broadcast_(array: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``array`` with rank ``root``'s values, in place. Returns the array."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable):
        raise TypeError("broadcast_: array must be a writable C-contiguous numpy array")
    if uses_mpi():
        _state.comm.Bcast(array, root=root)
    return array


def broadcast_parameters(model, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameters and buffers (in place, so optimizers and
    the core's running-statistics updates keep their arrays)."""
    if not uses_mpi():
        return
    for _, t in model._persistent_state():
        broadcast_(t.data, root)


def _sum_counts(*values) -> np.ndarray:
    """Sums across ranks of a few numbers, as float64 (exact for counts below 2**53)."""
    buf = np.array(values, dtype=np.float64)
    return allreduce_(buf)


# --------------------------------------------------------------------------- data
class DistributedSampler:
    """The indices of this rank's shard of every epoch (PyTorch's DistributedSampler).

    Epoch ``e``'s order is ``numpy.random.default_rng([seed, e]).permutation(n)`` (the order a
    shuffled ``DataLoader`` with the same seed uses) on every rank; rank ``r`` takes positions
    ``r, r + p, r + 2p, ...`` of it, so the shards are disjoint and, with a local batch of
    B / p, the ranks' b-th batches together are the one-process loader's b-th batch of B.

    Uneven tails: with ``drop_last=False`` (default) the order is padded by repeating its first
    ``ceil(n / p) * p - n`` indices, so every rank gets ``ceil(n / p)`` samples (a few samples
    count twice per epoch); with ``drop_last=True`` the last ``n mod p`` indices of the order
    are dropped and every rank gets ``n // p``. Either way all ranks see the same number of
    samples, hence the same number of batches: no rank waits in an allreduce the others skip.

    ``rng_key`` (``(rank, num_replicas)``) makes a DataLoader's augmentation random stream
    differ between ranks.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.n = int(dataset) if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.num_replicas = world_size() if num_replicas is None else int(num_replicas)
        self.rank = _this_rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {self.num_replicas}), "
                             f"got {self.rank}")
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        p = self.num_replicas
        self.num_samples = self.n // p if self.drop_last else -(-self.n // p)
        self.total_size = self.num_samples * p
        self.epoch = 0

    @property
    def rng_key(self) -> tuple:
        return (self.rank, self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's indices for epoch ``epoch`` (int64 array of ``len(self)``)."""
        order = (np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        if self.total_size > self.n:  # pad by repeating from the start (cyclically if n < p)
            order = np.concatenate([order, np.resize(order, self.total_size - self.n)])
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self.indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last})")


class _EvalShard:
    """Positions r, r + p, ... of 0..n-1 without padding (evaluation counts every image
    once; ranks may get one image more or less, which is fine without per-batch collectives)."""

    def __init__(self, n: int, num_replicas: int, rank: int):
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.rng_key = (self.rank, self.num_replicas)

    def indices(self, epoch: int) -> np.ndarray:
        return np.arange(self.rank, self.n, self.num_replicas, dtype=np.int64)

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def shard_loader(loader, *, for_eval: bool = False):
    """This rank's DataLoader for a one-process ``loader`` whose ``batch_size`` is the global
    batch: local batch ``batch_size // world_size()`` over a :class:`DistributedSampler`
    (same dataset, seed, transform). ``for_eval``: a plain partition of the data set in order,
    no padding, for evaluation. With one process ``loader`` itself is returned."""
    from .data import DataLoader

    p, r = world_size(), rank()
    if p == 1:
        return loader
    if not isinstance(loader, DataLoader):
        raise TypeError(f"distributed training needs cnnkit.data.DataLoader loaders, got "
                        f"{type(loader).__name__}")
    if for_eval:
        sampler, batch = _EvalShard(len(loader.dataset), p, r), loader.batch_size
    else:
        if loader.batch_size % p:
            raise ValueError(f"distributed: the global batch size {loader.batch_size} is not "
                             f"divisible by the {p} ranks")
        sampler = DistributedSampler(loader.dataset, p, r, shuffle=loader.shuffle,
                                     seed=loader.seed)
        batch = loader.batch_size // p
    out = DataLoader(loader.dataset, batch, drop_last=loader.drop_last and not for_eval,
                     seed=loader.seed, transform=loader.transform, prefetch=loader.prefetch,
                     sampler=sampler)
    out.set_epoch(loader.epoch)
    return out


# --------------------------------------------------------------------------- gradients
class GradientAllreduce:
    """Average the gradients of ``params`` across ranks with one allreduce per step.

    All gradients live in one flat float32 buffer: each parameter's ``.grad`` is a view of its
    slice (``Tensor._grad_target``; the backward pass writes the first gradient into it and adds
    later ones in place, also after ``zero_grad(set_to_none=True)``), so the allreduce reads
    and writes them with no copy. The buffer ends with one float per parameter that is 1 when
    the parameter got a gradient on this rank: after the sum, a parameter no rank touched keeps
    ``grad = None`` (as in one process), one that some rank touched gets the average (zeros from
    the others).
    """

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        sizes = [p.data.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.numel = int(self.offsets[-1])
        self.buffer = np.zeros(self.numel + len(self.params), dtype=np.float32)
        self.flags = self.buffer[self.numel:]
        self.views = []
        for p, a, b in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            view = self.buffer[a:b].reshape(p.data.shape)
            if p.grad is not None:
                np.copyto(view, p.grad)
                p.grad = view
            p._grad_target = view
            self.views.append(view)

    def allreduce(self) -> None:
        """Replace every ``.grad`` by its average over the ranks (call after backward)."""
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if p.grad is None:
                view[...] = 0
                self.flags[i] = 0
            else:
                if p.grad is not view:  # assigned by hand: bring it into the buffer
                    np.copyto(view, p.grad)
                    p.grad = view
                self.flags[i] = 1
        if uses_mpi():
            _state.comm.Allreduce(_state.MPI.IN_PLACE, self.buffer, op=_state.MPI.SUM)
            grads = self.buffer[:self.numel]
            np.divide(grads, np.float32(_state.size), out=grads)
        for p, view, flag in zip(self.params, self.views, self.flags):
            p.grad = view if flag > 0 else None

    def close(self) -> None:
        """Stop accumulating into the buffer (the current ``.grad`` views stay valid)."""
        for p in self.params:
            p._grad_target = None


# --------------------------------------------------------------------------- batch norm
class SyncBatchNormFunction(Function):
    """Batch norm with the statistics of the global batch (all ranks' shards).

    Forward: one allreduce of [sum x, sum x^2, count] per channel (float64), then
    mu = sum / M, var = sum x^2 / M - mu^2 (biased), y = gamma (x - mu) / sqrt(var + eps) + beta.
    Backward: each rank's loss is the mean over its shard, i.e. p times its part of the global
    mean, so with global sums S1 = sum(dy), S2 = sum(dy xhat) over all ranks,
    dx = gamma r (dy - S1 / M - xhat S2 / M) is p times the one-process dx (p times every
    upstream gradient, which the gradient average divides by p again); dgamma and dbeta are
    this rank's sums, averaged with the other gradients.
    """

    def forward(self, x, weight, bias, running_mean, running_var, momentum, eps, comm, mpi):
        from . import _core

        self.shape, self.comm, self.mpi = x.shape, comm, mpi
        x4 = np.asarray(x, dtype=np.float32, order="C")
        if x4.ndim == 3:
            x4 = x4.reshape(x4.shape + (1,))
        self.x = x4
        c = x4.shape[1]
        self.axes = (0,) + tuple(range(2, x4.ndim))
        self.bshape = (1, c) + (1,) * (x4.ndim - 2)
        stats = np.empty(2 * c + 1, dtype=np.float64)
        stats[:c] = x4.sum(axis=self.axes, dtype=np.float64)
        stats[c:2 * c] = np.square(x4, dtype=np.float64).sum(axis=self.axes)
        stats[2 * c] = x4.size // c
        comm.Allreduce(mpi.IN_PLACE, stats, op=mpi.SUM)
        m = stats[2 * c]
        mean = stats[:c] / m
        var = np.maximum(stats[c:2 * c] / m - mean * mean, 0.0)
        self.count = m
        self.mean = mean.astype(np.float32)
        self.invstd = (1.0 / np.sqrt(var + eps)).astype(np.float32)
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * m / max(m - 1, 1)
        y = _core.batch_norm_forward_eval(
            x4, self.weight, None if bias is None else np.asarray(bias, dtype=np.float32),
            self.mean, var.astype(np.float32), float(eps))
        return y.reshape(self.shape)

    def backward(self, g):
        g = np.asarray(g, dtype=np.float32).reshape(self.x.shape)
        c = self.x.shape[1]
        xhat = (self.x - self.mean.reshape(self.bshape)) * self.invstd.reshape(self.bshape)
        local = np.empty(2 * c, dtype=np.float64)
        local[:c] = g.sum(axis=self.axes, dtype=np.float64)
        local[c:] = (g * xhat).sum(axis=self.axes, dtype=np.float64)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        db = local[:c].astype(np.float32) if need_b else None
        dw = local[c:].astype(np.float32) if need_w else None
        dx = None
        if need_x:
            self.comm.Allreduce(self.mpi.IN_PLACE, local, op=self.mpi.SUM)
            s1 = (local[:c] / self.count).astype(np.float32).reshape(self.bshape)
            s2 = (local[c:] / self.count).astype(np.float32).reshape(self.bshape)
            scale = self.invstd if self.weight is None else self.invstd * self.weight
            dx = (scale.reshape(self.bshape) * (g - s1 - xhat * s2)).reshape(self.shape)
        return dx, dw, db


def _batch_norm_class():
    from .nn.normalization import _BatchNorm

    return _BatchNorm


def _make_sync_batchnorm_class():
    base = _batch_norm_class()

    class SyncBatchNorm(base):
        """Batch norm whose training statistics are those of the global batch across all
        ranks (PyTorch's SyncBatchNorm); with one process, or in eval mode, plain batch norm.
        Inputs [N, C], [N, C, L] or [N, C, H, W]; same parameters, buffers and state_dict keys
        as BatchNorm1d/2d. Build with :func:`convert_sync_batchnorm`."""

        _ranks = (2, 3, 4)

        def forward(self, x):
            if not (self.training and uses_mpi()):
                return super().forward(x)
            if x.ndim not in self._ranks or x.shape[1] != self.num_features:
                raise ValueError(f"{self!r}: expected input [N, {self.num_features}, ...], got "
                                 f"{list(x.shape)}")
            factor = 0.0 if self.momentum is None else self.momentum
            if self.track_running_stats:
                self.num_batches_tracked.data[...] += 1
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked.data)
            track = self.track_running_stats
            return SyncBatchNormFunction.apply(
                x, self.weight, self.bias,
                running_mean=self.running_mean.data if track else None,
                running_var=self.running_var.data if track else None,
                momentum=float(factor), eps=float(self.eps), comm=_state.comm, mpi=_state.MPI)

    return SyncBatchNorm


SyncBatchNorm = _make_sync_batchnorm_class()


def convert_sync_batchnorm(model):
    """Turn every BatchNorm1d/2d of ``model`` into a :class:`SyncBatchNorm` in place, keeping
    its Parameter and buffer objects (optimizers built before stay valid). Returns ``model``
    (or the new module when ``model`` itself is a batch norm)."""
    base = _batch_norm_class()

    def convert(m):
        sync = object.__new__(SyncBatchNorm)
        sync.__dict__.update(m.__dict__)
        object.__setattr__(sync, "_ranks", type(m)._ranks)
        return sync

    if isinstance(model, base) and not isinstance(model, SyncBatchNorm):
        return convert(model)
    for m in list(model.modules()):
        for name, child in list(m._modules.items()):
            if isinstance(child, base) and not isinstance(child, SyncBatchNorm):
                m._modules[name] = convert(child)
    return model


def average_buffers(model) -> None:
    """Average the float buffers of the batch norms that keep per-rank statistics (running
    mean and variance) across ranks, so that evaluation and checkpoints agree on every rank.
    SyncBatchNorm's running statistics are already identical everywhere."""
    if not uses_mpi():
        return
    base = _batch_norm_class()
    arrays = [t.data for m in model.modules()
              if isinstance(m, base) and not isinstance(m, SyncBatchNorm)
              for t in (m.running_mean, m.running_var) if t is not None]
    if not arrays:
        return
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float32)
    allreduce_(flat)
    flat /= np.float32(_state.size)
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


# --------------------------------------------------------------------------- evaluation
def evaluate(model, loader, loss=None, num_classes=None):
    """``train.evaluate`` over a data set split across ranks (``shard_loader(...,
    for_eval=True)``): each rank scores its part, then one allreduce sums the confusion matrix,
    the top-5 hits and the loss. Every rank returns the same :class:`~cnnkit.train.Evaluation`
    of the whole data set. ``num_classes`` defaults to the model's output width."""
    from .train import Evaluation
    from .train import evaluate as local_evaluate

    if not uses_mpi():
        return local_evaluate(model, loader, loss=loss, num_classes=num_classes)
    from .tensor import no_grad

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    scores, labels, total = [], [], 0.0
    try:
        with no_grad():
            for x, y in loader:
                out = model(x)
                if loss is not None:
                    total += float(loss(out, y).item()) * len(y)
                scores.append(np.asarray(out.data))
                labels.append(np.asarray(y.data))
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    width = np.array([scores[0].shape[1] if scores else 0], dtype=np.float64)
    c = int(num_classes or allreduce_(width, "max")[0])
    confusion = np.zeros((c, c), dtype=np.float64)
    top5_hits = 0
    if scores:
        s, y = np.concatenate(scores), np.concatenate(labels)
        np.add.at(confusion, (y, s.argmax(axis=1)), 1)
        if s.shape[1] > 5:
            top = np.argpartition(-s, 5, axis=1)[:, :5]
            top5_hits = int((top == y[:, None]).any(axis=1).sum())
    flat = np.concatenate([confusion.ravel(), [top5_hits, total]])
    allreduce_(flat)
    confusion = np.rint(flat[:c * c]).astype(np.int64).reshape(c, c)
    n = int(confusion.sum())
    if n == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / support
    top5 = float(flat[c * c] / n) if c > 5 else None
    return Evaluation(float(np.trace(confusion) / n), top5, confusion, per_class,
                      float(flat[c * c + 1] / n) if loss is not None else None, n)


# --------------------------------------------------------------------------- fit
class DataParallel:
    """The distributed side of ``train.fit(..., distributed=True)``.

    On construction: joins MPI (:func:`init`), broadcasts rank 0's parameters and buffers,
    shards the loaders (:func:`shard_loader`: the training loader's batch size is the global
    batch) and builds the :class:`GradientAllreduce`. Then per step :meth:`allreduce_gradients`
    after backward, per epoch :meth:`reduce_metrics`, :meth:`end_epoch` and :meth:`evaluate`.
    With one process every method is a no-op and the loaders are the caller's.
    """

    def __init__(self, model, train_loader, val_loader=None):
        init()
        self.model, self.is_main, self.world_size = model, is_main(), world_size()
        broadcast_parameters(model)
        self.train_loader = shard_loader(train_loader)
        self.val_loader = None if val_loader is None else shard_loader(val_loader,
                                                                       for_eval=True)
        self.grads = GradientAllreduce(model.parameters()) if uses_mpi() else None

    def allreduce_gradients(self) -> None:
        if self.grads is not None:
            self.grads.allreduce()

    def reduce_metrics(self, seen, correct, total_loss):
        """(seen, correct, summed loss) over all ranks."""
        if not uses_mpi():
            return seen, correct, total_loss
        s, c, t = _sum_counts(seen, correct, total_loss)
        return int(s), int(c), float(t)

    def end_epoch(self) -> None:
        average_buffers(self.model)

    def evaluate(self, loss=None):
        return evaluate(self.model, self.val_loader, loss=loss)

    def close(self) -> None:
        if self.grads is not None:
            self.grads.close()
