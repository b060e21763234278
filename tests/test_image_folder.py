"""cnnkit.data.ImageFolder / load_image_folder / load_image / load_dataset("folder:..."): real
JPEG, PNG, BMP and WebP files written with Pillow into tmp_path."""

import os
import sys
import warnings

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageOps, features  # noqa: E402

from cnnkit.data import (  # noqa: E402
    ArrayDataset,
    DataLoader,
    FolderSplits,
    ImageFolder,
    load_dataset,
    load_image,
    load_image_folder,
)
from cnnkit.data import image_folder as imf  # noqa: E402

HAS_WEBP = features.check("webp")
BILINEAR = Image.Resampling.BILINEAR


def _pixels(h, w, seed=0, channels=3):
    """Smooth gradients plus a little noise: survives JPEG, differs between seeds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(xx * (3 + k) + yy * (5 - k) + 40 * seed * (k + 1)) % 256 for k in range(channels)]
    a = np.stack(base, -1).astype(np.float64) + rng.normal(0, 4, (h, w, channels))
    a = np.clip(a, 0, 255).astype(np.uint8)
    return a[..., 0] if channels == 1 else a


def _save(path, h, w, seed=0, mode="RGB", fmt=None, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "L":
        im = Image.fromarray(_pixels(h, w, seed, 1), "L")
    elif mode == "RGBA":
        a = np.concatenate([_pixels(h, w, seed), np.full((h, w, 1), 255, np.uint8)], -1)
        a[: h // 2, :, 3] = 0  # top half fully transparent
        im = Image.fromarray(a, "RGBA")
    else:
        im = Image.fromarray(_pixels(h, w, seed), "RGB")
        if mode == "P":
            im = im.quantize(16)
    im.save(path, fmt, **kw)
    return path


def _reference(path, hw, channels=3, box=None, new_size=None):
    """A direct Pillow computation: convert, resize to ``new_size`` (BILINEAR), crop ``box``."""
    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        if new_size is not None and new_size != im.size:
            im = im.resize(new_size, BILINEAR)
        if box is not None:
            im = im.crop(box)
        a = np.asarray(im, dtype=np.float32) / np.float32(255)
    assert a.shape[:2] == tuple(hw)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _pets(root, n_per_class=3):
    """cat: JPEGs of different sizes and aspect ratios (one .JPG); dog: RGB PNGs, a greyscale
    PNG, an RGBA PNG, a palette PNG; fish: BMP (+ WebP). Plus files and folders to ignore."""
    root = str(root)
    for i in range(n_per_class):
        _save(f"{root}/cat/c{i}.jpg", 20 + 7 * i, 31 + 5 * i, seed=i, quality=95)
        _save(f"{root}/dog/d{i}.png", 24 + 3 * i, 18, seed=10 + i)
        _save(f"{root}/fish/f{i}.bmp", 16, 40 + i, seed=20 + i)
    _save(f"{root}/cat/BIG.JPG", 60, 90, seed=5)
    _save(f"{root}/cat/nested/deeper/n.jpeg", 33, 22, seed=6)
    _save(f"{root}/dog/grey.png", 30, 30, seed=7, mode="L")
    _save(f"{root}/dog/alpha.png", 20, 20, seed=8, mode="RGBA")
    _save(f"{root}/dog/palette.png", 25, 25, seed=9, mode="P")
    if HAS_WEBP:
        _save(f"{root}/fish/w.webp", 28, 28, seed=11, lossless=True)
    # ignored: non-image extensions, hidden files and folders, a GIF, an image in the root
    for p in (f"{root}/cat/notes.txt", f"{root}/README.md"):
        with open(p, "w") as f:
            f.write("not a picture")
    _save(f"{root}/dog/.hidden.png", 8, 8)
    _save(f"{root}/.secret/x/y.png", 8, 8)
    _save(f"{root}/dog/.thumbs/t.png", 8, 8)
    _save(f"{root}/fish/anim.gif", 10, 10, fmt="GIF")
    _save(f"{root}/stray.jpg", 10, 10)
    return root


# --------------------------------------------------------------------------- basics
def test_classes_labels_shapes_and_range(tmp_path):
    root = _pets(tmp_path / "pets")
    ds = ImageFolder(root, 16)
    assert isinstance(ds, ArrayDataset)
    assert ds.classes == ("cat", "dog", "fish")
    n_fish = 3 + HAS_WEBP
    assert len(ds) == 5 + 6 + n_fish
    assert ds.images.shape == (len(ds), 3, 16, 16) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0 and ds.images.max() > 0.5
    assert ds.size == (16, 16) and ds.channels == 3 and ds.image_shape == (3, 16, 16)
    expected_cat = ["cat/BIG.JPG", "cat/c0.jpg", "cat/c1.jpg", "cat/c2.jpg",
                    "cat/nested/deeper/n.jpeg"]
    assert [f for f in ds.files if f.startswith("cat/")] == expected_cat
    assert {f for f in ds.files if f.startswith("dog/")} == {
        "dog/d0.png", "dog/d1.png", "dog/d2.png", "dog/grey.png", "dog/alpha.png",
        "dog/palette.png"}
    for f, label in zip(ds.files, ds.labels):
        assert ds.classes[label] == f.split("/")[0]
    assert np.bincount(ds.labels).tolist() == [5, 6, n_fish]
    assert ds.name == "pets" and "ImageFolder(pets: " in repr(ds)
    sub = ds.subset([0, 2], "two")
    assert sub.files == (ds.files[0], ds.files[2]) and sub.name == "two"
    np.testing.assert_array_equal(sub.images, ds.images[[0, 2]])
    assert sub.classes == ds.classes and sub.size == ds.size
    # it works with the rest of cnnkit: batches, the CLI's validation split
    batches = list(DataLoader(ds, 4, shuffle=True, seed=0))
    assert sum(len(y) for _, y in batches) == len(ds)
    from cnnkit.cli.commands import _split_validation
    tr, val = _split_validation(ds, 0.25, 0)
    assert len(tr) + len(val) == len(ds) and tr.classes == ds.classes


@pytest.mark.parametrize("src_hw, hw, new_size, box", [
    ((30, 60), 10, (20, 10), (5, 0, 15, 10)),          # landscape: shorter side 30 -> 10
    ((45, 30), 10, (10, 15), (0, 2, 10, 12)),          # portrait
    ((40, 40), (8, 12), (12, 12), (0, 2, 12, 10)),     # non-square target covers 8 x 12
    ((12, 12), 12, None, None),                        # already the size: untouched
    ((6, 9), 12, (18, 12), (3, 0, 15, 12)),            # upscaled
])
def test_resize_and_centre_crop_match_pillow(tmp_path, src_hw, hw, new_size, box):
    path = _save(str(tmp_path / "one" / "x.png"), *src_hw, seed=3)
    target = (hw, hw) if isinstance(hw, int) else hw
    ref = _reference(path, target, new_size=new_size, box=box)
    np.testing.assert_array_equal(load_image(path, hw), ref)
    # the folder decodes with the same function
    _save(str(tmp_path / "one" / "y.png"), 5, 5)
    _save(str(tmp_path / "two" / "z.png"), 5, 5)
    ds = ImageFolder(tmp_path, hw, cache_dir=False)
    np.testing.assert_array_equal(ds.images[ds.files.index("one/x.png")], ref)


def test_grey_alpha_palette_and_16_bit(tmp_path):
    grey = _save(str(tmp_path / "g.png"), 16, 16, seed=1, mode="L")
    rgb = load_image(grey, 16)
    assert rgb.shape == (3, 16, 16)
    np.testing.assert_array_equal(rgb[0], rgb[1])
    np.testing.assert_array_equal(rgb[0], np.asarray(Image.open(grey), np.float32) / 255)
    # transparency is composited on white
    alpha = load_image(_save(str(tmp_path / "a.png"), 16, 16, seed=2, mode="RGBA"), 16)
    assert (alpha[:, :8] == 1.0).all() and (alpha[:, 8:] < 1.0).any()
    im = Image.fromarray(_pixels(8, 8), "RGB").quantize(8)
    im.save(tmp_path / "p.png", transparency=int(np.asarray(im)[0, 0]))
    pal = load_image(tmp_path / "p.png", 8)
    assert (pal[:, 0, 0] == 1.0).all()
    # channels=1: Pillow's L (ITU-R 601-2 luma)
    col = _save(str(tmp_path / "c.png"), 16, 16, seed=3)
    np.testing.assert_array_equal(load_image(col, 16, channels=1),
                                  _reference(col, (16, 16), channels=1))
    # 16-bit greyscale is scaled to 8 bits, not clipped
    Image.fromarray(np.full((4, 4), 32896, np.uint16)).save(tmp_path / "d.png")
    np.testing.assert_allclose(load_image(tmp_path / "d.png", 4, channels=1), 128 / 255)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = str(tmp_path / "phone.jpg")
    Image.fromarray(_pixels(20, 40)).save(path, exif=exif, quality=95)
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
        assert upright.size == (20, 40)
        ref = np.asarray(upright.resize((10, 20), BILINEAR).crop((0, 5, 10, 15)), np.float32)
    np.testing.assert_array_equal(load_image(path, 10), ref.transpose(2, 0, 1) / np.float32(255))


def test_large_jpeg_decoded_at_reduced_scale_stays_close(tmp_path):
    path = str(tmp_path / "big.jpg")
    Image.fromarray(_pixels(600, 800, seed=4)).save(path, quality=95)
    got = load_image(path, 16)
    with Image.open(path) as im:
        full = np.asarray(im.convert("RGB").resize((21, 16), BILINEAR).crop((2, 0, 18, 16)))
    assert np.abs(got * 255 - full.transpose(2, 0, 1)).mean() < 3.0


def test_channels_one_folder(tmp_path):
    root = _pets(tmp_path / "pets")
    ds = ImageFolder(root, (12, 10), channels=1)
    assert ds.images.shape[1:] == (1, 12, 10) and ds.channels == 1
    i = ds.files.index("dog/d1.png")
    np.testing.assert_array_equal(ds.images[i], _reference(
        os.path.join(root, "dog/d1.png"), (12, 10), channels=1, new_size=(10, 15),
        box=(0, 1, 10, 13)))


# --------------------------------------------------------------------------- splits
def _simple(root, classes=("a", "b", "c"), n=10, seed=0):
    for k, c in enumerate(classes):
        for i in range(n):
            _save(f"{root}/{c}/{i:02d}.png", 8 + i % 3, 8, seed=seed + 100 * k + i)
    return str(root)


def test_seeded_stratified_split(tmp_path):
    root = _simple(tmp_path / "s")
    splits = load_image_folder(root, 8)
    assert isinstance(splits, FolderSplits) and splits.val is None
    assert splits.train.validation is None
    train, test = splits
    assert (splits.train, splits.test) == (train, test)
    assert len(train) == 24 and len(test) == 6
    assert np.bincount(test.labels).tolist() == [2, 2, 2]
    assert not set(train.files) & set(test.files)
    assert train.name == "s-train" and test.name == "s-test"
    again = load_image_folder(root, 8)
    assert again.test.files == test.files
    np.testing.assert_array_equal(again.test.images, test.images)
    other = load_image_folder(root, 8, seed=1)
    assert other.test.files != test.files
    assert set(other.test.labels.tolist()) == {0, 1, 2}
    # a validation split too, stratified as well
    s = load_image_folder(root, 8, test_fraction=0.3, val_fraction=0.2)
    tr, te, va = s.train, s.test, s.val
    assert tr.validation is va
    assert (len(tr), len(te), len(va)) == (15, 9, 6)
    assert np.bincount(va.labels).tolist() == [2, 2, 2]
    assert len(set(tr.files) | set(te.files) | set(va.files)) == 30
    with pytest.raises(ValueError, match="test_fraction"):
        load_image_folder(root, 8, test_fraction=0.6, val_fraction=0.5)


def test_split_keeps_a_training_image_of_tiny_classes(tmp_path):
    root = tmp_path / "tiny"
    for c, n in (("one", 1), ("two", 2), ("many", 10)):
        for i in range(n):
            _save(f"{root}/{c}/{i}.png", 8, 8, seed=i)
    train, test = load_image_folder(root, 8, test_fraction=0.5)
    counts = dict(zip(train.classes, np.bincount(train.labels, minlength=3).tolist()))
    assert counts == {"many": 5, "one": 1, "two": 1}
    assert np.bincount(test.labels, minlength=3).tolist() == [5, 0, 1]


def test_train_val_test_subfolders(tmp_path):
    root = tmp_path / "splits"
    _simple(root / "train", n=6)
    _simple(root / "val", n=2, seed=7)
    _simple(root / "test", n=3, seed=9)
    s = load_image_folder(root, 8)
    assert (len(s.train), len(s.val), len(s.test)) == (18, 6, 9)
    assert s.train.validation is s.val  # what cnnkit train uses instead of --val-fraction
    assert load_dataset(f"folder:{root}@8")[0].validation.root == str(root / "val")
    assert s.train.classes == s.val.classes == s.test.classes == ("a", "b", "c")
    assert s.train.name == "splits-train" and s.val.name == "splits-val"
    assert s.test.root == str(root / "test")
    # train/ and val/ only: val/ is the held-out (test) set; a validation set can be split off
    import shutil
    shutil.rmtree(root / "test")
    train, test = s2 = load_image_folder(root, 8)
    assert (len(train), len(test), s2.val, train.validation) == (18, 6, None, None)
    assert test.root == str(root / "val")
    s3 = load_image_folder(root, 8, val_fraction=0.34)
    assert (len(s3.train), len(s3.val), len(s3.test)) == (12, 6, 6)
    # train/ alone: split like a plain folder
    shutil.rmtree(root / "val")
    train, test = load_image_folder(root, 8, test_fraction=0.5)
    assert (len(train), len(test)) == (9, 9)


def test_split_class_lists_must_agree(tmp_path):
    root = tmp_path / "bad"
    _simple(root / "train", classes=("a", "b", "c"), n=2)
    _simple(root / "test", classes=("a", "b", "d"), n=2)
    with pytest.raises(ValueError, match=r"class folders of .*train and .*test differ "
                                         r"\(only in .*train: c; only in .*test: d\)"):
        load_image_folder(root, 8)
    _simple(root / "val", n=1)
    _simple(root / "valid", n=1)
    with pytest.raises(ValueError, match="both val/ and valid/"):
        load_image_folder(root, 8)


# --------------------------------------------------------------------------- the cache
def _cache_files(root):
    d = os.path.join(root, imf.CACHE_DIRNAME)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _no_decoding(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("decoded instead of reading the cache")
    monkeypatch.setattr(imf, "_decode", fail)


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    root = _pets(tmp_path / "pets")
    first = ImageFolder(root, 16)
    assert not first.from_cache
    assert _cache_files(root) == ["images-16x16-rgb.npz"]
    with np.load(os.path.join(root, imf.CACHE_DIRNAME, "images-16x16-rgb.npz")) as z:
        assert z["images"].dtype == np.uint8 and z["images"].shape == (len(first), 3, 16, 16)
        assert list(z["files"]) == list(first.files)
        assert list(z["classes"]) == ["cat", "dog", "fish"]
    with monkeypatch.context() as m:
        _no_decoding(m)
        second = ImageFolder(root, 16)
        assert second.from_cache
        np.testing.assert_array_equal(second.images, first.images)
        np.testing.assert_array_equal(second.labels, first.labels)
        assert second.files == first.files
        s = load_image_folder(root, 16)       # the split reads the same cache
        assert len(s.train) + len(s.test) == len(first)
    # another size or channel count is another cache file
    ImageFolder(root, 8, channels=1)
    assert _cache_files(root) == ["images-16x16-rgb.npz", "images-8x8-gray.npz"]


@pytest.mark.parametrize("change", ["add", "remove", "touch", "replace"])
def test_changed_files_rebuild_the_cache(tmp_path, monkeypatch, change):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=3)
    first = ImageFolder(root, 8)
    target = os.path.join(root, "a", "01.png")
    if change == "add":
        _save(os.path.join(root, "b", "new.jpg"), 9, 9)
    elif change == "remove":
        os.remove(target)
    elif change == "touch":
        st = os.stat(target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:  # other pixels, same name
        _save(target, 12, 8, seed=99)
    second = ImageFolder(root, 8)
    assert not second.from_cache
    assert len(second) == len(first) + {"add": 1, "remove": -1}.get(change, 0)
    with monkeypatch.context() as m:
        _no_decoding(m)
        assert ImageFolder(root, 8).from_cache  # and the rebuilt cache is used after
    assert _cache_files(root) == ["images-8x8-rgb.npz"]  # one file per size, replaced


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "foreign"])
def test_a_damaged_cache_is_rebuilt(tmp_path, damage):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=3)
    first = ImageFolder(root, 8)
    path = os.path.join(root, imf.CACHE_DIRNAME, "images-8x8-rgb.npz")
    raw = open(path, "rb").read()
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = os.urandom(len(raw))
    elif damage == "flip":  # a bit in the pixel data: the zip CRC catches it
        i = raw.index(b"images.npy") + 400
        raw = raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:]
    if damage == "foreign":  # a well-formed npz with the right key but wrong arrays
        with np.load(path) as z:
            key = z["key"]
        np.savez(path, key=key, images=np.zeros((1, 3, 8, 8), np.uint8))
    else:
        with open(path, "wb") as f:
            f.write(raw)
    second = ImageFolder(root, 8)
    assert not second.from_cache
    np.testing.assert_array_equal(second.images, first.images)
    assert ImageFolder(root, 8).from_cache


def test_cache_dir_read_only_root_and_no_cache(tmp_path, monkeypatch):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=2)
    elsewhere = tmp_path / "cache"
    ImageFolder(root, 8, cache_dir=elsewhere)
    assert _cache_files(root) == []
    (name,) = os.listdir(elsewhere)
    assert name.startswith("s-") and name.endswith("-8x8-rgb.npz")
    assert ImageFolder(root, 8, cache_dir=elsewhere).from_cache
    ImageFolder(root, 8, cache_dir=False)
    assert _cache_files(root) == []
    assert not ImageFolder(root, 8, cache_dir=False).from_cache
    # a read-only root: the user cache folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real_access = os.access
    monkeypatch.setattr(imf.os, "access",
                        lambda p, mode: False if str(p).startswith(root) else real_access(p, mode))
    ImageFolder(root, 8)
    assert _cache_files(root) == []
    assert len(os.listdir(tmp_path / "xdg" / "cnnkit" / "image-folder")) == 1
    assert ImageFolder(root, 8).from_cache


def test_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="could not write the image cache"):
        ds = ImageFolder(root, 8, cache_dir=blocker / "sub")
    assert len(ds) == 4


# --------------------------------------------------------------------------- bad files
def _corrupt(root):
    with open(os.path.join(root, "a", "noise.jpg"), "wb") as f:
        f.write(np.random.default_rng(0).bytes(2000))
    good = _save(os.path.join(root, "b", "whole.jpg"), 64, 64, seed=3)
    data = open(good, "rb").read()
    with open(os.path.join(root, "b", "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(root, "b", "text.png"), "w") as f:
        f.write("this is not a PNG\n")


def test_corrupt_truncated_and_text_files_name_the_file(tmp_path):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=2)
    _corrupt(root)
    with pytest.raises(ValueError, match=r"noise\.jpg is not a readable image"):
        ImageFolder(root, 8)
    os.remove(os.path.join(root, "a", "noise.jpg"))
    with pytest.raises(ValueError, match=r"text\.png is not a readable image"):
        ImageFolder(root, 8)
    os.remove(os.path.join(root, "b", "text.png"))
    with pytest.raises(ValueError, match=r"truncated\.jpg is not a readable image.*truncated"):
        ImageFolder(root, 8)
    with pytest.raises(ValueError, match=r"truncated\.jpg"):
        load_image(os.path.join(root, "b", "truncated.jpg"), 8)
    assert _cache_files(root) == []  # nothing is cached from a failed load


def test_skip_bad_counts_in_one_warning(tmp_path, monkeypatch):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=2)
    _corrupt(root)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = ImageFolder(root, 8, skip_bad=True)
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1, msgs
    assert w[0].filename == __file__  # points at the caller
    assert "skipped 3 unreadable image files" in msgs[0]
    for name in ("a/noise.jpg", "b/text.png", "b/truncated.jpg"):
        assert name in msgs[0]
    assert len(ds) == 5 and set(ds.skipped) == {"a/noise.jpg", "b/text.png", "b/truncated.jpg"}
    assert "b/whole.jpg" in ds.files
    # from the cache: the same warning with skip_bad, the same error without
    with monkeypatch.context() as m:
        _no_decoding(m)
        with pytest.warns(UserWarning, match="skipped 3 unreadable"):
            again = ImageFolder(root, 8, skip_bad=True)
        assert again.from_cache and again.files == ds.files
        with pytest.raises(ValueError, match=r"noise\.jpg is not a readable image"):
            ImageFolder(root, 8)
        with pytest.warns(UserWarning, match="skipped 3 unreadable") as w:
            train, test = load_image_folder(root, 8, skip_bad=True, test_fraction=0.4)
        assert w[0].filename == __file__
        assert len(train) + len(test) == 5


def test_skip_bad_names_only_the_first_few(tmp_path):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=1)
    for i in range(8):
        with open(os.path.join(root, "a", f"bad{i}.webp"), "wb") as f:
            f.write(b"RIFF0000WEBPjunk")
    with pytest.warns(UserWarning, match=r"skipped 8 unreadable .*bad4\.webp and 3 more$"):
        ImageFolder(root, 8, skip_bad=True)


def test_a_class_of_bad_files_only_is_an_error_even_with_skip_bad(tmp_path):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=1)
    os.makedirs(os.path.join(root, "c"))
    with open(os.path.join(root, "c", "x.png"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match=r"class folder .*c has no readable images"):
        ImageFolder(root, 8, skip_bad=True)


# --------------------------------------------------------------------------- layout errors
def test_empty_class_single_class_no_classes_missing_root(tmp_path):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=1)
    os.makedirs(os.path.join(root, "empty", ".hidden"))
    with open(os.path.join(root, "empty", "notes.txt"), "w") as f:
        f.write("no pictures here")
    with pytest.raises(ValueError, match=r"class folder .*empty has no images"):
        ImageFolder(root, 8)
    with pytest.raises(ValueError, match=r"class folder .*empty has no images"):
        ImageFolder(root, 8, skip_bad=True)

    single = _simple(tmp_path / "one", classes=("only",), n=2)
    with pytest.raises(ValueError, match=r"needs at least 2 classes, found 1: only in .*one"):
        ImageFolder(single, 8)

    flat = tmp_path / "flat"
    for i in range(4):
        _save(str(flat / f"{i}.jpg"), 8, 8)
    with pytest.raises(ValueError, match=r"holds 4 images \(0\.jpg, 1\.jpg, 2\.jpg, \.\.\.\) "
                                         r"but no class folders; put each class's pictures in a "
                                         r"subfolder named after the class"):
        load_image_folder(flat, 8)
    os.makedirs(tmp_path / "nothing")
    with pytest.raises(ValueError, match="has no class folders"):
        ImageFolder(tmp_path / "nothing", 8)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 8)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(flat / "0.jpg", 8)


def test_bad_arguments(tmp_path):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=1)
    with pytest.raises(ValueError, match="channels must be 1"):
        ImageFolder(root, 8, channels=4)
    with pytest.raises(ValueError, match="size must be positive"):
        ImageFolder(root, 0)
    with pytest.raises(ValueError, match=r"size must be an int or \(height, width\)"):
        load_image(os.path.join(root, "a", "00.png"), (1, 2, 3))
    with pytest.raises(TypeError, match="size must be an int"):
        load_image(os.path.join(root, "a", "00.png"), None)


def test_pillow_missing_says_how_to_install(tmp_path, monkeypatch):
    root = _simple(tmp_path / "s", classes=("a", "b"), n=1)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'Pillow>=9'"):
        ImageFolder(root, 8)
    with pytest.raises(ImportError, match="Pillow"):
        load_image(os.path.join(root, "a", "00.png"), 8)


# --------------------------------------------------------------------------- load_image
def test_load_image(tmp_path):
    path = _save(str(tmp_path / "x.JPEG"), 30, 50, seed=1)
    x = load_image(path, 24)
    assert x.shape == (3, 24, 24) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    assert load_image(path, (10, 20), channels=1).shape == (1, 10, 20)
    with pytest.raises(FileNotFoundError, match=r"load_image: .*nope\.jpg does not exist"):
        load_image(tmp_path / "nope.jpg", 8)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        load_image(tmp_path, 8)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match=r"load_image: .*bad\.png is not a readable image"):
        load_image(tmp_path / "bad.png", 8)


@pytest.mark.skipif(not HAS_WEBP, reason="Pillow built without WebP")
def test_webp(tmp_path):
    path = _save(str(tmp_path / "w.WebP"), 20, 20, seed=2, lossless=True)
    np.testing.assert_array_equal(load_image(path, 10),
                                  _reference(path, (10, 10), new_size=(10, 10)))


# --------------------------------------------------------------------------- load_dataset
@pytest.mark.parametrize("text, expected", [
    ("~/pets", ("~/pets", 32, 3, False)),
    ("/data/pets@64", ("/data/pets", 64, 3, False)),
    ("/data/pets@96x128", ("/data/pets", (96, 128), 3, False)),
    ("/data/pets@64,gray", ("/data/pets", 64, 1, False)),
    ("/data/pets@grey, 28", ("/data/pets", 28, 1, False)),
    ("/data/pets@rgb", ("/data/pets", 32, 3, False)),
    ("/data/me@home@16", ("/data/me@home", 16, 3, False)),
    ("C:\\pics@48", ("C:\\pics", 48, 3, False)),
    ("/data/pets@64,skip_bad", ("/data/pets", 64, 3, True)),
    ("/data/pets@gray,skip-bad", ("/data/pets", 32, 1, True)),
])
def test_parse_folder_spec(text, expected):
    assert imf.parse_folder_spec(text) == expected


@pytest.mark.parametrize("spec, message", [
    ("folder:", "say where the class folders are"),
    ("folder:@64", "say where the class folders are"),
    ("folder:/x@", "nothing after '@'"),
    ("folder:/x@big", r"'big' after the last '@' is neither a size"),
    ("folder:/me@home", r"needs the options after it, e.g. folder:/me@home@32"),
    ("folder:/x@0", "the size must be positive"),
    ("folder:/x@4x0", "the size must be positive"),
    ("folder:/x@16,32", r"two sizes \(16 and 32\)"),
    ("folder:/x@gray,rgb", "given twice"),
    ("folder:/x@16x16x3", "neither a size"),
])
def test_folder_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(spec)


def test_load_dataset_folder(tmp_path):
    root = _simple(tmp_path / "s", n=5)
    train, test = load_dataset(f"folder:{root}@12x10,gray")
    assert train.images.shape == (12, 1, 12, 10) and len(test) == 3
    assert train.classes == ("a", "b", "c")
    train, test = load_dataset(f"FOLDER:{root}")
    assert train.image_shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}@16")
    with pytest.raises(ValueError, match=r"unknown dataset 'pictures:/x'.*folder:PATH"):
        load_dataset("pictures:/x")
