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
    "folder": dict(model="cifar_cnn", epochs=30, batch_size=64, lr=0.05),
}
TRAIN_OPTIONS = ("model", "dataset", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                 "augment", "seed", "scheduler", "early_stopping", "val_fraction", "recipe",
                 "precision", "monitor")
# --recipe NAME: a paper's hyper-parameters, for the options not given on the command line.
# AlexNet (Krizhevsky et al. 2012): batch 128, SGD momentum 0.9 (not Nesterov), lr 1e-2 divided
# by 10 when the validation error stops improving, weight decay 5e-4, dropout 0.5, random
# crops, horizontal flips and PCA lighting noise (--augment alexnet).
RECIPES = {
    "alexnet": dict(batch_size=128, lr=1e-2, momentum=0.9, weight_decay=5e-4,
                    scheduler="plateau", augment="alexnet", nesterov=False, dropout=0.5,
                    monitor="val_acc"),
}


def _dataset_kind(spec: str) -> str:
    return spec.partition(":")[0].lower()


def _augmentation(kind: str, style: str, train_images, prep):
    """The training transform: ``prep`` and, by ``style``, augmentation (see --augment)."""
    from .. import data

    _, c, h, w = train_images.shape
    if style == "alexnet":  # on the [0, 1] images, before the preprocessing
        steps = [data.RandomResizedCrop((h, w), scale=(0.25, 1.0)),
                 data.RandomHorizontalFlip()]
        if c == 3:
            steps += [data.ColorJitter(0.4, 0.4, 0.4),
                      data.PCALighting(0.1).fit(train_images)]
        else:
            steps.append(data.ColorJitter(0.4, 0.4))
        return steps + [prep]
    if style == "standard":
        if kind in ("cifar10", "folder"):
            return [prep, data.RandomCrop((h, w), padding=max(1, h // 8)),
                    data.RandomHorizontalFlip()]
        # digits and handwriting: small shifts only (a mirrored 2 is not a 2)
        return [prep, data.RandomCrop((h, w), padding=1 if h <= 8 else 2)]
    return [prep]


def _split_validation(train, fraction: float, seed: int):
    from ..data import ArrayDataset

    if fraction <= 0:
        return train, None
    n_val = max(1, int(round(fraction * len(train))))
    if n_val >= len(train):
        raise ValueError(f"--val-fraction {fraction:g} of {len(train)} training images leaves "
                         "none to train on; use a smaller fraction (or 0)")
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(train))
    val, tr = order[:n_val], order[n_val:]
    return (ArrayDataset(train.images[tr], train.labels[tr], train.classes, train.name),
            ArrayDataset(train.images[val], train.labels[val], train.classes, "validation"))


def _holds_run(folder: str):
    """The checkpoint files of an earlier run in ``folder`` (empty if none)."""
    return [n for n in ("best.safetensors", "last.safetensors")
            if os.path.isfile(os.path.join(folder, n))]


def _run_folder(args, name: str, kind: str) -> str:
    """Where this run's checkpoints go; never over another run's (see --out, --overwrite)."""
    resume_dir = os.path.dirname(args.resume) if args.resume else None
    if args.out:
        out = args.out
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"--out {out} is a file, not a folder")
        same_run = resume_dir is not None and os.path.abspath(out) == os.path.abspath(
            resume_dir or ".")
        found = _holds_run(out)
        if found and not same_run and not args.overwrite:
            raise ValueError(
                f"--out {out} already holds another run's checkpoints ({', '.join(found)}); "
                f"continue that run with --resume {os.path.join(out, 'last.safetensors')}, "
                "choose another --out, or pass --overwrite to replace them")
        return out
    if resume_dir is not None:
        return resume_dir or "."
    base = os.path.join("runs", f"{name}-{kind}")
    out, i = base, 1
    while _holds_run(out) or (os.path.exists(out) and not os.path.isdir(out)):
        i += 1
        out = f"{base}-{i}"
    return out


