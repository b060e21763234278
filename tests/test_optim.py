"""Optimizers: PyTorch's exact updates, parameter groups, state_dict."""

import re

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import optim


def _params_and_grads(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    # a fixed sequence of gradients per step
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(5)]
    return params, grads


def _run_ours(make, params, grads):
    ps = [ck.tensor(p, requires_grad=True) for p in params]
    opt = make(ps)
    traj = []
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(ps, step_grads):
            p.grad = g.copy()
        opt.step()
        traj.append([p.data.copy() for p in ps])
    return traj


def _run_torch(torch, make, params, grads):
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    opt = make(ps)
    traj = []
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(ps, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
        traj.append([p.detach().numpy().copy() for p in ps])
    return traj


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_trajectory_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    params, grads = _params_and_grads()
    ours = _run_ours(lambda ps: getattr(optim, name)(ps, **kwargs), params, grads)
    theirs = _run_torch(torch, lambda ps: getattr(torch.optim, name)(ps, **kwargs), params, grads)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            err = np.abs(pa - pb).max() / max(np.abs(pb).max(), 1e-12)
            assert err <= 1e-5, f"step {step + 1}: relative error {err:.2e}"


def test_sgd_momentum_by_hand():
    p = ck.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad = np.array([2.0], np.float32)
    opt.step()  # g = 2 + 0.5 * 1 = 2.5 ; buf = 2.5 ; p = 1 - 0.25
    assert p.data[0] == pytest.approx(0.75)
    p.grad = np.array([2.0], np.float32)
    opt.step()  # g = 2 + 0.375 = 2.375 ; buf = 0.9 * 2.5 + 2.375 = 4.625 ; p = 0.75 - 0.4625
    assert p.data[0] == pytest.approx(0.2875, rel=1e-6)


def test_adam_first_step_moves_by_lr():
    # bias correction: the first step is lr * g / (|g| + eps') = lr * sign(g)
    p = ck.tensor([1.0, -1.0], requires_grad=True)
    opt = optim.Adam([p], lr=0.01)
    p.grad = np.array([3.0, -0.2], np.float32)
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, -0.99], rtol=1e-5)


def test_param_groups_have_their_own_hyperparameters():
    a = ck.tensor([1.0], requires_grad=True)
    b = ck.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    a.grad = np.array([1.0], np.float32)
    b.grad = np.array([1.0], np.float32)
    opt.step()
    assert a.data[0] == pytest.approx(0.9)
    assert b.data[0] == pytest.approx(1.0 - 0.5 * 2.0)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad_and_skipping_params_without_grad():
    a = ck.tensor([1.0], requires_grad=True)
    b = ck.tensor([2.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = np.array([1.0], np.float32)
    opt.step()
    assert b.data[0] == 2.0 and a.data[0] != 1.0
    opt.zero_grad()
    assert a.grad is None
    a.grad = np.array([1.0], np.float32)
    opt.zero_grad(set_to_none=False)
    assert a.grad[0] == 0.0


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.01, amsgrad=True))])
def test_state_dict_round_trip_continues_identically(name, kwargs):
    params, grads = _params_and_grads(1)
    ref = _run_ours(lambda ps: getattr(optim, name)(ps, **kwargs), params, grads)

    ps = [ck.tensor(p, requires_grad=True) for p in params]
    opt = getattr(optim, name)(ps, **kwargs)
    for g_step in grads[:2]:
        for p, g in zip(ps, g_step):
            p.grad = g.copy()
        opt.step()
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2]
    assert saved["param_groups"][0]["params"] == [0, 1, 2]
    # a fresh optimizer over the same parameters picks up where the first left off
    opt2 = getattr(optim, name)(ps, **kwargs)
    opt2.load_state_dict(saved)
    for g_step in grads[2:]:
        for p, g in zip(ps, g_step):
            p.grad = g.copy()
        opt2.step()
    for a, b in zip(ps, ref[-1]):
        np.testing.assert_array_equal(a.data, b)


