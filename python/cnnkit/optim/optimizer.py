"""Optimizer base class: parameter groups, per-parameter state, state_dict (PyTorch's layout)."""

from __future__ import annotations

import copy

import numpy as np

from ..tensor import Tensor

__all__ = ["Optimizer"]


def check_nonnegative(**values) -> None:
    """PyTorch's checks of the hyper-parameters, in the order given: a negative ``lr`` is an
    "Invalid learning rate", any other negative NAME an "Invalid NAME value" (eps: epsilon)."""
    for name, value in values.items():
        if value < 0.0:
            if name == "lr":
                raise ValueError(f"Invalid learning rate: {value}")
            raise ValueError(f"Invalid {'epsilon' if name == 'eps' else name} value: {value}")


class Optimizer:
    """Holds ``param_groups`` (dicts with "params" and hyper-parameters, defaults filled in) and
    ``state`` (per-parameter dicts such as momentum buffers).

    ``params`` is an iterable of tensors or of dicts ``{"params": [...], "lr": ..., ...}`` that
    override the defaults for their group. Updates write ``param.data`` in place from
    ``param.grad``; parameters whose ``grad`` is None are skipped.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state = {}  # id(param) -> dict
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError("optimizer: a parameter does not require grad")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (``None`` by default, as in PyTorch 2)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        raise NotImplementedError

    def _state(self, p) -> dict:
        return self.state.setdefault(id(p), {})

    @staticmethod
    def _gradients(group):
        """``(p, g)`` for each parameter of ``group`` that has a gradient, ``g`` negated when
        the group maximizes."""
        for p in group["params"]:
            if p.grad is not None:
                yield p, (-p.grad if group.get("maximize") else p.grad)

    # ----------------------------------------------------------------- state_dict
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}`` with
        parameters numbered in group order, as PyTorch does. Arrays are copies."""
        index, groups, n = {}, [], 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = list(range(n, n + len(g["params"])))
            for i, p in zip(packed["params"], g["params"]):
                index[id(p)] = i
            n += len(g["params"])
            groups.append(packed)
        state = {index[k]: copy.deepcopy(v) for k, v in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], own["params"]):
                by_index[i] = p
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            st = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape == p.shape:
                    v = v.astype(p.data.dtype)
                st[k] = copy.deepcopy(v)
            self.state[id(p)] = st
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = v

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)