def _check_model_fits(model, image_shape, where: str) -> None:
    """One forward pass on a blank image, so a model that cannot take the data set's images
    fails here, with the sizes, and not inside the first training step."""
    import cnnkit as ck

    from ..nn.module import eval_mode

    try:
        with eval_mode(model), ck.no_grad():
            out = model(ck.tensor(np.zeros((1, *image_shape), dtype=np.float32)))
    except ValueError as e:
        raise ValueError(f"{where}: {model.config['name']} cannot take "
                         f"{'x'.join(map(str, image_shape))} images: {e}") from None
    if out.ndim != 2 or out.shape[-1] < 1:
        raise ValueError(f"{where}: {model.config['name']} gives no class scores for "
                         f"{'x'.join(map(str, image_shape))} images")


def _saved_augment(value):
    # checkpoints written before --augment took a style saved True / False
    if value is True:
        return "standard"
    return "none" if value is False else value


def cmd_train(args) -> int:
    import cnnkit as ck

    from .. import data, models, nn, optim
    from ..io import load
    from ..train import evaluate, fit

    resume_ckpt = None
    if args.resume:
        resume_ckpt = load(args.resume)
        if not isinstance(resume_ckpt, dict) or "model" not in resume_ckpt:
            raise ValueError(f"--resume {args.resume} is not a training checkpoint")
        saved = (resume_ckpt.get("metadata") or {}).get("args", {})
        for k in TRAIN_OPTIONS:
            if getattr(args, k) is None and k in saved:
                setattr(args, k, saved[k])
        args.augment = _saved_augment(args.augment)
    recipe = RECIPES.get(args.recipe, {})
    for k, v in recipe.items():
        if getattr(args, k, v) is None:
            setattr(args, k, v)
    args.dataset = args.dataset or "digits"
    kind = _dataset_kind(args.dataset)
    defaults = DEFAULTS.get(kind, DEFAULTS["digits"])
    for k, v in dict(defaults, momentum=0.9, weight_decay=5e-4, seed=0, augment="standard",
                     scheduler="plateau", early_stopping=None, val_fraction=0.1,
                     precision="fp32", monitor="val_loss").items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.sync_bn and not args.distributed:
        raise ValueError("--sync-bn needs --distributed")
    if resume_ckpt is not None and int(resume_ckpt.get("epoch", 0)) >= args.epochs:
        raise ValueError(f"--epochs {args.epochs}: {args.resume} has trained "
                         f"{resume_ckpt.get('epoch')} epochs already; give --epochs above that "
                         "to train more")
    if args.tensorboard and os.path.exists(args.tensorboard) and \
            not os.path.isdir(args.tensorboard):
        raise ValueError(f"--tensorboard {args.tensorboard} is a file, not a folder")
    if args.tensorboard:
        from ..tensorboard import TensorBoardLogger

        TensorBoardLogger.check_available()
    if args.threads:
        ck.set_num_threads(args.threads)
    ck.manual_seed(args.seed)

    train_set, test_set = data.load_dataset(args.dataset)
    val_set = getattr(train_set, "validation", None)  # a folder's own val/ subfolder
    if val_set is None:
        train_set, val_set = _split_validation(train_set, args.val_fraction, args.seed)
    if resume_ckpt is not None and resume_ckpt.get("preprocessing"):
        prep = data.preprocessing_from_state(resume_ckpt["preprocessing"])
    else:
        prep = data.ChannelMean(std=True).fit(train_set.images)
    steps = _augmentation(kind, args.augment, train_set.images, prep)
    c = train_set.image_shape[0]
    if resume_ckpt is not None:
        model = models.build(resume_ckpt["config"])
    else:  # only the arguments this builder takes (alexnet has no in_channels)
        accepted = inspect.signature(models.MODELS[args.model]).parameters
        h, w = train_set.image_shape[1:]
        extra = {"in_channels": c, "dropout": recipe.get("dropout"),
                 "input_size": [h, w] if (h, w) != (32, 32) else None}
        model = models.build(args.model, num_classes=train_set.num_classes,
                             **{k: v for k, v in extra.items() if k in accepted and v is not None})
    unfit = None
    try:
        _check_model_fits(model, train_set.image_shape, f"--model {model.config['name']} on "
                          f"{args.dataset}")
    except ValueError as e:
        if not args.dry_run:
            raise
        unfit = str(e)  # a dry run shows the set-up anyway, and says what a run would do
    ranks, main_rank = 1, True
    if args.distributed:
        from .. import distributed

        ranks, main_rank = distributed.init(), distributed.is_main()
    out = _run_folder(args, model.config["name"], kind)
    train_loader = data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                   transform=data.Compose(steps))
    val_loader = data.DataLoader(val_set, 256, transform=prep) if val_set is not None else None
    test_loader = data.DataLoader(test_set, 256, transform=prep)

    nesterov = recipe.get("nesterov", True) and args.momentum > 0
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=nesterov)
    if args.distributed and args.sync_bn:
        model = distributed.convert_sync_batchnorm(model)
    plateau_mode = "min" if args.monitor == "val_loss" else "max"
    if args.scheduler == "plateau":
        scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=plateau_mode,
                                                         factor=0.1, patience=2)
    elif args.scheduler == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = None
    n_val = len(val_set) if val_set is not None else 0
    say = print if main_rank else (lambda *a, **k: None)
    augmented = f", augmented ({args.augment})" if args.augment != "none" else ""
    say(f"cnnkit train: {model.config['name']} on {args.dataset} ({len(train_set)} train / "
        f"{n_val} validation / {len(test_set)} test images), {args.epochs} epochs, "
        f"batch {args.batch_size}, SGD lr {args.lr:g} momentum {args.momentum:g}"
        f"{' (Nesterov)' if nesterov else ''} weight decay {args.weight_decay:g}{augmented}"
        f"{f', recipe {args.recipe}' if args.recipe else ''}, "
        f"{ck.get_num_threads()} threads"
        + (f" x {ranks} MPI ranks{' (synchronised batch norm)' if args.sync_bn else ''}"
           if args.distributed else ""), flush=True)
    monitored = args.monitor if n_val else args.monitor.replace("val_", "training ")
    if args.dry_run:
        dropout = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
        say(f"model: {model.config['name']} {model.config['args']}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters"
            + (f", dropout {', '.join(f'{p:g}' for p in dropout)}" if dropout else ""))
        say(f"optimizer: SGD(lr={args.lr:g}, momentum={args.momentum:g}, nesterov={nesterov}, "
            f"weight_decay={args.weight_decay:g})")
        say("scheduler: " + {"plateau": f"ReduceLROnPlateau(mode='{plateau_mode}', factor=0.1, "
                             f"patience=2) on {monitored} (lr / 10 when it stalls)",
                             "cosine": f"CosineAnnealingLR(T_max={args.epochs})"}.get(
                                 args.scheduler, "none"))
        say("augmentation: " + (", ".join(type(s).__name__ for s in steps if s is not prep)
                                or "none"))
        say(f"best checkpoint by: {monitored}; checkpoints would go to {out}")
        if unfit:
            say(f"note: a real run would stop here: {unfit}")
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
                  distributed=args.distributed, precision=args.precision,
                  monitor=args.monitor, log_dir=args.tensorboard)
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
          f"last epoch {history.epoch[-1]})")
    if os.path.exists(best_path):
        from ..train import load_model

        best, _, ckpt = load_model(best_path)
        with amp_mode:
            best_eval = evaluate(best, test_loader)
        where = "validation" if n_val else "training"
        chose = (f"lowest {where} loss {history.best_loss:.4f}, {where} accuracy "
                 f"{100 * history.best_acc:.2f}%" if args.monitor == "val_loss" else
                 f"highest {where} accuracy {100 * history.best_acc:.2f}%, {where} loss "
                 f"{history.best_loss:.4f}")
        print(f"best checkpoint (epoch {ckpt['epoch']}, {chose}): test accuracy "
              f"{100 * best_eval.accuracy:.2f}%")
    print(f"checkpoint: {best_path}  (chosen by {monitored}; last epoch: {last_path})")
    if args.tensorboard:
        print(f"tensorboard logs: {args.tensorboard}  (view: tensorboard --logdir "
              f"{args.tensorboard})")
    return 0


