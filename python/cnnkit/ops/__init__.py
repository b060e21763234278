"""The differentiable operations, one module per op family (mirroring ``cpp/src/<family>/``):
each holds the :class:`~cnnkit.autograd.Function` subclasses of its family, whose forward and
backward call the C++ core (or numpy, for tensor arithmetic).

    arithmetic  reduction  shape      numpy: the Tensor API's element-wise ops, sums, views
    gemm        sgemm (array level, no autograd) and MatMul
    conv  pool  activation  norm  dropout  linear  loss     the network ops (cnnkit._core)

The public, argument-checking wrappers are in :mod:`cnnkit.functional`; ``cnnkit.ops.sgemm``
is the low-level matrix product on numpy arrays.
"""

from .gemm import sgemm

__all__ = ["sgemm"]
