"""Convolution arithmetic: the output volume (W - F + 2P)/S + 1.

    python3 examples/conv_arithmetic.py

Slides: a 7x7 input and a 3x3 filter with stride 1, 2 and 3 (3 does not fit); a 32x32x3
input with ten 5x5 filters, stride 1, pad 2; zero padding (F - 1)/2 keeps the size.
"""

import numpy as np

import cnnkit as ck
import cnnkit.nn as nn


def formula(w, f, s=1, p=0):
    return f"(W - F + 2P)/S + 1 = ({w} - {f} + 2*{p})/{s} + 1"


print("7x7 input, 3x3 filter:")
for stride in (1, 2, 3):
    try:
        out = ck.conv_output_size(7, 3, stride=stride, strict=True)
        print(f"  stride {stride}: {formula(7, 3, stride)} = {out}  -> {out}x{out} output")
    except ValueError as e:  # the lecture's "doesn't fit!"
        print(f"  stride {stride}: {e}")

print("\n32x32x3 input, ten 5x5 filters, stride 1, pad 2:")
conv = nn.Conv2d(3, 10, 5, stride=1, padding=2)
y = conv(ck.tensor(np.zeros((1, 3, 32, 32), np.float32)))
n, k, h, w = y.shape
size = ck.conv_output_size(32, 5, 1, 2)
print(f"  output volume: {h}x{w}x{k}  ({formula(32, 5, 1, 2)} = {size})")
weights, biases = conv.weight.numel(), conv.bias.numel()
per_filter = weights // k  # 5*5*3 = 75 weights, plus one bias each
print(f"  parameters: each filter 5*5*3 = {per_filter} weights + 1 bias, so "
      f"{k} * {per_filter} + {k} = {weights} + {biases} = {weights + biases}")

print("\nzero padding (F - 1)/2 with stride 1 preserves the size (32x32 input):")
for f in (3, 5, 7):
    p = (f - 1) // 2
    print(f"  F = {f}, P = {p}: {formula(32, f, 1, p)} = {ck.conv_output_size(32, f, 1, p)}")
