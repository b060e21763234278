"""Inverted dropout with a counter-based RNG; every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import _core, f32, rand, threads_restored  # noqa: F401

import cnnkit

M64 = (1 << 64) - 1


def splitmix_keep(seed, i, p):
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 32) >= round(p * 2**32)


@pytest.mark.parametrize("shape", [(1,), (17,), (3, 5, 7), (2, 3, 33, 31)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_forward_backward(isa, shape, p):
    rng = np.random.default_rng(30)
    x = rand(rng, *shape)
    y, mask = _core.dropout_forward(x, p, 1234)
    assert mask.dtype == np.uint8 and mask.shape == x.shape
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_allclose(y, x * mask / (1 - p), rtol=1e-6)
    # the mask is exactly the documented hash, element by element
    flat = mask.ravel()
    for i in list(range(min(flat.size, 40))) + [flat.size - 1]:
        assert bool(flat[i]) == splitmix_keep(1234, i, p)
    dy = rand(rng, *shape)
    dx = _core.dropout_backward(dy, mask, p)
    np.testing.assert_allclose(dx, dy * mask / (1 - p), rtol=1e-6)
    if p == 0.0:
        np.testing.assert_array_equal(y, x)


def test_dropout_keep_rate_and_seeds(isa, threads_restored):  # noqa: F811
    x = np.ones(1_000_003, np.float32)
    y, mask = _core.dropout_forward(x, 0.3, 7)
    assert abs(mask.mean() - 0.7) < 3e-3  # ~6 sigma for n = 1e6
    np.testing.assert_allclose(y[mask == 1], 1 / 0.7, rtol=1e-6)
    _, mask2 = _core.dropout_forward(x, 0.3, 8)
    assert (mask != mask2).mean() > 0.3  # a different seed gives a different mask
    for t in (1, 3):
        cnnkit.set_num_threads(t)
        _, m = _core.dropout_forward(x, 0.3, 7)
        np.testing.assert_array_equal(m, mask)


def test_dropout_same_mask_on_every_isa():
    x = np.ones(4099, np.float32)
    prev = cnnkit.get_isa()
    masks = []
    try:
        for name in cnnkit.cpu_info()["supported_isas"]:
            cnnkit.set_isa(name)
            masks.append(_core.dropout_forward(x, 0.5, 99)[1])
    finally:
        cnnkit.set_isa(prev)
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])


def test_dropout_bad_arguments():
    x = np.ones(4, np.float32)
    for p in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
            _core.dropout_forward(x, p, 0)
    with pytest.raises(TypeError, match="mask must have dtype uint8"):
        _core.dropout_backward(x, np.ones(4, np.bool_), 0.5)
    with pytest.raises(TypeError, match="dtype float32"):
        _core.dropout_forward(np.ones(4), 0.5, 0)
    with pytest.raises(ValueError, match="mask must have the shape of dy"):
        _core.dropout_backward(x, np.ones(5, np.uint8), 0.5)


def test_dropout_torch_semantics():
    torch = pytest.importorskip("torch")
    # different RNGs, so compare the law: kept units scaled by 1/(1-p), dropped units 0
    x = f32(np.random.default_rng(31).random(10000) + 1)
    yt = torch.nn.functional.dropout(torch.tensor(x), 0.25, training=True).numpy()
    y, mask = _core.dropout_forward(x, 0.25, 5)
    for out in (yt, y):
        kept = out != 0
        np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-6)
        assert abs(kept.mean() - 0.75) < 0.03
