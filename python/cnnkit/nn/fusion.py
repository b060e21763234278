"""Fusion passes: explicit rewrites of a model that give the same values, faster.

- :func:`fuse_batch_norm_relu` (training and inference, in place): a BatchNorm1d/2d followed
  by a ReLU inside a Sequential computes relu(batch_norm(x)) in one pass over memory (forward
  and backward, a bit mask instead of the ReLU's output); the ReLU is marked ``fused`` and
  passes its input through. Shown in the repr (``BatchNorm2d(..., relu=True)``,
  ``ReLU(fused=True)``); the same bits as the two ops. ``train.fit`` runs it.
- :func:`fuse` (inference): an eval-mode copy with each batch norm folded into the Conv2d /
  Linear before it, the ReLU after a convolution run in its GEMM epilogue, and a MaxPool2d
  right after that pooled there too (where no gradient is asked for).

Pairs where a forward hook would see the difference (on either module) are left alone, and
only plain BatchNorm1d/2d and ReLU modules are fused (not subclasses such as SyncBatchNorm).
"""

from __future__ import annotations

import copy

import numpy as np

from .._args import as_pair
from .activation import ReLU
from .conv import Conv2d
from .linear import Linear
from .module import Identity, Module, Parameter, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, _BatchNorm
from .pooling import MaxPool2d

__all__ = ["fuse", "fuse_batch_norm_relu"]


def _pairs(seq: Sequential):
    """(first, second) for consecutive modules of ``seq``."""
    mods = [m for m in seq._modules.values() if m is not None]
    return zip(mods, mods[1:])


def fuse_batch_norm_relu(model: Module) -> Module:
    """Mark, in place, every BatchNorm1d/2d directly followed by a ReLU (inside any Sequential
    of ``model``) to run as one fused op; returns ``model``.

    The batch norm then returns relu(batch_norm(x)) (``fused_relu = True``) and the ReLU passes
    its input through (``fused = True``): the same values and gradients, bit for bit, as the
    two ops, from one pass over memory in training. Pairs with forward hooks are skipped.
    """
    if not isinstance(model, Module):
        raise TypeError(f"fuse_batch_norm_relu: model must be a cnnkit.nn.Module, got "
                        f"{type(model).__name__}")
    for seq in [m for m in model.modules() if isinstance(m, Sequential)]:
        for bn, relu in _pairs(seq):
            if (type(bn) in (BatchNorm1d, BatchNorm2d) and type(relu) is ReLU
                    and not bn._forward_hooks and not relu._forward_hooks
                    and not relu.fused):
                bn.fused_relu = True
                relu.fused = True
    return model


def fuse(model: Module) -> Module:
    """An equivalent eval-mode copy of ``model`` for inference.

    Inside every Sequential (at any depth), a BatchNorm2d (BatchNorm1d) right after a Conv2d
    (Linear) is folded into that layer's weight and bias, and a ReLU right after a Conv2d (or
    after its folded batch norm) runs in the convolution's GEMM epilogue; a MaxPool2d right
    after that (or right after the Conv2d) is pooled there as well, from the output planes
    while they are in cache (the same values; where a gradient is asked for, the pooling runs
    as its own op). The folded modules become Identity, so the remaining modules keep their
    names. The original is untouched.

    A custom module may declare such pairs among its attributes: ``fuse_pairs = (("conv1",
    "bn1", True), ...)`` says its forward computes ``bn1(conv1(x))`` (then a ReLU, for True);
    each is folded the same way (the models' ResNet blocks do this).

    Every Conv2d of the copy keeps what its fp32 algorithm derives from the weights (Winograd's
    transformed filters: at batch 1 most of a 3x3 layer's time) from one inference call (eval
    mode, no gradient) to the next. An optimizer step, ``load_state_dict``, ``nn.init`` and
    ``Tensor.zero_`` invalidate it (:func:`cnnkit.amp.weights_changed`); after writing into a
    weight's array yourself, call ``cnnkit.amp.weights_changed()``.

    Folding: with s = gamma / sqrt(running_var + eps), W' = W * s (per output channel) and
    b' = (b - running_mean) * s + beta, computed in float64.
    """
    fused = copy.deepcopy(model)
    fused.eval()
    for m in list(fused.modules()):
        if isinstance(m, Sequential):
            _fuse_sequence(m)
        for conv_name, bn_name, relu in getattr(m, "fuse_pairs", ()):
            _fuse_attributes(m, conv_name, bn_name, relu)
    for m in fused.modules():
        if isinstance(m, Conv2d):
            m.inference_cache = True
            m._weight_cache = None
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
            bn = mods[names[j]] if j < len(names) else None
            relu_in_bn = False
            if type(bn) is bn_type and bn.running_mean is not None:
                _fold_batch_norm(layer, bn)
                relu_in_bn = bn.fused_relu  # marked by fuse_batch_norm_relu
                mods[names[j]] = Identity()
                j += 1
            nxt = mods[names[j]] if j < len(names) else None
            if isinstance(layer, Conv2d):
                if type(nxt) is ReLU or relu_in_bn:
                    layer.fused_relu = True
                    if type(nxt) is ReLU:
                        mods[names[j]] = Identity()
                        j += 1
                pool = mods[names[j]] if j < len(names) else None
                if (type(pool) is MaxPool2d and not pool._forward_hooks
                        and not layer._forward_hooks):
                    layer.fused_pool = _pool_window(pool)
                    mods[names[j]] = Identity()
                    j += 1
            elif relu_in_bn:  # a Linear's folded batch norm applied the ReLU: keep it
                if type(nxt) is ReLU:
                    nxt.fused = False
                else:
                    mods[names[j - 1]] = ReLU()
        i = j


def _fuse_attributes(m: Module, conv_name: str, bn_name: str, relu: bool) -> None:
    """A module's declared pair (its ``fuse_pairs``): ``bn(conv(x))`` in its forward, the batch
    norm folded into the conv and replaced by Identity; ``relu``: a ReLU follows, which the conv
    then applies in its epilogue too (the forward's own ReLU stays: relu(relu(x)) = relu(x))."""
    conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
    if (type(conv) is not Conv2d or type(bn) is not BatchNorm2d or bn.running_mean is None
            or conv._forward_hooks or bn._forward_hooks):
        return
    _fold_batch_norm(conv, bn)
    setattr(m, bn_name, Identity())
    if relu and not bn.fused_relu:
        conv.fused_relu = True


def _pool_window(pool: MaxPool2d):
    """(kernel, stride, padding, ceil_mode) of a MaxPool2d, as pairs."""
    op = "MaxPool2d"
    return (as_pair(pool.kernel_size, "kernel_size", op), as_pair(pool.stride, "stride", op),
            as_pair(pool.padding, "padding", op), bool(pool.ceil_mode))
