"""AlexNet: the lecture's table of volumes and parameters, and the training recipe.

    python3 examples/alexnet.py

Runs ``cnnkit summary alexnet`` (input 227x227x3): CONV1 has 96 filters of 11x11x3, so
96 * 11 * 11 * 3 = 34,848 weights (about 35K) and 96 biases, and outputs 55x55x96 since
(227 - 11)/4 + 1 = 55. Then ``cnnkit train --model alexnet --recipe alexnet --dry-run``
shows the paper's hyper-parameters as the command line sets them (nothing is trained: AlexNet
needs 3x227x227 images, e.g. ImageNet, and days on a CPU).
"""

import cnnkit as ck
from cnnkit.cli import main

print("$ cnnkit summary alexnet")
main(["summary", "alexnet"])

conv1 = ck.nn.Conv2d(3, 96, 11, stride=4)  # as in ck.models.alexnet().features[0]
w, b = conv1.weight.numel(), conv1.bias.numel()
print(f"\nCONV1: {conv1.weight.shape[0]} filters of {conv1.weight.shape[2]}x"
      f"{conv1.weight.shape[3]}x{conv1.weight.shape[1]}: {w:,} weights (~{w / 1000:.0f}K) + "
      f"{b} biases = {w + b:,} parameters; output "
      f"{ck.conv_output_size(227, 11, stride=4)}x{ck.conv_output_size(227, 11, stride=4)}x96")

print("\n$ cnnkit train --model alexnet --recipe alexnet --dry-run")
main(["train", "--model", "alexnet", "--recipe", "alexnet", "--dry-run", "--quiet"])
