import os
import subprocess
import sys

import pytest

import cnnkit


def test_cpu_info_reports_detection_and_choice():
    info = cnnkit.cpu_info()
    assert info["isa"] == cnnkit.get_isa()
    assert info["isa"] in info["supported_isas"]
    assert "ref" in info["supported_isas"]
    assert info["num_threads"] == cnnkit.get_num_threads()
    f = info["features"]
    # AVX-512 is only reported when the OS also saves the ZMM state.
    if f["avx512f"]:
        assert f["os_saves_avx512_state"]
    if "avx512" in info["supported_isas"]:
        assert f["avx512f"] and f["avx512bw"] and f["avx512dq"] and f["avx512vl"] and f["fma"]
    if "avx2" in info["supported_isas"]:
        assert f["avx2"] and f["fma"] and f["os_saves_avx_state"]
    assert info["best_isa"] == info["supported_isas"][-1]
    # the build's target, as the platform reports the machine; x86 kernels only on x86_64
    import platform

    assert info["arch"] == {"AMD64": "x86_64", "arm64": "aarch64"}.get(platform.machine(),
                                                                       platform.machine())
    # x86 kernel paths only on x86_64; on aarch64 Advanced SIMD (every ARMv8-A CPU) adds neon
    if info["arch"] == "aarch64":
        assert info["supported_isas"] == ["ref", "neon"] and f["neon"]
        assert info["bf16_path"] == "ref" and "x86-64 only" in info["bf16_path_reason"]
    elif info["arch"] == "x86_64":
        assert "neon" not in info["supported_isas"] and not f["neon"]
        assert not (f["sve"] or f["asimd_dot"] or f["arm_bf16"] or f["i8mm"])
    else:
        assert info["supported_isas"] == ["ref"]


def test_set_isa_switches_and_rejects_bad_names():
    before = cnnkit.get_isa()
    try:
        for name in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(name)
            assert cnnkit.get_isa() == name
            assert cnnkit.cpu_info()["isa"] == name
        with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
            cnnkit.set_isa("sse9")
        with pytest.raises(TypeError, match="set_isa"):
            cnnkit.set_isa(3)
    finally:
        cnnkit.set_isa(before)


def test_sgemm_tile_follows_isa():
    before = cnnkit.get_isa()
    # the bf16 levels add bf16 kernels only: fp32 runs the AVX-512 kernels there
    tiles = {"ref": (4, 16), "avx2": (6, 16), "avx512": (14, 32), "avx512_bf16": (14, 32),
             "amx": (14, 32), "neon": (8, 12)}
    try:
        for name in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(name)
            assert tuple(cnnkit.cpu_info()["sgemm_tile"]) == tiles[name]
    finally:
        cnnkit.set_isa(before)


def _run(code, **env):
    full_env = dict(os.environ)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True)


def test_env_override_of_isa():
    r = _run("import cnnkit; print(cnnkit.get_isa())", CNNKIT_ISA="ref")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ref"


def test_env_override_rejects_unknown_isa():
    r = _run("import cnnkit", CNNKIT_ISA="sve9")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "CNNKIT_ISA='sve9'" in r.stderr
    assert "'neon'" in r.stderr  # the message lists the choices


def test_env_override_rejects_an_isa_of_another_architecture():
    other = "avx2" if cnnkit.cpu_info()["arch"] == "aarch64" else "neon"
    r = _run("import cnnkit", CNNKIT_ISA=other)
    assert r.returncode != 0
    assert f"CNNKIT_ISA='{other}' but this CPU cannot run it" in r.stderr
    with pytest.raises(ValueError, match=f"this CPU cannot run '{other}'"):
        cnnkit.set_isa(other)


def test_threads_default_honours_omp_num_threads_and_setter_validates():
    r = _run("import cnnkit; print(cnnkit.get_num_threads())", OMP_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    before = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(1)
        assert cnnkit.get_num_threads() == 1
        cnnkit.set_num_threads(5)
        assert cnnkit.get_num_threads() == 5
        with pytest.raises(ValueError, match=r"n must be in \[1, 512\], got 0"):
            cnnkit.set_num_threads(0)
        with pytest.raises(TypeError, match="must be an int"):
            cnnkit.set_num_threads(2.5)
    finally:
        cnnkit.set_num_threads(before)


def test_peak_probe_is_positive_and_scales_with_isa(isa):
    g = cnnkit._core.fma_peak_gflops(1, 0.02, 1)
    assert g > 0.1


def test_cache_sizes_and_the_gemm_blocking_derived_from_them():
    info = cnnkit.cpu_info()
    c, b = info["caches"], info["sgemm_blocking"]
    assert c["l1d"] >= 16 << 10 and c["l2"] >= c["l1d"] and c["l3"] >= 0
    mr = info["sgemm_tile"][0]
    assert b["kc"] % 32 == 0 and 128 <= b["kc"] <= 576
    assert b["kc"] == min(576, max(128, c["l1d"] * 2 // 3 // (mr * 4) // 32 * 32))
    assert b["b_chunk_floats"] == max(32 * 1024, c["l2"] // 8 // 4)  # an eighth of L2, in floats
    # Linux says the same as CPUID where sysfs lists the caches
    base = "/sys/devices/system/cpu/cpu0/cache"
    if c["from_cpuid"] and os.path.isdir(base):
        for idx in sorted(os.listdir(base)):
            d = os.path.join(base, idx)
            try:
                level = int(open(os.path.join(d, "level")).read())
                kind = open(os.path.join(d, "type")).read().strip()
                size = open(os.path.join(d, "size")).read().strip()
            except (OSError, ValueError):
                continue
            if kind == "Instruction" or not size.endswith("K"):
                continue
            key = {1: "l1d", 2: "l2"}.get(level)
            if key:
                assert c[key] == int(size[:-1]) * 1024, (key, c[key], size)
