"""Post-training static quantization to int8 (issue 19, first part).

``qmodel = quantize(model, calibration)`` returns an inference copy of a trained model in
which every Conv2d and Linear computes in int8 on the int8 GEMM engine (AMX-INT8 / AVX512-VNNI
/ an exact integer reference):

- weights: int8, symmetric, per output channel (``per_channel=True``) or per tensor:
  ``s_w = max|w| / 127``, ``wq = clip(rint(w / s_w), -127, 127)``;
- inputs: uint8, asymmetric per tensor, from the calibration batches: the range [lo, hi]
  (``method="minmax"``: the extremes seen, widened to contain 0; ``"percentile"``: the
  ``percentile`` and ``100 - percentile`` percentiles of the values seen, which ignores
  outliers), ``s_x = (hi - lo) / 255``, ``zp = clip(round(-lo / s_x), 0, 255)``; the input is
  quantized while the layer packs it (``q = clamp(nearbyint(x / s_x) + zp, 0, 255)``, ties to
  even), so layers take and give float32 and whatever has no int8 kernel runs unchanged in
  between;
- batch norm folded into the layer before it, a ReLU after a convolution (or a Linear) and a
  max pooling after a convolution applied in its epilogue (:func:`cnnkit.nn.fuse` first);
- the sums are exact integers; the epilogue is ``float(sum - zp * rowsum(wq)) * (s_w s_x) + b``.

A quantized layer's output is within a few quantization steps of the float one; see the tests
for the measured accuracy. The layers compute through :class:`Int8Conv2dFunction` /
:class:`Int8LinearFunction` (inference only), so ``cnnkit.onnx.export`` sees them and writes
QDQ form; ``cnnkit.summary`` reports them as int8.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core, amp
from .autograd import Function, no_grad
from .nn import Conv2d, Identity, Linear, Module
from .nn.activation import ReLU
from .nn.fusion import fuse
from .shapes import conv_output_size
from .tensor import Tensor

__all__ = ["quantize", "rebuild", "QuantizedConv2d", "QuantizedLinear", "input_range"]

_METHODS = ("minmax", "percentile")
_SAMPLES = 1 << 20  # values kept per layer for the percentile method


def _weights_int8(w: np.ndarray, per_channel: bool):
    """(wq int8, scale float32 [out]) for weights [out, ...]: symmetric, 127 steps."""
    w64 = w.astype(np.float64).reshape(w.shape[0], -1)
    amax = np.abs(w64).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w64).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    wq = np.clip(np.rint(w64 / scale[:, None]), -127, 127).astype(np.int8).reshape(w.shape)
    return wq, scale.astype(np.float32)


def input_range(lo: float, hi: float):
    """(scale, zero_point) of the uint8 grid for values in [lo, hi] (widened to contain 0, so
    a 0 -- the padding -- is exact)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(round(-lo / scale), 0, 255))
    return np.float32(scale), zp


