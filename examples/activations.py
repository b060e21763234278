"""Activation functions and their gradients (by autograd), and a maxout unit.

    python3 examples/activations.py [OUT_DIR]     # writes OUT_DIR/activations.png

The gradients are what backpropagation multiplies by: sigmoid's never exceeds 0.25 and
vanishes for |x| > 5 (saturation), tanh's too; ReLU's is 0 for x < 0 (a "dead" unit) and 1
otherwise; Leaky ReLU and ELU keep a gradient for x < 0. Maxout takes the max of k linear
pieces (here 2: it learns a ReLU-like or abs-like shape).
"""

import os
import sys
import tempfile

import numpy as np

import cnnkit as ck
import cnnkit.functional as F

out_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cnnkit-examples-")
os.makedirs(out_dir, exist_ok=True)

xs = np.linspace(-6, 6, 241, dtype=np.float32)
activations = {
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "ReLU": F.relu,
    "Leaky ReLU (0.1)": lambda t: F.leaky_relu(t, 0.1),
    "ELU": F.elu,
}
curves = {}
print(f"{'':<17}{'f(-5)':>8}{'f(0.5)':>8}{'df/dx(-5)':>11}{'df/dx(0.5)':>12}{'max df/dx':>11}")
for name, fn in activations.items():
    x = ck.tensor(xs, requires_grad=True)
    y = fn(x)
    y.sum().backward()  # each y_i depends on x_i only: x.grad is the derivative at every x
    curves[name] = (y.numpy(), x.grad.copy())
    at = {v: int(np.argmin(np.abs(xs - v))) for v in (-5.0, 0.5)}
    print(f"{name:<17}{y.numpy()[at[-5.0]]:>8.3f}{y.numpy()[at[0.5]]:>8.3f}"
          f"{x.grad[at[-5.0]]:>11.4f}{x.grad[at[0.5]]:>12.4f}{x.grad.max():>11.4f}")

# a maxout unit with 2 pieces: max(w1 x + b1, w2 x + b2) over channel pairs
pieces = np.stack([1.0 * xs + 0.0, -0.5 * xs + 0.0])      # [2, 241]: two linear functions
maxout = F.maxout(ck.tensor(pieces.reshape(1, 2, 241)), 2).numpy().ravel()
print(f"maxout of (x, -0.5 x) at x = -4, 0, 4: "
      f"{maxout[np.argmin(np.abs(xs + 4))]:g}, {maxout[np.argmin(np.abs(xs))]:g}, "
      f"{maxout[np.argmin(np.abs(xs - 4))]:g}")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for name, (y, g) in curves.items():
    axes[0].plot(xs, y, label=name)
    axes[1].plot(xs, g, label=name)
axes[2].plot(xs, pieces[0], "--", label="piece 1: x")
axes[2].plot(xs, pieces[1], "--", label="piece 2: -0.5 x")
axes[2].plot(xs, maxout, "k", lw=2, label="maxout")
for ax, title in zip(axes, ["activation f(x)", "gradient df/dx (autograd)", "maxout, 2 pieces"]):
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
axes[0].set_ylim(-2, 6)
path = os.path.join(out_dir, "activations.png")
fig.savefig(path, dpi=80, bbox_inches="tight")
print(f"wrote {path}")
