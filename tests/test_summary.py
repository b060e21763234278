"""summary(): the lecture's AlexNet volumes, parameter and multiply-add counts, tiling flags."""

import numpy as np
import pytest
from core_ops import CONV, DROPOUT, LINEAR, MAXPOOL, RELU, requires_core

import cnnkit as ck
import cnnkit.nn as nn
from cnnkit.summary import Summary, SummaryRow, tiling_note


def alexnet():
    """The lecture's AlexNet (one tower): 227x227x3 input."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Dropout(), nn.Linear(6 * 6 * 256, 4096), nn.ReLU(),
        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000),
    )


ALEXNET_VOLUMES = ["55x55x96", "55x55x96", "27x27x96", "27x27x256", "27x27x256", "13x13x256",
                   "13x13x384", "13x13x384", "13x13x384", "13x13x384", "13x13x256", "13x13x256",
                   "6x6x256", "9216", "9216", "4096", "4096", "4096", "4096", "4096", "1000"]
ALEXNET_PARAMS = (96 * 3 * 121 + 96) + (256 * 96 * 25 + 256) + (384 * 256 * 9 + 384) + (
    384 * 384 * 9 + 384) + (256 * 384 * 9 + 256) + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (
    4096 * 1000 + 1000)
ALEXNET_MACS = (55 * 55 * 96 * 3 * 121 + 27 * 27 * 256 * 96 * 25 + 13 * 13 * 384 * 256 * 9
                + 13 * 13 * 384 * 384 * 9 + 13 * 13 * 256 * 384 * 9 + 9216 * 4096 + 4096 * 4096
                + 4096 * 1000)


@pytest.fixture
def shape_only_layers(monkeypatch):
    """Replace the forward passes of the core-backed layers by their shape arithmetic, so
    summary's own logic runs without the C++ ops (the real ops are tested below)."""

    def zeros(*shape):
        return ck.tensor(np.zeros(shape, np.float32))

    def conv(self, x):
        ho, wo = ck.conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding,
                                     self.dilation)
        return zeros(x.shape[0], self.out_channels, ho, wo)

    def pool(self, x):
        ho, wo = ck.conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding)
        return zeros(x.shape[0], x.shape[1], ho, wo)

    monkeypatch.setattr(nn.Conv2d, "forward", conv)
    monkeypatch.setattr(nn.MaxPool2d, "forward", pool)
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, x: x)
    monkeypatch.setattr(nn.Dropout, "forward", lambda self, x: x)
    monkeypatch.setattr(nn.Linear, "forward",
                        lambda self, x: zeros(*x.shape[:-1], self.out_features))


def test_alexnet_summary_shows_the_lecture_volumes(shape_only_layers):
    model = alexnet()
    s = ck.summary(model, (3, 227, 227))
    assert [r.kind for r in s.rows][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    from cnnkit.summary import _volume

    assert [_volume(r.output_shape) for r in s.rows] == ALEXNET_VOLUMES
    assert s.total_params == ALEXNET_PARAMS == sum(p.numel() for p in model.parameters())
    assert s.rows[0].params == 34944 and s.rows[0].mult_adds == 105_415_200
    assert s.total_mult_adds == ALEXNET_MACS
    assert s.notes == []  # AlexNet's windows all tile their inputs at 227
    text = str(s)
    assert "0 (Conv2d)" in text and "[55x55x96]" in text and "[6x6x256]" in text
    assert f"Total params: {ALEXNET_PARAMS:,}" in text
    assert f"Total mult-adds (per sample): {ALEXNET_MACS:,}" in text
    assert all(m.training for m in model.modules())  # modes restored
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_alexnet_at_224_flags_conv1_that_does_not_tile(shape_only_layers):
    s = ck.summary(alexnet(), (3, 224, 224))
    assert s.rows[0].note == ("filter does not tile input: rows: (224 - 11)/4 + 1 = 54.25, "
                              "last 1 dropped; columns: (224 - 11)/4 + 1 = 54.25, last 1 dropped")
    assert "0 (Conv2d) *" in str(s) and "* 0 (Conv2d): filter does not tile" in str(s)


def test_tiling_note_arithmetic():
    x = (1, 3, 7, 7)
    assert tiling_note(nn.Conv2d(3, 1, 3, stride=2), x) == ""
    note = tiling_note(nn.Conv2d(3, 1, 3, stride=3), x)
    assert "(7 - 3)/3 + 1 = 2.33, last 1 dropped" in note
    assert "rows" in note and "columns" in note
    assert tiling_note(nn.MaxPool2d(2), (1, 1, 5, 4)) == (
        "filter does not tile input: rows: (5 - 2)/2 + 1 = 2.50, last 1 dropped")
    assert tiling_note(nn.MaxPool2d(2, ceil_mode=True), (1, 1, 5, 4)) == ""  # nothing dropped
    assert "(8 + 2*1 - 3)/4" in tiling_note(nn.AvgPool2d(3, 4, 1), (1, 1, 8, 8))
    assert tiling_note(nn.Linear(3, 3), (1, 3)) == ""


def test_table_formatting_totals_and_notes():
    rows = [SummaryRow("features.0", "Conv2d", (1, 3, 8, 8), (1, 4, 6, 6), 112, 3888,
                       precision="fp32"),
            SummaryRow("pool", "MaxPool2d", (1, 4, 6, 6), (1, 4, 2, 2), 0, 0, "bad tiling"),
            SummaryRow("fc", "Linear", (1, 16), (1, 10), 170, 160)]
    s = Summary(rows, (3, 8, 8), total_params=282, trainable_params=170)
    lines = str(s).splitlines()
    assert lines[0] == "Input: [8x8x3]"
    assert "Layer (type)" in lines[2] and "Output volume" in lines[2]
    body = [ln for ln in lines if ln.startswith(("features.0", "pool", "fc"))]
    assert body[0].split() == ["features.0", "(Conv2d)", "[6x6x4]", "112", "3,888", "fp32"]
    assert body[1].split() == ["pool", "(MaxPool2d)", "*", "[2x2x4]", "0", "-", "-"]
    assert "Total params: 282" in lines and "Non-trainable params: 112" in lines
    assert "Total mult-adds (per sample): 4,048" in lines
    assert lines[-1] == "* pool (MaxPool2d): bad tiling"
    assert repr(s) == str(s)


@requires_core(CONV, RELU, MAXPOOL, DROPOUT, LINEAR)
def test_summary_with_the_real_ops():
    model = alexnet()
    s = ck.summary(model, (3, 227, 227))
    from cnnkit.summary import _volume

    assert [_volume(r.output_shape) for r in s.rows] == ALEXNET_VOLUMES
    assert s.total_params == ALEXNET_PARAMS and s.total_mult_adds == ALEXNET_MACS
