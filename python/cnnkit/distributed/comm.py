"""MPI set-up and collectives (mpi4py + Open MPI), or one process when there is no MPI job.

MPI is used when mpi4py's ``MPI`` module is already imported (``python -m mpi4py``) or a
launcher's environment (Open MPI, PMI, PMIx: mpirun, srun) says there are several ranks (then
a missing mpi4py is an error, not a silent fallback); ``CNNKIT_MPI=0`` turns it off.
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = [
    "init", "is_available", "is_initialized", "uses_mpi", "rank", "world_size", "is_main",
    "barrier", "abort", "allreduce_", "broadcast_", "broadcast_parameters", "sum_counts",
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


def sum_counts(*values) -> np.ndarray:
    """Sums across ranks of a few numbers, as float64 (exact for counts below 2**53)."""
    buf = np.array(values, dtype=np.float64)
    return allreduce_(buf)

