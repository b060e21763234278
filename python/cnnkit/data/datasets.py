"""Datasets as in-memory arrays: scikit-learn's bundled digits, MNIST (IDX files), CIFAR-10
(python-pickle batches) and, in :mod:`.image_folder`, folders of your own pictures. Nothing
is downloaded: a missing file raises FileNotFoundError saying which file was expected and where
to get it; a truncated or wrong-format file raises ValueError naming the file and what is
wrong.

Every loader returns ``(train, test)``, two :class:`ArrayDataset` with ``images`` float32
[N, C, H, W] scaled to [0, 1], ``labels`` int64 [N] and ``classes`` (the class names).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile

import numpy as np

from .array_dataset import ArrayDataset

__all__ = ["ArrayDataset", "load_digits", "load_mnist", "load_cifar10", "load_dataset",
           "CIFAR10_CLASSES", "DIGITS_SEED"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
DIGITS_SEED = 0          # the fixed split of load_digits
DIGITS_TEST_FRACTION = 0.2
MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (or the mirror https://ossci-datasets.s3.amazonaws.com/mnist/)"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


# --------------------------------------------------------------------------- digits
def load_digits(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SEED):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, values 0..16 scaled to
    [0, 1]) as [N, 1, 8, 8] float32, split into train and test with a fixed, seeded, stratified
    split (by default 1437 train / 360 test). Returns ``(train, test)``."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=test_fraction,
                                              random_state=seed, stratify=labels)
    classes = tuple(str(i) for i in range(10))
    return (ArrayDataset(x_tr, y_tr, classes, "digits-train"),
            ArrayDataset(x_te, y_te, classes, "digits-test"))


# --------------------------------------------------------------------------- MNIST (IDX)
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801


def _find(folder: str, names, op: str, what: str, url: str) -> str:
    for sub in ("", "raw", os.path.join("MNIST", "raw")):
        for name in names:
            p = os.path.join(folder, sub, name)
            if os.path.isfile(p):
                return p
    raise FileNotFoundError(
        f"{op}: expected {' or '.join(names)} ({what}) in {folder}; nothing is downloaded, "
        f"get the files from {url}"
    )


def _read_maybe_gzip(path: str, op: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{op}: {path} is a truncated or corrupt gzip file ({e})") from None


def _parse_idx(data: bytes, path: str, magic: int, op: str) -> np.ndarray:
    ndim = 3 if magic == _IDX_IMAGES else 1
    kind = "image" if ndim == 3 else "label"
    header = 4 + 4 * ndim
    got = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if got is not None and got != magic:
        raise ValueError(f"{op}: {path} is not an IDX {kind} file (magic number 0x{got:08x}, "
                         f"expected 0x{magic:08x})")
    if len(data) < header:
        raise ValueError(f"{op}: {path} is truncated: {len(data)} bytes, shorter than the "
                         f"{header}-byte IDX {kind} header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    need = header + int(np.prod(dims))
    if len(data) < need:
        raise ValueError(f"{op}: {path} is truncated: its header says {' x '.join(map(str, dims))}"
                         f" {kind}s ({need} bytes) but it has {len(data)} bytes")
    if len(data) > need:
        raise ValueError(f"{op}: {path} has {len(data) - need} bytes more than its header's "
                         f"{' x '.join(map(str, dims))} {kind}s")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _mnist_split(folder: str, prefix: str, op: str):
    ipath = _find(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz",
                           f"{prefix}-images.idx3-ubyte"], op, f"{prefix} images", MNIST_URL)
    lpath = _find(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz",
                           f"{prefix}-labels.idx1-ubyte"], op, f"{prefix} labels", MNIST_URL)
    images = _parse_idx(_read_maybe_gzip(ipath, op), ipath, _IDX_IMAGES, op)
    labels = _parse_idx(_read_maybe_gzip(lpath, op), lpath, _IDX_LABELS, op)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{op}: {ipath} has {images.shape[0]} images but {lpath} has "
                         f"{labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{op}: {lpath} has label {int(labels.max())}; MNIST labels are 0..9")
    return images.astype(np.float32)[:, None] / np.float32(255), labels.astype(np.int64)


def load_mnist(path):
    """MNIST from its four IDX files in folder ``path`` (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    raw or ``.gz``; also found under ``path/raw``). Images [N, 1, 28, 28] float32 in [0, 1].
    Returns ``(train, test)``."""
    op = "load_mnist"
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{op}: {folder} is not a folder; it should hold the four MNIST "
                                f"IDX files from {MNIST_URL}")
    classes = tuple(str(i) for i in range(10))
    x_tr, y_tr = _mnist_split(folder, "train", op)
    x_te, y_te = _mnist_split(folder, "t10k", op)
    return (ArrayDataset(x_tr, y_tr, classes, "mnist-train"),
            ArrayDataset(x_te, y_te, classes, "mnist-test"))


# --------------------------------------------------------------------------- CIFAR-10
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts, lists, bytes and numpy arrays) and nothing else, so a
    hostile file cannot run code."""

    _allowed = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(data: bytes, where: str, op: str) -> dict:
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # truncated pickles raise EOFError, UnpicklingError, ValueError...
        raise ValueError(f"{op}: {where} is truncated or not a CIFAR-10 python batch "
                         f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{op}: {where} is not a CIFAR-10 python batch (a {type(obj).__name__}, "
                         "expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(data: bytes, where: str, op: str):
    d = _unpickle(data, where, op)
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{op}: {where} is not a CIFAR-10 python batch (keys {sorted(d)}, "
                         "expected 'data' and 'labels')")
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{op}: {where}: 'data' is {x.dtype} {list(x.shape)}, expected uint8 "
                         "[N, 3072] (3 x 32 x 32)")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{op}: {where} has {x.shape[0]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{op}: {where} has labels outside 0..9")
    return x.reshape(-1, 3, 32, 32), y


_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _cifar_from_tar(archive: str, op: str) -> dict:
    try:
        with tarfile.open(archive, "r:*") as tar:
            found = {}
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and (base in _CIFAR_FILES or base == "batches.meta"):
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{op}: {archive} is a truncated or corrupt archive ({e})") from None
    missing = [n for n in _CIFAR_FILES if n not in found]
    if missing:
        raise ValueError(f"{op}: {archive} lacks {', '.join(missing)} (not the CIFAR-10 python "
                         f"archive from {CIFAR10_URL}?)")
    return {n: (f"{n} in {archive}", data) for n, data in found.items()}


def _cifar_from_folder(folder: str, op: str) -> dict:
    for sub in ("", "cifar-10-batches-py"):
        if os.path.isfile(os.path.join(folder, sub, "data_batch_1")):
            folder = os.path.join(folder, sub)
            break
    else:
        tgz = os.path.join(folder, "cifar-10-python.tar.gz")
        if os.path.isfile(tgz):
            return _cifar_from_tar(tgz, op)
    out = {}
    for name in _CIFAR_FILES + ["batches.meta"]:
        p = os.path.join(folder, name)
        if not os.path.isfile(p):
            if name == "batches.meta":
                continue
            raise FileNotFoundError(
                f"{op}: expected {p} (the CIFAR-10 python batches data_batch_1..5 and "
                f"test_batch, or cifar-10-python.tar.gz); nothing is downloaded, get "
                f"{CIFAR10_URL}"
            )
        with open(p, "rb") as f:
            out[name] = (p, f.read())
    return out


def load_cifar10(path):
    """CIFAR-10 from the python-pickle batches (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``): ``path`` is the extracted ``cifar-10-batches-py`` folder, a folder holding
    it, or the ``cifar-10-python.tar.gz`` archive (or a folder holding that). Images
    [N, 3, 32, 32] float32 in [0, 1]; classes airplane ... truck. Returns ``(train, test)``."""
    op = "load_cifar10"
    p = os.fspath(path)
    if os.path.isfile(p):
        files = _cifar_from_tar(p, op)
    elif os.path.isdir(p):
        files = _cifar_from_folder(p, op)
    else:
        raise FileNotFoundError(f"{op}: {p} does not exist; expected the cifar-10-python.tar.gz "
                                f"archive or its extracted folder (from {CIFAR10_URL})")
    classes = CIFAR10_CLASSES
    if "batches.meta" in files:
        where, data = files["batches.meta"]
        meta = _unpickle(data, where, op)
        names = meta.get("label_names")
        if names is not None and len(names) == 10:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    parts = [_cifar_batch(files[n][1], files[n][0], op) for n in _CIFAR_FILES]
    scale = np.float32(1 / 255)
    x_tr = np.concatenate([x for x, _ in parts[:5]]).astype(np.float32) * scale
    y_tr = np.concatenate([y for _, y in parts[:5]])
    x_te, y_te = parts[5]
    return (ArrayDataset(x_tr, y_tr, classes, "cifar10-train"),
            ArrayDataset(x_te.astype(np.float32) * scale, y_te, classes, "cifar10-test"))


# --------------------------------------------------------------------------- by name
def load_dataset(spec: str):
    """``"digits"``, ``"mnist:PATH"``, ``"cifar10:PATH"`` or ``"folder:PATH[@OPTIONS]"`` (the
    command line's --dataset); returns ``(train, test)``.

    ``folder:PATH`` is a folder of pictures with one subfolder per class (or train/, val/,
    test/ subfolders of those), read by :func:`cnnkit.data.load_image_folder`. OPTIONS, after
    the last "@", are comma-separated: the size ``N`` or ``HxW`` (default 32), ``gray`` and
    ``skip_bad`` (unreadable files left out and counted in a warning instead of an error), e.g.
    ``folder:~/pets``, ``folder:~/pets@64``, ``folder:~/pets@96x128,gray,skip_bad``."""
    name, _, path = spec.partition(":")
    name = name.lower()
    if name == "folder":
        from .image_folder import load_image_folder, parse_folder_spec

        folder, size, channels, skip_bad = parse_folder_spec(path)
        return load_image_folder(folder, size, channels, skip_bad=skip_bad)
    if name == "digits":
        if path:
            raise ValueError(f"dataset {spec!r}: digits is bundled and takes no path")
        return load_digits()
    if name in ("mnist", "cifar10"):
        if not path:
            raise ValueError(f"dataset {spec!r}: say where the files are, e.g. {name}:/data/{name}")
        return load_mnist(path) if name == "mnist" else load_cifar10(path)
    raise ValueError(f"unknown dataset {spec!r}; expected digits, mnist:PATH, cifar10:PATH or "
                     "folder:PATH[@SIZE] (a folder of pictures, one subfolder per class)")
