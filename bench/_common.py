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
    """The CPU's model name (/proc/cpuinfo) with its family / model numbers and the matrix and
    vector extensions that pick cnnkit's paths, for the tables' headers (a virtual machine may
    report only "AMD EPYC", which names neither Zen 3, Zen 4 nor Zen 5)."""
    import platform

    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in info:
                    info[key] = value.strip()
                if not line.strip() and info:
                    break
    except OSError:
        pass
    if "model name" in info:
        flags = set(info.get("flags", "").split())
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
               if f in flags]
        return (f"{info['model name']} (family {info.get('cpu family', '?')} model "
                f"{info.get('model', '?')}; {' '.join(isa) or 'no AVX2'})")
    return platform.processor() or platform.machine()