def test_invalid_hyperparameters_raise():
    p = [ck.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


@pytest.mark.parametrize("momentum,dampening,wd,nesterov,maximize", [
    (0.0, 0.0, 0.0, False, False), (0.9, 0.0, 5e-4, True, False), (0.9, 0.1, 1e-2, False, True),
])
def test_sgd_fused_update_equals_the_numpy_formulation_bitwise(monkeypatch, momentum, dampening,
                                                               wd, nesterov, maximize):
    import numpy as np

    import cnnkit
    from cnnkit.optim import sgd as sgd_mod

    rng = np.random.default_rng(0)
    # (70001,): the vectorized loop, its tail and two threads' ranges (2^15 values each at least)
    init = [rng.standard_normal(s).astype(np.float32)
            for s in [(7, 5), (13,), (3, 2, 4), (70001,)]]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in init] for _ in range(4)]

    def run(fused):
        monkeypatch.setattr(sgd_mod, "_fused", (lambda p: True) if fused else (lambda p: False))
        params = [cnnkit.nn.Parameter(a.copy()) for a in init]
        opt = cnnkit.optim.SGD(params, lr=0.05, momentum=momentum, dampening=dampening,
                               weight_decay=wd, nesterov=nesterov, maximize=maximize)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.copy()
            opt.step()
        return [p.data.copy() for p in params]

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ RMSprop and Adagrad
def _many_steps(seed=2, steps=40):
    rng = np.random.default_rng(seed)
    shapes = [(5, 4), (7,), (2, 3, 2)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    return params, grads


def _assert_trajectories_close(ours, theirs, tol=1e-5):
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            err = np.abs(pa - pb).max() / max(np.abs(pb).max(), 1e-12)
            assert err <= tol, f"step {step + 1}: relative error {err:.2e}"


RMSPROP_CASES = [dict(lr=lr, alpha=alpha, momentum=momentum, centered=centered,
                      weight_decay=wd, maximize=maximize)
                 for lr, alpha in [(1e-2, 0.99), (3e-3, 0.3)]  # 0.3: lerp's other branch
                 for momentum in (0.0, 0.9)
                 for centered in (False, True)
                 for wd in (0.0, 0.1)
                 for maximize in (False, True)]

ADAGRAD_CASES = [dict(lr=lr, lr_decay=lr_decay, weight_decay=wd,
                      initial_accumulator_value=init, eps=eps, maximize=maximize)
                 for lr, eps in [(1e-2, 1e-10), (0.1, 1e-3)]
                 for lr_decay in (0.0, 0.05)
                 for wd in (0.0, 0.1)
                 for init in (0.0, 0.5)
                 for maximize in (False, True)]


@pytest.mark.parametrize("kwargs", RMSPROP_CASES, ids=str)
def test_rmsprop_trajectory_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    params, grads = _many_steps()
    ours = _run_ours(lambda ps: optim.RMSprop(ps, **kwargs), params, grads)
    theirs = _run_torch(torch, lambda ps: torch.optim.RMSprop(ps, **kwargs), params, grads)
    _assert_trajectories_close(ours, theirs)


@pytest.mark.parametrize("kwargs", ADAGRAD_CASES, ids=str)
def test_adagrad_trajectory_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    params, grads = _many_steps()
    ours = _run_ours(lambda ps: optim.Adagrad(ps, **kwargs), params, grads)
    theirs = _run_torch(torch, lambda ps: torch.optim.Adagrad(ps, **kwargs), params, grads)
    _assert_trajectories_close(ours, theirs)


def _rmsprop_ref(params, grads, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    """RMSprop in float64, written from the formula (no torch)."""
    ps = [p.astype(np.float64) for p in params]
    v = [np.zeros_like(p) for p in ps]
    a = [np.zeros_like(p) for p in ps]
    b = [np.zeros_like(p) for p in ps]
    traj = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = -g.astype(np.float64) if maximize else g.astype(np.float64)
            g = g + weight_decay * ps[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            if centered:
                a[i] = alpha * a[i] + (1 - alpha) * g
                denom = np.sqrt(v[i] - a[i] ** 2) + eps
            else:
                denom = np.sqrt(v[i]) + eps
            if momentum > 0:
                b[i] = momentum * b[i] + g / denom
                ps[i] = ps[i] - lr * b[i]
            else:
                ps[i] = ps[i] - lr * g / denom
        traj.append([p.copy() for p in ps])
    return traj


def _adagrad_ref(params, grads, lr, lr_decay, weight_decay, initial_accumulator_value, eps,
                 maximize):
    """Adagrad in float64, written from the formula (no torch)."""
    ps = [p.astype(np.float64) for p in params]
    s = [np.full_like(p, initial_accumulator_value) for p in ps]
    traj = []
    for t, step_grads in enumerate(grads, start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        for i, g in enumerate(step_grads):
            g = -g.astype(np.float64) if maximize else g.astype(np.float64)
            g = g + weight_decay * ps[i]
            s[i] = s[i] + g * g
            ps[i] = ps[i] - clr * g / (np.sqrt(s[i]) + eps)
        traj.append([p.copy() for p in ps])
    return traj


@pytest.mark.parametrize("kwargs", RMSPROP_CASES[::3], ids=str)
def test_rmsprop_matches_a_float64_reference(kwargs):
    params, grads = _many_steps(3, steps=25)
    ours = _run_ours(lambda ps: optim.RMSprop(ps, **kwargs), params, grads)
    full = dict(dict(eps=1e-8), **kwargs)
    _assert_trajectories_close(ours, _rmsprop_ref(params, grads, **full), tol=1e-4)


@pytest.mark.parametrize("kwargs", ADAGRAD_CASES[::3], ids=str)
def test_adagrad_matches_a_float64_reference(kwargs):
    params, grads = _many_steps(3, steps=25)
    ours = _run_ours(lambda ps: optim.Adagrad(ps, **kwargs), params, grads)
    _assert_trajectories_close(ours, _adagrad_ref(params, grads, **kwargs), tol=1e-4)


def test_rmsprop_and_adagrad_by_hand():
    # RMSprop, first step: v = (1 - alpha) g^2, p -= lr g / (sqrt(v) + eps)
    p = ck.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.RMSprop([p], lr=0.01, alpha=0.75, eps=0.5)
    p.grad = np.array([2.0, -4.0], np.float32)
    opt.step()  # sqrt(v) = 0.5 * |g| = [1, 2]: p -= 0.01 * g / ([1, 2] + 0.5)
    np.testing.assert_allclose(p.data, [1.0 - 0.02 / 1.5, -2.0 + 0.04 / 2.5], rtol=1e-6)
    assert opt.state_dict()["state"][0]["step"] == 1
    assert sorted(opt.state_dict()["state"][0]) == ["square_avg", "step"]
    # Adagrad: sum starts at initial_accumulator_value; clr = lr / (1 + (t - 1) lr_decay)
    q = ck.tensor([1.0], requires_grad=True)
    opt = optim.Adagrad([q], lr=0.1, lr_decay=0.5, initial_accumulator_value=5.0, eps=0.0)
    q.grad = np.array([2.0], np.float32)
    opt.step()  # sum = 9, p = 1 - 0.1 * 2 / 3
    assert q.data[0] == pytest.approx(1.0 - 0.2 / 3, rel=1e-6)
    q.grad = np.array([4.0], np.float32)
    opt.step()  # sum = 25, clr = 0.1 / 1.5, p -= clr * 4 / 5
    assert q.data[0] == pytest.approx(1.0 - 0.2 / 3 - 0.1 / 1.5 * 0.8, rel=1e-6)


def test_adagrad_state_exists_before_the_first_step_like_torch():
    torch = pytest.importorskip("torch")
    params, _ = _many_steps()
    ours = optim.Adagrad([ck.tensor(p, requires_grad=True) for p in params],
                         initial_accumulator_value=0.25).state_dict()
    theirs = torch.optim.Adagrad([torch.tensor(p, requires_grad=True) for p in params],
                                 initial_accumulator_value=0.25).state_dict()
    assert sorted(ours["state"]) == sorted(theirs["state"]) == [0, 1, 2]
    for i, st in theirs["state"].items():
        assert sorted(ours["state"][i]) == sorted(st) == ["step", "sum"]
        assert ours["state"][i]["step"] == float(st["step"]) == 0
        np.testing.assert_array_equal(ours["state"][i]["sum"], st["sum"].numpy())
        assert ours["state"][i]["sum"].dtype == np.float32
    own_keys = set(ours["param_groups"][0]) - {"params"}
    assert own_keys <= set(theirs["param_groups"][0])
    for k in own_keys:
        assert ours["param_groups"][0][k] == theirs["param_groups"][0][k], k


STATEFUL_CASES = [("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-2)),
                  ("RMSprop", dict(lr=1e-2)),
                  ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
                  ("Adagrad", dict(lr=0.1))]


@pytest.mark.parametrize("name, kwargs", STATEFUL_CASES)
@pytest.mark.parametrize("through_file", [False, True])
def test_rmsprop_adagrad_state_dict_round_trip(name, kwargs, through_file, tmp_path):
    params, grads = _many_steps(4, steps=8)
    ref = _run_ours(lambda ps: getattr(optim, name)(ps, **kwargs), params, grads)

    ps = [ck.tensor(p, requires_grad=True) for p in params]
    opt = getattr(optim, name)(ps, **kwargs)
    for g_step in grads[:3]:
        for p, g in zip(ps, g_step):
            p.grad = g.copy()
        opt.step()
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2]
    assert all(st["step"] == 3 for st in saved["state"].values())
    if through_file:
        ck.save({"optimizer": {"class": name, "state": saved}}, tmp_path / "opt.safetensors")
        back = ck.load(tmp_path / "opt.safetensors")["optimizer"]
        assert back["class"] == name
        saved = back["state"]
    # a fresh optimizer over the same parameters (other hyper-parameters: the saved groups win)
    opt2 = getattr(optim, name)(ps, lr=0.5)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for g_step in grads[3:]:
        for p, g in zip(ps, g_step):
            p.grad = g.copy()
        opt2.step()
    for a, b in zip(ps, ref[-1]):
        np.testing.assert_array_equal(a.data, b)
    for i, st in opt2.state_dict()["state"].items():
        assert st["step"] == len(grads)
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32 and v.shape == params[i].shape, k


def _torch_state_to_numpy(torch, sd):
    """A PyTorch optimizer state_dict with its tensors as numpy arrays (what ck.load gives)."""
    def conv(v):
        return v.detach().numpy().copy() if isinstance(v, torch.Tensor) else v
    return {"state": {i: {k: conv(v) for k, v in st.items()} for i, st in sd["state"].items()},
            "param_groups": [dict(g) for g in sd["param_groups"]]}


@pytest.mark.parametrize("name, kwargs", STATEFUL_CASES)
def test_rmsprop_adagrad_load_a_torch_state_dict_and_continue(name, kwargs, tmp_path):
    torch = pytest.importorskip("torch")
    params, grads = _many_steps(5, steps=30)
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    topt = getattr(torch.optim, name)(tps, **kwargs)
    theirs = []
    for k, g_step in enumerate(grads):
        for p, g in zip(tps, g_step):
            p.grad = torch.tensor(g)
        topt.step()
        theirs.append([p.detach().numpy().copy() for p in tps])
        if k == 9:
            at10 = [p.detach().numpy().copy() for p in tps]
            sd = _torch_state_to_numpy(torch, topt.state_dict())
    # into ours (through a file, as a checkpoint would carry it)
    ck.save(sd, tmp_path / "torch_opt.safetensors")
    sd = ck.load(tmp_path / "torch_opt.safetensors")
    ps = [ck.tensor(p, requires_grad=True) for p in at10]
    opt = getattr(optim, name)(ps, **kwargs)
    opt.load_state_dict(sd)
    ours = []
    for g_step in grads[10:]:
        for p, g in zip(ps, g_step):
            p.grad = g.copy()
        opt.step()
        ours.append([p.data.copy() for p in ps])
    _assert_trajectories_close(ours, theirs[10:])
    assert all(st["step"] == len(grads) for st in opt.state_dict()["state"].values())

    # and back: our state_dict (arrays -> tensors) loads into PyTorch's optimizer
    mine = opt.state_dict()
    tps2 = [torch.tensor(p.data.copy(), requires_grad=True) for p in ps]
    topt2 = getattr(torch.optim, name)(tps2, **kwargs)
    topt2.load_state_dict({
        "state": {i: {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                      for k, v in st.items()} for i, st in mine["state"].items()},
        "param_groups": mine["param_groups"]})
    g_step = grads[0]
    for p, q, g in zip(ps, tps2, g_step):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    opt.step()
    topt2.step()
    _assert_trajectories_close([[p.data for p in ps]], [[q.detach().numpy() for q in tps2]])


@pytest.mark.parametrize("name, kwargs", [("RMSprop", dict(momentum=0.5, centered=True)),
                                          ("Adagrad", dict(lr_decay=0.1))])
def test_rmsprop_adagrad_parameter_groups_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    params, grads = _many_steps(6, steps=20)

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1, "weight_decay": 0.05}]

    ours = _run_ours(lambda ps: getattr(optim, name)(groups(ps), lr=1e-3, **kwargs),
                     params, grads)
    theirs = _run_torch(torch, lambda ps: getattr(torch.optim, name)(groups(ps), lr=1e-3,
                                                                     **kwargs), params, grads)
    _assert_trajectories_close(ours, theirs)
    # the groups really differ: the second moves far more than lr 1e-3 allows
    assert np.abs(ours[0][2] - params[2]).max() > 10 * np.abs(ours[0][0] - params[0]).max()
    opt = getattr(optim, name)(groups([ck.tensor(p, requires_grad=True) for p in params]),
                               lr=1e-3, **kwargs)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.1]
    assert opt.state_dict()["param_groups"][1]["params"] == [2]


def test_adagrad_add_param_group_initialises_its_state():
    a = ck.tensor([1.0], requires_grad=True)
    b = ck.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adagrad([a], initial_accumulator_value=0.5)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 2.0})
    st = opt.state_dict()["state"]
    np.testing.assert_array_equal(st[0]["sum"], [0.5])
    np.testing.assert_array_equal(st[1]["sum"], [2.0, 2.0])
    b.grad = np.array([1.0, 1.0], np.float32)
    opt.step()  # a has no grad: untouched, step stays 0
    assert a.data[0] == 1.0 and opt.state_dict()["state"][0]["step"] == 0
    np.testing.assert_array_equal(opt.state_dict()["state"][1]["sum"], [3.0, 3.0])


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.RMSprop(p, lr=-1e-3), "Invalid learning rate: -0.001"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "Invalid alpha value: -0.1"),
    (lambda p: optim.RMSprop(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: optim.RMSprop(p, weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
    (lambda p: optim.RMSprop([], lr=0.1), "empty"),
    (lambda p: optim.Adagrad(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), "Invalid lr_decay value: -0.1"),
    (lambda p: optim.Adagrad(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0),
     "Invalid initial_accumulator_value value: -1.0"),
    (lambda p: optim.Adagrad(p, eps=-1e-10), "Invalid epsilon value: -1e-10"),
    (lambda p: optim.Adagrad([], lr=0.1), "empty"),
])
def test_rmsprop_adagrad_invalid_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make([ck.tensor([1.0], requires_grad=True)])


@pytest.mark.parametrize("name, kwargs", STATEFUL_CASES[::2])
def test_rmsprop_adagrad_fit_resume_equals_straight_run(name, kwargs, tmp_path):
    from cnnkit import data, nn, train

    rng = np.random.default_rng(7)
    ds = data.ArrayDataset(rng.standard_normal((48, 1, 6, 6)).astype(np.float32),
                           rng.integers(0, 3, 48))

    def setup(seed):
        ck.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
        loader = data.DataLoader(ds, 16, shuffle=True, seed=1, prefetch=False)
        return model, getattr(optim, name)(model.parameters(), **kwargs), loader

    threads = ck.get_num_threads()
    ck.set_num_threads(1)
    try:
        model, opt, loader = setup(0)
        train.fit(model, loader, epochs=4, optimizer=opt, progress=False)
        want, want_opt = [p.data.copy() for p in model.parameters()], opt.state_dict()

        model, opt, loader = setup(0)
        train.fit(model, loader, epochs=2, optimizer=opt, checkpoint_dir=tmp_path,
                  progress=False)
        model, opt, loader = setup(999)  # other weights and a fresh state: all restored
        train.fit(model, loader, epochs=4, optimizer=opt, resume=tmp_path / "last.safetensors",
                  progress=False)
    finally:
        ck.set_num_threads(threads)
    assert not all(np.array_equal(a.data, b) for a, b in zip(setup(0)[0].parameters(), want))
    for a, b in zip(model.parameters(), want):
        np.testing.assert_array_equal(a.data, b)
    got_opt = opt.state_dict()
    assert sorted(got_opt["state"]) == sorted(want_opt["state"])
    for i, st in want_opt["state"].items():
        assert sorted(got_opt["state"][i]) == sorted(st)
        for k, v in st.items():
            np.testing.assert_array_equal(got_opt["state"][i][k], v, err_msg=f"{i}/{k}")
