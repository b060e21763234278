"""Optimizers: PyTorch's exact updates, parameter groups, state_dict."""

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
    init = [rng.standard_normal(s).astype(np.float32) for s in [(7, 5), (13,), (3, 2, 4)]]
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
