"""gradcheck itself, and gradcheck over every pure-Python op, functional op and module."""

import numpy as np
import pytest
from core_ops import (
    ADAPTIVE,
    AVGPOOL,
    BN,
    CE,
    CONV,
    DROPOUT,
    LINEAR,
    LOCAL,
    LRN,
    MAXOUT,
    MAXPOOL,
    TILED,
    requires_core,
)

import cnnkit as ck
import cnnkit.functional as F
import cnnkit.nn as nn
from cnnkit.gradcheck import GradcheckError
from cnnkit.tensor import Function


def rand(*shape, seed=0, low=None):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape).astype(np.float32)
    if low is not None:
        v = np.abs(v) + low
    return ck.tensor(v, requires_grad=True)


PURE = [
    ("add-broadcast", lambda a, b: a + b[0], lambda: (rand(3, 4), rand(1, 4, seed=1))),
    ("sub", lambda a, b: a - b, lambda: (rand(3, 4), rand(3, 4, seed=1))),
    ("mul-broadcast", lambda a, b: a * b[:, :1], lambda: (rand(3, 4), rand(3, 2, seed=1))),
    ("div", lambda a, b: a / b, lambda: (rand(3, 4), rand(3, 4, seed=1, low=0.5))),
    ("matmul", lambda a, b: a @ b, lambda: (rand(3, 4), rand(4, 2, seed=1))),
    ("matmul-batched", lambda a, b: a @ b, lambda: (rand(2, 3, 4), rand(4, 2, seed=1))),
    ("neg-pow", lambda a: (-a) ** 3, lambda: (rand(5),)),
    ("exp-log", lambda a: a.exp() + a.log(), lambda: (rand(2, 3, low=0.5),)),
    ("sum-dim", lambda a: a.sum(dim=1, keepdim=True), lambda: (rand(2, 3, 4),)),
    ("mean", lambda a: a.mean(dim=(0, 2)), lambda: (rand(2, 3, 4),)),
    ("max-dim", lambda a: a.max(dim=1).values, lambda: (rand(3, 5),)),
    ("reshape-permute", lambda a: a.reshape(4, 6).permute(1, 0) * 2, lambda: (rand(2, 3, 4),)),
    ("transpose-flatten", lambda a: a.transpose(0, 2).flatten(1), lambda: (rand(2, 3, 4),)),
    ("index", lambda a: a[1:, [0, 2, 2]], lambda: (rand(3, 4),)),
]


@pytest.mark.parametrize("name, fn, make", PURE, ids=[p[0] for p in PURE])
def test_gradcheck_pure_python_ops(name, fn, make):
    assert ck.gradcheck(fn, make()) is True


def test_gradcheck_catches_a_wrong_backward_and_names_the_worst_element():
    class BadSquare(Function):
        def forward(self, a):
            self.a = a
            return a * a

        def backward(self, g):
            wrong = 2 * self.a * g
            wrong[1] *= 1.5  # one element off
            return (wrong,)

    x = ck.tensor([0.5, 2.0, -1.0], requires_grad=True)
    with pytest.raises(GradcheckError) as e:
        ck.gradcheck(lambda a: BadSquare.apply(a), (x,))
    msg = str(e.value)
    assert "1 of 3" in msg and "input 0" in msg and "index (1,)" in msg
    assert x.grad is None  # gradcheck leaves .grad as it found it
    np.testing.assert_array_equal(x.data, [0.5, 2.0, -1.0])  # and the data


def test_gradcheck_tolerances_and_inputs_without_grad():
    x = ck.tensor([1.0, 2.0], requires_grad=True)
    c = ck.tensor([3.0, 4.0])  # passed through, not checked
    assert ck.gradcheck(lambda a, b: a * b, (x, c))
    with pytest.raises(ValueError, match="requires_grad"):
        ck.gradcheck(lambda b: b * 2, (c,))


# ------------------------------------------------------------------ functional ops (need core)
def away_from_zero(*shape, seed=0):
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    v[np.abs(v) < 0.1] += 0.3
    return ck.tensor(v, requires_grad=True)


