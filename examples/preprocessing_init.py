"""Preprocessing and weight initialisation.

    python3 examples/preprocessing_init.py

1. Mean subtraction, fitted on the training set: AlexNet subtracts the mean image (one value
   per pixel and channel, cnnkit.data.MeanImage), VGG one mean per channel
   (cnnkit.data.ChannelMean).
2. Activation statistics through 10 layers of Linear + tanh (or ReLU) on unit-Gaussian input:
   with weights too small (std 0.01) the signal shrinks to zero layer by layer; too large
   (std 1) tanh saturates at +-1; Xavier (tanh) and He (ReLU, std sqrt(2 / fan_in)) keep it
   alive; batch norm after each Linear rescues the bad initialisations.
"""

import math

import numpy as np

import cnnkit as ck
import cnnkit.nn as nn

ck.manual_seed(0)
train, _ = ck.data.load_digits()
mean_image = ck.data.MeanImage().fit(train.images)
channel_mean = ck.data.ChannelMean().fit(train.images)
print(f"digits training set: {list(train.images.shape)}")
print(f"MeanImage:   mean of shape {list(mean_image.mean.shape)} (one value per pixel); "
      f"the mean image, x10:")
for row in mean_image.mean[0]:
    print("    " + " ".join(f"{10 * v:3.0f}" for v in row))
print(f"ChannelMean: mean of shape {list(channel_mean.mean.shape)} "
      f"(one value per channel): {channel_mean.mean.ravel()[0]:.4f}")
a, b = mean_image(train.images), channel_mean(train.images)
print(f"after MeanImage:   largest |per-pixel mean| = {np.abs(a.mean(axis=0)).max():.1e}")
print(f"after ChannelMean: |channel mean| = {abs(b.mean()):.1e}, but per-pixel means range "
      f"{b.mean(axis=0).min():.2f} .. {b.mean(axis=0).max():.2f}")

DEPTH, WIDTH, BATCH = 10, 256, 512
x0 = np.random.default_rng(0).standard_normal((BATCH, WIDTH)).astype(np.float32)


def layer_stds(nonlinearity, std, batch_norm=False):
    layers = []
    for _ in range(DEPTH):
        lin = nn.Linear(WIDTH, WIDTH, bias=False)
        nn.init.normal_(lin.weight, 0.0, std)
        layers.append(lin)
        if batch_norm:
            layers.append(nn.BatchNorm1d(WIDTH))
        layers.append(nn.Tanh() if nonlinearity == "tanh" else nn.ReLU())
    stds, h = [], ck.tensor(x0)
    with ck.no_grad():
        for layer in layers:
            h = layer(h)  # a fresh model is in training mode: batch norm uses batch statistics
            if isinstance(layer, (nn.Tanh, nn.ReLU)):
                stds.append(float(h.numpy().std()))
    return stds


xavier, he = 1 / math.sqrt(WIDTH), math.sqrt(2 / WIDTH)
settings = [
    ("tanh, std 0.01", "tanh", 0.01, False),
    ("tanh, std 1", "tanh", 1.0, False),
    ("tanh, Xavier", "tanh", xavier, False),
    ("ReLU, std 0.01", "relu", 0.01, False),
    ("ReLU, He", "relu", he, False),
    ("tanh, 0.01 + BN", "tanh", 0.01, True),
    ("ReLU, 0.01 + BN", "relu", 0.01, True),
]
columns = {name: layer_stds(nl, std, bn) for name, nl, std, bn in settings}
print(f"\nstd of the activations after each of {DEPTH} layers "
      f"(Linear {WIDTH}->{WIDTH}, batch {BATCH}, input std 1):")
print("layer " + "".join(f"{name:>17}" for name in columns))
for i in range(DEPTH):
    print(f"{i + 1:>5} " + "".join(f"{columns[name][i]:>17.2e}" for name in columns))
print("std 0.01: the signal shrinks; std 1 with tanh: saturated at +-1 (std near 1, gradients "
      "near 0); Xavier: shrinks slowly; He: steady; batch norm: steady whatever the "
      "initialisation")
