"""Value checks for the command line's options, as argparse ``type=`` callables: a bad value
ends the command with argparse's one-line error (``cnnkit train: error: argument --lr: ...``)
and exit status 2, before anything is trained or written."""

from __future__ import annotations

import argparse
import math

__all__ = ["integer", "real", "input_shape"]


def integer(lo: int | None = None, hi: int | None = None):
    """An int in [lo, hi] (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {_range(lo, hi, True, True)}, "
                                             f"got {value}")
        return value

    return parse


def real(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         hi_open: bool = False):
    """A finite float in [lo, hi] (``lo_open``/``hi_open`` exclude that bound)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if ((lo is not None and (value < lo or (lo_open and value == lo)))
                or (hi is not None and (value > hi or (hi_open and value == hi)))):
            raise argparse.ArgumentTypeError(
                f"expected {_range(lo, hi, not lo_open, not hi_open)}, got {value:g}")
        return value

    return parse


def _range(lo, hi, lo_closed: bool, hi_closed: bool) -> str:
    if lo is not None and hi is not None:
        return f"a value in {'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"
    if lo is not None:
        return f"a value {'>=' if lo_closed else '>'} {lo:g}"
    return f"a value {'<=' if hi_closed else '<'} {hi:g}"


def input_shape(text: str) -> tuple:
    """``CxHxW`` (``3x227x227``; commas also separate) as a tuple of three positive ints."""
    try:
        shape = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x227x227, got {text!r}") \
            from None
    if len(shape) != 3 or min(shape) < 1 or max(shape) > 65536:
        raise argparse.ArgumentTypeError(f"expected CxHxW of three positive sizes, got {text!r}")
    return shape
