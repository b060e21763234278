"""``cnnkit.onnx.export(model, input_shape, path, opset=17)``: a model as an ONNX file that
onnxruntime (or any ONNX runtime) runs.

How: one forward pass of the model on zeros [2, *input_shape], in eval mode and without a tape,
while every :class:`~cnnkit.tensor.Function` application is recorded (the op, its inputs, its
options, its output). Each record becomes one or a few ONNX nodes; parameters and buffers become
initializers under their state_dict names. So whatever a model's ``forward`` does with modules or
with ``cnnkit.functional`` (the ResNet's ``relu(out + shortcut(x))`` included) is exported, and
the model needs nothing ONNX-specific. Dropout is the identity in eval mode and leaves no node.

Translations (opset 17):

    Conv2d                  Conv (groups, dilation; a fused ReLU becomes a Relu node and a
                            MaxPool2d fused by nn.utils.fuse a MaxPool node after it)
    MaxPool2d / AvgPool2d   MaxPool / AveragePool; ceil_mode becomes explicit end padding, and
                            count_include_pad with ceil_mode an explicit Pad (so the divisor
                            counts the padding but not the overhang past it, as cnnkit does)
    AdaptiveAvgPool2d       GlobalAveragePool (1x1), AveragePool (sizes that divide), else two
                            MatMuls with the averaging matrices (any output size)
    BatchNorm1d/2d (eval)   BatchNormalization
    LocalResponseNorm       LRN (odd size); even sizes as Mul, AveragePool over channels, Pow, Div
                            (ONNX centres even windows differently from PyTorch)
    LayerNorm               LayerNormalization (opset 17); before 17 ReduceMean, Sub, Pow,
                            ReduceMean, Add, Sqrt, Div, Mul, Add
    GroupNorm               Reshape [N, G, -1], InstanceNormalization (scale 1, bias 0), Reshape
                            back, per-channel Mul and Add (as PyTorch exports it before opset 18)
    activations             Relu, LeakyRelu, Elu, Sigmoid, Tanh; Softmax, LogSoftmax
    Maxout                  Reshape [N, C/p, p, ...] + ReduceMax over the pieces
    Linear                  Gemm (2-D input), MatMul + Add otherwise
    Flatten, reshape        Reshape with 0 for the batch dimension (it stays dynamic)
    +, -, *, /, ...         Add, Sub, Mul, Div, Neg, Pow, Exp, Log, Abs, MatMul, Transpose,
                            ReduceMean, ReduceSum
    LocallyConnected2d      patches by a depthwise Conv with one-hot filters (exact), then a
                            batched MatMul with each position's weights, Transpose, Reshape, Add
    TiledConv2d             one Conv with all Th*Tw filter banks, then Mul by one-hot position
                            masks and ReduceSum over the banks (exact selection), Add bias

The input is ``input`` [N, *input_shape] with a symbolic batch N, the output ``output``. The
model is checked with ``onnx.checker.check_model(full_check=True)`` before it is written
(atomically). IR version 8, which every onnxruntime since 1.12 reads.

Needs the ``onnx`` extra: ``pip install "cnnkit[onnx]"``.
"""

from __future__ import annotations

import json

import numpy as np

from .._version import __version__
from ..autograd.function import record_applications
from ..autograd.grad_mode import no_grad
from ..nn.module import eval_mode
from ..shapes import conv_output_size
from ..tensor import Tensor
from .checkpoint import atomic_write

__all__ = ["IR_VERSION", "export"]

IR_VERSION = 8  # the IR of opset 17 (onnx 1.12); current onnxruntime releases load it
_INSTALL_HINT = 'pip install "cnnkit[onnx]"'


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(f"cnnkit.onnx.export needs the onnx package ({e}); install the "
                          f"optional extra: {_INSTALL_HINT}") from None
    return onnx, helper, numpy_helper


