"""Why convolution: sparse connectivity, parameter sharing, equivariance, pooling invariance.

    python3 examples/why_convolution.py

Four layers map the same 1x32x32 input to 16 maps of 30x30 (3x3 windows, stride 1). A fully
connected layer links every output to every input; a locally connected layer links each output
to its 3x3 window only (sparse connectivity) but with different weights at every position; a
tiled convolution shares them between positions 2 apart; a convolution shares one 3x3 filter
per map everywhere (parameter sharing). Then: shifting an image and convolving gives the
convolved image shifted (translation equivariance), and max pooling absorbs small shifts.
"""

import numpy as np

import cnnkit as ck
import cnnkit.functional as F
import cnnkit.nn as nn

ck.manual_seed(0)
C, H, W, K, FS = 1, 32, 32, 16, 3
HO, WO = H - FS + 1, W - FS + 1
layers = {
    "fully connected": nn.Linear(C * H * W, K * HO * WO),
    "locally connected": nn.LocallyConnected2d(C, K, (H, W), FS),
    "tiled (2x2 tiles)": nn.TiledConv2d(C, K, FS, tile_size=2),
    "convolutional": nn.Conv2d(C, K, FS),
}
print(f"parameters of layers mapping {H}x{W}x{C} to {HO}x{WO}x{K}:")
for name, layer in layers.items():
    count = sum(p.numel() for p in layer.parameters())
    print(f"  {name:<18} {count:>12,}")

# translation equivariance on an image: a digit, a Sobel edge filter
train, _ = ck.data.load_digits()
image = np.zeros((1, 1, 16, 16), np.float32)
image[0, 0, 2:10, 2:10] = train.images[0, 0]
sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32).reshape(1, 1, 3, 3)


def conv(x):
    return F.conv2d(ck.tensor(x), ck.tensor(sobel), padding=1).numpy()


def shift(x, dy, dx):  # move the content down/right by (dy, dx), zeros coming in
    out = np.zeros_like(x)
    out[..., dy:, dx:] = x[..., :x.shape[-2] - dy, :x.shape[-1] - dx]
    return out


a = conv(shift(image, 3, 2))     # shift, then convolve
b = shift(conv(image), 3, 2)     # convolve, then shift
print(f"\ntranslation equivariance: max |conv(shift(x)) - shift(conv(x))| = "
      f"{np.abs(a - b).max():.2g}  (equal: {np.allclose(a, b, atol=1e-6)})")

# max pooling: a 2x2 pool forgets where in its window the maximum was
x = np.zeros((1, 1, 4, 4), np.float32)
x[0, 0, 0, 0] = 1.0
pool = nn.MaxPool2d(2)
p0 = pool(ck.tensor(x)).numpy()
p1 = pool(ck.tensor(shift(x, 1, 1))).numpy()
print("max pooling 2x2 of a single bright pixel, before and after a 1-pixel shift:")
print(f"  pooled before: {p0[0, 0].tolist()}")
print(f"  pooled after:  {p1[0, 0].tolist()}  (unchanged: {np.array_equal(p0, p1)})")
print(f"  unpooled pixels changed: {int((x != shift(x, 1, 1)).sum())} of 16")
