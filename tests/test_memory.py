"""Large outputs (>= 128 KiB) come from cnnkit's allocator, which keeps freed blocks of twice
L2 and more for reuse (smaller ones go back to glibc's heap): correct, reused, bounded."""

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit

core = cnnkit._core


@pytest.mark.parametrize("out_features,in_features", [(4096, 2304), (1024, 2048), (512, 1024)])
def test_large_outputs_are_correct_and_reuse_freed_blocks(rng, out_features, in_features):
    # dW: 37.7 MB (past glibc's largest mmap threshold), 8 MiB and 2 MiB; blocks of at least
    # twice a core's L2 are kept by cnnkit and must come back, smaller ones go to glibc's heap
    x = rng.standard_normal((4, in_features)).astype(np.float32)
    w = rng.standard_normal((out_features, in_features)).astype(np.float32)
    dy = rng.standard_normal((4, out_features)).astype(np.float32)
    want = dy.T.astype(np.float64) @ x.astype(np.float64)
    first = core.linear_backward(dy, x, w, False)[1]
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)
    address = first.__array_interface__["data"][0]
    kept = first.nbytes >= max(1 << 20, 2 * cnnkit.cpu_info()["caches"]["l2"])
    first[:] = np.nan  # a stale value must never show through a reused block
    del first
    second = core.linear_backward(dy, x, w, False)[1]
    if kept:
        assert second.__array_interface__["data"][0] == address  # the freed block came back
    np.testing.assert_allclose(second, want, rtol=1e-4, atol=1e-4)
    assert second.flags.writeable and second.flags.c_contiguous


def test_large_outputs_correct_with_the_block_cache_off():
    """CNNKIT_KEEP_MALLOC=1: blocks are freed at once; outputs must stay correct."""
    code = (
        "import numpy as np, cnnkit\n"
        "x = np.ones((4, 2304), np.float32); w = np.ones((4096, 2304), np.float32)\n"
        "dy = np.ones((4, 4096), np.float32)\n"
        "a = cnnkit._core.linear_backward(dy, x, w, False)[1]; p = a.ctypes.data; del a\n"
        "b = cnnkit._core.linear_backward(dy, x, w, False)[1]\n"
        "print(float(b[0, 0]))\n"
    )
    env = dict(os.environ, CNNKIT_KEEP_MALLOC="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4.0"
