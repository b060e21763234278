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

The pieces, each usable on its own (one module each: ``comm``, ``sampler``, ``gradients``,
``sync_batchnorm``, ``strategy``):

- :func:`init`, :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`,
  :func:`abort`; :func:`allreduce_`, :func:`broadcast_` on numpy arrays in place.
- :func:`broadcast_parameters`: rank 0's parameters and buffers to every rank.
- :class:`DistributedSampler`: each rank's disjoint, seeded shard of every epoch.
- :class:`GradientAllreduce`: the parameters' ``.grad`` arrays are views into one flat float32
  buffer (a gradient accumulator on each parameter writes into it in place), averaged by one
  ``Allreduce(MPI.IN_PLACE, ...)`` per step.
- :class:`SyncBatchNorm` / :func:`convert_sync_batchnorm`: batch statistics of the global
  batch (allreduce of each channel's sum and sum of squares, and of the backward's two sums).
  Without it each rank normalises with its own shard's statistics (Horovod's and PyTorch DDP's
  default) and :class:`DataParallel` averages the running statistics at the end of each epoch.
- :class:`DataParallel`: the training strategy ``train.fit(..., distributed=True)`` uses
  (:class:`Strategy` is the one-process protocol it follows).

Determinism: with the same global batch, ``fit(distributed=True)`` on p ranks sees the same
images per step as one process (rank r's local batch b holds the global batch b's positions
r, r + p, r + 2p, ...) and so reaches the same parameters up to float rounding of the gradient
sums; all ranks hold bit-identical parameters (each receives the same allreduced buffer and
applies the same update). Random augmentation and dropout masks differ from a one-process run
(each rank draws its own).
"""

from .comm import (
                   abort,
                   allreduce_,
                   barrier,
                   broadcast_,
                   broadcast_parameters,
                   init,
                   is_available,
                   is_initialized,
                   is_main,
                   rank,
                   uses_mpi,
                   world_size,
)
from .gradients import GradientAllreduce
from .sampler import DistributedSampler, shard_loader
from .strategy import DataParallel, Strategy, evaluate
from .sync_batchnorm import SyncBatchNorm, average_buffers, convert_sync_batchnorm

__all__ = [
    "init", "is_available", "is_initialized", "uses_mpi", "rank", "world_size", "is_main",
    "barrier", "abort", "allreduce_", "broadcast_", "broadcast_parameters", "DistributedSampler",
    "GradientAllreduce", "SyncBatchNorm", "convert_sync_batchnorm", "average_buffers",
    "shard_loader", "evaluate", "Strategy", "DataParallel",
]
