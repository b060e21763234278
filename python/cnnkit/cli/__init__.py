"""The ``cnnkit`` command: train, eval, predict, summary, plot, export, quantize, bench.

    cnnkit train                          # digits_cnn on the bundled digits, about 10 s
    cnnkit train --dataset cifar10:~/data/cifar-10-python.tar.gz --augment
    cnnkit train --dataset folder:~/photos --augment alexnet --tensorboard runs/tb
    cnnkit eval runs/digits_cnn/best.safetensors --tta flip
    cnnkit predict runs/cifar_cnn-folder/best.safetensors cat.jpg more_photos/ --top 3
    cnnkit summary alexnet --input 3x227x227
    cnnkit plot runs/digits_cnn/best.safetensors
    cnnkit export runs/digits_cnn/best.safetensors --onnx digits_cnn.onnx
    cnnkit quantize runs/digits_cnn/best.safetensors --out digits_int8.safetensors
    cnnkit bench
"""

from __future__ import annotations

import argparse
import sys

from .commands import (
    RECIPES,
    cmd_bench,
    cmd_eval,
    cmd_export,
    cmd_plot,
    cmd_predict,
    cmd_quantize,
    cmd_summary,
    cmd_train,
)
from .options import input_shape, integer, real

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option gets one line (not the whole usage) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``cnnkit`` command and its subcommands."""
    from .._version import __version__
    from ..models import MODELS

    p = _Parser(
        prog="cnnkit", description="Train, evaluate and inspect CNNs on the CPU.",
        epilog="Run 'cnnkit COMMAND --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a model (default: digits_cnn on the bundled digits)",
                       description="Train a model with SGD (Nesterov momentum), validating each "
                       "epoch on 10% of the training set, and keep the best and last "
                       "checkpoints. Without arguments: digits_cnn on scikit-learn's digits.")
    t.add_argument("--model", choices=sorted(MODELS), help="default: digits_cnn for digits, "
                   "lenet5 for mnist, cifar_cnn for cifar10")
    t.add_argument("--dataset", help="digits (bundled, the default), mnist:PATH (folder of the "
                   "IDX files), cifar10:PATH (cifar-10-python.tar.gz or its folder) or "
                   "folder:PATH (your own images, one subfolder per class)")
    t.add_argument("--epochs", type=integer(1, 100000),
                   help="total epochs (default 15 for digits)")
    t.add_argument("--batch-size", type=integer(1, 1 << 20), dest="batch_size")
    t.add_argument("--lr", type=real(0, 100, lo_open=True),
                   help="initial learning rate (default 0.05)")
    t.add_argument("--momentum", type=real(0, 1, hi_open=True), help="default 0.9 (Nesterov)")
    t.add_argument("--weight-decay", type=real(0, 1), dest="weight_decay", help="default 5e-4")
    t.add_argument("--augment", nargs="?", const="standard", default=None,
                   choices=["standard", "alexnet", "none"],
                   help="standard (the default; also --augment alone): random crops with "
                   "padding (and horizontal flips for cifar10 and folders); alexnet: random "
                   "resized crops, flips, colour jitter and PCA lighting noise; none")
    t.add_argument("--scheduler", choices=["plateau", "cosine", "none"],
                   help="plateau (default): lr / 10 when the --monitor metric stalls 2 epochs")
    t.add_argument("--monitor", choices=["val_loss", "val_acc"],
                   help="what picks best.safetensors and what --early-stopping and the "
                   "plateau schedule wait on: val_loss (default, lowest) or val_acc (highest, "
                   "ties broken by val_loss)")
    t.add_argument("--early-stopping", type=integer(1), dest="early_stopping",
                   metavar="EPOCHS", help="stop after this many epochs without a better "
                   "--monitor value")
    t.add_argument("--val-fraction", type=real(0, 1, hi_open=True), dest="val_fraction",
                   help="part of the training set held out for validation (default 0.1; "
                   "ignored when the folder has a val/ subfolder)")
    t.add_argument("--seed", type=integer(0, 2**63 - 1), help="default 0")
    t.add_argument("--threads", type=integer(1, 512), help="threads per op (default: all cores)")
    t.add_argument("--precision", choices=["fp32", "bf16"],
                   help="fp32 (default) or bf16: conv/linear with bf16 operands and float32 "
                        "sums (cnnkit.autocast; AMX or AVX512-BF16 where the CPU has them)")
    t.add_argument("--out", help="checkpoint folder (default runs/MODEL-DATASET, or "
                   "runs/MODEL-DATASET-2, -3, ... when that holds an earlier run)")
    t.add_argument("--overwrite", action="store_true",
                   help="let --out replace the checkpoints of an earlier run there")
    t.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs there "
                   "(per-step loss and lr, per-epoch metrics, first-layer filters; needs "
                   "tensorboardX: pip install \"cnnkit[tensorboard]\")")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a checkpoint (its options unless given again)")
    t.add_argument("--recipe", choices=sorted(RECIPES),
                   help="a paper's hyper-parameters for the options not given: alexnet = batch "
                   "128, SGD momentum 0.9, lr 0.01 / 10 on a validation plateau, weight decay "
                   "5e-4, dropout 0.5, random crops and flips (AlexNet wants 3x227x227 images)")
    t.add_argument("--dry-run", action="store_true", dest="dry_run",
                   help="print the set-up (model, optimizer, schedule, augmentation) and stop")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: mpirun -np 4 python -m mpi4py -m cnnkit "
                   "train --distributed (--batch-size is the global batch)")
    t.add_argument("--sync-bn", action="store_true", dest="sync_bn",
                   help="with --distributed: batch-norm statistics of the global batch")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate checkpoints (several: an ensemble)",
                       description="Accuracy, top-5, per-class accuracy and confusion matrix of "
                       "a checkpoint on its data set's test split; with several checkpoints, "
                       "each one's accuracy and that of their ensemble (mean softmax).")
    e.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    e.add_argument("--dataset", help="default: the one the checkpoint was trained on")
    e.add_argument("--batch-size", type=integer(1, 1 << 20), default=256, dest="batch_size")
    e.add_argument("--threads", type=integer(1, 512))
    e.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="fp32 (default) or bf16 (cnnkit.autocast)")
    e.add_argument("--tta", choices=["none", "flip", "ten_crop"], default="none",
                   help="test-time augmentation: flip (mean softmax of the image and its "
                   "mirror) or ten_crop (AlexNet: corners and centre, mirrored, each resized "
                   "back to the input size)")
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="classify image files with a checkpoint",
                        description="Print the top classes of each image (files, or folders "
                        "searched recursively for JPEG/PNG/BMP/WebP files), with the input "
                        "size and preprocessing the checkpoint was trained with.")
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    pr.add_argument("--top", type=integer(1, 1000), default=5,
                    help="how many classes per image (default 5, at most the class count)")
    pr.add_argument("--json", action="store_true", help="one JSON document on stdout")
    pr.add_argument("--batch-size", type=integer(1, 1 << 16), default=64, dest="batch_size")
    pr.add_argument("--threads", type=integer(1, 512))
    pr.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    pr.add_argument("--tta", choices=["none", "flip", "ten_crop"], default="none")
    pr.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="layer table: output volumes, parameters, mult-adds",
                       description="Print a model's layers with output volumes (HxWxC), "
                       "parameters and multiply-adds.")
    s.add_argument("model", choices=sorted(MODELS))
    s.add_argument("--input", default=(3, 227, 227), type=input_shape,
                   help="CxHxW (default 3x227x227)")
    s.add_argument("--num-classes", type=integer(1, 1 << 20), dest="num_classes")
    s.set_defaults(func=cmd_summary)

    pl = sub.add_parser("plot", help="training curves, first-layer filters, activations (PNG)",
                        description="Write CHECKPOINT-curves.png, -filters.png and "
                        "-activations.png (needs matplotlib: pip install \"cnnkit[plot]\").")
    pl.add_argument("checkpoint")
    pl.add_argument("--out", help="folder (default: the checkpoint's)")
    pl.add_argument("--dataset", help="for the activation map (default: the checkpoint's)")
    pl.add_argument("--image", type=integer(0), default=0, help="test image index (default 0)")
    pl.set_defaults(func=cmd_plot)

    x = sub.add_parser("export", help="write a checkpoint's model as ONNX",
                       description="Rebuild the model of CHECKPOINT (a training checkpoint or a "
                       "saved model) and write it as an ONNX file with a dynamic batch "
                       "dimension (needs onnx: pip install \"cnnkit[onnx]\"). The file holds "
                       "the network only: apply the checkpoint's preprocessing before it.")
    x.add_argument("checkpoint")
    x.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    x.add_argument("--input", type=input_shape,
                   help="CxHxW (default: the input the checkpoint was trained on)")
    x.add_argument("--opset", type=integer(13, 17), default=17,
                   help="ONNX opset, 13..17 (default 17)")
    x.set_defaults(func=cmd_export)

    q = sub.add_parser("quantize", help="post-training int8 quantization of a checkpoint",
                       description="Quantize a training checkpoint's model to int8 "
                       "(cnnkit.quantization.quantize: per-channel int8 weights, uint8 inputs "
                       "calibrated on training images), print the test accuracy before and "
                       "after, and write a checkpoint that eval and predict accept.")
    q.add_argument("checkpoint")
    q.add_argument("--out", required=True, help="the int8 checkpoint to write")
    q.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    q.add_argument("--dataset", help="default: the one the checkpoint was trained on")
    q.add_argument("--calibration-batches", type=integer(1, 1 << 16), default=8,
                   dest="calibration_batches", help="training batches to calibrate on (8)")
    q.add_argument("--batch-size", type=integer(1, 1 << 16), default=128, dest="batch_size")
    q.add_argument("--method", choices=["minmax", "percentile"], default="minmax",
                   help="input ranges: the extremes seen (default) or the 99.99th percentiles")
    q.add_argument("--per-tensor", action="store_true", dest="per_tensor",
                   help="one weight scale per layer instead of one per output channel")
    q.add_argument("--threads", type=integer(1, 512))
    q.set_defaults(func=cmd_quantize)

    b = sub.add_parser("bench", help="a short speed report (training and inference images/s)",
                       description="Images per second of a training step and of inference "
                       "for the built-in models on random data (best of a few seconds each).")
    b.add_argument("--threads", type=integer(1, 512))
    b.add_argument("--seconds", type=real(0, 3600, lo_open=True), default=1.0,
                   help="time per measurement")
    b.add_argument("--quick", action="store_true", help="skip the larger models")
    b.set_defaults(func=cmd_bench)
    return p


def _abort_other_ranks(args, code: int) -> None:
    """An error on one MPI rank must end them all: the others would wait in a collective."""
    if getattr(args, "distributed", False):
        from .. import distributed

        if distributed.uses_mpi():
            distributed.abort(code)


def main(argv=None) -> int:
    """Run the ``cnnkit`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (2 for a bad file or value, whose message goes to stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, ImportError) as e:  # a bad file or value: one line
        print(f"cnnkit {args.command}: error: {e}", file=sys.stderr)
        _abort_other_ranks(args, 2)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
