"""What each ``cnnkit`` command does (the argument grammar is in ``cnnkit.cli``)."""

from __future__ import annotations

import inspect
import os
import sys
import time

import numpy as np

__all__ = ["RECIPES", "cmd_train", "cmd_eval", "cmd_summary", "cmd_plot", "cmd_export",
           "cmd_bench"]

# per data set: model, epochs, batch size, lr, input augmentation
DEFAULTS = {
    "digits": dict(model="digits_cnn", epochs=15, batch_size=32, lr=0.05),
    "mnist": dict(model="lenet5", epochs=10, batch_size=64, lr=0.05),
    "cifar10": dict(model="cifar_cnn", epochs=30, batch_size=128, lr=0.05),
}
TRAIN_OPTIONS = ("model", "dataset", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                 "augment", "seed", "scheduler", "early_stopping", "val_fraction", "recipe",
                 "precision")
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
    from .. import data

    c, h, w = image_shape
    if kind == "cifar10" or flips:
        return [data.RandomCrop((h, w), padding=4), data.RandomHorizontalFlip()]
    # digits and handwriting: small shifts only (a mirrored 2 is not a 2)
    return [data.RandomCrop((h, w), padding=1 if h <= 8 else 2)]


def _split_validation(train, fraction: float, seed: int):
    from ..data import ArrayDataset

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

    from .. import data, models, nn, optim
    from ..io import load
    from ..train import evaluate, fit

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
                     scheduler="plateau", early_stopping=None, val_fraction=0.1,
                     precision="fp32").items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        ck.set_num_threads(args.threads)
    ck.manual_seed(args.seed)
    ranks, main_rank = 1, True
    if args.distributed:
        from .. import distributed

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
                  distributed=args.distributed, precision=args.precision)
    seconds = time.perf_counter() - t0
    if not main_rank:  # rank 0 reports; the others have the same parameters
        return 0
    best_path = os.path.join(out, "best.safetensors")
    last_path = os.path.join(out, "last.safetensors")
    amp_mode = ck.autocast(enabled=args.precision == "bf16")
    with amp_mode:
        result = evaluate(model, test_loader)
    print(f"trained in {seconds:.1f} s ({args.precision})")
    print(f"final test accuracy: {100 * result.accuracy:.2f}% ({result.count} images, "
          f"last epoch)")
    if val_set is not None and os.path.exists(best_path):
        from ..train import load_model

        best, _, ckpt = load_model(best_path)
        with amp_mode:
            best_eval = evaluate(best, test_loader)
        print(f"best checkpoint (epoch {ckpt['epoch']}, validation "
              f"{100 * history.best_acc:.2f}%): test accuracy {100 * best_eval.accuracy:.2f}%")
    print(f"checkpoint: {best_path}  (last epoch: {last_path})")
    return 0


def _loader_for_checkpoint(ckpt, spec, batch_size):
    from .. import data

    spec = spec or (ckpt.get("metadata") or {}).get("dataset")
    if not spec:
        raise SystemExit("cnnkit: this checkpoint does not say its data set; pass --dataset")
    _, test_set = data.load_dataset(spec)
    prep = data.preprocessing_from_state(ckpt.get("preprocessing"))
    return spec, test_set, data.DataLoader(test_set, batch_size, transform=prep)


def _WithPreprocessing(model, prep):  # noqa: N802 - builds a Module
    from ..nn import Module
    from ..tensor import Tensor

    class WithPreprocessing(Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(Tensor(prep(x.data)) if prep is not None else x)

    return WithPreprocessing()


def cmd_eval(args) -> int:
    import cnnkit as ck

    from ..ensemble import Ensemble
    from ..train import evaluate, load_model

    if args.threads:
        ck.set_num_threads(args.threads)
    with ck.autocast(enabled=args.precision == "bf16"):
        return _evaluate_checkpoints(args, evaluate, load_model, Ensemble)


def _evaluate_checkpoints(args, evaluate, load_model, Ensemble) -> int:  # noqa: N803
    loaded = [load_model(p) for p in args.checkpoints]
    spec, test_set, loader = _loader_for_checkpoint(loaded[0][2], args.dataset, args.batch_size)
    classes = test_set.classes
    if len(loaded) == 1:
        model, _, ckpt = loaded[0]
        r = evaluate(model, loader)
        print(f"{args.checkpoints[0]} ({ckpt['config']['name']}, epoch {ckpt['epoch']}) "
              f"on {spec} test set ({args.precision}):")
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
    from .. import models
    from ..summary import summary

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.build(args.model, **kwargs)
    print(f"{args.model}")
    print(summary(model, _parse_shape(args.input)))
    return 0


def cmd_plot(args) -> int:
    from ..plot import plot_activations, plot_filters, plot_history
    from ..train import load_model

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
    from ..io import load
    from ..nn import Module
    from ..onnx import export
    from ..train import load_model

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

    from .. import models, nn, optim

    if args.threads:
        ck.set_num_threads(args.threads)
    info = ck.cpu_info()
    print(f"cnnkit {ck.__version__} on {info.get('brand', '?').strip()}: isa {ck.get_isa()}, "
          f"bf16 path {info['bf16_path']}, {ck.get_num_threads()} threads")
    cases = [("digits_cnn", (1, 8, 8), 64), ("lenet5", (1, 28, 28), 64),
             ("cifar_cnn", (3, 32, 32), 32)]
    if not args.quick:
        cases.append(("resnet20", (3, 32, 32), 32))
    print("| model | batch | train img/s fp32 | train img/s bf16 | inference img/s fp32 | "
          "inference img/s bf16 |")
    print("|---|---:|---:|---:|---:|---:|")
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
            for bf16 in (False, True):
                with ck.autocast(enabled=bf16):
                    fn()
                    best, budget = float("inf"), time.perf_counter() + args.seconds
                    while time.perf_counter() < budget:
                        t = time.perf_counter()
                        fn()
                        best = min(best, time.perf_counter() - t)
                rates.append(batch / best)
        print(f"| {name} | {batch} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |",
              flush=True)
    return 0