# --------------------------------------------------------------------------- tracing
class _Record:
    __slots__ = ("inputs", "op", "options", "output")

    def __init__(self, op, inputs, options, output):
        self.op, self.inputs, self.options, self.output = op, inputs, options, output


def _trace(model, x):
    """Run ``model(x)`` in eval mode, recording every operation this thread applies."""
    with eval_mode(model), no_grad(), record_applications() as applied:
        out = model(x)
    return [_Record(a.function.__name__, a.inputs, a.options, a.output) for a in applied], out


# --------------------------------------------------------------------------- graph builder
class _Graph:
    def __init__(self, helper, numpy_helper, names, opset=17):
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes, self.initializers = [], {}
        self.values = {}          # id(Tensor) -> value name
        self.keep = []            # the traced tensors, so their ids stay unique
        self.param_names = names  # id(Tensor or ndarray) -> state_dict key
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def const(self, array, hint="const", name=None) -> str:
        """An initializer (float arrays as float32, integer arrays as int64)."""
        a = np.asarray(array)
        a = a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float32)
        if name is None:
            name = self.fresh(hint)
        if name not in self.initializers:
            self.initializers[name] = self.numpy_helper.from_array(np.ascontiguousarray(a), name)
        return name

    def raw(self, array, hint="const", name=None) -> str:
        """An initializer in the array's own dtype (int8 weights, uint8 zero points)."""
        if name is None:
            name = self.fresh(hint)
        if name not in self.initializers:
            self.initializers[name] = self.numpy_helper.from_array(
                np.ascontiguousarray(np.asarray(array)), name)
        return name

    def ints(self, values, hint="shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def node(self, op, inputs, hint=None, **attrs) -> str:
        out = self.fresh(hint or op.lower())
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def value(self, v, hint="const") -> str:
        """The name of an op input: a traced tensor, a parameter/buffer (by its state_dict
        name) or a constant."""
        if isinstance(v, Tensor):
            if id(v) in self.values:
                return self.values[id(v)]
            if id(v) in self.param_names:
                return self.const(v.data, name=self.param_names[id(v)])
            return self.const(v.data, hint)
        if isinstance(v, np.ndarray) and id(v) in self.param_names:
            return self.const(v, name=self.param_names[id(v)])
        return self.const(np.asarray(v, dtype=np.float32) if not isinstance(v, np.ndarray)
                          else v, hint)

    def derived(self, param, suffix: str, array) -> str:
        """A constant computed from a parameter (e.g. a reshaped weight), named after it."""
        base = self.param_names.get(id(param))
        return self.const(array, name=f"{base}.{suffix}" if base else None, hint=suffix)


def _unsupported(rec, why=""):
    return NotImplementedError(f"cnnkit.onnx.export: cannot translate {rec.op}"
                               + (f" ({why})" if why else "") + " to ONNX")


# --------------------------------------------------------------------------- translations
def _end_padding(size, kernel, stride, pad, out):
    """End padding that gives ``out`` windows with floor division (ceil_mode made explicit)."""
    need = (out - 1) * stride + kernel - size - pad
    return max(pad, need)


def _pool_pads(kernel, stride, padding, in_hw, out_hw):
    """(kernel, stride, begin pads, end pads) of a pooling from ``in_hw`` to ``out_hw``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    (h, w), (ho, wo) = in_hw, out_hw
    eh, ew = _end_padding(h, kh, sh, ph, ho), _end_padding(w, kw, sw, pw, wo)
    return (kh, kw), (sh, sw), (ph, pw), (eh, ew)


def _rec_pool_pads(rec):
    o = rec.options
    return _pool_pads(o["kernel"], o["stride"], o["padding"], rec.inputs[0].shape[2:],
                      rec.output.shape[2:])


# ("cache" holds derived weights for the next call; it changes no value)
_CONV_OPTIONS = {"stride", "padding", "dilation", "groups", "relu", "pool", "cache"}


def _conv(g, rec, x):
    o = rec.options
    unknown = set(o) - _CONV_OPTIONS
    if unknown:  # some new fused state this translation would silently drop
        raise _unsupported(rec, f"unknown option(s) {', '.join(sorted(unknown))} of a Conv2d")
    w = rec.inputs[1]
    ins = [x, g.value(w)]
    if rec.inputs[2] is not None:
        ins.append(g.value(rec.inputs[2]))
    (ph, pw) = o["padding"]
    y = g.node("Conv", ins, kernel_shape=list(w.shape[2:]), strides=list(o["stride"]),
               pads=[ph, pw, ph, pw], dilations=list(o["dilation"]), group=int(o["groups"]))
    if o.get("relu"):
        y = g.node("Relu", [y])
    pool = o.get("pool")
    if pool is not None:
        # a MaxPool2d folded in by nn.utils.fuse (kernel, stride, padding, ceil_mode): the
        # convolution's own output size is the pooling's input size
        kernel, stride, padding, _ceil = pool
        conv_hw = conv_output_size(tuple(rec.inputs[0].shape[2:]), tuple(w.shape[2:]),
                                   tuple(o["stride"]), tuple(o["padding"]),
                                   tuple(o["dilation"]))
        y = _max_pool_node(g, y, _pool_pads(kernel, stride, padding, conv_hw,
                                            rec.output.shape[2:]))
    return y


def _patches(g, x, c, kernel, stride, padding):
    """[N, C, H, W] -> [N, C*kh*kw, Ho, Wo]: every receptive field as a column, by a depthwise
    convolution whose filters are one-hot (so the values are copied exactly)."""
    kh, kw = kernel
    eye = np.zeros((c * kh * kw, 1, kh, kw), np.float32)
    for ch in range(c):
        for u in range(kh):
            for v in range(kw):
                eye[ch * kh * kw + u * kw + v, 0, u, v] = 1.0
    ph, pw = padding
    return g.node("Conv", [x, g.const(eye, f"patches_{c}x{kh}x{kw}")], kernel_shape=[kh, kw],
                  strides=list(stride), pads=[ph, pw, ph, pw], group=c)


def _local_conv(g, rec, x):
    w, b = rec.inputs[1], rec.inputs[2]
    ho, wo, k, c, kh, kw = w.shape
    cols = _patches(g, x, c, (kh, kw), rec.options["stride"], rec.options["padding"])
    cols = g.node("Reshape", [cols, g.ints([0, c * kh * kw, ho * wo])])      # [N, CFF, L]
    cols = g.node("Transpose", [cols], perm=[2, 0, 1])                        # [L, N, CFF]
    wl = np.asarray(w.data).reshape(ho * wo, k, c * kh * kw).transpose(0, 2, 1)
    y = g.node("MatMul", [cols, g.derived(w, "matmul", wl)])                  # [L, N, K]
    y = g.node("Transpose", [y], perm=[1, 2, 0])                              # [N, K, L]
    y = g.node("Reshape", [y, g.ints([0, k, ho, wo])])
    if b is not None:
        y = g.node("Add", [y, g.value(b)])                                    # bias [K, Ho, Wo]
    return y


def _tiled_conv(g, rec, x):
    w, b = rec.inputs[1], rec.inputs[2]
    th, tw, k, c, kh, kw = w.shape
    ho, wo = rec.output.shape[2:]
    (ph, pw) = rec.options["padding"]
    banks = np.asarray(w.data).reshape(th * tw * k, c, kh, kw)
    y = g.node("Conv", [x, g.derived(w, "banks", banks)], kernel_shape=[kh, kw],
               strides=list(rec.options["stride"]), pads=[ph, pw, ph, pw])  # [N, T*K, Ho, Wo]
    y = g.node("Reshape", [y, g.ints([0, th * tw, k, ho, wo])])
    mask = np.zeros((th * tw, 1, ho, wo), np.float32)
    for i in range(ho):
        for j in range(wo):
            mask[(i % th) * tw + (j % tw), 0, i, j] = 1.0
    y = g.node("Mul", [y, g.const(mask, "tile_mask")])
    y = g.node("ReduceSum", [y, g.ints([1], "axes")], keepdims=0)          # [N, K, Ho, Wo]
    if b is not None:
        y = g.node("Add", [y, g.const(np.asarray(b.data).reshape(k, 1, 1),
                                      name=f"{g.param_names.get(id(b), 'tiled')}.bias_chw")])
    return y


def _max_pool_node(g, x, pads):
    """MaxPool with ceil_mode as explicit end padding (``pads`` from :func:`_pool_pads`)."""
    k, s, p, e = pads
    return g.node("MaxPool", [x], kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], e[0], e[1]])


def _max_pool(g, rec, x):
    return _max_pool_node(g, x, _rec_pool_pads(rec))


def _avg_pool(g, rec, x):
    k, s, p, e = _rec_pool_pads(rec)
    include = rec.options["count_include_pad"]
    if e[0] > p[0] or e[1] > p[1]:
        # ceil_mode windows overhang the padding. cnnkit (like PyTorch) never counts the
        # overhang in the divisor, but counts the padding when count_include_pad: pad
        # explicitly with zeros and let ONNX exclude only the (implicit) overhang
        if include and (p[0] or p[1]):
            x = g.node("Pad", [x, g.ints([0, 0, p[0], p[1], 0, 0, p[0], p[1]], "pads")])
            e, p = (e[0] - p[0], e[1] - p[1]), (0, 0)
        include = False
    return g.node("AveragePool", [x], kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], e[0], e[1]], count_include_pad=int(bool(include)))


def _adaptive_matrix(n, out):
    a = np.zeros((out, n), np.float64)
    for i in range(out):
        lo, hi = (i * n) // out, -((-(i + 1) * n) // out)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def _adaptive_avg_pool(g, rec, x):
    h, w = rec.inputs[0].shape[2:]
    oh, ow = rec.options["output_hw"]
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [x])
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return g.node("AveragePool", [x], kernel_shape=[kh, kw], strides=[kh, kw])
    # windows of unequal sizes: out = A_h @ x @ A_w^T with the averaging matrices
    y = g.node("MatMul", [g.const(_adaptive_matrix(h, oh), "adaptive_rows"), x])
    return g.node("MatMul", [y, g.const(_adaptive_matrix(w, ow).T, "adaptive_cols")])


def _batch_norm(g, rec, x):
    xin, weight, bias = rec.inputs
    mean, var = rec.options["running_mean"], rec.options["running_var"]
    c = xin.shape[1]
    scale = g.value(weight) if weight is not None else g.const(np.ones(c, np.float32), "ones")
    shift = g.value(bias) if bias is not None else g.const(np.zeros(c, np.float32), "zeros")
    return g.node("BatchNormalization", [x, scale, shift, g.value(mean), g.value(var)],
                  epsilon=float(rec.options["eps"]))


def _lrn(g, rec, x):
    size, alpha, beta, k = (rec.options[n] for n in ("size", "alpha", "beta", "k"))
    if size % 2:
        return g.node("LRN", [x], size=int(size), alpha=float(alpha), beta=float(beta),
                      bias=float(k))
    # even windows: PyTorch's reaches size // 2 channels back, ONNX's (size - 1) // 2; spell out
    # PyTorch's: the mean of squares over channels as a 3-D average pool on [N, 1, C, H, W]
    shape = list(rec.inputs[0].shape[1:])
    sq = g.node("Mul", [x, x])
    sq = g.node("Reshape", [sq, g.ints([0, 1] + shape)])
    before, after = size // 2, (size - 1) // 2
    avg = g.node("AveragePool", [sq], kernel_shape=[size, 1, 1],
                 pads=[before, 0, 0, after, 0, 0], count_include_pad=1)
    avg = g.node("Reshape", [avg, g.ints([0] + shape)])
    den = g.node("Add", [g.node("Mul", [avg, g.const(np.float32(alpha))]),
                         g.const(np.float32(k))])
    den = g.node("Pow", [den, g.const(np.float32(beta))])
    return g.node("Div", [x, den])


def _array(v):
    return np.asarray(v.data if isinstance(v, Tensor) else v, dtype=np.float32)


def _layer_norm(g, rec, x):
    _, weight, bias = rec.inputs
    shape, eps = tuple(rec.options["normalized_shape"]), float(rec.options["eps"])
    if g.opset >= 17:
        scale = (g.value(weight) if weight is not None
                 else g.const(np.ones(shape, np.float32), "ones"))
        ins = [x, scale] + ([g.value(bias)] if bias is not None else [])
        return g.node("LayerNormalization", ins, axis=-len(shape), epsilon=eps)
    axes = list(range(-len(shape), 0))
    d = g.node("Sub", [x, g.node("ReduceMean", [x], axes=axes, keepdims=1)])
    var = g.node("ReduceMean", [g.node("Pow", [d, g.const(np.float32(2.0))])], axes=axes,
                 keepdims=1)
    y = g.node("Div", [d, g.node("Sqrt", [g.node("Add", [var, g.const(np.float32(eps))])])])
    if weight is not None:
        y = g.node("Mul", [y, g.value(weight)])
    return g.node("Add", [y, g.value(bias)]) if bias is not None else y


def _group_norm(g, rec, x):
    xin, weight, bias = rec.inputs
    groups, shape = int(rec.options["num_groups"]), list(xin.shape[1:])
    y = g.node("Reshape", [x, g.ints([0, groups, -1])])
    y = g.node("InstanceNormalization", [y, g.const(np.ones(groups, np.float32), "ones"),
                                         g.const(np.zeros(groups, np.float32), "zeros")],
               epsilon=float(rec.options["eps"]))
    y = g.node("Reshape", [y, g.ints([0] + shape)])
    per_channel = (shape[0],) + (1,) * (len(shape) - 1)  # [C, 1, ...] broadcasts over [N, C, ...]
    for op, v in (("Mul", weight), ("Add", bias)):
        if v is not None:
            y = g.node(op, [y, g.derived(v, "per_channel", _array(v).reshape(per_channel))])
    return y


def _maxout(g, rec, x):
    shape = rec.inputs[0].shape
    p = rec.options["pieces"]
    y = g.node("Reshape", [x, g.ints([0, shape[1] // p, p] + list(shape[2:]))])
    return g.node("ReduceMax", [y], axes=[2], keepdims=0)


def _linear(g, rec, x):
    xin, w, b = rec.inputs
    if xin.ndim == 2:
        ins = [x, g.value(w)] + ([g.value(b)] if b is not None else [])
        return g.node("Gemm", ins, transB=1)
    y = g.node("MatMul", [x, g.derived(w, "T", np.asarray(w.data).T)])
    return g.node("Add", [y, g.value(b)]) if b is not None else y


def _qdq_operands(g, rec, x):
    """cnnkit.quantization's layers in QDQ form: the input through QuantizeLinear and
    DequantizeLinear (uint8, the layer's scale and zero point), the int8 weights through
    DequantizeLinear (per output channel, axis 0, zero points 0); returns (x', w', bias)."""
    _, wq, w_scale, bias, in_scale, in_zp = rec.inputs
    base = g.param_names.get(id(wq), "").rsplit(".", 1)[0]
    pre = f"{base}." if base else ""
    s_x = g.raw(np.asarray(in_scale.data, np.float32).reshape(()), name=pre + "input_scale")
    z_x = g.raw(np.asarray(in_zp.data).astype(np.uint8).reshape(()),
                name=pre + "input_zero_point.u8")
    xq = g.node("QuantizeLinear", [x, s_x, z_x])
    xd = g.node("DequantizeLinear", [xq, s_x, z_x])
    w = g.raw(np.asarray(wq.data, np.int8), name=pre + "weight_int8")
    ws = g.raw(np.asarray(w_scale.data, np.float32), name=pre + "weight_scale")
    wz = g.raw(np.zeros(wq.shape[0], np.int8), name=pre + "weight_zero_point")
    wd = g.node("DequantizeLinear", [w, ws, wz], axis=0)
    b = g.value(bias) if bias is not None else None
    return xd, wd, b


def _int8_conv(g, rec, x):
    o = rec.options
    xd, wd, b = _qdq_operands(g, rec, x)
    wq = rec.inputs[1]
    (ph, pw) = o["padding"]
    y = g.node("Conv", [xd, wd] + ([b] if b else []), kernel_shape=list(wq.shape[2:]),
               strides=list(o["stride"]), pads=[ph, pw, ph, pw],
               dilations=list(o["dilation"]), group=int(o["groups"]))
    if o["relu"]:
        y = g.node("Relu", [y])
    if o["pool"] is not None:
        kernel, stride, padding, _ceil = o["pool"]
        conv_hw = conv_output_size(tuple(rec.inputs[0].shape[2:]), tuple(wq.shape[2:]),
                                   tuple(o["stride"]), tuple(o["padding"]),
                                   tuple(o["dilation"]))
        y = _max_pool_node(g, y, _pool_pads(kernel, stride, padding, conv_hw,
                                            rec.output.shape[2:]))
    return y


def _int8_linear(g, rec, x):
    xd, wd, b = _qdq_operands(g, rec, x)
    y = g.node("Gemm", [xd, wd] + ([b] if b else []), transB=1)
    return g.node("Relu", [y]) if rec.options["relu"] else y


def _reshape(g, rec, x):
    target = list(rec.options["shape"])
    if len(target) == 1 and isinstance(target[0], (tuple, list)):
        target = list(target[0])
    src = rec.inputs[0].shape
    # the batch dimension stays symbolic: 0 copies it from the input
    if target and src and target[0] == src[0]:
        target[0] = 0
    return g.node("Reshape", [x, g.ints(target)])


_SIMPLE = {"ReLUFunction": "Relu", "SigmoidFunction": "Sigmoid", "TanhFunction": "Tanh",
           "Neg": "Neg", "Exp": "Exp", "Log": "Log", "Abs": "Abs"}
_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "MatMul": "MatMul"}


def _translate(g, rec):
    op, o = rec.op, rec.options
    if op in _BINARY:
        return g.node(_BINARY[op], [g.value(rec.inputs[0]), g.value(rec.inputs[1])])
    x = g.value(rec.inputs[0])
    if op in _SIMPLE:
        return g.node(_SIMPLE[op], [x])
    if op == "Conv2dFunction":
        return _conv(g, rec, x)
    if op == "LocalConv2dFunction":
        return _local_conv(g, rec, x)
    if op == "TiledConv2dFunction":
        return _tiled_conv(g, rec, x)
    if op == "MaxPool2dFunction":
        return _max_pool(g, rec, x)
    if op == "AvgPool2dFunction":
        return _avg_pool(g, rec, x)
    if op == "AdaptiveAvgPool2dFunction":
        return _adaptive_avg_pool(g, rec, x)
    if op == "LeakyReLUFunction":
        return g.node("LeakyRelu", [x], alpha=float(o["slope"]))
    if op == "ELUFunction":
        return g.node("Elu", [x], alpha=float(o["alpha"]))
    if op == "MaxoutFunction":
        return _maxout(g, rec, x)
    if op == "BatchNormEvalFunction":
        return _batch_norm(g, rec, x)
    if op == "LocalResponseNormFunction":
        return _lrn(g, rec, x)
    if op == "LayerNormFunction":
        return _layer_norm(g, rec, x)
    if op == "GroupNormFunction":
        return _group_norm(g, rec, x)
    if op == "LinearFunction":
        return _linear(g, rec, x)
    if op == "Int8Conv2dFunction":
        return _int8_conv(g, rec, x)
    if op == "Int8LinearFunction":
        return _int8_linear(g, rec, x)
    if op in ("SoftmaxFunction", "LogSoftmaxFunction"):
        return g.node(op[: -len("Function")], [x], axis=int(o["dim"]))
    if op == "Reshape":
        return _reshape(g, rec, x)
    if op == "Permute":
        return g.node("Transpose", [x], perm=[int(a) for a in o["axes"]])
    if op == "Pow":
        return g.node("Pow", [x, g.const(np.float32(o["exponent"]))])
    if op in ("Mean", "Sum"):
        nd = rec.inputs[0].ndim
        axes = list(range(nd)) if o["dim"] is None else [
            d % nd for d in ((o["dim"],) if isinstance(o["dim"], int) else o["dim"])]
        if op == "Mean":
            return g.node("ReduceMean", [x], axes=axes, keepdims=int(bool(o["keepdim"])))
        return g.node("ReduceSum", [x, g.ints(axes, "axes")], keepdims=int(bool(o["keepdim"])))
    if op in ("BatchNormTrainFunction", "DropoutFunction"):
        raise _unsupported(rec, "a training-mode op ran in eval mode; does the model's forward "
                                "pass training=True explicitly?")
    raise _unsupported(rec)


# --------------------------------------------------------------------------- export
def export(model, input_shape, path=None, opset: int = 17, *, input_name: str = "input",
           output_name: str = "output", check: bool = True):
    """Write ``model`` as an ONNX file.

    Parameters
    ----------
    model : cnnkit.nn.Module
        Exported in eval mode (its modes are restored afterwards).
    input_shape : tuple of int
        One example's shape without the batch dimension, e.g. ``(3, 32, 32)`` (as
        ``cnnkit.summary`` takes it). The batch dimension stays dynamic (``N``).
    path : str or PathLike, optional
        Where to write the ``.onnx`` file (atomically); None writes nothing.
    opset : int
        ONNX opset, at least 13 (default 17).
    check : bool
        Run ``onnx.checker.check_model(model, full_check=True)`` first.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ImportError
        Without the onnx package (``pip install "cnnkit[onnx]"``).
    NotImplementedError
        Naming an operation the model ran that has no ONNX translation.
    """
    onnx, helper, numpy_helper = _require_onnx()
    opset = int(opset)
    if not 13 <= opset <= 17:
        # ReduceMax/ReduceMean take axes as attributes up to 17, inputs from 18 on
        raise ValueError(f"cnnkit.onnx.export: opset must be 13..17, got {opset}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError("cnnkit.onnx.export: input_shape must be one example's shape without "
                         f"the batch dimension, e.g. (3, 32, 32); got {input_shape!r}")
    x = Tensor(np.zeros((2,) + shape, np.float32))
    records, out = _trace(model, x)
    if not isinstance(out, Tensor):
        raise TypeError(f"cnnkit.onnx.export: the model must return one Tensor, got "
                        f"{type(out).__name__}")

    names = {}
    for key, t in model._persistent_state():
        names.setdefault(id(t), key)
        names.setdefault(id(t.data), key)
    g = _Graph(helper, numpy_helper, names, opset)
    g.values[id(x)] = input_name
    for rec in records:
        g.keep.append(rec)
        g.values[id(rec.output)] = _translate(g, rec)
    if id(out) not in g.values:
        raise ValueError("cnnkit.onnx.export: the model's output does not depend on its input")
    g.nodes.append(helper.make_node("Identity", [g.values[id(out)]], [output_name],
                                    name=output_name))

    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT,
                                       ["N", *out.shape[1:]])],
        initializer=list(g.initializers.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="cnnkit", producer_version=__version__)
    proto.ir_version = IR_VERSION
    config = getattr(model, "config", None)
    if config:
        helper.set_model_props(proto, {"cnnkit.config": json.dumps(config)})
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        atomic_write(path, proto.SerializeToString())
    return proto
