"""The global random generator behind initialisation and dropout.

``cnnkit.manual_seed(s)`` re-seeds it, so model construction and training are reproducible:
``nn.init`` draws from it directly and every dropout call draws the seed it hands to the C++
kernel from it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["manual_seed", "generator", "next_seed"]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (``seed`` a non-negative int); returns it."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The global numpy Generator."""
    return _generator


def next_seed() -> int:
    """A fresh 63-bit seed for a kernel that draws its own random numbers (dropout)."""
    return int(_generator.integers(0, 2**63 - 1))