class _Observer:
    """What the calibration saw at one layer's input."""

    def __init__(self, method, percentile, rng):
        self.method, self.percentile, self.rng = method, percentile, rng
        self.lo, self.hi, self.samples, self.count = np.inf, -np.inf, [], 0

    def see(self, x: np.ndarray):
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return
        self.lo = min(self.lo, float(finite.min()))
        self.hi = max(self.hi, float(finite.max()))
        self.count += 1
        if self.method == "percentile":
            flat = finite.ravel()
            if flat.size > _SAMPLES // 8:
                flat = self.rng.choice(flat, _SAMPLES // 8, replace=False)
            self.samples.append(flat)

    def range(self):
        if self.method == "percentile":
            v = np.concatenate(self.samples)
            return (np.percentile(v, 100.0 - self.percentile), np.percentile(v, self.percentile))
        return self.lo, self.hi


def _operands(x, w_scale, input_scale, input_zero_point):
    s_x = np.float32(input_scale)
    return (np.ascontiguousarray(x, dtype=np.float32), (w_scale * s_x).astype(np.float32),
            float(1.0 / np.float64(s_x)), int(input_zero_point))


class Int8Conv2dFunction(Function):
    """QuantizedConv2d's computation (inference only): inputs x, weight_int8, weight_scale,
    bias, input_scale, input_zero_point."""

    def forward(self, x, wq, w_scale, bias, input_scale, input_zero_point, *, stride, padding,
                dilation, groups, relu, pool, packed):
        xa, scale, inv, zp = _operands(x, w_scale, input_scale, input_zero_point)
        # (a fused max pooling runs on each image's planes while they are in cache)
        return _core.conv2d_forward_int8(xa, wq, scale, bias, stride, padding, dilation, groups,
                                         relu, inv, zp, packed, pool)

    def backward(self, grad):
        raise RuntimeError("int8 layers are for inference: no gradient flows through them")


class Int8LinearFunction(Function):
    """QuantizedLinear's computation (inference only): inputs as Int8Conv2dFunction's."""

    def forward(self, x, wq, w_scale, bias, input_scale, input_zero_point, *, relu, packed):
        xa, scale, inv, zp = _operands(x, w_scale, input_scale, input_zero_point)
        yt = _core.qgemm(wq, xa, scale, bias, relu, inv, zp, True, packed)
        return np.ascontiguousarray(yt.T)

    def backward(self, grad):
        raise RuntimeError("int8 layers are for inference: no gradient flows through them")


def _held(array: np.ndarray) -> Tensor:
    """A Tensor holding ``array`` as it is (int8 / int32 included: Tensor() would widen them),
    so the quantized state is in ``state_dict`` (and in checkpoints) in its own dtype."""
    t = object.__new__(Tensor)
    t.data, t.grad, t.requires_grad, t.grad_fn, t._grad_accumulator = array, None, False, None, None
    return t


class _QuantizedLayer(Module):
    """State (all in state_dict): weight_int8, weight_scale [out], bias [out] (if any),
    input_scale and input_zero_point (0-d float32 / int32)."""

    def _init_state(self, weight, bias, per_channel):
        wq, w_scale = _weights_int8(weight, per_channel)
        self.register_buffer("weight_int8", _held(wq))
        self.register_buffer("weight_scale", _held(w_scale))
        self.register_buffer("bias", None if bias is None else _held(bias.astype(np.float32)))
        self.register_buffer("input_scale", _held(np.array(1.0 / 255, np.float32)))
        self.register_buffer("input_zero_point", _held(np.array(0, np.int32)))

    def _set_input(self, lo, hi):
        scale, zp = input_range(lo, hi)
        self.input_scale.data[...] = scale
        self.input_zero_point.data[...] = zp

    def _inputs(self, x):
        """The Function's inputs: x, then the state (so a trace, e.g. the ONNX export's,
        sees every value the layer computes with)."""
        if not isinstance(x, (Tensor, np.ndarray)):
            raise TypeError(f"{type(self).__name__}: input must be a Tensor or numpy.ndarray, "
                            f"got {type(x).__name__}")
        return (x, self.weight_int8, self.weight_scale, self.bias, self.input_scale,
                self.input_zero_point)

    def _packed(self, pack):
        """The int8 weights in the active ISA's GEMM panels, packed on first use and kept
        while the ISA, the weight array and cnnkit.amp's weight version stay the same
        (load_state_dict bumps it)."""
        key = (_core.get_isa(), id(self.weight_int8.data), amp.weights_version())
        held = self.__dict__.get("_packed_weights")
        if held is None or held[0] != key:
            held = (key, pack(self.weight_int8.data))
            object.__setattr__(self, "_packed_weights", held)
        return held[1]

    def weight_count(self) -> int:
        """Weights and biases (int8 and float32 buffers): cnnkit.summary's parameters."""
        return int(self.weight_int8.data.size) + (0 if self.bias is None else
                                                  int(self.bias.data.size))

    def summary_info(self, input_shape, output_shape):
        """(weights, multiply-adds per sample, "int8") for cnnkit.summary."""
        per_output = int(np.prod(self.weight_int8.data.shape[1:]))
        outputs = int(np.prod(output_shape[1:]))
        if getattr(self, "pool", None) is not None:  # the products are before the pooling
            hw = conv_output_size(tuple(input_shape[2:]), tuple(self.kernel_size),
                                  tuple(self.stride), tuple(self.padding), tuple(self.dilation))
            outputs = self.out_channels * int(np.prod(hw))
        return self.weight_count(), outputs * per_output, "int8"

    def _input_repr(self):
        return (f"int8, input scale={float(self.input_scale.data):.4g} "
                f"zero_point={int(self.input_zero_point.data)}")


class QuantizedConv2d(_QuantizedLayer):
    """A Conv2d computing in int8 (float32 in and out): see the module docstring.

    weight_int8: [K, C / groups, kh, kw] int8; weight_scale: [K]; bias: [K] float32 or None.
    """

    def __init__(self, conv: Conv2d, per_channel: bool = True):
        super().__init__()
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = conv.kernel_size
        self.relu = bool(conv.fused_relu)
        self.pool = conv.fused_pool
        self._init_state(conv.weight.data, None if conv.bias is None else conv.bias.data,
                         per_channel)

    def forward(self, x):
        packed = self._packed(lambda w: _core.conv2d_int8_pack(w, self.groups))
        y = Int8Conv2dFunction.apply(*self._inputs(x), stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, groups=self.groups, relu=self.relu,
                                     pool=self.pool, packed=packed)
        return y

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, {self._input_repr()}")
        if self.relu:
            s += ", relu=True"
        if self.pool is not None:
            s += f", pool={self.pool[0]}"
        return s


class QuantizedLinear(_QuantizedLayer):
    """A Linear computing in int8 (float32 in and out): see the module docstring.

    weight_int8: [out, in] int8; weight_scale: [out]; bias: [out] float32 or None.
    """

    def __init__(self, linear: Linear, per_channel: bool = True, relu: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.relu = relu
        self._init_state(linear.weight.data, None if linear.bias is None else linear.bias.data,
                         per_channel)

    def forward(self, x):
        shape = tuple(x.shape) if isinstance(x, (Tensor, np.ndarray)) else None
        if shape is not None and (len(shape) != 2 or shape[1] != self.in_features):
            raise ValueError(f"QuantizedLinear: expected input [N, {self.in_features}], got "
                             f"{list(shape)}")
        return Int8LinearFunction.apply(*self._inputs(x), relu=self.relu,
                                        packed=self._packed(_core.int8_pack))

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}, "
        return s + self._input_repr() + (", relu=True" if self.relu else "")


def _convert(fused: Module, per_channel: bool):
    """Replace, in place, every Conv2d / Linear of an already fused model by its quantized
    form (weights quantized, input range still to set); a ReLU right after a Linear moves into
    its epilogue. Returns [(name, quantized layer)]."""
    layers = [(name, m) for name, m in fused.named_modules() if type(m) in (Conv2d, Linear)]
    parents = dict(fused.named_modules())
    out = []
    for name, m in layers:
        kind = QuantizedConv2d if type(m) is Conv2d else QuantizedLinear
        q = kind(m, per_channel)
        parent_name, _, attr = name.rpartition(".")
        (parents[parent_name] if parent_name else fused)._modules[attr] = q
        out.append((name, q))
    for m in fused.modules():  # (past the Identity a folded batch norm left)
        mods = list(m._modules.items())
        for i, (_, a) in enumerate(mods):
            if type(a) is not QuantizedLinear:
                continue
            j = i + 1
            while j < len(mods) and type(mods[j][1]) is Identity:
                j += 1
            if j < len(mods) and type(mods[j][1]) is ReLU and not mods[j][1]._forward_hooks:
                a.relu = True
                m._modules[mods[j][0]] = Identity()
    return out


def rebuild(model: Module, settings: dict) -> Module:
    """The quantized structure of a float ``model``, as an eval-mode copy (its weights still to
    be loaded from a quantized state_dict): what :func:`cnnkit.load` does with a saved
    quantized model."""
    fused = fuse(model)
    _convert(fused, bool(settings.get("per_channel", True)))
    fused.quantized = dict(settings)
    return fused


def _batches(calibration):
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if isinstance(x, Tensor):
            x = x.data
        if not isinstance(x, np.ndarray):
            raise TypeError(f"quantize: calibration batches must be arrays or Tensors (or "
                            f"(x, y) pairs of them), got {type(x).__name__}")
        yield np.ascontiguousarray(x, dtype=np.float32)


def quantize(model: Module, calibration, per_channel: bool = True, method: str = "minmax",
             percentile: float = 99.99, seed: int = 0) -> Module:
    """An int8 inference copy of ``model`` (eval mode; the original is untouched).

    ``calibration``: an iterable of input batches (arrays, Tensors, or ``(x, y)`` pairs such as
    a DataLoader gives) run through the float model to choose each layer's input range.
    ``method``: ``"minmax"`` or ``"percentile"`` (with ``percentile``, e.g. 99.99). Every Conv2d
    and Linear (exactly those types) becomes a QuantizedConv2d / QuantizedLinear; other layers
    run as they did.
    """
    if not isinstance(model, Module):
        raise TypeError(f"quantize: model must be a cnnkit.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError("quantize: the model is in training mode; call model.eval() first "
                         "(quantization uses the batch norms' running statistics)")
    if method not in _METHODS:
        raise ValueError(f"quantize: method must be one of {_METHODS}, got {method!r}")
    if not isinstance(percentile, numbers.Real) or not 50.0 < percentile <= 100.0:
        raise ValueError(f"quantize: percentile must be in (50, 100], got {percentile!r}")
    fused = fuse(model)
    layers = [(name, m) for name, m in fused.named_modules() if type(m) in (Conv2d, Linear)]
    if not layers:
        raise ValueError("quantize: the model has no Conv2d or Linear layer to quantize")
    rng = np.random.default_rng(seed)
    observers = {name: _Observer(method, percentile, rng) for name, _ in layers}

    def watch(name, m):
        original = m.forward

        def forward(x):
            observers[name].see(x.data if isinstance(x, Tensor) else np.asarray(x))
            return original(x)
        m.forward = forward

    for name, m in layers:
        watch(name, m)
    seen = 0
    try:
        with no_grad():
            for x in _batches(calibration):
                fused(Tensor(x))
                seen += 1
    finally:
        for _, m in layers:
            del m.forward  # the class's forward again
    if seen == 0:
        raise ValueError("quantize: the calibration data gave no batch")
    for name, q in _convert(fused, per_channel):
        obs = observers[name]
        if obs.count == 0:
            raise ValueError(f"quantize: layer {name!r} saw no calibration input (is it used "
                             f"in forward?)")
        q._set_input(*obs.range())
    fused.quantized = {"per_channel": bool(per_channel), "method": method,
                       "percentile": float(percentile)}
    fused.eval()
    return fused