def distinct(*shape, seed=0):
    n = int(np.prod(shape))
    v = np.random.default_rng(seed).permutation(n).reshape(shape).astype(np.float32) / n
    return ck.tensor(v, requires_grad=True)


FUNCTIONAL = [
    ("conv2d", CONV, lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     lambda: (rand(2, 3, 5, 5), rand(4, 3, 3, 3, seed=1), rand(4, seed=2))),
    ("conv2d-groups-dilation", CONV, lambda x, w: F.conv2d(x, w, dilation=2, groups=2),
     lambda: (rand(1, 4, 6, 6), rand(2, 2, 2, 2, seed=1))),
    ("local_conv2d", LOCAL, lambda x, w, b: F.local_conv2d(x, w, b, stride=1, padding=1),
     lambda: (rand(1, 2, 3, 3), rand(3, 3, 2, 2, 3, 3, seed=1), rand(2, 3, 3, seed=2))),
    ("tiled_conv2d", TILED, lambda x, w, b: F.tiled_conv2d(x, w, b),
     lambda: (rand(1, 2, 5, 4), rand(2, 2, 3, 2, 2, 2, seed=1), rand(3, seed=2))),
    ("max_pool2d", MAXPOOL, lambda x: F.max_pool2d(x, 2, padding=1),
     lambda: (distinct(2, 2, 5, 5),)),
    ("avg_pool2d", AVGPOOL, lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
     lambda: (rand(2, 2, 5, 5),)),
    ("adaptive_avg_pool2d", ADAPTIVE, lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
     lambda: (rand(1, 2, 5, 7),)),
    ("relu", ("relu_forward", "relu_backward"), F.relu, lambda: (away_from_zero(3, 4),)),
    ("leaky_relu", ("leaky_relu_forward", "leaky_relu_backward"),
     lambda x: F.leaky_relu(x, 0.1), lambda: (away_from_zero(3, 4),)),
    ("elu", ("elu_forward", "elu_backward"), F.elu, lambda: (away_from_zero(3, 4),)),
    ("sigmoid", ("sigmoid_forward", "sigmoid_backward"), F.sigmoid, lambda: (rand(3, 4),)),
    ("tanh", ("tanh_forward", "tanh_backward"), F.tanh, lambda: (rand(3, 4),)),
    ("maxout", MAXOUT, lambda x: F.maxout(x, 2), lambda: (distinct(2, 4, 3),)),
    ("batch_norm-train", BN,
     lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     lambda: (rand(4, 3, 2, 2), rand(3, seed=1), rand(3, seed=2))),
    ("batch_norm-eval", BN,
     lambda x, w, b: F.batch_norm(x, np.array([0.1, -0.2, 0.3], np.float32),
                                  np.array([1.5, 0.5, 2.0], np.float32), w, b),
     lambda: (rand(4, 3), rand(3, seed=1), rand(3, seed=2))),
    ("local_response_norm", LRN, lambda x: F.local_response_norm(x, 3, alpha=0.1, k=1.0),
     lambda: (rand(2, 5, 2, 2),)),
    ("linear", LINEAR, F.linear, lambda: (rand(3, 4), rand(2, 4, seed=1), rand(2, seed=2))),
    ("softmax", ("softmax_forward", "softmax_backward"), lambda x: F.softmax(x, dim=0),
     lambda: (rand(3, 4),)),
    ("log_softmax", ("log_softmax_forward", "log_softmax_backward"), F.log_softmax,
     lambda: (rand(3, 4),)),
    ("cross_entropy", CE, lambda x: F.cross_entropy(x, ck.tensor([0, 3, 1])),
     lambda: (rand(3, 4),)),
    ("multi_margin_loss", ("multi_margin_loss_forward", "multi_margin_loss_backward"),
     lambda x: F.multi_margin_loss(x, ck.tensor([0, 3, 1]), margin=0.5), lambda: (rand(3, 4),)),
    ("mse_loss", ("mse_loss_forward", "mse_loss_backward"), F.mse_loss,
     lambda: (rand(3, 4), rand(3, 4, seed=1))),
]