def _loader_for_checkpoint(ckpt, spec, batch_size):
    from .. import data

    spec = spec or (ckpt.get("metadata") or {}).get("dataset")
    if not spec:
        raise ValueError("this checkpoint does not say its data set; pass --dataset")
    _, test_set = data.load_dataset(spec)
    want = (ckpt.get("metadata") or {}).get("input_shape")
    if want and tuple(want) != tuple(test_set.image_shape):
        raise ValueError(f"--dataset {spec} has {'x'.join(map(str, test_set.image_shape))} "
                         f"images but the checkpoint was trained on {'x'.join(map(str, want))}")
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
    tta = None if args.tta == "none" else args.tta
    if len(loaded) == 1:
        model, _, ckpt = loaded[0]
        r = evaluate(model, loader, tta=tta)
        print(f"{args.checkpoints[0]} ({ckpt['config']['name']}, epoch {ckpt['epoch']}) "
              f"on {spec} test set ({'int8' if ckpt.get('quantized') else args.precision}"
              f"{f', test-time augmentation {tta}' if tta else ''}):")
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
    report = ens.evaluate(loader, tta=tta)
    print(f"ensemble of {len(loaded)} models on {spec} test set ({len(test_set)} images"
          f"{f', test-time augmentation {tta}' if tta else ''}):")
    for path, acc in zip(args.checkpoints, report["members"]):
        print(f"  {path}: {100 * acc:.2f}%")
    print(f"ensemble (mean softmax): {100 * report['ensemble']:.2f}%")
    return 0


