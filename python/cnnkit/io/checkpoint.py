"""``cnnkit.save(obj, path)`` / ``cnnkit.load(path)``: nested Python objects in one
safetensors file.

A checkpoint is a tree: dicts, lists, tuples, numbers, strings, None, booleans and arrays
(numpy arrays or Tensors). The arrays become the safetensors tensors; everything else becomes
one JSON document in the file's metadata (key ``"cnnkit"``), where each array is replaced by
``{"__array__": key}``. So a file stays readable by any safetensors reader (the tensors of a
``state_dict`` keep their PyTorch key names), and nothing is ever unpickled on load.

Keys: at the top level of a dict the key itself (``features.0.weight``); deeper down the path
joined with ``/`` (``optimizer/state/0/momentum_buffer``).

JSON cannot say everything Python can, so a few values are tagged: tuples
(``{"__tuple__": [...]}``), dicts whose keys are not all strings (``{"__items__": [[k, v], ...]}``,
e.g. an optimizer's per-parameter state numbered 0, 1, ...), ``collections.Counter`` and
``OrderedDict``. numpy scalars become Python numbers; infinities and NaN are written as JSON's
common extension (``Infinity``, ``NaN``), which Python reads back.

Arrays are written C-contiguous (transposed or Fortran-ordered views are copied first); 0-d
arrays stay 0-d. The write is atomic: a temporary file in the same folder, flushed and fsynced,
then ``os.replace``d over the target (and the folder fsynced, so the rename itself survives a
power cut); a process killed at any moment leaves the previous checkpoint intact.

A model (any ``nn.Module`` that carries a ``config``, as every ``cnnkit.models`` builder's
does) is stored as its config, its training flag and its state_dict
(``{"__module__": {...}}``; a model made by ``cnnkit.quantization.quantize`` also records its
settings, and its state_dict holds the int8 weights, their scales and the inputs' scales and
zero points in their own dtypes); :func:`load` rebuilds it with ``cnnkit.models.build(config)`` and
loads the weights, so ``ck.save(model, path)`` then ``ck.load(path)`` gives the model back
without the caller repeating its architecture. Saved alone, its tensors keep their PyTorch key
names at the top level of the file.

The metadata also records the CRC-32 of every tensor's bytes (key order), so a file whose data
was damaged after writing (a flipped bit, a partial copy) is refused with a ValueError that
names the file, instead of loading wrong weights.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import zlib

import numpy as np

from .._version import __version__
from ..models import build
from ..nn.module import Module
from ..quantization import rebuild as rebuild_quantized
from ..tensor import Tensor

__all__ = ["FORMAT", "atomic_write", "load", "save"]

FORMAT = "cnnkit-checkpoint-1"
_META_KEY = "cnnkit"
# read once at import: os.umask can only be read by setting it, which races with other threads
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _is_array(value) -> bool:

    return isinstance(value, (np.ndarray, Tensor))


def _encode(value, path: list, arrays: dict):
    """The JSON-able form of ``value``; arrays move into ``arrays``."""
    if isinstance(value, Module):
        return {"__module__": _encode_module(value, path, arrays)}
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"save: array at {'/'.join(path) or '<root>'} has dtype object")
        # path[0] == "" marks a dict at the root: its entries keep their own names
        key = "/".join(path[1:] if path and path[0] == "" else path) or "<root>"
        base, n = key, 1
        while key in arrays:
            key, n = f"{base}#{n}", n + 1
        # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
        arrays[key] = value if value.flags.c_contiguous else np.array(value, order="C")
        return {"__array__": key}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, collections.Counter):
        return {"__counter__": [[_encode(k, path + [str(k)], arrays), v]
                                for k, v in value.items()]}
    if isinstance(value, dict):
        items = [(k, _encode(v, path + [str(k)], arrays)) for k, v in value.items()]
        if all(isinstance(k, str) for k in value) and not any(k.startswith("__") for k in value):
            out = dict(items)
            return {"__ordered__": out} if isinstance(value, collections.OrderedDict) else out
        return {"__items__": [[_encode(k, path, {}), v] for k, v in items],
                "__ordered__": isinstance(value, collections.OrderedDict)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, path + [str(i)], arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, path + [str(i)], arrays) for i, v in enumerate(value)]
    raise TypeError(f"save: cannot store a {type(value).__name__} "
                    f"(at {'/'.join(p for p in path if p) or '<root>'}); use dicts, lists, "
                    "tuples, numbers, strings, None and arrays")


def _encode_module(model, path: list, arrays: dict) -> dict:
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        where = "/".join(p for p in path if p) or "<root>"
        raise TypeError(
            f"save: the {type(model).__name__} at {where} has no config (name + arguments), so "
            "it could not be rebuilt on load; save model.state_dict() instead, or build the "
            "model with cnnkit.models (cnnkit.models.register adds a builder)")
    state = model.state_dict()
    # at the root (path [""]) the tensors keep their own (PyTorch) names: the file is also a
    # plain state dict for any safetensors reader
    entries = {k: _encode(v, path + [k], arrays) for k, v in state.items()}
    out = {"config": _encode(config, path + ["config"], arrays),
           "training": bool(model.training), "state": {"__ordered__": entries}}
    quantized = getattr(model, "quantized", None)  # cnnkit.quantization.quantize's settings
    if isinstance(quantized, dict):
        out["quantized"] = _encode(quantized, path + ["quantized"], arrays)
    return out


def _decode_module(value, arrays: dict):

    config = _decode(value["config"], arrays)
    model = build(config)
    if value.get("quantized") is not None:  # the int8 structure (an eval copy), its state
        model = rebuild_quantized(model, _decode(value["quantized"], arrays))
    model.load_state_dict(_decode(value["state"], arrays))
    model.train(bool(value.get("training", False)))
    return model


def _checksum(arrays: dict) -> str:
    """CRC-32 of every array's bytes in key order (layout-independent, so the reader checks
    it on the arrays it decoded)."""
    crc = 0
    for k in sorted(arrays):
        a = np.asarray(arrays[k])
        crc = zlib.crc32(k.encode(), crc)
        crc = zlib.crc32(str((a.dtype.str, a.shape)).encode(), crc)
        if a.size:
            crc = zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def _decode(value, arrays: dict):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__module__" in value:
        return _decode_module(value["__module__"], arrays)
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__counter__" in value:
        return collections.Counter({_decode(k, arrays): v for k, v in value["__counter__"]})
    if "__items__" in value:
        cls = collections.OrderedDict if value.get("__ordered__") else dict
        return cls((_decode(k, arrays), _decode(v, arrays)) for k, v in value["__items__"])
    if "__ordered__" in value:
        return collections.OrderedDict((k, _decode(v, arrays))
                                       for k, v in value["__ordered__"].items())
    return {k: _decode(v, arrays) for k, v in value.items()}


def save(obj, path) -> None:
    """Write ``obj`` (a state dict, a model, or any tree of dicts/lists/numbers/strings/arrays
    and models) to ``path`` as safetensors, atomically (see the module docstring)."""
    from safetensors.numpy import save as st_save


    arrays = {}
    root = isinstance(obj, (dict, Module))
    tree = _encode(obj, [""] if root else [], arrays)
    meta = {"format": FORMAT, "cnnkit_version": __version__, "crc32": _checksum(arrays),
            _META_KEY: json.dumps(tree, allow_nan=True)}
    atomic_write(path, st_save(arrays, metadata=meta))


def atomic_write(path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` so that readers only ever see the old file or the complete
    new one: a temporary file in the same folder (same file system, so the rename is atomic),
    flushed and fsynced, renamed over ``path``, then the folder fsynced (the rename itself
    durable). A failure removes the temporary file and leaves ``path`` untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp creates the file 0600; give the result the usual permissions
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some file systems refuse fsync on a folder
        pass


def _read_header(path: str) -> dict:
    """The safetensors JSON header, with clear errors for files that are not safetensors."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"load: {path} is not a safetensors file ({size} bytes, too short)")
        n = int.from_bytes(head, "little")
        if n <= 0 or 8 + n > size:
            raise ValueError(f"load: {path} is not a safetensors file or is truncated "
                             f"(header says {n} bytes, file has {size})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"load: {path} has a corrupt safetensors header ({e})") from None
    try:
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
                  default=0)
    except (AttributeError, KeyError, TypeError, IndexError):
        raise ValueError(f"load: {path} is not a safetensors file (its header is JSON but not "
                         "a table of tensors)") from None
    if 8 + n + end > size:
        raise ValueError(f"load: {path} is truncated (tensor data needs {8 + n + end} bytes, "
                         f"file has {size})")
    return header


