"""Post-training static quantization to int8 (issue 19, first part).

``qmodel = quantize(model, calibration)`` returns an inference copy of a trained model in
which every Conv2d and Linear computes in int8 on the int8 GEMM engine (AMX-INT8 / AVX512-VNNI
/ an exact integer reference):

- weights: int8, symmetric, per output channel (``per_channel=True``) or per tensor:
  ``s_w = max|w| / 127``, ``wq = clip(rint(w / s_w), -127, 127)``;
- inputs: uint8, asymmetric per tensor, from the calibration batches: the range [lo, hi]
  (``method="minmax"``: the extremes seen, widened to contain 0; ``"percentile"``: the
  ``percentile`` and ``100 - percentile`` percentiles of the values seen, which ignores
  outliers), ``s_x = (hi - lo) / 255``, ``zp = clip(round(-lo / s_x), 0, 255)``; a float32
  input is quantized (``q = clamp(nearbyint(x / s_x) + zp, 0, 255)``, ties to even) into NHWC
  bytes;
- between int8 layers (through Identity, Dropout, MaxPool2d and Flatten only, inside runs of
  Sequentials) the activations stay uint8 (:class:`QTensor`, NHWC): the producer's epilogue
  requantizes onto the consumer's input grid, ``q = nearbyint(clamp(fma(float(sum - zp *
  colsum), s_x s_w / s_y, b / s_y + zp_y), relu ? zp_y : 0, 255))``; max pooling picks bytes;
  Flatten is a reshape in (h, w, c) order that the next Linear's weight packing follows.
  Elsewhere layers give float32 (``float(sum - zp * colsum) * s_x s_w + b``, fused), so
  whatever has no int8 kernel runs unchanged in between;
- batch norm folded into the layer before it, a ReLU after a convolution (or a Linear) and a
  max pooling after a convolution applied in its epilogue (:func:`cnnkit.nn.fuse` first);
- the sums are exact integers on the row engine (uint8 activations as rows, read in place).

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
from .autograd.function import recording
from .nn import Conv2d, Identity, Linear, Module, Sequential
from .nn.activation import ReLU
from .nn.dropout import Dropout
from .nn.fusion import fuse
from .nn.module import Flatten
from .nn.pooling import MaxPool2d
from .shapes import conv_output_size
from .tensor import Tensor

__all__ = ["quantize", "rebuild", "QuantizedConv2d", "QuantizedLinear", "QTensor",
           "input_range"]

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


class QTensor:
    """uint8 activations between int8 layers: ``q`` holds ``round(x / scale) + zero_point``
    NHWC ([N, H, W, C], for an NCHW tensor of ``shape`` [N, C, H, W]) or as rows ([N, F]);
    ``chw`` = (C, H, W) when the rows are an NHWC image flattened (features in (h, w, c)
    order: the next Linear packs its weights in that order). Inference only (no gradient)."""

    __slots__ = ("q", "scale", "zero_point", "chw")

    def __init__(self, q, scale, zero_point, chw=None):
        self.q, self.scale, self.zero_point, self.chw = q, float(scale), int(zero_point), chw

    @property
    def shape(self):
        """The shape of the float tensor this stands for (NCHW for images)."""
        if self.q.ndim == 4:
            n, h, w, c = self.q.shape
            return (n, c, h, w)
        return tuple(self.q.shape)

    @property
    def ndim(self):
        return self.q.ndim

    def dequantize(self) -> np.ndarray:
        """float32 (q - zero_point) * scale in the float tensor's layout (NCHW / (c, h, w))."""
        x = (self.q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
        if x.ndim == 4:
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if self.chw is not None:
            c, h, w = self.chw
            return np.ascontiguousarray(
                x.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(x.shape[0], -1))
        return x


def _inv(scale) -> float:
    return float(1.0 / np.float64(np.float32(scale)))


def _u8_input(x, input_scale, input_zero_point):
    """(uint8 NHWC / rows, scale, zero point, chw) of a layer's input."""
    if isinstance(x, QTensor):
        return x.q, x.scale, x.zero_point, x.chw
    a = np.ascontiguousarray(x.data if isinstance(x, Tensor) else x, dtype=np.float32)
    s, zp = float(np.float32(input_scale)), int(input_zero_point)
    return _core.quantize_nhwc(a, _inv(s), zp), s, zp, None


class Int8Conv2dFunction(Function):
    """QuantizedConv2d's computation (inference only): inputs x, weight_int8, weight_scale,
    bias, input_scale, input_zero_point; float32 NCHW out."""

    def forward(self, x, wq, w_scale, bias, input_scale, input_zero_point, *, stride, padding,
                dilation, groups, relu, pool, packed):
        xq, s, zp, _ = _u8_input(x, input_scale, input_zero_point)
        # (a fused max pooling runs on each image's planes while they are in cache)
        return _core.conv2d_int8_rows(xq, wq, packed, w_scale, bias, stride, padding, dilation,
                                      groups, relu, s, zp, None, 0, pool)

    def backward(self, grad):
        raise RuntimeError("int8 layers are for inference: no gradient flows through them")


class Int8LinearFunction(Function):
    """QuantizedLinear's computation (inference only): inputs as Int8Conv2dFunction's."""

    def forward(self, x, wq, w_scale, bias, input_scale, input_zero_point, *, relu, packed):
        xq, s, zp, _ = _u8_input(x, input_scale, input_zero_point)
        return _core.linear_int8_rows(xq, wq, packed, w_scale, bias, relu, s, zp)

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

    def _emit_u8(self):
        """Give uint8 (a QTensor on the next int8 layer's grid) instead of float32: set when
        the next layer is an int8 one (see _chain)."""
        self.register_buffer("output_scale", _held(np.array(1.0 / 255, np.float32)))
        self.register_buffer("output_zero_point", _held(np.array(0, np.int32)))

    def _u8_out(self):
        """(scale, zero point) of the uint8 output, or None: float32 (also while a trace
        records the ops: it sees the float32 layer)."""
        buffers = self._buffers  # (read directly: a batch-1 layer call is ~20 us)
        scale = buffers.get("output_scale")
        if scale is None or recording():
            return None
        return float(scale.data), int(buffers["output_zero_point"].data)

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

    def _packed(self, pack, layout=None):
        """The int8 weights in the row engine's panels, packed on first use and kept while the
        ISA, the weight array, cnnkit.amp's weight version (load_state_dict bumps it) and the
        input's feature order stay the same."""
        w = self._buffers["weight_int8"].data
        key = (_core.get_isa(), id(w), amp.weights_version(), layout)
        held = self.__dict__.get("_packed_weights")
        if held is None or held[0] != key:
            held = (key, pack(w))
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
        s = (f"int8, input scale={float(self.input_scale.data):.4g} "
             f"zero_point={int(self.input_zero_point.data)}")
        if getattr(self, "output_scale", None) is not None:
            s += f", uint8 out scale={float(self.output_scale.data):.4g}"
        return s


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
        packed = self._packed(lambda w: _core.conv2d_int8_rows_pack(w, self.groups,
                                                                   self.dilation))
        out = self._u8_out()
        if out is not None or isinstance(x, QTensor):  # uint8 NHWC in or out: no trace
            b = self._buffers
            xq, s, zp, _ = _u8_input(x, b["input_scale"].data, b["input_zero_point"].data)
            bias = None if b["bias"] is None else b["bias"].data
            y = _core.conv2d_int8_rows(xq, b["weight_int8"].data, packed, b["weight_scale"].data,
                                       bias, self.stride, self.padding, self.dilation,
                                       self.groups, self.relu, s, zp, *(out or (None, 0)),
                                       self.pool)
            return QTensor(y, *out) if out is not None else Tensor(y)
        return Int8Conv2dFunction.apply(*self._inputs(x), stride=self.stride,
                                        padding=self.padding, dilation=self.dilation,
                                        groups=self.groups, relu=self.relu, pool=self.pool,
                                        packed=packed)

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
        shape = tuple(x.shape) if isinstance(x, (Tensor, np.ndarray, QTensor)) else None
        if shape is not None and (len(shape) != 2 or shape[1] != self.in_features):
            raise ValueError(f"QuantizedLinear: expected input [N, {self.in_features}], got "
                             f"{list(shape)}")
        chw = x.chw if isinstance(x, QTensor) else None
        packed = self._packed(lambda w: _core.linear_int8_rows_pack(w, chw), chw)
        out = self._u8_out()
        if out is not None or isinstance(x, QTensor):
            b = self._buffers
            xq, s, zp, _ = _u8_input(x, b["input_scale"].data, b["input_zero_point"].data)
            bias = None if b["bias"] is None else b["bias"].data
            y = _core.linear_int8_rows(xq, b["weight_int8"].data, packed,
                                       b["weight_scale"].data, bias, self.relu, s, zp,
                                       *(out or (None, 0)))
            return QTensor(y, *out) if out is not None else Tensor(y)
        return Int8LinearFunction.apply(*self._inputs(x), relu=self.relu, packed=packed)

    def extra_repr(self):
        s = f"in_features={self.in_features}, out_features={self.out_features}, "
        return s + self._input_repr() + (", relu=True" if self.relu else "")


class QuantizedMaxPool2d(Module):
    """A MaxPool2d between int8 layers: uint8 NHWC in and out (the maximum of the quantized
    values is the quantized maximum); float32 passes to the float pooling."""

    def __init__(self, pool: MaxPool2d):
        super().__init__()
        object.__setattr__(self, "pool", pool)  # (not a child: this is one layer)

    def forward(self, x):
        if not isinstance(x, QTensor):
            return self.pool(x)
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
        p = self.pool
        q = _core.max_pool2d_nhwc_u8(x.q, pair(p.kernel_size), pair(p.stride), pair(p.padding),
                                     bool(p.ceil_mode))
        return QTensor(q, x.scale, x.zero_point)

    def extra_repr(self):
        return self.pool.extra_repr() + ", uint8 NHWC"


class QuantizedFlatten(Module):
    """A Flatten between int8 layers: an NHWC uint8 image becomes rows in (h, w, c) order
    (no copy; the next QuantizedLinear packs its weights in that order); float32 passes to the
    float flatten."""

    def __init__(self, flatten: Flatten):
        super().__init__()
        object.__setattr__(self, "flatten", flatten)  # (not a child: this is one layer)

    def extra_repr(self):
        return self.flatten.extra_repr() + ", uint8 rows in (h, w, c) order"

    def forward(self, x):
        if not isinstance(x, QTensor):
            return self.flatten(x)
        if x.q.ndim != 4 or (self.flatten.start_dim, self.flatten.end_dim) != (1, -1):
            return self.flatten(Tensor(x.dequantize()))
        n, h, w, c = x.q.shape
        return QTensor(x.q.reshape(n, h * w * c), x.scale, x.zero_point, (c, h, w))


_PASS = (Identity, Dropout, MaxPool2d, Flatten)


def _leaves(seq: Sequential):
    """(parent, name, module) of a Sequential's modules in the order they run, nested
    Sequentials expanded."""
    for name, m in seq._modules.items():
        if type(m) is Sequential:
            yield from _leaves(m)
        else:
            yield seq, name, m


def _chain(fused: Module):
    """Mark every int8 layer whose output goes, through modules that only move or pick values
    (Identity, Dropout, MaxPool2d, Flatten), straight into another int8 layer of the same run
    of Sequentials, to give uint8; those modules become their uint8-aware forms. Returns
    [(producer, consumer)]."""
    tops = [fused] if type(fused) is Sequential else []
    for m in fused.modules():
        for child in m._modules.values():
            if type(child) is Sequential and type(m) is not Sequential:
                tops.append(child)
    pairs = []
    for top in tops:
        run = list(_leaves(top))
        for i, (_, _, m) in enumerate(run):
            if not isinstance(m, _QuantizedLayer):
                continue
            j = i + 1
            while j < len(run) and type(run[j][2]) in _PASS and not run[j][2]._forward_hooks:
                j += 1
            if j == len(run) or not isinstance(run[j][2], _QuantizedLayer):
                continue
            if isinstance(m, QuantizedLinear) and isinstance(run[j][2], QuantizedConv2d):
                continue
            m._emit_u8()
            pairs.append((m, run[j][2]))
            for parent, name, between in run[i + 1:j]:
                if type(between) is MaxPool2d:
                    parent._modules[name] = QuantizedMaxPool2d(between)
                elif type(between) is Flatten:
                    parent._modules[name] = QuantizedFlatten(between)
                elif type(between) is Dropout:
                    parent._modules[name] = Identity()  # (eval: the identity)
    return pairs


def _convert(fused: Module, per_channel: bool):
    """Replace, in place, every Conv2d / Linear of an already fused model by its quantized
    form (weights quantized, input range still to set); a ReLU right after a Linear moves into
    its epilogue; int8 layers feeding int8 layers give uint8 (_chain). Returns ([(name,
    quantized layer)], [(producer, consumer)])."""
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
    return out, _chain(fused)


def rebuild(model: Module, settings: dict) -> Module:
    """The quantized structure of a float ``model``, as an eval-mode copy (its weights still to
    be loaded from a quantized state_dict): what :func:`cnnkit.load` does with a saved
    quantized model."""
    fused = fuse(model)
    _convert(fused, bool(settings.get("per_channel", True)))
    fused.quantized = dict(settings)
    fused.eval()
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
    layers, pairs = _convert(fused, per_channel)
    for name, q in layers:
        obs = observers[name]
        if obs.count == 0:
            raise ValueError(f"quantize: layer {name!r} saw no calibration input (is it used "
                             f"in forward?)")
        q._set_input(*obs.range())
    for producer, consumer in pairs:  # uint8 straight onto the consumer's input grid
        producer.output_scale.data[...] = consumer.input_scale.data
        producer.output_zero_point.data[...] = consumer.input_zero_point.data
    fused.quantized = {"per_channel": bool(per_channel), "method": method,
                       "percentile": float(percentile)}
    fused.eval()
    return fused