def cmd_quantize(args) -> int:
    import copy

    import cnnkit as ck

    from .. import data
    from ..io import save
    from ..quantization import quantize
    from ..train import evaluate, load_model

    if args.threads:
        ck.set_num_threads(args.threads)
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {args.out}: the folder {folder} does not exist")
    model, prep, ckpt = load_model(args.checkpoint)
    if ckpt.get("quantized"):
        raise ValueError(f"{args.checkpoint} is already quantized")
    spec, test_set, test_loader = _loader_for_checkpoint(ckpt, args.dataset, args.batch_size)
    train_set, _ = data.load_dataset(spec)
    # calibration: the first batches of the (seeded) shuffled training split, preprocessed
    # exactly as in training (augmentation aside)
    order = np.random.default_rng(0).permutation(len(train_set))[
        :args.calibration_batches * args.batch_size]
    cal_loader = data.DataLoader(data.ArrayDataset(*train_set[order]), args.batch_size,
                                 transform=prep)
    t0 = time.perf_counter()
    qmodel = quantize(model, cal_loader, per_channel=not args.per_tensor, method=args.method)
    seconds = time.perf_counter() - t0
    before, after = evaluate(model, test_loader), evaluate(qmodel, test_loader)
    out = copy.copy(ckpt)
    out["model"] = qmodel.state_dict()
    out["quantized"] = qmodel.quantized
    out["quantized_from"] = os.path.abspath(args.checkpoint)
    save(out, args.out)
    print(f"quantized {ckpt['config']['name']} to int8 in {seconds:.1f} s "
          f"({len(order)} calibration images, {args.method}, "
          f"{'per tensor' if args.per_tensor else 'per channel'} weights, int8 path "
          f"{ck.cpu_info()['int8_path']})")
    print(f"{spec} test accuracy: fp32 {100 * before.accuracy:.2f}%, int8 "
          f"{100 * after.accuracy:.2f}% ({after.count} images)")
    print(f"int8 checkpoint: {args.out}")
    return 0


def _image_files(paths) -> list:
    """The image files named, and those found (recursively, sorted) in the folders named."""
    from ..data.image_folder import IMAGE_EXTENSIONS

    files = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(root, n) for root, dirs, names in os.walk(p)
                           for n in names if not n.startswith(".")
                           and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"{p}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this "
                                 "folder")
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return files


