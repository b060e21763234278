"""cnnkit sgemm against numpy's matmul (OpenBLAS) in the same process, and cnnkit's bf16 GEMM
against the bf16 peak probe.

For each shape and thread count the two alternate R rounds (a short pause between them so the
other library's idle threads stop spinning); each round takes the best of a few calls; the
table gives the median over rounds, the median of the per-round ratios, and cnnkit's fraction
of the FMA peak measured in this process.

The bf16 table (``sgemm(..., precision="bf16")``: operands rounded to bf16 while packing, fp32
sums) rates the active bf16 path (AMX tiles, AVX512-BF16 or the reference) against the
in-process probe of the same instructions (``_core.bf16_peak_gflops``: four TDPBF16PS tile
accumulators, or 24 VDPBF16PS chains).

    python3 bench/gemm.py [--rounds 5] [--threads 1 2] [--write-readme] [--no-bf16]
"""

from __future__ import annotations

import argparse
import time

from _common import best_time, median, reexec_without_openblas_overrides, write_readme_table

reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

import cnnkit  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402
except ImportError:  # pragma: no cover
    raise SystemExit("bench/gemm.py needs threadpoolctl: pip install '.[bench]'") from None

SQUARE = [64, 128, 256, 512, 1024, 2048]
SQUARE_BF16 = [256, 512, 1024, 2048, 4096]
CONV_SHAPES = [
    (64, 32768, 288, "conv 32->64 3x3, 32x32, batch 32"),
    (256, 729, 2304, "conv 256->256 3x3, 27x27"),
]


def measure(m, n, k, threads, rounds, pause):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    calls = 3 if m * n * k > 2e8 else 5
    ours, theirs, ratios = [], [], []
    cnnkit.set_num_threads(threads)
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(rounds):
            t_ck = best_time(lambda: cnnkit.ops.sgemm(a, b), calls)
            time.sleep(pause)
            t_np = best_time(lambda: np.matmul(a, b), calls)
            time.sleep(pause)
            ours.append(t_ck)
            theirs.append(t_np)
            ratios.append(t_np / t_ck)
    flops = 2.0 * m * n * k
    return flops / median(ours) / 1e9, flops / median(theirs) / 1e9, median(ratios)


def measure_bf16(m, n, k, threads, rounds):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    cnnkit.set_num_threads(threads)
    calls = 3 if m * n * k > 2e9 else 5
    times = [best_time(lambda: cnnkit.ops.sgemm(a, b, precision="bf16"), calls)
             for _ in range(rounds)]
    return 2.0 * m * n * k / median(times) / 1e9


def bf16_table(args, info):
    lines = [
        f"`python3 bench/gemm.py --rounds {args.rounds}` (bf16) on {info['brand']}: bf16 path "
        f"{info['bf16_path']}; median of {args.rounds} rounds of the best of 3-5 calls; "
        "% of the bf16 peak probe run in the same process.",
        "",
        "| shape M x N x K | threads | cnnkit bf16 GFLOP/s | of bf16 peak |",
        "|---|---:|---:|---:|",
    ]
    for threads in args.threads:
        peak = cnnkit._core.bf16_peak_gflops(threads, 0.3, 3)
        print(f"threads={threads}: bf16 peak probe {peak:.0f} GFLOP/s", flush=True)
        for m, n, k, note in [(s, s, s, "") for s in SQUARE_BF16] + CONV_SHAPES:
            g = measure_bf16(m, n, k, threads, args.rounds)
            label = f"{m} x {n} x {k}" + (f" ({note})" if note else "")
            lines.append(f"| {label} | {threads} | {g:.0f} | {100 * g / peak:.0f} % |")
            print(lines[-1], flush=True)
        lines.append(f"| bf16 peak probe | {threads} | {peak:.0f} | 100 % |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pause", type=float, default=0.15)
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 table")
    args = ap.parse_args()

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    blas_desc = ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                          for i in blas)
    info = cnnkit.cpu_info()
    lines = [
        f"`python3 bench/gemm.py --rounds {args.rounds}` on {info['brand']} "
        f"(cnnkit ISA {info['isa']}, numpy {np.__version__} with {blas_desc}); "
        f"median of {args.rounds} alternating rounds.",
        "",
        "| shape M x N x K | threads | cnnkit GFLOP/s | of peak | numpy GFLOP/s | cnnkit / numpy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for threads in args.threads:
        peak = cnnkit._core.fma_peak_gflops(threads, 0.3, 3)
        print(f"threads={threads}: FMA peak probe {peak:.1f} GFLOP/s", flush=True)
        shapes = [(s, s, s, "") for s in SQUARE] + CONV_SHAPES
        for m, n, k, note in shapes:
            g_ck, g_np, ratio = measure(m, n, k, threads, args.rounds, args.pause)
            label = f"{m} x {n} x {k}" + (f" ({note})" if note else "")
            row = (f"| {label} | {threads} | {g_ck:.1f} | {100 * g_ck / peak:.0f} % "
                   f"| {g_np:.1f} | {ratio:.2f}x |")
            print(row, flush=True)
            lines.append(row)
        lines.append(f"| FMA peak probe | {threads} | {peak:.1f} | 100 % | | |")
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        write_readme_table("gemm-results", table)
    if not args.no_bf16:
        table = bf16_table(args, info)
        print(table)
        if args.write_readme:
            write_readme_table("gemm-bf16-results", table)


if __name__ == "__main__":
    main()
