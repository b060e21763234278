"""Model utilities: inference fusion."""

from __future__ import annotations

import copy

import numpy as np

from .activation import ReLU
from .conv import Conv2d
from .linear import Linear
from .module import Identity, Module, Parameter, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, _BatchNorm

__all__ = ["fuse"]


def fuse(model: Module) -> Module:
    """An equivalent eval-mode copy of ``model`` for inference.

    Inside every Sequential (at any depth), a BatchNorm2d (BatchNorm1d) right after a Conv2d
    (Linear) is folded into that layer's weight and bias, and a ReLU right after a Conv2d (or
    after its folded batch norm) runs in the convolution's GEMM epilogue. The folded modules
    become Identity, so the remaining modules keep their names. The original is untouched.

    Folding: with s = gamma / sqrt(running_var + eps), W' = W * s (per output channel) and
    b' = (b - running_mean) * s + beta, computed in float64.
    """
    fused = copy.deepcopy(model)
    fused.eval()
    for m in list(fused.modules()):
        if isinstance(m, Sequential):
            _fuse_sequence(m)
    return fused


def _fold_batch_norm(layer, bn: _BatchNorm) -> None:
    mean = bn.running_mean.data.astype(np.float64)
    var = bn.running_var.data.astype(np.float64)
    s = 1.0 / np.sqrt(var + bn.eps)
    beta = np.zeros_like(mean)
    if bn.weight is not None:
        s = s * bn.weight.data.astype(np.float64)
    if bn.bias is not None:
        beta = bn.bias.data.astype(np.float64)
    w = layer.weight.data.astype(np.float64)
    w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    b = layer.bias.data.astype(np.float64) if layer.bias is not None else np.zeros_like(mean)
    b = (b - mean) * s + beta
    layer.weight = Parameter(w.astype(np.float32))
    layer.bias = Parameter(b.astype(np.float32))


def _fuse_sequence(seq: Sequential) -> None:
    names = list(seq._modules.keys())
    mods = seq._modules
    i = 0
    while i < len(names):
        layer = mods[names[i]]
        j = i + 1
        if isinstance(layer, (Conv2d, Linear)):
            bn_type = BatchNorm2d if isinstance(layer, Conv2d) else BatchNorm1d
            if (j < len(names) and type(mods[names[j]]) is bn_type
                    and mods[names[j]].running_mean is not None):
                _fold_batch_norm(layer, mods[names[j]])
                mods[names[j]] = Identity()
                j += 1
            if isinstance(layer, Conv2d) and j < len(names) and type(mods[names[j]]) is ReLU:
                layer.fused_relu = True
                mods[names[j]] = Identity()
                j += 1
        i = j
