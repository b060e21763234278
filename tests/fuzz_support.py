"""Helpers for the fuzz suite (tests/test_fuzz.py): settings, counters, array layouts, checks.

The number of examples per test is ``base * SCALE``; ``pytest --fuzz-long`` (conftest.py) sets
SCALE before the test modules are imported. Every example bumps ``CASES`` (valid / invalid /
crash-probe) and the terminal summary prints the totals, so the README can report them.
"""

from __future__ import annotations

import collections
import math
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = int(os.environ.get("CNNKIT_FUZZ_SCALE", "1"))
# The base counts in test_fuzz.py times this give ~7,000 cases in ~25 s on 2 cores (CI);
# scripts/sanitize.sh lowers it for its fast CI subset (ASan runs ~10x slower).
BASE_FACTOR = float(os.environ.get("CNNKIT_FUZZ_FACTOR", "2"))
CASES: collections.Counter = collections.Counter()

# Values a user may hand in where an int is wanted: negative, zero, huge (overflow bait), floats,
# bools, None, strings, wrong-length sequences.
BAD_INTS = [0, -1, -7, 2**31, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 + 3, -(2**63), 1.5,
            float("nan"), float("inf"), True, None, "3", (1,), (1, 2, 3), [], (1.0, 2.0), ("a", 1),
            np.float32(2.0), complex(1, 1)]


def fuzz(base: int):
    """Hypothesis settings for one fuzz test: ``base`` examples (times SCALE), no deadline."""
    return settings(
        max_examples=max(1, int(base * BASE_FACTOR * SCALE)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def count(kind: str) -> None:
    CASES[kind] += 1


# --------------------------------------------------------------------------- arrays
LAYOUTS = ["c", "fortran", "strided", "negative", "readonly"]


def layout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout (a view where possible)."""
    if how == "c" or a.ndim == 0:
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided":  # every other element of a twice-as-long last axis
        big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if how == "negative":  # a reversed view of a reversed copy: negative strides, same values
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if how == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise AssertionError(how)


@st.composite
def rngs(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def normal(rng, shape, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def inject_specials(rng, a: np.ndarray, values=(np.nan, np.inf, -np.inf)) -> np.ndarray:
    """A copy of float ``a`` with a few elements replaced by NaN / +-Inf."""
    a = a.copy()
    if a.size:
        k = int(rng.integers(1, min(a.size, 3) + 1))
        flat = a.reshape(-1)
        flat[rng.choice(a.size, k, replace=False)] = rng.choice(values, k)
    return a


# --------------------------------------------------------------------------- checks
def assert_close(out, ref, bound=None, rtol=2e-5, atol=1e-5, what="output"):
    """|out - ref| <= rtol * bound + atol, elementwise; NaN and +-Inf must match exactly.

    ``bound`` is a magnitude estimate of the same shape (e.g. the sum of |terms| of each
    output), so long float32 sums are judged by their real rounding error.
    """
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != reference {ref.shape}"
    nan_o, nan_r = np.isnan(out), np.isnan(ref)
    assert np.array_equal(nan_o, nan_r), f"{what}: NaN positions differ from the reference"
    inf_r = np.isinf(ref)
    assert np.array_equal(out[inf_r], ref[inf_r]), f"{what}: Inf values differ from the reference"
    assert not np.isinf(out[~inf_r & ~nan_r]).any(), f"{what}: Inf where the reference is finite"
    fin = ~(nan_r | inf_r)
    if bound is None:
        bound = np.abs(ref)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), ref.shape)
    err = np.abs(out[fin] - ref[fin])
    tol = rtol * bound[fin] + atol
    if err.size:
        worst = int(np.argmax(err - tol))
        assert (err <= tol).all(), (
            f"{what}: max error {err[worst]:.3g} > tolerance {tol[worst]:.3g} "
            f"(out {out[fin][worst]!r}, ref {ref[fin][worst]!r})"
        )


def expect_error(fn, op: str, names, allow_memory=False):
    """``fn()`` must raise ValueError or TypeError (MemoryError where an allocation is huge)
    whose message names the op and one of ``names`` (the argument, or its aliases)."""
    kinds = (ValueError, TypeError, MemoryError) if allow_memory else (ValueError, TypeError)
    with pytest.raises(kinds) as info:
        fn()
    msg = str(info.value)
    assert op.lower() in msg.lower(), f"error message does not name the op {op!r}: {msg!r}"
    if isinstance(names, str):
        names = (names,)
    if names and not isinstance(info.value, MemoryError):
        pattern = "|".join(r"(?<![A-Za-z_])" + re.escape(n) + r"(?![A-Za-z_])" for n in names)
        assert re.search(pattern, msg), (
            f"error message of {op} does not name the argument (any of {names}): {msg!r}"
        )
    return info.value


def probe(fn):
    """Crash probe: ``fn()`` may return or raise a clean Python exception; never crash.

    Returns the result or the exception. Only ValueError, TypeError, MemoryError and
    OverflowError are acceptable exceptions."""
    try:
        return fn()
    except (ValueError, TypeError, MemoryError, OverflowError) as e:
        return e


def product(shape) -> int:
    return math.prod(int(s) for s in shape)
