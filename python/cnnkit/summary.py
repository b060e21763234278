"""``cnnkit.summary``: a model's layers with output volumes, parameters and multiply-adds."""

from __future__ import annotations

import dataclasses

import numpy as np

from .nn import AvgPool2d, Conv2d, Linear, LocallyConnected2d, MaxPool2d, TiledConv2d
from .nn.module import eval_mode
from .quantization import QTensor
from .shapes import window_remainder
from .tensor import Tensor, no_grad

__all__ = ["summary", "Summary", "SummaryRow", "tiling_note", "layer_mult_adds"]


@dataclasses.dataclass
class SummaryRow:
    name: str            # qualified module name ("features.0")
    kind: str            # class name ("Conv2d")
    input_shape: tuple   # with the batch dimension
    output_shape: tuple  # with the batch dimension
    params: int
    mult_adds: int
    note: str = ""
    precision: str = ""  # "fp32", "int8" (cnnkit.quantization's layers), "" (no weights)


def _pairs(m, *names):
    out = []
    for n in names:
        v = getattr(m, n, 1)
        v = v if isinstance(v, (tuple, list)) else (v, v)
        out.append(tuple(int(x) for x in v))
    return out


def tiling_note(module, input_shape) -> str:
    """For a conv or pooling layer whose windows do not tile its input exactly (so the last
    rows/columns are silently dropped), a note saying so; "" otherwise."""
    if not isinstance(module, (Conv2d, LocallyConnected2d, TiledConv2d, MaxPool2d, AvgPool2d)):
        return ""
    if getattr(module, "ceil_mode", False) or len(input_shape) != 4:
        return ""
    k, p = _pairs(module, "kernel_size", "padding")
    s = _pairs(module, "stride")[0] if getattr(module, "stride", None) is not None else k
    d = _pairs(module, "dilation")[0] if hasattr(module, "dilation") else (1, 1)
    notes = []
    for axis, n, kk, ss, pp, dd in zip(("rows", "columns"), input_shape[2:], k, s, p, d):
        r = window_remainder(n, kk, ss, pp, dd)
        if r:
            keff = dd * (kk - 1) + 1
            pad = f" + 2*{pp}" if pp else ""
            notes.append(f"{axis}: ({n}{pad} - {keff})/{ss} + 1 = "
                         f"{(n + 2 * pp - keff) / ss + 1:.2f}, last {r} dropped")
    return ("filter does not tile input: " + "; ".join(notes)) if notes else ""


def layer_mult_adds(module, input_shape, output_shape) -> int:
    """Multiply-adds of one sample through a conv or linear layer (0 for other layers)."""
    out_per_sample = int(np.prod(output_shape[1:]))
    if isinstance(module, Conv2d):
        kh, kw = module.kernel_size
        return out_per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, (LocallyConnected2d, TiledConv2d)):
        kh, kw = module.kernel_size
        return out_per_sample * module.in_channels * kh * kw
    if isinstance(module, Linear):
        return out_per_sample * module.in_features
    return 0


def _volume(shape) -> str:
    """[1, 96, 55, 55] -> 55x55x96 (the lecture's H x W x C); [1, 4096] -> 4096."""
    s = list(shape[1:])
    if len(s) == 3:
        s = [s[1], s[2], s[0]]
    return "x".join(str(v) for v in s)


@dataclasses.dataclass
class Summary:
    rows: list
    input_shape: tuple
    total_params: int
    trainable_params: int

    @property
    def total_mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    @property
    def notes(self) -> list:
        return [f"{r.name} ({r.kind}): {r.note}" for r in self.rows if r.note]

    def __str__(self) -> str:
        head = ("Layer (type)", "Output volume", "Params", "Mult-adds", "Precision")
        body = [(f"{r.name} ({r.kind})" + (" *" if r.note else ""), f"[{_volume(r.output_shape)}]",
                 f"{r.params:,}", f"{r.mult_adds:,}" if r.mult_adds else "-", r.precision or "-")
                for r in self.rows]
        widths = [max(len(x[i]) for x in [head] + body) for i in range(5)]

        def fmt(row):
            return (f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
                    f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}")

        rule = "-" * len(fmt(head))
        lines = [f"Input: [{_volume((1,) + tuple(self.input_shape))}]", rule, fmt(head), rule]
        lines += [fmt(b) for b in body]
        lines += [
            rule,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total mult-adds (per sample): {self.total_mult_adds:,}",
        ]
        if self.notes:
            lines.append(rule)
            lines += ["* " + n for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _shaped(x) -> bool:
    return isinstance(x, (Tensor, QTensor))


def summary(model, input_shape) -> Summary:
    """Run ``model`` once on zeros of shape ``[1, *input_shape]`` (under no_grad, in eval mode,
    restoring the modes afterwards) and tabulate every leaf layer it called: output volume,
    parameter count, multiply-adds and the precision its weights compute in (``fp32``, or
    ``int8`` for :mod:`cnnkit.quantization`'s layers), with totals; conv/pool layers whose
    filter does not tile their input are marked with ``*`` and explained below the table.

    Returns a :class:`Summary`; ``print()`` it (its repr is the table).
    """
    input_shape = tuple(int(s) for s in input_shape)
    names = {id(m): n for n, m in model.named_modules()}
    rows, handles = [], []

    def hook(module, inputs, output):
        # (shape: a Tensor's, or a quantized model's uint8 QTensor's float shape)
        in_shape = tuple(inputs[0].shape) if inputs and _shaped(inputs[0]) else ()
        out_shape = tuple(output.shape) if _shaped(output) else ()
        params = sum(p.numel() for p in module.parameters(recurse=False))
        mult_adds = layer_mult_adds(module, in_shape, out_shape)
        precision = "fp32" if params else ""
        info = getattr(module, "summary_info", None)  # a layer that says it (int8 layers)
        if callable(info):
            params, mult_adds, precision = info(in_shape, out_shape)
        rows.append(SummaryRow(
            name=names.get(id(module), "") or type(module).__name__,
            kind=type(module).__name__, input_shape=in_shape, output_shape=out_shape,
            params=params, mult_adds=mult_adds, note=tiling_note(module, in_shape),
            precision=precision,
        ))

    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(hook))
    try:
        with eval_mode(model), no_grad():
            model(Tensor(np.zeros((1,) + input_shape, dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    # int8 layers hold their (fixed) weights as buffers: counted as non-trainable parameters
    total += sum(m.weight_count() for m in model.modules() if callable(getattr(m, "weight_count",
                                                                               None)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(rows, input_shape, total, trainable)
