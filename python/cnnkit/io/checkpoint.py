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
then ``os.replace``d over the target, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile

import numpy as np

__all__ = ["save", "load", "FORMAT"]

FORMAT = "cnnkit-checkpoint-1"
_META_KEY = "cnnkit"


def _is_array(value) -> bool:
    from ..tensor import Tensor

    return isinstance(value, (np.ndarray, Tensor))


def _encode(value, path: list, arrays: dict):
    """The JSON-able form of ``value``; arrays move into ``arrays``."""
    from ..tensor import Tensor

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


def _decode(value, arrays: dict):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
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
    """Write ``obj`` (a state dict, or any tree of dicts/lists/numbers/strings/arrays) to
    ``path`` as safetensors, atomically (see the module docstring)."""
    from safetensors.numpy import save as st_save

    from .. import __version__

    arrays = {}
    tree = _encode(obj, [""] if isinstance(obj, dict) else [], arrays)
    meta = {"format": FORMAT, "cnnkit_version": __version__,
            _META_KEY: json.dumps(tree, allow_nan=True)}
    blob = st_save(arrays, metadata=meta)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
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
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
              default=0)
    if 8 + n + end > size:
        raise ValueError(f"load: {path} is truncated (tensor data needs {8 + n + end} bytes, "
                         f"file has {size})")
    return header


def load(path):
    """Read what :func:`save` wrote. A safetensors file written by another program (no cnnkit
    metadata) loads as a dict of its tensors. Raises FileNotFoundError for a missing file and
    ValueError for a truncated or corrupt one."""
    from safetensors.numpy import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    header = _read_header(path)
    try:
        arrays = load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"load: cannot read {path}: {e}") from None
    meta = header.get("__metadata__") or {}
    if _META_KEY not in meta:
        return collections.OrderedDict((k, arrays[k]) for k in header if k != "__metadata__")
    tree = json.loads(meta[_META_KEY])
    return _decode(tree, arrays)
