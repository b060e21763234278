"""Training and evaluation: :func:`fit` (progress bar, validation, schedules, early stopping,
best/last checkpoints, exact resume), :func:`evaluate`, :func:`load_model`.

A checkpoint (``cnnkit.save``) holds everything needed to continue or to use the model::

    model          the state_dict (PyTorch key names)
    config         the model's builder and arguments (cnnkit.models.build(config))
    preprocessing  the fitted MeanImage/ChannelMean (or None)
    optimizer      {"class", "state"}; scheduler {"class", "state"} or None
    epoch          epochs completed; history; early_stopping {"best", "bad_epochs"}
    rng            the global generator's state (dropout masks continue where they stopped)
    num_threads, cnnkit_version, metadata (what the caller adds: data set, classes, ...)

Resuming (``fit(..., resume=path)``) restores all of it and asks the loaders for epoch ``e``
(``DataLoader.set_epoch``), so with the same seed and thread count ``2 epochs + resume 2``
gives bit for bit the parameters of ``4 straight``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import numpy as np

from . import guards
from . import random as _random
from ._version import __version__
from .amp import autocast, check_precision
from .data.preprocessing import preprocessing_from_state
from .distributed import DataParallel, Strategy
from .io import load, save
from .metrics import Evaluation, evaluate
from .models import build
from .nn import CrossEntropyLoss
from .nn.fusion import fuse_batch_norm_relu
from .optim.lr_scheduler import ReduceLROnPlateau
from .runtime import get_num_threads
from .tensorboard import TensorBoardLogger

MONITORS = ("val_loss", "val_acc")

__all__ = ["History", "Evaluation", "fit", "evaluate", "load_model", "checkpoint_dict"]


@dataclasses.dataclass
class History:
    """Per-epoch records of :func:`fit` (accuracies are fractions in [0, 1]; val_* are None
    without a validation loader)."""

    epoch: list = dataclasses.field(default_factory=list)
    train_loss: list = dataclasses.field(default_factory=list)
    train_acc: list = dataclasses.field(default_factory=list)
    val_loss: list = dataclasses.field(default_factory=list)
    val_acc: list = dataclasses.field(default_factory=list)
    lr: list = dataclasses.field(default_factory=list)
    images_per_s: list = dataclasses.field(default_factory=list)
    seconds: list = dataclasses.field(default_factory=list)
    stopped_early: bool = False
    monitor: str = "val_loss"

    # Which epoch is best (Keras's ModelCheckpoint rule): "val_loss" is lowest first;
    # "val_acc" highest first, ties broken by the lower val_loss. Without validation the
    # training loss and accuracy stand in. Equal keys keep the earlier epoch.
    def _losses_accs(self):
        if self.val_acc and self.val_acc[0] is not None:
            return self.val_loss, self.val_acc
        return self.train_loss, self.train_acc

    def _best_index(self):
        losses, accs = self._losses_accs()
        if not accs:
            return None
        keys = [(loss,) if self.monitor == "val_loss" else (-acc, loss)
                for loss, acc in zip(losses, accs)]
        return min(range(len(keys)), key=keys.__getitem__)

    @property
    def best_epoch(self):
        """The epoch (1-based) ``best.safetensors`` holds: the best under ``monitor``."""
        i = self._best_index()
        return None if i is None else self.epoch[i]

    @property
    def best_acc(self):
        """Validation (else training) accuracy of :attr:`best_epoch`."""
        i = self._best_index()
        return None if i is None else float(self._losses_accs()[1][i])

    @property
    def epochs_without_improvement(self) -> int:
        """Epochs since the monitored value (val_loss, or val_acc) last strictly improved:
        what early stopping counts (Keras's EarlyStopping with min_delta=0)."""
        losses, accs = self._losses_accs()
        values = losses if self.monitor == "val_loss" else [-a for a in accs]
        best, bad = math.inf, 0
        for v in values:
            best, bad = (v, 0) if v < best else (best, bad + 1)
        return bad

    @property
    def best_loss(self):
        """Validation (else training) loss of :attr:`best_epoch`."""
        i = self._best_index()
        return None if i is None else float(self._losses_accs()[0][i])

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        if "monitor" not in d:  # written before `monitor` existed: best was by accuracy
            d = dict(d, monitor="val_acc")
        return cls(**{f.name: (list(d[f.name]) if isinstance(d[f.name], (list, tuple))
                               else d[f.name]) for f in dataclasses.fields(cls) if f.name in d})

    def __len__(self):
        return len(self.epoch)


def _stop_state(history: History) -> dict:
    return {"monitor": history.monitor, "best_epoch": history.best_epoch,
            "bad_epochs": history.epochs_without_improvement}


def checkpoint_dict(model, optimizer=None, scheduler=None, *, epoch=0, history=None,
                    preprocessing=None, early_stopping=None, metadata=None) -> dict:
    """The dict :func:`fit` saves (see the module docstring)."""
    return {
        "model": model.state_dict(),
        "config": getattr(model, "config", None),
        "preprocessing": None if preprocessing is None else preprocessing.state_dict(),
        "optimizer": None if optimizer is None else {"class": type(optimizer).__name__,
                                                     "state": optimizer.state_dict()},
        "scheduler": None if scheduler is None else {"class": type(scheduler).__name__,
                                                     "state": scheduler.state_dict()},
        "epoch": int(epoch),
        "history": None if history is None else history.as_dict(),
        "early_stopping": early_stopping,
        "rng": {"cnnkit": _random.generator().bit_generator.state},
        "num_threads": get_num_threads(),
        "cnnkit_version": __version__,
        "metadata": metadata or {},
    }


def load_model(path_or_checkpoint):
    """``(model, preprocessing, checkpoint)`` from a checkpoint written by :func:`fit` (or by
    ``cnnkit quantize``: the int8 model): the model is rebuilt from its config, loaded and put
    in eval mode."""
    ckpt = load(path_or_checkpoint) if not isinstance(path_or_checkpoint, dict) \
        else path_or_checkpoint
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"load_model: {path_or_checkpoint} is not a cnnkit training checkpoint")
    if not ckpt.get("config"):
        raise ValueError(f"load_model: {path_or_checkpoint} has no model config; build the "
                         "model yourself and load_state_dict(checkpoint['model'])")
    model = build(ckpt["config"])
    if ckpt.get("quantized"):  # written by `cnnkit quantize`: the int8 structure, its state
        from .quantization import rebuild

        model = rebuild(model, ckpt["quantized"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, preprocessing_from_state(ckpt.get("preprocessing")), ckpt


def _progress_bar(total, desc, show):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not show, leave=True, file=sys.stderr,
                dynamic_ncols=True, unit="batch")


def fit(model, train_loader, val_loader=None, *, epochs: int, optimizer, loss=None,
        scheduler=None, early_stopping: int | None = None, checkpoint_dir=None, resume=None,
        preprocessing=None, metadata=None, callbacks=(), progress=None,
        verbose: bool = False, on_nonfinite: str = "raise",
        distributed: bool = False, strategy: Strategy | None = None,
        fuse: bool = True, precision: str = "fp32", monitor: str = "val_loss",
        log_dir=None) -> History:
    """Train ``model`` for ``epochs`` epochs (in total, counting those of a resumed run).

    Parameters
    ----------
    model : Module returning logits [N, C]
    train_loader, val_loader : iterables of (images, labels) (DataLoader); the model is
        evaluated on ``val_loader`` after each epoch
    optimizer : cnnkit.optim optimizer over ``model.parameters()``
    loss : loss module (default CrossEntropyLoss())
    scheduler : lr scheduler stepped once per epoch; a ReduceLROnPlateau steps on the
        validation loss when built with ``mode="min"``, on the validation accuracy with
        ``mode="max"`` (the training loss / accuracy without validation)
    monitor : ``"val_loss"`` (default, as Keras's ModelCheckpoint and EarlyStopping) or
        ``"val_acc"``: what makes an epoch the best (the lowest loss; the highest accuracy,
        ties broken by the lower loss; the earlier epoch of equals) and what early stopping
        waits on
    early_stopping : stop after this many epochs without a strictly better ``monitor`` value
    checkpoint_dir : write ``last.safetensors`` after every epoch and ``best.safetensors``
        whenever the epoch is the best so far under ``monitor`` (atomically)
    log_dir : write TensorBoard event files there (needs tensorboardX,
        ``pip install "cnnkit[tensorboard]"``): per step ``train/loss`` and ``train/lr``; per epoch
        ``epoch/train_loss``, ``epoch/train_acc``, ``epoch/val_loss``, ``epoch/val_acc``,
        ``epoch/images_per_s``; and the first conv layer's filters as the image ``filters``
    resume : a checkpoint path (or its loaded dict) to continue from
    preprocessing : the fitted preprocessing, stored in the checkpoints
    metadata : dict stored in the checkpoints (data set, class names, ...)
    callbacks : callables ``cb(epoch, logs)`` after each epoch; one returning True stops
    progress : show a tqdm bar (default: only when stderr is a terminal)
    verbose : print one line per epoch
    on_nonfinite : what a NaN/Inf loss or gradient does (checked before each optimizer step):
        ``"raise"`` stops with :class:`cnnkit.guards.NonFiniteError`, naming the epoch, the step
        and the parameter, before the parameters or any checkpoint change; ``"skip"`` drops
        that step with a RuntimeWarning and goes on
    distributed : data-parallel training on MPI (``cnnkit.distributed``; one process when
        not launched by mpirun): ``train_loader``'s batch size is the global batch, split
        across the ranks; gradients are averaged before every step; rank 0 alone prints and
        writes checkpoints; metrics and validation cover all ranks' images; every rank ends
        with the same parameters. Call ``cnnkit.distributed.convert_sync_batchnorm(model)``
        first for batch statistics of the global batch. Shorthand for
        ``strategy=cnnkit.distributed.DataParallel()``.
    strategy : how training runs across processes (:class:`cnnkit.distributed.Strategy`; the
        default is one process, or DataParallel with ``distributed=True``)
    fuse : first mark each batch norm followed by a ReLU to run fused, in place
        (:func:`cnnkit.nn.utils.fuse_batch_norm_relu`: the same values, one pass over memory;
        shown in the model's repr)
    precision : ``"fp32"`` (default) or ``"bf16"``: the forward passes of training and
        validation run under :class:`cnnkit.autocast` (conv, linear and matmul with bf16
        operands and float32 sums, in both directions); parameters, gradients and the
        optimizer state stay float32

    Returns
    -------
    History
        Of the whole run, including resumed epochs.
    """
    if on_nonfinite not in guards.ON_NONFINITE:
        raise ValueError(f"fit: on_nonfinite must be one of {guards.ON_NONFINITE}, "
                         f"got {on_nonfinite!r}")
    if strategy is not None and distributed:
        raise ValueError("fit: give strategy= or distributed=True, not both "
                         "(distributed=True is strategy=cnnkit.distributed.DataParallel())")
    if monitor not in MONITORS:
        raise ValueError(f"fit: monitor must be one of {MONITORS}, got {monitor!r}")
    if early_stopping is not None and (isinstance(early_stopping, bool) or
                                       not isinstance(early_stopping, (int, np.integer)) or
                                       early_stopping < 1):
        raise ValueError(f"fit: early_stopping must be a number of epochs >= 1 (or None), "
                         f"got {early_stopping!r}")
    amp_mode = autocast(enabled=check_precision("fit", precision) == "bf16")
    loss_fn = loss if loss is not None else CrossEntropyLoss()
    show = sys.stderr.isatty() if progress is None else bool(progress)
    history = History(monitor=monitor)
    start = 0
    if resume is not None:
        ckpt = load(resume) if not isinstance(resume, dict) else resume
        model.load_state_dict(ckpt["model"])
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"]["state"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"]["state"])
        if ckpt.get("history"):
            history = History.from_dict(ckpt["history"])
            history.monitor = monitor  # the best epoch so far is recomputed from the records
        _random.generator().bit_generator.state = ckpt["rng"]["cnnkit"]
        start = int(ckpt["epoch"])

    if fuse:
        fuse_batch_norm_relu(model)
    if strategy is None:
        strategy = DataParallel() if distributed else Strategy()
    train_loader, val_loader = strategy.setup(model, train_loader, val_loader)
    if not strategy.is_main:
        show, verbose, checkpoint_dir, log_dir = False, False, None, None
    board = None if log_dir is None else TensorBoardLogger(log_dir)
    global_step = start * len(train_loader) if hasattr(train_loader, "__len__") else 0

    def save_checkpoint(name, epoch):
        path = os.path.join(os.fspath(checkpoint_dir), name)
        save(checkpoint_dict(model, optimizer, scheduler, epoch=epoch, history=history,
                             preprocessing=preprocessing, early_stopping=_stop_state(history),
                             metadata=metadata), path)

    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            model.train()
            seen, correct, total_loss = 0, 0, 0.0
            bar = _progress_bar(len(train_loader) if hasattr(train_loader, "__len__") else None,
                                f"epoch {epoch + 1}/{epochs}", show)
            try:
                for i, (x, y) in enumerate(train_loader):
                    optimizer.zero_grad()
                    buffers = guards.snapshot_buffers(model)
                    with amp_mode:
                        out = model(x)
                    batch_loss = loss_fn(out, y)
                    batch_loss.backward()
                    strategy.after_backward()  # every rank then checks the same gradients
                    if not guards.handle_step(model, batch_loss, epoch + 1, i + 1, on_nonfinite,
                                              buffers):
                        bar.update(1)
                        continue
                    optimizer.step()
                    n = len(y)
                    seen += n
                    step_loss = float(batch_loss.item())
                    total_loss += step_loss * n
                    global_step += 1
                    if board is not None:
                        board.step(global_step, step_loss, float(optimizer.param_groups[0]["lr"]))
                    correct += int((out.data.argmax(axis=1) == np.asarray(y.data)).sum())
                    bar.update(1)
                    if show and (i % 5 == 0 or i == len(train_loader) - 1):
                        rate = seen / max(time.perf_counter() - t0, 1e-9)
                        bar.set_postfix(loss=f"{total_loss / seen:.4f}",
                                        acc=f"{100 * correct / seen:.1f}%", img_s=f"{rate:.0f}",
                                        refresh=False)
            finally:
                bar.close()
            seen, correct, total_loss = strategy.reduce_metrics(seen, correct, total_loss)
            strategy.end_epoch()
            if seen == 0:
                raise ValueError("fit: the training loader yielded no batches")
            train_time = time.perf_counter() - t0
            lr = float(optimizer.param_groups[0]["lr"])
            val_loss = val_acc = None
            if val_loader is not None:
                if hasattr(val_loader, "set_epoch"):
                    val_loader.set_epoch(0)
                with amp_mode:
                    ev = strategy.evaluate(val_loader, loss=loss_fn)
                val_loss, val_acc = ev.loss, ev.accuracy
            train_acc = correct / seen
            history.epoch.append(epoch + 1)
            history.train_loss.append(total_loss / seen)
            history.train_acc.append(train_acc)
            history.val_loss.append(val_loss)
            history.val_acc.append(val_acc)
            history.lr.append(lr)
            history.images_per_s.append(seen / train_time)
            history.seconds.append(time.perf_counter() - t0)
            if scheduler is not None:
                if isinstance(scheduler, ReduceLROnPlateau):  # on the loss or the accuracy
                    losses, accs = history._losses_accs()
                    scheduler.step(losses[-1] if scheduler.mode == "min" else accs[-1])
                else:
                    scheduler.step()
            new_best = history.best_epoch == epoch + 1
            stop = (early_stopping is not None
                    and history.epochs_without_improvement >= early_stopping)
            history.stopped_early = bool(stop)
            if board is not None:
                board.epoch(epoch + 1, history, model)
            if verbose:
                line = (f"epoch {epoch + 1}/{epochs}  loss {total_loss / seen:.4f}  "
                        f"acc {100 * train_acc:.2f}%")
                if val_acc is not None:
                    line += f"  val_loss {val_loss:.4f}  val_acc {100 * val_acc:.2f}%"
                line += f"  lr {lr:.3g}  {seen / train_time:.0f} img/s  {history.seconds[-1]:.1f}s"
                print(line, flush=True)
            if checkpoint_dir is not None:
                # best first: if the process dies between the two writes, last still points back
                if new_best:
                    save_checkpoint("best.safetensors", epoch + 1)
                save_checkpoint("last.safetensors", epoch + 1)
            logs = {"epoch": epoch + 1, "train_loss": total_loss / seen, "train_acc": train_acc,
                    "val_loss": val_loss, "val_acc": val_acc, "lr": lr}
            if any(cb(epoch + 1, logs) is True for cb in callbacks):
                stop = True
            if stop:
                if verbose and early_stopping is not None and history.stopped_early:
                    print(f"early stopping: no better {monitor} for {early_stopping} epochs "
                          f"(best: epoch {history.best_epoch})", flush=True)
                break
    finally:
        if board is not None:
            board.close()
    strategy.close()
    return history
