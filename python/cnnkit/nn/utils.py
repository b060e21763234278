"""Model utilities (``cnnkit.nn.utils``): the fusion passes and ``eval_mode``."""

from .fusion import fuse, fuse_batch_norm_relu
from .module import eval_mode

__all__ = ["fuse", "fuse_batch_norm_relu", "eval_mode"]