def cmd_predict(args) -> int:
    import json

    import cnnkit as ck

    from .. import data
    from ..metrics import predict
    from ..train import load_model

    if args.threads:
        ck.set_num_threads(args.threads)
    model, prep, ckpt = load_model(args.checkpoint)
    meta = ckpt.get("metadata") or {}
    if not meta.get("input_shape"):
        raise ValueError(f"{args.checkpoint} does not record the size of its input images "
                         "(it was not written by cnnkit train)")
    c, h, w = (int(v) for v in meta["input_shape"])
    files = _image_files(args.images)
    tta = None if args.tta == "none" else args.tta
    results = []
    with ck.autocast(enabled=args.precision == "bf16"):
        for start in range(0, len(files), args.batch_size):
            batch = files[start:start + args.batch_size]
            images = np.stack([data.load_image(f, (h, w), channels=c) for f in batch])
            loader = data.DataLoader(data.ArrayDataset(images, np.zeros(len(batch), np.int64)),
                                     len(batch), transform=prep, prefetch=False)
            scores = predict(model, loader, tta=tta)[0].astype(np.float64)
            if tta is None:  # logits -> probabilities (with tta they are already)
                scores = np.exp(scores - scores.max(axis=1, keepdims=True))
                scores /= scores.sum(axis=1, keepdims=True)
            probs = scores
            classes = meta.get("classes") or [str(i) for i in range(probs.shape[1])]
            top = min(args.top, probs.shape[1])
            for f, p in zip(batch, probs):
                order = np.argsort(-p, kind="stable")[:top]
                ranked = [{"class": classes[i], "index": int(i), "probability": float(p[i])}
                          for i in order]
                results.append({"file": f, "top": ranked})
                if not args.json:
                    print(f"{f}: " + ", ".join(f"{r['class']} {100 * r['probability']:.2f}%"
                                               for r in ranked), flush=True)
    if args.json:
        json.dump({"checkpoint": args.checkpoint, "model": ckpt["config"]["name"],
                   "input_shape": [c, h, w], "tta": tta, "predictions": results},
                  sys.stdout, indent=1)
        print()
    return 0


def cmd_summary(args) -> int:
    from .. import models
    from ..summary import summary

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.build(args.model, **kwargs)
    print(f"{args.model}")
    print(summary(model, args.input))
    return 0


def cmd_plot(args) -> int:
    from ..plot import _pyplot, plot_activations, plot_filters, plot_history
    from ..train import load_model

    model, prep, ckpt = load_model(args.checkpoint)
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file, not a folder")
    _pyplot()  # matplotlib missing: say so before anything is written
    stem = os.path.splitext(os.path.basename(args.checkpoint))[0]
    spec = args.dataset or (ckpt.get("metadata") or {}).get("dataset")
    image = None
    if spec:  # checked before any file is written
        _, test_set, _ = _loader_for_checkpoint(ckpt, spec, 1)
        if args.image >= len(test_set):
            raise ValueError(f"--image {args.image}: the {spec} test set has {len(test_set)} "
                             f"images (0..{len(test_set) - 1})")
        image = test_set.images[args.image]
        if prep is not None:
            image = prep(image)
    os.makedirs(out, exist_ok=True)
    written = []
    if ckpt.get("history") and ckpt["history"]["epoch"]:
        written.append(plot_history(ckpt["history"], os.path.join(out, f"{stem}-curves.png")))
    written.append(plot_filters(model, os.path.join(out, f"{stem}-filters.png")))
    if image is not None:
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
    trained_on = None if isinstance(ckpt, Module) else \
        (ckpt.get("metadata") or {}).get("input_shape")
    folder = os.path.dirname(os.path.abspath(args.onnx))
    if not os.path.isdir(folder):
        raise ValueError(f"--onnx {args.onnx}: the folder {folder} does not exist")
    if os.path.isdir(args.onnx):
        raise ValueError(f"--onnx {args.onnx} is a folder; give the .onnx file to write")
    if args.input:
        shape = args.input
        _check_model_fits(model, shape, "--input")
    elif trained_on:
        shape = tuple(int(v) for v in trained_on)
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
          f"bf16 path {info['bf16_path']}, int8 path {info['int8_path']}, "
          f"{ck.get_num_threads()} threads")
    cases = [("digits_cnn", (1, 8, 8), 64), ("lenet5", (1, 28, 28), 64),
             ("cifar_cnn", (3, 32, 32), 32)]
    if not args.quick:
        cases.append(("resnet20", (3, 32, 32), 32))
    print("| model | batch | train img/s fp32 | train img/s bf16 | inference img/s fp32 | "
          "inference img/s bf16 | inference img/s int8 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
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
        # int8: cnnkit.quantization of the eval model, calibrated on the same random batch
        model.eval()
        qmodel = ck.quantization.quantize(model, [x.data])

        def infer_int8():
            qmodel(x)

        infer_int8()
        best, budget = float("inf"), time.perf_counter() + args.seconds
        while time.perf_counter() < budget:
            t = time.perf_counter()
            infer_int8()
            best = min(best, time.perf_counter() - t)
        rates.append(batch / best)
        print(f"| {name} | {batch} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |",
              flush=True)
    return 0


