"""Reading and writing: checkpoints (safetensors)."""

from .checkpoint import load, save

__all__ = ["save", "load"]
