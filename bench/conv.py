"""Convolution layers: cnnkit against PyTorch (oneDNN), each in its own process, same shapes.

Each process times forward, backward-data and backward-weights (best of --repeats) for every
layer; the two alternate --rounds times and the table gives medians. GFLOP/s counts
2*N*K*Ho*Wo*C/groups*Fh*Fw per pass (the direct convolution's FLOPs, also for Winograd, which
does fewer: its "GFLOP/s" is the direct-equivalent rate). cnnkit runs twice in its process:
with the default algorithm choice (auto: Winograd F(4x4, 3x3) where it applies) and with
set_conv_algorithm("direct"); "of peak" is the direct path's efficiency against the FMA probe
run in the cnnkit process.
Peak memory: growth of the peak RSS over one AlexNet conv1 forward+backward at batch 128.

The bf16 table (skip it with --no-bf16): cnnkit's three passes with precision="bf16" (operands
rounded to bf16, fp32 sums: what cnnkit.autocast runs) against PyTorch's recipe, channels_last
tensors under torch.autocast("cpu", dtype=torch.bfloat16) (forward: fp32 channels_last inputs
cast by autocast, as in training; backward: convolution_backward on the bf16 channels_last
tensors autocast would have saved).

    python3 bench/conv.py [--rounds 3] [--threads 2] [--write-readme] [--no-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import median, write_readme_table

# name: (N, C, H, W, K, F, stride, padding, groups)
LAYERS = {
    "AlexNet conv1 (b16)": (16, 3, 227, 227, 96, 11, 4, 0, 1),
    "AlexNet conv2 (b16)": (16, 96, 27, 27, 256, 5, 1, 2, 1),
    "AlexNet conv3 (b16)": (16, 256, 13, 13, 384, 3, 1, 1, 1),
    "AlexNet conv4 (b16)": (16, 384, 13, 13, 384, 3, 1, 1, 1),
    "AlexNet conv5 (b16)": (16, 384, 13, 13, 256, 3, 1, 1, 1),
    "CIFAR 3->32, 32x32 (b128)": (128, 3, 32, 32, 32, 3, 1, 1, 1),
    "CIFAR 32->32, 32x32 (b128)": (128, 32, 32, 32, 32, 3, 1, 1, 1),
    "CIFAR 32->64, 32x32 (b128)": (128, 32, 32, 32, 64, 3, 1, 1, 1),
    "CIFAR 64->64, 16x16 (b128)": (128, 64, 16, 16, 64, 3, 1, 1, 1),
    "VGG 128->128, 56x56 (b8)": (8, 128, 56, 56, 128, 3, 1, 1, 1),
    "ResNet 1x1 256->64, 56x56 (b8)": (8, 256, 56, 56, 64, 1, 1, 0, 1),
    "depthwise 3x3 128, 56x56 (b8)": (8, 128, 56, 56, 128, 3, 1, 1, 128),
}


def flops(N, C, H, W, K, F, s, p, g):
    Ho = (H + 2 * p - F) // s + 1
    Wo = (W + 2 * p - F) // s + 1
    return 2.0 * N * K * Ho * Wo * (C // g) * F * F, Ho, Wo


def best(fn, repeats):
    fn()
    b = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t)
    return b


def worker(lib, repeats, threads, bf16=False):
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        conv_bwd = torch.ops.aten.convolution_backward
    else:
        import cnnkit

        cnnkit.set_num_threads(threads)
        core = cnnkit._core
        out["_peak"] = (core.bf16_peak_gflops if bf16 else core.fma_peak_gflops)(threads, 0.3, 3)
    for name, (N, C, H, W, K, F, s, p, g) in LAYERS.items():
        _, Ho, Wo = flops(N, C, H, W, K, F, s, p, g)
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = (rng.standard_normal((K, C // g, F, F), dtype=np.float32) * 0.1).astype(np.float32)
        b = np.zeros(K, np.float32)
        dy = rng.standard_normal((N, K, Ho, Wo), dtype=np.float32)
        if lib == "torch" and bf16:
            cl = torch.channels_last
            xt, wt, dyt = (torch.from_numpy(a).contiguous(memory_format=cl) for a in (x, w, dy))
            bt = torch.from_numpy(b)
            xb, wb, dyb = (t.bfloat16().contiguous(memory_format=cl) for t in (xt, wt, dyt))

            def f():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, g)

            d = lambda: conv_bwd(dyb, xb, wb, [K], [s, s], [p, p], [1, 1], False, [0, 0], g,  # noqa: E731
                                 [True, False, False])
            wg = lambda: conv_bwd(dyb, xb, wb, [K], [s, s], [p, p], [1, 1], False, [0, 0], g,  # noqa: E731
                                  [False, True, True])
        elif lib == "torch":
            xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
            f = lambda: torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, g)  # noqa: E731
            d = lambda: conv_bwd(dyt, xt, wt, [K], [s, s], [p, p], [1, 1], False, [0, 0], g,  # noqa: E731
                                 [True, False, False])
            wg = lambda: conv_bwd(dyt, xt, wt, [K], [s, s], [p, p], [1, 1], False, [0, 0], g,  # noqa: E731
                                  [False, True, True])
        else:
            pr = "bf16" if bf16 else "fp32"
            f = lambda: core.conv2d_forward(x, w, b, (s, s), (p, p), (1, 1), g, False, pr)  # noqa: E731
            d = lambda: core.conv2d_backward_data(dy, w, (H, W), (s, s), (p, p), (1, 1), g, pr)  # noqa: E731
            wg = lambda: core.conv2d_backward_weights(  # noqa: E731
                dy, x, (F, F), (s, s), (p, p), (1, 1), g, True, pr)
        if lib == "torch":
            out[name] = [best(f, repeats), best(d, repeats), best(wg, repeats)]
            continue
        algos = core._conv2d_algorithms([N, C, H, W], [K, C // g, F, F], (s, s), (p, p), (1, 1), g,
                                        precision="bf16" if bf16 else "fp32")
        out[name] = [best(f, repeats), best(d, repeats), best(wg, repeats)]
        out[name + " (algorithms)"] = list(algos)
        if bf16:
            continue
        cnnkit.set_conv_algorithm("direct")
        out[name + " (direct)"] = [best(f, repeats), best(d, repeats), best(wg, repeats)]
        cnnkit.set_conv_algorithm("auto")
        out[name + " (algorithms)"] = list(algos)
    print(json.dumps(out))


def memory_worker(lib):
    import resource

    import numpy as np

    N, C, H, W, K, F, s, p = 128, 3, 227, 227, 96, 11, 4, 0
    x = np.ones((N, C, H, W), np.float32)
    w = np.full((K, C, F, F), 0.01, np.float32)
    if lib == "torch":
        import torch

        torch.set_num_threads(2)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w).requires_grad_(True)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        y = torch.nn.functional.conv2d(xt, wt, None, s, p)
        y.backward(torch.ones_like(y))
    else:
        import cnnkit

        core = cnnkit._core
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        y = core.conv2d_forward(x, w, None, (s, s), (p, p), (1, 1), 1)
        dy = np.ones_like(y)
        core.conv2d_backward_weights(dy, x, (F, F), (s, s), (p, p), (1, 1), 1, True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (peak - base) / 1024.0}))


def _brand():
    import cnnkit

    return cnnkit.cpu_info().get("brand", "?").strip()


def run(args_list, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, __file__, *args_list], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", choices=["cnnkit", "torch"])
    ap.add_argument("--memory", choices=["cnnkit", "torch"])
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 table")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.repeats, args.threads, args.bf16)
    if args.memory:
        return memory_worker(args.memory)

    ours, theirs, peaks = [], [], []
    for _ in range(args.rounds):
        o = run(["--worker", "cnnkit", "--repeats", str(args.repeats),
                 "--threads", str(args.threads)],
                args.threads)
        peaks.append(o.pop("_peak"))
        ours.append(o)
        theirs.append(run(["--worker", "torch", "--repeats", str(args.repeats),
                           "--threads", str(args.threads)],
                          args.threads))
    peak = median(peaks)
    mem_ck = run(["--memory", "cnnkit"], args.threads)["growth_mb"]
    mem_pt = run(["--memory", "torch"], args.threads)["growth_mb"]

    lines = [
        f"`python3 bench/conv.py --rounds {args.rounds}` on {_brand()}: {args.threads} threads, "
        "PyTorch "
        f"(oneDNN) in a separate process, medians of {args.rounds} alternating rounds of best-of-"
        f"{args.repeats}; FMA peak probe {peak:.0f} GFLOP/s. "
        "GFLOP/s: fwd / bwd-data / bwd-weights.",
        "",
        "| layer | cnnkit algorithm | cnnkit GFLOP/s | direct path GFLOP/s | direct path of peak "
        "| PyTorch GFLOP/s | speed-up fwd | speed-up fwd+bwd |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    short = {"winograd": "wino", "implicit_gemm": "igemm", "gemm": "gemm", "gemm_col2im": "col2im",
             "dot": "dot", "depthwise": "dw", "bf16_direct": "direct", "bf16_s2d": "s2d"}
    for name, cfg in LAYERS.items():
        fl, _, _ = flops(*cfg)
        t_ck = [median([r[name][i] for r in ours]) for i in range(3)]
        t_dir = [median([r[name + " (direct)"][i] for r in ours]) for i in range(3)]
        t_pt = [median([r[name][i] for r in theirs]) for i in range(3)]
        g_ck = [fl / t / 1e9 for t in t_ck]
        g_dir = [fl / t / 1e9 for t in t_dir]
        g_pt = [fl / t / 1e9 for t in t_pt]
        eff = [100 * g / peak for g in g_dir]
        algo = " / ".join(short[a] for a in ours[0][name + " (algorithms)"])
        lines.append(
            f"| {name} | {algo} | {g_ck[0]:.0f} / {g_ck[1]:.0f} / {g_ck[2]:.0f} "
            f"| {g_dir[0]:.0f} / {g_dir[1]:.0f} / {g_dir[2]:.0f} "
            f"| {eff[0]:.0f} / {eff[1]:.0f} / {eff[2]:.0f} % "
            f"| {g_pt[0]:.0f} / {g_pt[1]:.0f} / {g_pt[2]:.0f} | {t_pt[0] / t_ck[0]:.2f}x "
            f"| {sum(t_pt) / sum(t_ck):.2f}x |"
        )
    lines.append("")
    lines.append("Algorithms (fwd / bwd-data / bwd-weights): wino = Winograd F(4x4, 3x3) "
                 "(5x5 as four "
                 "3x3 pieces), igemm = implicit GEMM, gemm = 1x1 as a plain GEMM, col2im = GEMM + "
                 "col2im (strided backward data), dot = dot-product weight gradient, "
                 "dw = depthwise loops.")
    lines.append("")
    lines.append(f"Peak RSS growth over AlexNet conv1 forward + weight gradient at batch 128: "
                 f"cnnkit {mem_ck:.0f} MB, PyTorch {mem_pt:.0f} MB (the output alone is 149 MB).")
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        write_readme_table("conv-results", table)
    if not args.no_bf16:
        table = bf16_table(args, ours, short)
        print(table)
        if args.write_readme:
            write_readme_table("conv-bf16-results", table)


def bf16_table(args, fp32_runs, short):
    import cnnkit

    ours, theirs, peaks = [], [], []
    common = ["--repeats", str(args.repeats), "--threads", str(args.threads), "--bf16"]
    for _ in range(args.rounds):
        o = run(["--worker", "cnnkit", *common], args.threads)
        peaks.append(o.pop("_peak"))
        ours.append(o)
        theirs.append(run(["--worker", "torch", *common], args.threads))
    peak = median(peaks)
    info = cnnkit.cpu_info()
    lines = [
        f"`python3 bench/conv.py --rounds {args.rounds}` (bf16) on {info['brand']}: "
        f"{args.threads} threads, cnnkit bf16 path {info['bf16_path']}, bf16 peak probe "
        f"{peak:.0f} GFLOP/s; PyTorch channels_last + bf16 autocast in a separate process; "
        f"medians of {args.rounds} alternating rounds of best-of-{args.repeats}. "
        "GFLOP/s: fwd / bwd-data / bwd-weights.",
        "",
        "| layer | cnnkit bf16 algorithm | cnnkit bf16 GFLOP/s | of bf16 peak | cnnkit fp32 "
        "GFLOP/s | PyTorch bf16 + channels_last GFLOP/s | bf16 vs PyTorch fwd | fwd+bwd |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    for name, cfg in LAYERS.items():
        fl, _, _ = flops(*cfg)
        t_ck = [median([r[name][i] for r in ours]) for i in range(3)]
        t_32 = [median([r[name][i] for r in fp32_runs]) for i in range(3)]
        t_pt = [median([r[name][i] for r in theirs]) for i in range(3)]
        g = [[fl / t / 1e9 for t in ts] for ts in (t_ck, t_32, t_pt)]
        algo = " / ".join(short[a] for a in ours[0][name + " (algorithms)"])
        lines.append(
            f"| {name} | {algo} | {' / '.join(f'{v:.0f}' for v in g[0])} "
            f"| {' / '.join(f'{100 * v / peak:.0f}' for v in g[0])} % "
            f"| {' / '.join(f'{v:.0f}' for v in g[1])} | {' / '.join(f'{v:.0f}' for v in g[2])} "
            f"| {t_pt[0] / t_ck[0]:.2f}x | {sum(t_pt) / sum(t_ck):.2f}x |")
    lines += ["", "direct = bf16_direct (AMX tiles straight from a padded bf16 copy of the image); "
              "s2d = bf16_s2d (a strided layer with few channels as bf16_direct over the image's "
              "stride x stride phases); the other names as in the fp32 table."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
