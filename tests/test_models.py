"""cnnkit.models: output shapes, the lecture's AlexNet volumes, LRN constants, He init, configs."""

import math

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import models, nn


@pytest.fixture(scope="module")
def alexnet():
    """One AlexNet for the module (building 62 M parameters takes seconds)."""
    ck.manual_seed(0)
    return models.alexnet()


@pytest.mark.parametrize("name, shape", [
    ("digits_cnn", (1, 8, 8)), ("lenet5", (1, 28, 28)), ("cifar_cnn", (3, 32, 32)),
    ("resnet20", (3, 32, 32)),
])
def test_output_shapes_and_backward(name, shape, rng):
    ck.manual_seed(0)
    model = models.build(name, num_classes=7)
    x = ck.tensor(rng.standard_normal((3,) + shape).astype(np.float32))
    out = model(x)
    assert out.shape == (3, 7)
    nn.CrossEntropyLoss()(out, ck.tensor(np.array([0, 3, 6]))).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.eval()
    with ck.no_grad():
        a, b = model(x).data, model(x).data
    np.testing.assert_array_equal(a, b)   # eval mode: no dropout, running statistics


def test_alexnet_lecture_volumes_and_parameters(alexnet):
    model = alexnet
    s = ck.summary(model, (3, 227, 227))
    volumes = {r.name: r.output_shape[1:] for r in s.rows}
    lecture = [  # (layer, [C, H, W]) from the lecture's table
        ("features.0", (96, 55, 55)),    # CONV1 96 11x11 stride 4 pad 0
        ("features.2", (96, 27, 27)),    # POOL1 3x3 stride 2
        ("features.3", (96, 27, 27)),    # NORM1
        ("features.4", (256, 27, 27)),   # CONV2 256 5x5 pad 2
        ("features.6", (256, 13, 13)),   # POOL2
        ("features.7", (256, 13, 13)),   # NORM2
        ("features.8", (384, 13, 13)),   # CONV3
        ("features.10", (384, 13, 13)),  # CONV4
        ("features.12", (256, 13, 13)),  # CONV5
        ("features.14", (256, 6, 6)),    # POOL3
        ("classifier.1", (4096,)),       # FC6
        ("classifier.4", (4096,)),       # FC7
        ("classifier.6", (1000,)),       # FC8
    ]
    for layer, vol in lecture:
        assert volumes[layer] == vol, layer
    # CONV1: (11*11*3 + 1) * 96 = 34,944 parameters; 55*55*96 outputs of 363 mult-adds each
    conv1 = s.rows[0]
    assert conv1.params == 34_944 and conv1.mult_adds == 55 * 55 * 96 * 363
    assert s.total_params == 62_378_344
    assert "55x55x96" in str(s) and "6x6x256" in str(s)
    assert not s.notes   # every filter tiles its input exactly (227, not 224)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(d.p == 0.5 for d in dropouts)
    assert model.config == {"name": "alexnet", "args": {"num_classes": 1000, "dropout": 0.5}}


def test_alexnet_lrn_is_the_papers_normalisation(alexnet, rng):
    """PyTorch's LRN divides by (k + alpha/n * sum)^beta; the paper by (k + alpha * sum)^beta
    with alpha = 1e-4: alexnet() uses alpha = 5e-4 = 1e-4 * n so the two agree."""
    lrns = [m for m in alexnet.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 2
    for m in lrns:
        assert (m.size, m.alpha, m.beta, m.k) == (5, 5e-4, 0.75, 2.0)
    x = rng.standard_normal((2, 9, 4, 4)).astype(np.float32) * 10
    y = lrns[0](ck.tensor(x)).data
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(sq[:, i:i + 9] for i in range(5))   # channels c-2 .. c+2
    paper = x / (2.0 + 1e-4 * window) ** 0.75
    np.testing.assert_allclose(y, paper, rtol=1e-5, atol=1e-6)


def test_he_initialisation(alexnet):
    for m in alexnet.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.data
            fan_in = w[0].size
            assert abs(w.std() / math.sqrt(2.0 / fan_in) - 1) < 0.05, m
            assert abs(w.mean()) < 0.05 * math.sqrt(2.0 / fan_in) * 10
            np.testing.assert_array_equal(m.bias.data, 0)


def test_cifar_cnn_layers():
    model = models.cifar_cnn()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(4096, 512), (512, 10)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules())


def test_resnet_structure():
    model = models.resnet20()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20      # 19 conv layers + the FC layer
    assert 0.26e6 < sum(p.numel() for p in model.parameters()) < 0.28e6
    s = ck.summary(model, (3, 32, 32))
    assert s.rows[-1].output_shape == (1, 10)
    assert models.resnet_cifar(32).config["args"]["depth"] == 32
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.resnet_cifar(21)


def test_config_rebuilds_the_same_architecture():
    model = models.cifar_cnn(num_classes=5, dropout=0.3)
    assert model.config == {"name": "cifar_cnn",
                            "args": {"num_classes": 5, "in_channels": 3, "dropout": 0.3,
                                     "input_size": 32}}
    again = models.build(model.config)
    assert list(again.state_dict()) == list(model.state_dict())
    assert again.state_dict()["17.weight"].shape == (512, 4096)
    with pytest.raises(ValueError, match="unknown model 'vgg16'"):
        models.build("vgg16")
    # other image sizes: the first fully connected layer follows (64 x H/4 x W/4 inputs)
    wide = models.cifar_cnn(input_size=(16, 24))
    assert wide.state_dict()["17.weight"].shape == (512, 64 * 4 * 6)
    assert models.build(wide.config).state_dict()["17.weight"].shape == (512, 1536)
    with pytest.raises(ValueError, match="cifar_cnn: input_size must be at least 4x4"):
        models.cifar_cnn(input_size=2)