@pytest.mark.parametrize("name, ops, fn, make", FUNCTIONAL, ids=[f[0] for f in FUNCTIONAL])
def test_gradcheck_functional_ops(name, ops, fn, make):
    gone = [o for o in ops if not hasattr(ck._core, o)]
    if gone:
        pytest.skip(f"cnnkit._core lacks {', '.join(gone)} (not merged yet)")
    # batch statistics make every output depend on every input: float32 rounding in the
    # outputs adds up, so a larger step keeps it below the tolerance (the maths is smooth)
    eps = 1e-2 if name.startswith("batch_norm") else 1e-3
    assert ck.gradcheck(fn, make(), eps=eps)


@requires_core(DROPOUT)
def test_gradcheck_dropout_with_a_fixed_mask():
    x = rand(4, 5)

    def fn(a):
        ck.manual_seed(0)  # the same mask on every evaluation
        return F.dropout(a, 0.4)

    assert ck.gradcheck(fn, (x,))


MODULES = [
    ("Conv2d", CONV, lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 4)),
    ("LocallyConnected2d", LOCAL, lambda: nn.LocallyConnected2d(2, 2, 4, 3), (1, 2, 4, 4)),
    ("TiledConv2d", TILED, lambda: nn.TiledConv2d(2, 2, 2, tile_size=2), (1, 2, 4, 4)),
    ("Linear", LINEAR, lambda: nn.Linear(4, 3), (2, 4)),
    ("BatchNorm2d", BN, lambda: nn.BatchNorm2d(2), (3, 2, 2, 2)),
    ("BatchNorm1d", BN, lambda: nn.BatchNorm1d(3), (4, 3)),
    ("AvgPool2d", AVGPOOL, lambda: nn.AvgPool2d(2), (1, 2, 4, 4)),
    ("AdaptiveAvgPool2d", ADAPTIVE, lambda: nn.AdaptiveAvgPool2d(1), (1, 2, 3, 3)),
    ("LocalResponseNorm", LRN, lambda: nn.LocalResponseNorm(3, alpha=0.1), (1, 4, 2, 2)),
    ("Sigmoid", ("sigmoid_forward", "sigmoid_backward"), nn.Sigmoid, (2, 3)),
    ("Tanh", ("tanh_forward", "tanh_backward"), nn.Tanh, (2, 3)),
    ("ELU", ("elu_forward", "elu_backward"), nn.ELU, (2, 3)),
    ("Flatten", (), nn.Flatten, (2, 3, 2)),
]


@pytest.mark.parametrize("name, ops, make, shape", MODULES, ids=[m[0] for m in MODULES])
def test_gradcheck_modules_inputs_and_parameters(name, ops, make, shape):
    gone = [o for o in ops if not hasattr(ck._core, o)]
    if gone:
        pytest.skip(f"cnnkit._core lacks {', '.join(gone)} (not merged yet)")
    ck.manual_seed(1)
    m = make()
    x = away_from_zero(*shape, seed=3)
    params = list(m.parameters())
    eps = 1e-2 if name.startswith("BatchNorm") else 1e-3
    assert ck.gradcheck(lambda a, *ps: m(a), (x, *params), eps=eps)


@requires_core(MAXPOOL, "relu_forward", "relu_backward", "leaky_relu_forward",
               "leaky_relu_backward", MAXOUT, CE)
def test_gradcheck_modules_with_kinks_on_safe_inputs():
    x = distinct(1, 4, 4, 4)
    for m in (nn.MaxPool2d(2), nn.Maxout(2)):
        assert ck.gradcheck(lambda a: m(a), (x,))
    y = away_from_zero(3, 4)
    for m in (nn.ReLU(), nn.LeakyReLU(0.2)):
        assert ck.gradcheck(lambda a: m(a), (y,))
    assert ck.gradcheck(lambda a: nn.CrossEntropyLoss()(a, ck.tensor([1, 0, 3])), (y,))