def load(path):
    """Read what :func:`save` wrote; a saved model comes back rebuilt (see the module
    docstring). A safetensors file written by another program (no cnnkit metadata) loads as a
    dict of its tensors. Raises FileNotFoundError for a missing file and ValueError, naming the
    file and the problem, for a truncated, corrupt or foreign one."""
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    header = _read_header(path)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        arrays = st_load(blob)
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"load: cannot read {path}: {e}") from None
    del blob
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):  # a problem of the file, not of the caller's types
        raise ValueError(  # noqa: TRY004
            f"load: {path} has a corrupt safetensors header (metadata is a "
            f"{type(meta).__name__})")
    if "crc32" in meta and meta["crc32"] != _checksum(arrays):
        raise ValueError(f"load: {path} is corrupt: its tensor data does not match the "
                         f"checksum written with it (crc32 {meta['crc32']})")
    if _META_KEY not in meta:
        return collections.OrderedDict((k, arrays[k]) for k in header if k != "__metadata__")
    try:
        tree = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"load: {path} has corrupt cnnkit metadata ({e})") from None
    try:
        return _decode(tree, arrays)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"load: {path} has inconsistent cnnkit metadata "
                         f"({type(e).__name__}: {e})") from None
    except (ValueError, RuntimeError) as e:  # a model that cannot be rebuilt from its config
        raise ValueError(f"load: {path}: {e}") from None
