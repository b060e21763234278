"""Module, Parameter and the containers (PyTorch's model of a network).

A Module registers the Parameters, buffers and sub-modules assigned to its attributes, so
``parameters()``, ``state_dict()`` and ``train()/eval()`` walk the whole tree. ``state_dict``
keys are PyTorch's (``features.0.weight``, ``bn.running_mean``), and its values are numpy arrays,
so ``{k: v.numpy() for k, v in torch_model.state_dict().items()}`` loads into the same
architecture here.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import itertools

import numpy as np

from .. import amp
from ..autograd.function import untracked
from ..tensor import Tensor

__all__ = ["Parameter", "Module", "Sequential", "ModuleList", "Identity", "Flatten", "eval_mode"]


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module (``requires_grad=True`` by default)."""

    def __init__(self, data, requires_grad: bool = True):
        arr = data.data if isinstance(data, Tensor) else data
        super().__init__(np.array(arr, dtype=np.float32), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        p = Parameter(self.data.copy(), requires_grad=self.requires_grad)
        if self.grad is not None:
            p.grad = self.grad.copy()
        memo[id(self)] = p
        return p


_IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _HookHandle:
    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


_hook_ids = itertools.count()


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and define
    ``forward``; calling the module runs ``forward`` (and any forward hooks)."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "_forward_hooks", collections.OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() (call super().__init__() first)"
            )
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            self.__dict__.pop(name, None)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is expected)")
            params[name] = None
        elif isinstance(value, Module):
            buffers.pop(name, None)
            self.__dict__.pop(name, None)
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(a Module or None is expected)")
            modules[name] = None
        elif name in buffers:
            buffers[name] = value if value is None or isinstance(value, Tensor) else Tensor(
                np.asarray(value))
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            r = d.get(reg)
            if r is not None and name in r:
                return r[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for reg in (self._parameters, self._buffers, self._modules):
            if name in reg:
                del reg[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        if param is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
            return
        if not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter, "
                            f"got {type(param).__name__}")
        setattr(self, name, param)

    def register_buffer(self, name: str, value) -> None:
        """Non-learnable state saved in ``state_dict`` (e.g. batch norm's running mean)."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        self.__dict__.pop(name, None)
        self._buffers[name] = value

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` runs after every forward; returns a handle with
        ``remove()``."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "", memo=None):
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ----------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True):
        """Training mode (dropout active, batch norm uses batch statistics); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- state
    def _persistent_state(self):
        """(key, tensor) for every parameter and buffer, PyTorch's order: per module, its
        parameters then its buffers, depth first."""
        for mprefix, m in self.named_modules():
            for reg in (m._parameters, m._buffers):
                for name, t in reg.items():
                    if t is not None:
                        yield (f"{mprefix}.{name}" if mprefix else name), t

    def state_dict(self) -> collections.OrderedDict:
        """Parameters and buffers as numpy arrays (copies) under PyTorch's key names."""
        return collections.OrderedDict((k, t.data.copy()) for k, t in self._persistent_state())

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (or tensors, or anything ``np.asarray`` accepts) into the parameters and
        buffers, in place.

        With ``strict=True`` missing and unexpected keys raise; a shape mismatch always raises.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        own = collections.OrderedDict(self._persistent_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in missing) + ".")
        values = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            v = np.asarray(v.data if isinstance(v, Tensor) else v)
            if v.shape != t.data.shape:
                errors.append(
                    f"size mismatch for {k}: copying a param with shape {list(v.shape)} from "
                    f"checkpoint, the shape in current model is {list(t.data.shape)}."
                )
            values[k] = v
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(errors)
            )
        for k, v in values.items():
            # in place: optimizers and the core's running-statistics updates hold these arrays
            np.copyto(own[k].data, v, casting="unsafe")
        amp.weights_changed()  # packed bf16 weights of an inference cache are stale
        return _IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            mod = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {mod}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    # attributes a copy starts without (caches of derived data, e.g. Conv2d's weight cache)
    _transient: tuple = ()

    def __deepcopy__(self, memo):
        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, None if k in self._transient else copy.deepcopy(v, memo))
        return new


class Sequential(Module):
    """Modules applied in order: ``Sequential(conv, relu, pool)`` or from an OrderedDict."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            # an Identity (what nn.utils.fuse leaves of a folded layer) returns its input: not
            # called unless it has hooks (a call costs ~0.4 us, a tenth of a small conv's)
            if type(m) is not Identity or m._forward_hooks:
                x = m(x)
        return x

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(collections.OrderedDict(list(self._modules.items())[idx]))
        return mods[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (indexable, iterable)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Identity(Module):
    """Returns its input."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flattens dimensions ``start_dim`` .. ``end_dim`` into one: [N, C, H, W] -> [N, C*H*W]."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        if untracked() and isinstance(x, Tensor):  # inference: a numpy view, no Function
            a = x.data
            nd = max(a.ndim, 1)
            s, e = self.start_dim % nd, self.end_dim % nd
            if s <= e and a.ndim:
                return Tensor._wrap(a.reshape(a.shape[:s] + (-1,) + a.shape[e + 1:]))
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


@contextlib.contextmanager
def eval_mode(model):
    """``with eval_mode(model): ...``: every module of ``model`` in eval mode inside the block,
    each module's own training flag restored after it (even if the block raises).

    Anything without ``modules()`` (a plain function) is left alone. Combine with
    ``cnnkit.no_grad()`` for inference.
    """
    saved = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        for m, mode in saved:
            object.__setattr__(m, "training", mode)


def input_error(layer, x, error: Exception) -> ValueError:
    """The ValueError a layer raises when its op refused input ``x``: the op's message (the
    core validates shapes) prefixed by the layer and the input's shape."""
    return ValueError(f"{layer}: input {list(x.shape)}: {error}")
