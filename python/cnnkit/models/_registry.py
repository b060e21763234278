"""Model builders by name, and the config each model carries for checkpoints."""

from __future__ import annotations

import functools
import inspect

__all__ = ["MODELS", "register", "build", "he_init"]

MODELS: dict = {}


def register(fn):
    """Register a builder under its name; the model it returns gets ``model.config``, the
    builder's name and its bound arguments (defaults included)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def builder(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        model = fn(*args, **kwargs)
        object.__setattr__(model, "config", {"name": fn.__name__, "args": dict(bound.arguments)})
        return model

    MODELS[fn.__name__] = builder
    return builder


def build(name_or_config, **kwargs):
    """``build("alexnet", num_classes=10)`` or ``build(model.config)``."""
    if isinstance(name_or_config, dict):
        name, args = name_or_config["name"], {**name_or_config.get("args", {}), **kwargs}
    else:
        name, args = name_or_config, kwargs
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](**args)


def he_init(model):
    """He (kaiming) normal initialisation for every conv and linear weight (std sqrt(2 / fan_in),
    right for the ReLUs that follow them), zero biases; batch norm keeps weight 1, bias 0."""
    from ..nn import Conv2d, Linear, init

    for m in model.modules():
        if isinstance(m, (Conv2d, Linear)):
            init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
    return model
