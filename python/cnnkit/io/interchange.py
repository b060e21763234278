"""PyTorch weight interchange, without importing torch.

cnnkit's ``state_dict`` keys are PyTorch's (``features.0.weight``, ``1.running_mean``,
``1.num_batches_tracked``, ...) and its layouts are PyTorch's (conv weight [K, C/groups, F, F],
linear weight [out, in]), so moving weights is a matter of array types:

    # PyTorch -> cnnkit (same architecture)
    model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    # or: model.load_state_dict(cnnkit.io.from_torch_state_dict(torch_model.state_dict()))

    # cnnkit -> PyTorch
    torch_model.load_state_dict({k: torch.from_numpy(v)
                                 for k, v in cnnkit.io.to_torch_state_dict(model).items()})
"""

from __future__ import annotations

import collections

import numpy as np

from ..tensor import Tensor

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]


def _torch_dtype(a: np.ndarray) -> np.ndarray:
    # torch keeps parameters and running statistics in float32 and counters in int64
    if a.dtype.kind == "f" and a.dtype != np.float32:
        return a.astype(np.float32)
    if a.dtype.kind in "iu" and a.dtype != np.int64:
        return a.astype(np.int64)
    return a


def to_torch_state_dict(model) -> collections.OrderedDict:
    """``model``'s parameters and buffers (or a state dict's arrays) as numpy arrays that
    ``torch.from_numpy`` accepts as they are: PyTorch's key names, float32 weights and
    statistics, int64 ``num_batches_tracked`` (0-d), C-contiguous, writable copies (torch
    shares their memory, so they must not be the model's own arrays)."""
    state = model.state_dict() if hasattr(model, "state_dict") else model
    out = collections.OrderedDict()
    for k, v in state.items():
        a = np.asarray(v.data if isinstance(v, Tensor) else v)
        # np.array, not np.ascontiguousarray: that turns 0-d arrays into 1-d ones
        out[k] = np.array(_torch_dtype(a), order="C", copy=True)
    return out


def from_torch_state_dict(state_dict) -> collections.OrderedDict:
    """A PyTorch ``state_dict`` (torch tensors, on any device) as numpy arrays for
    ``load_state_dict``. Works by duck typing (``detach().cpu().numpy()``), so torch is not
    imported here; numpy arrays pass through."""
    out = collections.OrderedDict()
    for k, v in state_dict.items():
        if hasattr(v, "detach") and hasattr(v, "cpu"):
            v = v.detach().cpu().numpy()
        out[k] = np.asarray(v)
    return out
