"""Your own pictures as a data set: a folder with one subfolder per class::

    pets/cat/1.jpg  pets/cat/2.png  ...  pets/dog/7.jpg  ...

    train, test = cnnkit.data.load_image_folder("pets", size=32)    # ArrayDataset-like
    x = cnnkit.data.load_image("new.jpg", size=32)                  # float32 [3, 32, 32]

or on the command line ``cnnkit train --dataset folder:pets@32``.

The layout
    Class names are the subfolder names, sorted (Python's string order, so "Dog" comes before
    "cat"); a class's images may sit in nested folders under its class folder. Names starting
    with "." (hidden files and folders, the cache folder among them) are ignored, as are files
    whose extension is not one of :data:`IMAGE_EXTENSIONS` (.jpg, .jpeg, .png, .bmp, .webp, in
    any case): a README or a .txt next to the pictures is not an error. Image files directly in
    the root, next to the class folders, are ignored; a root with images but no class folders
    is an error explaining the layout. An empty class folder is an error (also with
    ``skip_bad``: silently dropping a class would renumber the others), and so is a single
    class.

The decode (:func:`load_image` and the folders use the same function)
    Pillow opens the file whatever its extension says; EXIF orientation is applied (phone
    pictures come out upright); the image is converted to RGB (``channels=3``) or to L, Pillow's
    ITU-R 601-2 luma (``channels=1``); images with transparency (RGBA, LA, palette images with a
    transparent colour) are composited on white first; 16-bit greyscale PNGs are scaled to 8
    bits. It is then resized with Pillow's BILINEAR filter (antialiased when shrinking: its
    support widens with the scale) so that it just covers the target ``(h, w)`` -- for a square
    target, the shorter side becomes ``size`` -- and centre-cropped to ``(h, w)``; images of
    any size and aspect ratio can be mixed. A JPEG more than twice the target is first decoded
    at a reduced DCT scale (Pillow's ``draft``), never below twice the target, which is several
    times faster on camera-sized pictures. Pixels become float32 [C, H, W] in [0, 1]
    (``uint8 / 255``). An animated WebP gives its first frame.

The cache
    A folder is decoded once (on a thread per core: Pillow releases the GIL while decoding) into
    ``FOLDER/.cnnkit-cache/images-HxW-rgb.npz`` (uint8 images [N, C, H, W], labels, classes and
    the file list), written atomically (a temporary file, then ``os.replace``). Its key covers
    the size, the channels, the class folders and every image file's relative path, byte size
    and mtime_ns, so adding, removing, replacing or touching a picture rebuilds it; a damaged
    or foreign cache file is rebuilt, never trusted. When the folder is read-only the cache
    goes to ``$XDG_CACHE_HOME/cnnkit/image-folder`` (``~/.cache/...``); ``cache_dir=PATH``
    chooses the place, ``cache_dir=False`` turns caching off.

Bad files
    A file with an image extension that Pillow cannot read (random bytes, a truncated JPEG or
    PNG, a text file named .jpg) raises ValueError naming it. With ``skip_bad=True`` such files
    are left out and one warning says how many and names the first few. (A global
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` makes Pillow pad truncated files instead.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .array_dataset import ArrayDataset

__all__ = ["ImageFolder", "FolderSplits", "load_image_folder", "load_image", "parse_folder_spec",
           "IMAGE_EXTENSIONS", "DEFAULT_IMAGE_SIZE", "DEFAULT_TEST_FRACTION"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_IMAGE_SIZE = 32        # what folder:PATH gives: the size the CIFAR-style models take
DEFAULT_TEST_FRACTION = 0.2
CACHE_DIRNAME = ".cnnkit-cache"
_CACHE_VERSION = 1
_VAL_NAMES = ("val", "valid", "validation")
_SPLIT_NAMES = ("train", "test") + _VAL_NAMES
_MAX_NAMED = 5                 # bad files named in the skip_bad warning


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError("cnnkit.data image folders need Pillow: pip install 'Pillow>=9'") \
            from None
    return Image, ImageOps


def _target_size(size, op: str):
    """``size`` (int or (h, w)) as a pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    else:
        try:
            hw = tuple(int(s) for s in size)
        except TypeError:
            raise TypeError(f"{op}: size must be an int or (height, width), got {size!r}") \
                from None
        if len(hw) != 2:
            raise ValueError(f"{op}: size must be an int or (height, width), got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"{op}: size must be positive, got {size!r}")
    return hw


def _check_channels(channels, op: str) -> int:
    if channels not in (1, 3):
        raise ValueError(f"{op}: channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    return int(channels)


# --------------------------------------------------------------------------- one image
def _to_mode(im, channels: int):
    """RGB or L, transparency composited on white, 16-bit greyscale scaled to 8 bits."""
    Image, _ = _pil()
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        a = np.asarray(im)
        a = np.clip(a, 0, 255) if mode == "F" else np.clip(a, 0, 65535) / 257.0
        im = Image.fromarray(np.rint(a).astype(np.uint8), "L")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    target = "RGB" if channels == 3 else "L"
    return im if im.mode == target else im.convert(target)


def _resize_crop(im, hw):
    """Scale (BILINEAR) so the image just covers (h, w), then crop the centre."""
    Image, _ = _pil()
    h, w = hw
    width, height = im.size
    scale = max(h / height, w / width)
    nw, nh = max(w, round(width * scale)), max(h, round(height * scale))
    if (nw, nh) != (width, height):
        im = im.resize((nw, nh), getattr(Image, "Resampling", Image).BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return im.crop((left, top, left + w, top + h))


def _decode(path: str, hw, channels: int, op: str) -> np.ndarray:
    """uint8 [C, H, W]; ValueError naming ``path`` if Pillow cannot read it."""
    Image, ImageOps = _pil()
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                side = 2 * max(hw)
                im.draft(None, (side, side))
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a damaged EXIF block: keep the pixels as stored
                pass
            im = _resize_crop(_to_mode(im, channels), hw)
            a = np.asarray(im, dtype=np.uint8)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # UnidentifiedImageError, truncated data, decoder errors...
        raise ValueError(f"{op}: {path} is not a readable image "
                         f"({type(e).__name__}: {e})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_image(path, size=DEFAULT_IMAGE_SIZE, channels: int = 3) -> np.ndarray:
    """One picture, decoded exactly as :class:`ImageFolder` decodes its files (see the module
    notes), as float32 [C, H, W] in [0, 1]: e.g. to predict with a model trained on a folder.
    FileNotFoundError if ``path`` is missing, ValueError naming it if it is not an image."""
    op = "load_image"
    hw, channels = _target_size(size, op), _check_channels(channels, op)
    p = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{op}: {p} does not exist" if not os.path.exists(p)
                                else f"{op}: {p} is not a file")
    a = _decode(p, hw, channels, op).astype(np.float32)
    a /= np.float32(255)
    return a


# --------------------------------------------------------------------------- scanning
def _visible(entry) -> bool:
    return not entry.name.startswith(".")


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _subdirs(folder: str):
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if _visible(e) and e.is_dir())


def _loose_images(folder: str):
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and _is_image_name(e.name))


def _no_class_folders(folder: str, op: str) -> ValueError:
    loose = _loose_images(folder)
    layout = (f"put each class's pictures in a subfolder named after the class, e.g. "
              f"{os.path.join(folder, 'cat', '1.jpg')} and {os.path.join(folder, 'dog', '2.jpg')}")
    if loose:
        return ValueError(f"{op}: {folder} holds {len(loose)} images ({', '.join(loose[:3])}"
                          f"{', ...' if len(loose) > 3 else ''}) but no class folders; {layout}")
    return ValueError(f"{op}: {folder} has no class folders; {layout}")


def _scan(folder: str, op: str):
    """classes, and the image files as a sorted list of (relative path, class index, byte size,
    mtime_ns); relative paths use '/'."""
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{op}: {folder} does not exist")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{op}: {folder} is not a folder (expected one subfolder of "
                                "images per class)")
    classes = _subdirs(folder)
    if not classes:
        raise _no_class_folders(folder, op)
    if len(classes) < 2:
        raise ValueError(f"{op}: needs at least 2 classes, found 1: {classes[0]} in {folder}")
    files = []
    for label, name in enumerate(classes):
        class_dir = os.path.join(folder, name)
        found = []
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
            for fn in filenames:
                if _is_image_name(fn):
                    st = os.stat(os.path.join(dirpath, fn))
                    found.append((f"{rel_dir}/{fn}", label, st.st_size, st.st_mtime_ns))
        if not found:
            raise ValueError(f"{op}: class folder {class_dir} has no images (files ending in "
                             f"{', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
        files.extend(sorted(found))
    return classes, files


# --------------------------------------------------------------------------- the cache
def _cache_key(classes, files, hw, channels) -> str:
    blob = json.dumps({"version": _CACHE_VERSION, "size": list(hw), "channels": channels,
                       "resize": "bilinear-cover-centre-crop", "classes": classes,
                       "files": [[rel, size, mtime] for rel, _, size, mtime in files]})
    return hashlib.sha256(blob.encode()).hexdigest()


def _user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnnkit", "image-folder")


def _cache_path(folder: str, hw, channels: int, cache_dir):
    """Where this folder's cache lives, or None (caching off)."""
    if cache_dir is False:
        return None
    tag = f"{hw[0]}x{hw[1]}-{'rgb' if channels == 3 else 'gray'}"
    if cache_dir is None:
        own = os.path.join(folder, CACHE_DIRNAME)
        if os.access(own if os.path.isdir(own) else folder, os.W_OK):
            return os.path.join(own, f"images-{tag}.npz")
        cache_dir = _user_cache_dir()
    real = os.path.realpath(folder)
    digest = hashlib.sha256(real.encode()).hexdigest()[:12]
    base = os.path.basename(real.rstrip(os.sep)) or "root"
    return os.path.join(os.path.expanduser(os.fspath(cache_dir)), f"{base}-{digest}-{tag}.npz")


def _read_cache(path: str, key: str, classes, files, hw, channels):
    """(images uint8, bad [(rel, reason)]) if ``path`` is a sound cache for exactly this key,
    else None: anything unexpected (a truncated zip, a CRC error, other arrays) means rebuild."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            images, labels = z["images"], z["labels"]
            cached_files = [str(s) for s in z["files"]]
            bad = list(zip((str(s) for s in z["bad"]), (str(s) for s in z["bad_reasons"])))
            cached_classes = [str(s) for s in z["classes"]]
    except Exception:
        return None
    bad_names = {rel for rel, _ in bad}
    good = [(rel, label) for rel, label, _, _ in files if rel not in bad_names]
    n = len(good)
    if (cached_classes != list(classes) or images.dtype != np.uint8
            or images.shape != (n, channels, *hw) or labels.shape != (n,)
            or cached_files != [rel for rel, _ in good]
            or not np.array_equal(labels, [label for _, label in good])
            or len(bad_names) + n != len(files)):
        return None
    return images, bad


def _write_cache(path: str, key: str, images, labels, classes, rels, bad, op: str) -> None:
    folder = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                                   dir=folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), images=images, labels=labels,
                     classes=np.array(list(classes), dtype=str),
                     files=np.array(list(rels), dtype=str),
                     bad=np.array([r for r, _ in bad], dtype=str),
                     bad_reasons=np.array([m for _, m in bad], dtype=str))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared folder's cache from others
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        warnings.warn(f"{op}: could not write the image cache {path} ({e}); the folder will be "
                      "decoded again next time (cache_dir=PATH puts the cache elsewhere)",
                      stacklevel=4)
    finally:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass


# --------------------------------------------------------------------------- decoding a folder
def _decode_folder(folder: str, files, hw, channels: int, skip_bad: bool, op: str):
    """uint8 [N, C, H, W] of the files that decode, and [(rel, reason)] of those that do not
    (with skip_bad; otherwise the first bad file's ValueError is raised)."""
    n = len(files)
    out = np.empty((n, channels, *hw), dtype=np.uint8)

    def work(i):
        try:
            out[i] = _decode(os.path.join(folder, files[i][0]), hw, channels, op)
        except ValueError as e:
            return e
        return None

    workers = max(1, min(32, (os.cpu_count() or 1) + 2, n))
    bad_idx, bad = [], []
    ex = ThreadPoolExecutor(max_workers=workers)
    try:
        for i, err in enumerate(ex.map(work, range(n))):
            if err is not None:
                if not skip_bad:
                    raise err
                bad_idx.append(i)
                bad.append((files[i][0], str(err)))
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if bad_idx:
        out = np.delete(out, bad_idx, axis=0)
    return out, bad


def _warn_skipped(folder: str, bad, op: str) -> None:
    names = ", ".join(rel for rel, _ in bad[:_MAX_NAMED])
    more = f" and {len(bad) - _MAX_NAMED} more" if len(bad) > _MAX_NAMED else ""
    warnings.warn(f"{op}: skipped {len(bad)} unreadable image file{'s' if len(bad) > 1 else ''} "
                  f"in {folder}: {names}{more}", stacklevel=4)


class _Decoded:
    """One folder's uint8 images [N, C, H, W] with labels, classes and file names."""

    def __init__(self, root, size, channels, images, labels, classes, files, skipped,
                 from_cache):
        self.root, self.size, self.channels = root, tuple(size), channels
        self.images, self.labels, self.classes = images, labels, tuple(classes)
        self.files, self.skipped, self.from_cache = files, tuple(skipped), from_cache


def _load_folder(root, size, channels, skip_bad, cache_dir, op) -> _Decoded:
    """Scan ``root``, then read the cache or decode (and write the cache)."""
    hw, channels = _target_size(size, op), _check_channels(channels, op)
    folder = os.path.expanduser(os.fspath(root))
    _pil()  # the ImportError with the install command before any work
    classes, files = _scan(folder, op)
    key = _cache_key(classes, files, hw, channels)
    cache = _cache_path(folder, hw, channels, cache_dir)
    cached = _read_cache(cache, key, classes, files, hw, channels) if cache else None
    if cached is not None:
        images, bad = cached
        if bad and not skip_bad:  # the cache remembers which files do not decode
            raise ValueError(bad[0][1])
    else:
        images, bad = _decode_folder(folder, files, hw, channels, skip_bad, op)
    bad_names = {rel for rel, _ in bad}
    kept = [(rel, label) for rel, label, _, _ in files if rel not in bad_names]
    labels = np.array([label for _, label in kept], dtype=np.int64)
    if bad:
        counts = np.bincount(labels, minlength=len(classes))
        empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
        if empty:
            raise ValueError(f"{op}: class folder {os.path.join(folder, empty[0])} has no "
                             f"readable images (skip_bad left out all {len(bad)} bad files)")
        _warn_skipped(folder, bad, op)
    if cached is None and cache:
        _write_cache(cache, key, images, labels, classes, [r for r, _ in kept], bad, op)
    return _Decoded(folder, hw, channels, images, labels, classes, [r for r, _ in kept],
                    [r for r, _ in bad], cached is not None)


class ImageFolder(ArrayDataset):
    """Every picture under ``root/CLASS/...`` as an :class:`ArrayDataset` (images float32
    [N, C, H, W] in [0, 1], labels int64, ``classes`` = the class folder names, sorted), decoded
    once and cached; see the module notes for the layout, the decode, the cache and errors.
    For train/test splits see :func:`load_image_folder`.

    Attributes (besides ArrayDataset's): ``root``, ``size`` (h, w), ``channels``, ``files`` (the
    images' paths relative to root, in the order of ``images``), ``skipped`` (the relative paths
    left out by skip_bad), ``from_cache`` (whether this load read the cache), ``validation``
    (None, or for the training set of :func:`load_image_folder`, its validation set).

    Parameters
    ----------
    root : path
        The folder holding one subfolder per class.
    size : int or (h, w)
        Every image is resized to cover it and centre-cropped to it (default 32).
    channels : 3 (RGB, default) or 1 (greyscale)
    skip_bad : bool
        Leave out (with one warning) the files Pillow cannot read instead of raising ValueError.
    cache_dir : path, None or False
        None (default): ``root/.cnnkit-cache``, or the user cache folder when root is
        read-only; a path: there; False: no cache.
    name : str, optional
        Default: the folder's name.
    """

    def __init__(self, root, size=DEFAULT_IMAGE_SIZE, channels: int = 3, *,
                 skip_bad: bool = False, cache_dir=None, name: str | None = None):
        d = _load_folder(root, size, channels, skip_bad, cache_dir, "ImageFolder")
        self._set(d, None, name)

    def _set(self, d: _Decoded, idx, name):
        """From the uint8 images of ``d`` (those at ``idx``), converted to float32 [0, 1]."""
        images, labels = d.images, d.labels
        files = d.files
        if idx is not None:
            images, labels, files = images[idx], labels[idx], [files[i] for i in idx]
        x = images.astype(np.float32)
        x /= np.float32(255)
        ArrayDataset.__init__(self, x, labels, d.classes,
                              name or os.path.basename(os.path.abspath(d.root)))
        self.root, self.size, self.channels = d.root, d.size, d.channels
        self.files, self.skipped, self.from_cache = tuple(files), d.skipped, d.from_cache
        self.validation = None

    @classmethod
    def _part(cls, d: _Decoded, idx, name: str) -> ImageFolder:
        part = cls.__new__(cls)
        part._set(d, None if idx is None else np.asarray(idx, dtype=np.int64), name)
        return part

    def subset(self, indices, name: str | None = None) -> ImageFolder:
        """The images at ``indices`` (same classes, root and size), e.g. one split."""
        idx = np.asarray(indices, dtype=np.int64)
        part = ImageFolder.__new__(ImageFolder)
        ArrayDataset.__init__(part, self.images[idx], self.labels[idx], self.classes,
                              name or self.name)
        part.root, part.size, part.channels = self.root, self.size, self.channels
        part.files, part.skipped = tuple(self.files[i] for i in idx), self.skipped
        part.from_cache, part.validation = self.from_cache, None
        return part

    def __repr__(self):
        return (f"ImageFolder({self.name}: {len(self)} x {list(self.image_shape)}, "
                f"{self.num_classes} classes, from {self.root})")


# --------------------------------------------------------------------------- splits
class FolderSplits(tuple):
    """``(train, test)`` -- unpacks like every cnnkit loader's result -- with the validation
    set as ``.val`` (an :class:`ImageFolder`, or None); also ``.train`` and ``.test``. The
    training set carries the validation set too, as ``train.validation``, so that code that
    only sees ``train, test = load_dataset(...)`` (``cnnkit train``) finds it."""

    def __new__(cls, train, test, val=None):
        self = super().__new__(cls, (train, test))
        self.val = val
        if val is not None and isinstance(train, ImageFolder):
            train.validation = val
        return self

    def __getnewargs__(self):
        return self[0], self[1], self.val

    @property
    def train(self):
        return self[0]

    @property
    def test(self):
        return self[1]

    def __repr__(self):
        return f"FolderSplits(train={self[0]!r}, test={self[1]!r}, val={self.val!r})"


def _stratified(labels, fractions, seed: int):
    """Index arrays for (rest, part_1, part_2, ...): per class, a seeded permutation gives
    round(fraction * n) images to each part (at least 1 for a fraction > 0), while the class
    keeps at least one image in the rest."""
    rng = np.random.default_rng([seed, 104729])
    parts = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        start = 0
        for k, frac in enumerate(fractions):
            take = 0 if frac <= 0 else min(idx.size - start - 1, max(1, round(frac * idx.size)))
            take = max(take, 0)
            parts[k + 1].append(idx[start:start + take])
            start += take
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def _same_classes(a: _Decoded, b: _Decoded, op: str) -> None:
    if a.classes != b.classes:
        only_a = sorted(set(a.classes) - set(b.classes))
        only_b = sorted(set(b.classes) - set(a.classes))
        detail = "; ".join(s for s in (
            f"only in {a.root}: {', '.join(only_a)}" if only_a else "",
            f"only in {b.root}: {', '.join(only_b)}" if only_b else "") if s)
        raise ValueError(f"{op}: the class folders of {a.root} and {b.root} differ "
                         f"({detail}); every split needs the same classes")


def load_image_folder(root, size=DEFAULT_IMAGE_SIZE, channels: int = 3, *,
                      test_fraction: float = DEFAULT_TEST_FRACTION, val_fraction: float = 0.0,
                      seed: int = 0, skip_bad: bool = False, cache_dir=None) -> FolderSplits:
    """Train and test sets from a folder of pictures: returns :class:`FolderSplits`, which
    unpacks as ``train, test = ...`` and carries the validation set (or None) as ``.val`` and
    as ``train.validation``; each is an :class:`ImageFolder` (an ArrayDataset). See
    :class:`ImageFolder` for ``size``, ``channels``, ``skip_bad``, ``cache_dir``.

    Two layouts:

    * ``root/train/CLASS/...`` with ``root/test/`` and/or ``root/val/`` (also ``valid/`` or
      ``validation/``) beside it -- the root's visible subfolders are all split names, one of
      them ``train``: the folders are the splits; their class lists must agree. ``test/`` is
      the test set; without one, ``val/`` is (the ImageNet convention: val/ is the held-out set
      everyone reports) and ``.val`` comes from ``val_fraction`` of train. With ``train/``
      alone, test (and val) are split off it as in the other layout.
    * ``root/CLASS/...``: a seeded split, stratified per class: ``test_fraction`` (default 0.2)
      of each class goes to test and ``val_fraction`` (default 0: none; ``cnnkit train`` splits
      its own validation set off the training set with ``--val-fraction``) to ``.val``,
      ``round(fraction * n)`` images each, at least one while the class keeps one for training.
      The same seed and files give the same split.
    """
    op = "load_image_folder"
    if not 0 <= test_fraction < 1 or not 0 <= val_fraction < 1 \
            or test_fraction + val_fraction >= 1:
        raise ValueError(f"{op}: test_fraction {test_fraction} and val_fraction {val_fraction} "
                         "must be in [0, 1) with a sum below 1")
    folder = os.path.expanduser(os.fspath(root))
    base = os.path.basename(os.path.abspath(folder))
    args = (size, channels, skip_bad, cache_dir, op)
    part = ImageFolder._part  # float32 splits straight from the uint8 images
    subs = _subdirs(folder) if os.path.isdir(folder) else []
    if "train" in subs and set(subs) <= set(_SPLIT_NAMES):
        vals = [s for s in _VAL_NAMES if s in subs]
        if len(vals) > 1:
            raise ValueError(f"{op}: {folder} has both {vals[0]}/ and {vals[1]}/; keep one "
                             "validation folder")
        tr = _load_folder(os.path.join(folder, "train"), *args)
        va = te = None
        if vals:
            va = _load_folder(os.path.join(folder, vals[0]), *args)
            _same_classes(tr, va, op)
        if "test" in subs:
            te = _load_folder(os.path.join(folder, "test"), *args)
            _same_classes(tr, te, op)
        elif va is not None:  # val/ is the held-out set
            te, va = va, None
        test_name = f"{base}-{os.path.basename(te.root)}" if te is not None else f"{base}-test"
        if va is not None or (te is not None and val_fraction <= 0):
            return FolderSplits(part(tr, None, f"{base}-train"), part(te, None, test_name),
                                part(va, None, f"{base}-{vals[0]}") if va is not None else None)
        # train/ alone, or a validation set to split off train/
        fractions = (0.0 if te is not None else test_fraction, val_fraction)
        rest, t_idx, v_idx = _stratified(tr.labels, fractions, seed)
        test = part(te, None, test_name) if te is not None else part(tr, t_idx, test_name)
    else:
        tr = _load_folder(folder, *args)
        rest, t_idx, v_idx = _stratified(tr.labels, (test_fraction, val_fraction), seed)
        test = part(tr, t_idx, f"{base}-test")
    val = part(tr, v_idx, f"{base}-val") if val_fraction > 0 else None
    return FolderSplits(part(tr, rest, f"{base}-train"), test, val)


# --------------------------------------------------------------------------- folder:PATH
def parse_folder_spec(text: str):
    """The ``PATH[@OPTIONS]`` of ``--dataset folder:PATH@OPTIONS`` as ``(path, size,
    channels, skip_bad)``. OPTIONS, after the last "@", are comma-separated: a size, ``N`` or
    ``HxW`` (default 32), ``gray`` (one channel; ``rgb`` is the default) and ``skip_bad``
    (leave out unreadable files, counted in a warning), e.g. ``~/pets@64``,
    ``~/pets@96x128,gray,skip_bad``. A path that itself holds an "@" needs options after it."""
    spec = f"folder:{text}"
    path, at, opts = text.rpartition("@")
    if not at:
        path, opts = text, ""
    size, channels, skip_bad = None, None, False
    if at:
        if not opts:
            raise ValueError(f"dataset {spec!r}: nothing after '@'; expected a size such as "
                             f"{path}@64 or {path}@64x48, and/or gray")
        for tok in opts.split(","):
            t = tok.strip().lower()
            if t in ("gray", "grey", "rgb"):
                if channels is not None:
                    raise ValueError(f"dataset {spec!r}: gray/rgb given twice")
                channels = 1 if t != "rgb" else 3
                continue
            if t in ("skip_bad", "skip-bad"):
                skip_bad = True
                continue
            dims = t.split("x")
            if len(dims) in (1, 2) and all(d.isdigit() for d in dims):
                if size is not None:
                    raise ValueError(f"dataset {spec!r}: two sizes ({size} and {tok.strip()})")
                hw = tuple(int(d) for d in dims)
                if min(hw) < 1:
                    raise ValueError(f"dataset {spec!r}: the size must be positive")
                size = hw[0] if len(hw) == 1 else hw
                continue
            raise ValueError(f"dataset {spec!r}: {tok.strip()!r} after the last '@' is neither "
                             "a size (64 or 64x48) nor gray or skip_bad; a path with an '@' in "
                             f"it needs the options after it, e.g. folder:{text}@"
                             f"{DEFAULT_IMAGE_SIZE}")
    if not path:
        raise ValueError(f"dataset {spec!r}: say where the class folders are, e.g. "
                         "folder:~/pictures@64")
    return (path, DEFAULT_IMAGE_SIZE if size is None else size,
            3 if channels is None else channels, skip_bad)
