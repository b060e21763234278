"""Reverse-mode automatic differentiation: grad mode, ``Function`` and the backward engine.

- :mod:`.grad_mode`: ``no_grad``, ``enable_grad``, ``is_grad_enabled``;
- :mod:`.function`: ``Function`` (forward/backward on numpy arrays; ``apply`` records it),
  ``record_applications`` (see every applied operation: ONNX tracing);
- :mod:`.engine`: ``backward`` (topological order, gradient sums) and ``accumulate_grad``
  (leaf gradients, with per-tensor accumulators).
"""

from .engine import accumulate_grad, backward, topological_order
from .function import Application, Function, record_applications, register_tensor_type
from .grad_mode import enable_grad, is_grad_enabled, no_grad

__all__ = [
    "Function", "Application", "record_applications", "register_tensor_type",
    "backward", "accumulate_grad", "topological_order",
    "no_grad", "enable_grad", "is_grad_enabled",
]
