"""The ``cnnkit`` command: train, eval, summary, plot, export, bench.

    cnnkit train                          # digits_cnn on the bundled digits, about 10 s
    cnnkit train --dataset cifar10:~/data/cifar-10-python.tar.gz --augment
    cnnkit eval runs/digits_cnn/best.safetensors
    cnnkit summary alexnet --input 3x227x227
    cnnkit plot runs/digits_cnn/best.safetensors
    cnnkit export runs/digits_cnn/best.safetensors --onnx digits_cnn.onnx
    cnnkit bench
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

import numpy as np

__all__ = ["main", "build_parser"]

# per data set: model, epochs, batch size, lr, input augmentation
DEFAULTS = {
    "digits": dict(model="digits_cnn", epochs=15, batch_size=32, lr=0.05),
    "mnist": dict(model="lenet5", epochs=10, batch_size=64, lr=0.05),
    "cifar10": dict(model="cifar_cnn", epochs=30, batch_size=128, lr=0.05),
}
TRAIN_OPTIONS = ("model", "dataset", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                 "augment", "seed", "scheduler", "early_stopping", "val_fraction", "recipe")
# --recipe NAME: a paper's hyper-parameters, for the options not given on the command line.
# AlexNet (Krizhevsky et al. 2012): batch 128, SGD momentum 0.9 (not Nesterov), lr 1e-2 divided
# by 10 when the validation accuracy stops improving, weight decay 5e-4, dropout 0.5, random
# crops and horizontal flips.
RECIPES = {
    "alexnet": dict(batch_size=128, lr=1e-2, momentum=0.9, weight_decay=5e-4,
                    scheduler="plateau", augment=True, nesterov=False, dropout=0.5, flips=True),
}


def _dataset_kind(spec: str) -> str:
    return spec.partition(":")[0].lower()


def _augmentation(kind: str, image_shape, flips: bool = False):
    from . import data

    c, h, w = image_shape
    if kind == "cifar10" or flips:
        return [data.RandomCrop((h, w), padding=4), data.RandomHorizontalFlip()]
    # digits and handwriting: small shifts only (a mirrored 2 is not a 2)
    return [data.RandomCrop((h, w), padding=1 if h <= 8 else 2)]


def _split_validation(train, fraction: float, seed: int):
    from .data import ArrayDataset

    if fraction <= 0:
        return train, None
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(train))
    n_val = max(1, int(round(fraction * len(train))))
    val, tr = order[:n_val], order[n_val:]
    return (ArrayDataset(train.images[tr], train.labels[tr], train.classes, train.name),
            ArrayDataset(train.images[val], train.labels[val], train.classes, "validation"))


def cmd_train(args) -> int:
    import cnnkit as ck

    from . import data, models, nn, optim
    from .io import load
    from .train import evaluate, fit

    resume_ckpt = None
    if args.resume:
        resume_ckpt = load(args.resume)
        saved = (resume_ckpt.get("metadata") or {}).get("args", {})
        for k in TRAIN_OPTIONS:
            if getattr(args, k) is None and k in saved:
                setattr(args, k, saved[k])
    recipe = RECIPES.get(args.recipe, {})
    for k, v in recipe.items():
        if getattr(args, k, v) is None:
            setattr(args, k, v)
    args.dataset = args.dataset or "digits"
    kind = _dataset_kind(args.dataset)
    defaults = DEFAULTS.get(kind, DEFAULTS["digits"])
    for k, v in dict(defaults, momentum=0.9, weight_decay=5e-4, seed=0, augment=False,
                     scheduler="plateau", early_stopping=None, val_fraction=0.1).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        ck.set_num_threads(args.threads)
    ck.manual_seed(args.seed)
    ranks, main_rank = 1, True
    if args.distributed:
        from . import distributed

        ranks, main_rank = distributed.init(), distributed.is_main()

    train_set, test_set = data.load_dataset(args.dataset)
    train_set, val_set = _split_validation(train_set, args.val_fraction, args.seed)
    if resume_ckpt is not None and resume_ckpt.get("preprocessing"):
        prep = data.preprocessing_from_state(resume_ckpt["preprocessing"])
    else:
        prep = data.ChannelMean(std=True).fit(train_set.images)
    steps = [prep] + (_augmentation(kind, train_set.image_shape, recipe.get("flips", False))
                      if args.augment else [])
    train_loader = data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                   transform=data.Compose(steps))
    val_loader = data.DataLoader(val_set, 256, transform=prep) if val_set is not None else None
    test_loader = data.DataLoader(test_set, 256, transform=prep)

    c = train_set.image_shape[0]
    if resume_ckpt is not None:
        model = models.build(resume_ckpt["config"])
    else:  # only the arguments this builder takes (alexnet has no in_channels)
        accepted = inspect.signature(models.MODELS[args.model]).parameters
        extra = {"in_channels": c, "dropout": recipe.get("dropout")}
        model = models.build(args.model, num_classes=train_set.num_classes,
                             **{k: v for k, v in extra.items() if k in accepted and v is not None})
    nesterov = recipe.get("nesterov", True) and args.momentum > 0
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=nesterov)
    if args.distributed and args.sync_bn:
        model = distributed.convert_sync_batchnorm(model)
    if args.scheduler == "plateau":
        scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                         patience=2)
    elif args.scheduler == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = None
    out = args.out or (os.path.dirname(args.resume) if args.resume
                       else os.path.join("runs", f"{model.config['name']}-{kind}"))
    n_val = len(val_set) if val_set is not None else 0
    say = print if main_rank else (lambda *a, **k: None)
    say(f"cnnkit train: {model.config['name']} on {args.dataset} ({len(train_set)} train / "
          f"{n_val} validation / {len(test_set)} test images), {args.epochs} epochs, "
          f"batch {args.batch_size}, SGD lr {args.lr:g} momentum {args.momentum:g}"
          f"{' (Nesterov)' if nesterov else ''} weight decay {args.weight_decay:g}"
          f"{', augmented' if args.augment else ''}"
          f"{f', recipe {args.recipe}' if args.recipe else ''}, "
          f"{ck.get_num_threads()} threads"
          + (f" x {ranks} MPI ranks{' (synchronised batch norm)' if args.sync_bn else ''}"
             if args.distributed else ""), flush=True)
    if args.dry_run:
        dropout = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
        say(f"model: {model.config['name']} {model.config['args']}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters"
            + (f", dropout {', '.join(f'{p:g}' for p in dropout)}" if dropout else ""))
        say(f"optimizer: SGD(lr={args.lr:g}, momentum={args.momentum:g}, nesterov={nesterov}, "
            f"weight_decay={args.weight_decay:g})")
        say("scheduler: " + {"plateau": "ReduceLROnPlateau(mode='max', factor=0.1, patience=2) "
                             "on validation accuracy (lr / 10 when it stalls)",
                             "cosine": f"CosineAnnealingLR(T_max={args.epochs})"}.get(
                                 args.scheduler, "none"))
        say("augmentation: " + (", ".join(type(s).__name__ for s in steps[1:]) or "none"))
        say("dry run: nothing trained")
        return 0
    metadata = {"dataset": args.dataset, "classes": list(train_set.classes),
                "input_shape": list(train_set.image_shape),
                "args": {k: getattr(args, k) for k in TRAIN_OPTIONS}}
    t0 = time.perf_counter()
    history = fit(model, train_loader, val_loader, epochs=args.epochs, optimizer=optimizer,
                  scheduler=scheduler, early_stopping=args.early_stopping, checkpoint_dir=out,
                  resume=resume_ckpt, preprocessing=prep, metadata=metadata,
                  progress=False if args.quiet else None, verbose=True,
                  distributed=args.distributed)
    seconds = time.perf_counter() - t0
    if not main_rank:  # rank 0 reports; the others have the same parameters
        return 0
    best_path = os.path.join(out, "best.safetensors")
    last_path = os.path.join(out, "last.safetensors")
    result = evaluate(model, test_loader)
    print(f"trained in {seconds:.1f} s")
    print(f"final test accuracy: {100 * result.accuracy:.2f}% ({result.count} images, "
          f"last epoch)")
    if val_set is not None and os.path.exists(best_path):
        from .train import load_model

        best, _, ckpt = load_model(best_path)
        best_eval = evaluate(best, test_loader)
        print(f"best checkpoint (epoch {ckpt['epoch']}, validation "
              f"{100 * history.best_acc:.2f}%): test accuracy {100 * best_eval.accuracy:.2f}%")
    print(f"checkpoint: {best_path}  (last epoch: {last_path})")
    return 0


def _loader_for_checkpoint(ckpt, spec, batch_size):
    from . import data

    spec = spec or (ckpt.get("metadata") or {}).get("dataset")
    if not spec:
        raise SystemExit("cnnkit: this checkpoint does not say its data set; pass --dataset")
    _, test_set = data.load_dataset(spec)
    prep = data.preprocessing_from_state(ckpt.get("preprocessing"))
    return spec, test_set, data.DataLoader(test_set, batch_size, transform=prep)


def _WithPreprocessing(model, prep):  # noqa: N802 - builds a Module
    from .nn import Module
    from .tensor import Tensor

    class WithPreprocessing(Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(Tensor(prep(x.data)) if prep is not None else x)

    return WithPreprocessing()


def cmd_eval(args) -> int:
    from .ensemble import Ensemble
    from .train import evaluate, load_model

    if args.threads:
        import cnnkit as ck

        ck.set_num_threads(args.threads)
    loaded = [load_model(p) for p in args.checkpoints]
    spec, test_set, loader = _loader_for_checkpoint(loaded[0][2], args.dataset, args.batch_size)
    classes = test_set.classes
    if len(loaded) == 1:
        model, _, ckpt = loaded[0]
        r = evaluate(model, loader)
        print(f"{args.checkpoints[0]} ({ckpt['config']['name']}, epoch {ckpt['epoch']}) "
              f"on {spec} test set:")
        print(f"accuracy: {100 * r.accuracy:.2f}% ({r.count} images)")
        if r.top5 is not None:
            print(f"top-5 accuracy: {100 * r.top5:.2f}%")
        print("per-class accuracy:")
        for name, acc in zip(classes, r.per_class_accuracy):
            print(f"  {name:>12}: {100 * acc:6.2f}%")
        print("confusion matrix (rows: true class, columns: predicted):")
        width = max(4, len(str(int(r.confusion.max()))) + 1)
        print(" " * 13 + "".join(f"{str(i):>{width}}" for i in range(len(r.confusion))))
        for name, row in zip(classes, r.confusion):
            print(f"  {name[:10]:>10} " + "".join(f"{v:>{width}}" for v in row))
        return 0
    # members may have been fitted with different preprocessing: each applies its own
    loader = _loader_for_checkpoint(loaded[0][2], spec, args.batch_size)[2]
    loader.transform = None
    ens = Ensemble([_WithPreprocessing(m, p) for m, p, _ in loaded])
    report = ens.evaluate(loader)
    print(f"ensemble of {len(loaded)} models on {spec} test set ({len(test_set)} images):")
    for path, acc in zip(args.checkpoints, report["members"]):
        print(f"  {path}: {100 * acc:.2f}%")
    print(f"ensemble (mean softmax): {100 * report['ensemble']:.2f}%")
    return 0


def _parse_shape(text: str, command: str = "summary") -> tuple:
    try:
        shape = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise SystemExit(f"cnnkit {command}: --input must look like 3x227x227, got {text!r}") \
            from None
    if len(shape) != 3 or min(shape) < 1:
        raise SystemExit(f"cnnkit {command}: --input must be CxHxW, got {text!r}")
    return shape


def cmd_summary(args) -> int:
    from . import models
    from .summary import summary

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.build(args.model, **kwargs)
    print(f"{args.model}")
    print(summary(model, _parse_shape(args.input)))
    return 0


def cmd_plot(args) -> int:
    from .plot import plot_activations, plot_filters, plot_history
    from .train import load_model

    model, prep, ckpt = load_model(args.checkpoint)
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    stem = os.path.splitext(os.path.basename(args.checkpoint))[0]
    written = []
    if ckpt.get("history") and ckpt["history"]["epoch"]:
        written.append(plot_history(ckpt["history"], os.path.join(out, f"{stem}-curves.png")))
    written.append(plot_filters(model, os.path.join(out, f"{stem}-filters.png")))
    spec = args.dataset or (ckpt.get("metadata") or {}).get("dataset")
    if spec:
        _, test_set, _ = _loader_for_checkpoint(ckpt, spec, 1)
        image = test_set.images[args.image]
        if prep is not None:
            image = prep(image)
        written.append(plot_activations(model, image,
                                        os.path.join(out, f"{stem}-activations.png")))
    for p in written:
        print(f"wrote {p}")
    return 0


# input size (without channels) of the built-in models, for `cnnkit export` without --input
_INPUT_HW = {"digits_cnn": (8, 8), "lenet5": (28, 28), "cifar_cnn": (32, 32),
             "alexnet": (227, 227), "resnet20": (32, 32), "resnet_cifar": (32, 32)}


def cmd_export(args) -> int:
    from .io import load
    from .nn import Module
    from .onnx import export
    from .train import load_model

    ckpt = load(args.checkpoint)
    model = ckpt if isinstance(ckpt, Module) else load_model(ckpt)[0]
    config = getattr(model, "config", None) or {}
    if args.input:
        shape = _parse_shape(args.input, "export")
    elif config.get("name") in _INPUT_HW:
        shape = (int(config["args"].get("in_channels", 3)), *_INPUT_HW[config["name"]])
    else:
        raise SystemExit("cnnkit export: pass --input CxHxW (the input size of this model is "
                         "not known)")
    try:
        export(model, shape, args.onnx, opset=args.opset)
    except (ImportError, NotImplementedError) as e:  # no onnx package; an op ONNX lacks
        print(f"cnnkit export: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.onnx}: {config.get('name', type(model).__name__)}, input "
          f"[N, {', '.join(map(str, shape))}], opset {args.opset} (run it with onnxruntime; "
          "it expects preprocessed images)")
    return 0


def cmd_bench(args) -> int:
    import cnnkit as ck

    from . import models, nn, optim

    if args.threads:
        ck.set_num_threads(args.threads)
    info = ck.cpu_info()
    print(f"cnnkit {ck.__version__} on {info.get('brand', '?').strip()}: isa {ck.get_isa()}, "
          f"{ck.get_num_threads()} threads")
    cases = [("digits_cnn", (1, 8, 8), 64), ("lenet5", (1, 28, 28), 64),
             ("cifar_cnn", (3, 32, 32), 32)]
    if not args.quick:
        cases.append(("resnet20", (3, 32, 32), 32))
    print("| model | batch | train images/s | inference images/s |")
    print("|---|---:|---:|---:|")
    for name, shape, batch in cases:
        ck.manual_seed(0)
        model = nn.utils.fuse_batch_norm_relu(models.build(name))  # as fit() trains it
        rng = np.random.default_rng(0)
        x = ck.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
        y = ck.tensor(rng.integers(0, 10, batch))
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        def infer():
            with ck.no_grad():
                model(x)

        rates = []
        for fn, mode in ((step, True), (infer, False)):
            model.train(mode)
            fn()
            best, budget = float("inf"), time.perf_counter() + args.seconds
            while time.perf_counter() < budget:
                t = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t)
            rates.append(batch / best)
        print(f"| {name} | {batch} | {rates[0]:,.0f} | {rates[1]:,.0f} |", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``cnnkit`` command and its subcommands."""
    from . import __version__
    from .models import MODELS

    p = argparse.ArgumentParser(
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
                   "IDX files) or cifar10:PATH (cifar-10-python.tar.gz or its folder)")
    t.add_argument("--epochs", type=int, help="total epochs (default 15 for digits)")
    t.add_argument("--batch-size", type=int, dest="batch_size")
    t.add_argument("--lr", type=float, help="initial learning rate (default 0.05)")
    t.add_argument("--momentum", type=float, help="default 0.9 (Nesterov)")
    t.add_argument("--weight-decay", type=float, dest="weight_decay", help="default 5e-4")
    t.add_argument("--augment", action="store_true", default=None,
                   help="random crops with padding (and horizontal flips for cifar10)")
    t.add_argument("--scheduler", choices=["plateau", "cosine", "none"],
                   help="plateau (default): lr / 10 when validation accuracy stalls 2 epochs")
    t.add_argument("--early-stopping", type=int, dest="early_stopping", metavar="EPOCHS",
                   help="stop after this many epochs without better validation accuracy")
    t.add_argument("--val-fraction", type=float, dest="val_fraction",
                   help="part of the training set held out for validation (default 0.1)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--threads", type=int, help="threads per op (default: all cores)")
    t.add_argument("--out", help="checkpoint folder (default runs/MODEL-DATASET)")
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
    e.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    e.add_argument("--threads", type=int)
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("summary", help="layer table: output volumes, parameters, mult-adds",
                       description="Print a model's layers with output volumes (HxWxC), "
                       "parameters and multiply-adds.")
    s.add_argument("model", choices=sorted(MODELS))
    s.add_argument("--input", default="3x227x227", help="CxHxW (default 3x227x227)")
    s.add_argument("--num-classes", type=int, dest="num_classes")
    s.set_defaults(func=cmd_summary)

    pl = sub.add_parser("plot", help="training curves, first-layer filters, activations (PNG)",
                        description="Write CHECKPOINT-curves.png, -filters.png and "
                        "-activations.png (needs matplotlib: pip install \"cnnkit[plot]\").")
    pl.add_argument("checkpoint")
    pl.add_argument("--out", help="folder (default: the checkpoint's)")
    pl.add_argument("--dataset", help="for the activation map (default: the checkpoint's)")
    pl.add_argument("--image", type=int, default=0, help="test image index (default 0)")
    pl.set_defaults(func=cmd_plot)

    x = sub.add_parser("export", help="write a checkpoint's model as ONNX",
                       description="Rebuild the model of CHECKPOINT (a training checkpoint or a "
                       "saved model) and write it as an ONNX file with a dynamic batch "
                       "dimension (needs onnx: pip install \"cnnkit[onnx]\"). The file holds "
                       "the network only: apply the checkpoint's preprocessing before it.")
    x.add_argument("checkpoint")
    x.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    x.add_argument("--input", help="CxHxW (default: the built-in model's usual input)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..17 (default 17)")
    x.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="a short speed report (training and inference images/s)",
                       description="Images per second of a training step and of inference "
                       "for the built-in models on random data (best of a few seconds each).")
    b.add_argument("--threads", type=int)
    b.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    b.add_argument("--quick", action="store_true", help="skip the larger models")
    b.set_defaults(func=cmd_bench)
    return p


def _abort_other_ranks(args, code: int) -> None:
    """An error on one MPI rank must end them all: the others would wait in a collective."""
    if getattr(args, "distributed", False):
        from . import distributed

        if distributed.uses_mpi():
            distributed.abort(code)


def main(argv=None) -> int:
    """Run the ``cnnkit`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (2 for a bad file or value, whose message goes to stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"cnnkit {args.command}: error: {e}", file=sys.stderr)
        _abort_other_ranks(args, 2)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
