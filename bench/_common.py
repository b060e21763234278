"""Shared helpers for the benchmarks: clean environment, timing, README tables."""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Set on some machines for old OpenBLAS builds; they slow a current numpy down, so the numpy
# baseline runs without them (PERFORMANCE.md, "Measuring").
_OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reexec_without_openblas_overrides() -> None:
    """Restart this script without OPENBLAS_CORETYPE/L2_SIZE (must run before numpy loads)."""
    if any(v in os.environ for v in _OPENBLAS_VARS):
        env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_VARS}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def best_time(fn, calls: int, min_time: float = 0.02) -> float:
    """Best per-call seconds over `calls` samples; each sample repeats fn until min_time."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / one))
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def median(xs):
    return statistics.median(xs)


def write_readme_table(marker: str, markdown: str) -> None:
    """Replace the text between <!-- marker:start --> and <!-- marker:end --> in README.md."""
    text = README.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {start} ... {end} section")
    README.write_text(pattern.sub(lambda _: f"{start}\n{markdown.rstrip()}\n{end}", text))


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), for the tables' headers."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
