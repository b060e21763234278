"""cnnkit's own thread runtime (cpp/src/runtime/thread_pool.cpp): teams, barriers, errors,
binding that respects the environment, fork safety, several Python threads at once, and
results bitwise identical for a given thread count."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cnnkit
from cnnkit import _core


def _run(code, **env):
    e = dict(os.environ)
    for k in ("OMP_PROC_BIND", "OMP_PLACES", "CNNKIT_BIND", "OMP_NUM_THREADS"):
        e.pop(k, None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=120)


@pytest.mark.parametrize("nt", [1, 2, 3, 7])
def test_team_runs_each_index_once_and_barriers_hold(nt):
    ran = _core._thread_team_probe(nt, 5)
    assert ran == [1] * nt + [nt]


def test_more_threads_than_cpus_still_complete():
    n = 4 * max(1, os.cpu_count() or 1)
    assert _core._thread_team_probe(n, 3) == [1] * n + [n]


@pytest.mark.parametrize("who", [0, 1, 2])
def test_exception_in_any_thread_reaches_the_caller(who):
    with pytest.raises(ValueError, match=f"thrown by thread {who}"):
        _core._thread_team_probe(3, 2, who)
    assert _core._thread_team_probe(3, 2) == [1, 1, 1, 3]  # the pool still works after it


def test_probe_rejects_bad_team_size():
    with pytest.raises(ValueError, match="nt must be in"):
        _core._thread_team_probe(0, 1)


def test_set_num_threads_range():
    before = cnnkit.get_num_threads()
    try:
        with pytest.raises(ValueError, match=r"n must be in \[1, 512\], got 513"):
            cnnkit.set_num_threads(513)
        with pytest.raises(ValueError, match=r"got 0"):
            _core.set_num_threads(0)
        cnnkit.set_num_threads(512)
        assert cnnkit.get_num_threads() == 512
    finally:
        cnnkit.set_num_threads(before)


def test_default_thread_count_from_env_and_affinity():
    r = _run("import cnnkit; print(cnnkit.get_num_threads())", OMP_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    r = _run("import os, cnnkit; print(cnnkit.get_num_threads(), len(os.sched_getaffinity(0)))")
    assert r.returncode == 0, r.stderr
    got, cpus = r.stdout.split()
    assert got == cpus


def test_import_leaves_the_environment_alone():
    r = _run("import os; before = dict(os.environ); import cnnkit; "
             "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_binding_reports_and_respects_the_environment():
    code = "import cnnkit; print(cnnkit.cpu_info()['thread_binding'])"
    default = _run(code)
    assert default.returncode == 0, default.stderr
    if sys.platform.startswith("linux"):
        assert default.stdout.startswith("workers kept off the caller"), default.stdout
    off = _run(code, OMP_PROC_BIND="false")
    assert off.stdout.strip() == "none (turned off by OMP_PROC_BIND=false)"
    off2 = _run(code, CNNKIT_BIND="0")
    assert off2.stdout.strip() == "none (turned off by CNNKIT_BIND)"
    bad = _run(code, OMP_PLACES="{0:x}")
    assert bad.returncode == 0, bad.stderr
    assert "not understood" in bad.stdout
    if sys.platform.startswith("linux"):
        cpus = sorted(os.sched_getaffinity(0))
        places = ",".join(f"{{{c}}}" for c in cpus)
        listed = _run(code, OMP_PLACES=places)
        assert listed.stdout.startswith(f"workers bound to {len(cpus)} places (OMP_PLACES)")
        bound = _run(code, OMP_PROC_BIND="close")
        assert "caller bound" in bound.stdout
        mpi = _run(code, OMPI_COMM_WORLD_LOCAL_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK="1")
        if len(cpus) >= 2 and len(cpus) == os.cpu_count():
            assert "MPI local rank 1 of 2" in mpi.stdout, mpi.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sched_getaffinity is Linux")
def test_workers_stay_inside_the_affinity_mask():
    # Restrict the process to one CPU: every cnnkit worker (threads named cnnkit-N) must run
    # there; numpy's OpenBLAS threads, started at its import, keep the old mask.
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = (
        "import os, threading, numpy as np, cnnkit\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        "cnnkit.set_num_threads(2)\n"
        "a = np.ones((300, 300), np.float32)\n"
        "c = cnnkit.ops.sgemm(a, a)\n"
        "assert float(c[0, 0]) == 300.0\n"
        "import glob\n"
        "masks = set()\n"
        "for t in glob.glob(f'/proc/{os.getpid()}/task/*'):\n"
        "    if not open(t + '/comm').read().startswith('cnnkit-'):\n"
        "        continue\n"
        "    for line in open(t + '/status'):\n"
        "        if line.startswith('Cpus_allowed_list'):\n"
        "            masks.add(line.split(':')[1].strip())\n"
        "print(sorted(masks))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"['{cpu}']", r.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_working_threads():
    code = (
        "import os, numpy as np, cnnkit\n"
        "cnnkit.set_num_threads(2)\n"
        "a = np.random.default_rng(0).standard_normal((200, 200)).astype(np.float32)\n"
        "ref = cnnkit.ops.sgemm(a, a)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = np.array_equal(cnnkit.ops.sgemm(a, a), ref)\n"
        "    ok &= cnnkit._core._thread_team_probe(2, 2) == [1, 1, 2]\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


def test_python_threads_calling_at_once_get_correct_results():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((160, 160)).astype(np.float32) for _ in range(4)]
    refs = [cnnkit.ops.sgemm(m, m) for m in mats]
    errors = []

    def work(i):
        for _ in range(20):
            if not np.array_equal(cnnkit.ops.sgemm(mats[i], mats[i]), refs[i]):
                errors.append(i)
                return

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_bitwise_identical_for_a_thread_count(threads):
    rng = np.random.default_rng(2)
    x = cnnkit.tensor(rng.standard_normal((5, 6, 13, 11)).astype(np.float32), requires_grad=True)
    conv = cnnkit.nn.Conv2d(6, 10, 3, padding=1)
    before = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(threads)
        runs = []
        for _ in range(3):
            x.grad = None
            conv.zero_grad()
            y = conv(x)
            (y * y).sum().backward()
            runs.append((y.numpy().copy(), x.grad.copy(), conv.weight.grad.copy()))
    finally:
        cnnkit.set_num_threads(before)
    for r in runs[1:]:
        for a, b in zip(runs[0], r):
            assert np.array_equal(a, b)
