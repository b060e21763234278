"""cnnkit.data: loaders on small files in the exact MNIST IDX and CIFAR-10 pickle formats
(raw, .gz, .tar.gz) and on broken ones, preprocessing, augmentation, DataLoader."""

import gzip
import io
import os
import pickle
import tarfile
import threading
import time

import numpy as np
import pytest

from cnnkit import data

# --------------------------------------------------------------------------- digits


def test_digits_fixed_stratified_split():
    from sklearn.datasets import load_digits as sk

    train, test = data.load_digits()
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    assert train.classes == tuple("0123456789")
    # every image lands in exactly one split: per-class counts add up to scikit-learn's
    counts = np.bincount(sk().target, minlength=10)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10)
                                  + np.bincount(test.labels, minlength=10), counts)
    # stratified: each class is ~20 % test
    assert np.all(np.abs(np.bincount(test.labels, minlength=10) / counts - 0.2) < 0.02)
    # the images are scikit-learn's (scaled by 1/16), and the split is the same every call
    sk_images = sk().images
    all_sk = {(img / 16).astype(np.float32).tobytes() for img in sk_images}
    assert all(img[0].tobytes() in all_sk for img in test.images[:20])
    train2, test2 = data.load_digits()
    np.testing.assert_array_equal(test.images, test2.images)
    np.testing.assert_array_equal(train.labels, train2.labels)


# --------------------------------------------------------------------------- MNIST


def _idx_images(images):
    n, h, w = images.shape
    return (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w)) \
        + images.astype(np.uint8).tobytes()


def _idx_labels(labels):
    return (0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") \
        + labels.astype(np.uint8).tobytes()


def _write_mnist(folder, rng, gz=False, n_train=12, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[prefix] = (imgs, labs)
        for kind, blob in (("images-idx3-ubyte", _idx_images(imgs)),
                           ("labels-idx1-ubyte", _idx_labels(labs))):
            name = f"{prefix}-{kind}" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(blob) if gz else blob)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_raw_and_gzip(tmp_path, rng, gz):
    arrays = _write_mnist(tmp_path / "mnist", rng, gz=gz)
    train, test = data.load_mnist(tmp_path / "mnist")
    assert train.images.shape == (12, 1, 28, 28) and test.images.shape == (5, 1, 28, 28)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_allclose(train.images[:, 0] * 255, arrays["train"][0], atol=1e-4)
    np.testing.assert_array_equal(test.labels, arrays["t10k"][1])


def test_mnist_in_torchvision_raw_folder(tmp_path, rng):
    arrays = _write_mnist(tmp_path / "MNIST" / "raw", rng)
    _, test = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(test.labels, arrays["t10k"][1])


def test_mnist_missing_files(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        data.load_mnist(tmp_path / "absent")
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download|from http"):
        data.load_mnist(tmp_path / "m")
    _write_mnist(tmp_path / "m", rng)
    os.remove(tmp_path / "m" / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist(tmp_path / "m")


def test_mnist_truncated_and_corrupt(tmp_path, rng):
    folder = tmp_path / "m"
    _write_mnist(folder, rng)
    f = folder / "train-images-idx3-ubyte"
    good = f.read_bytes()
    f.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is truncated.*12 x 28 x 28"):
        data.load_mnist(folder)
    f.write_bytes(good[:10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is truncated"):
        data.load_mnist(folder)
    f.write_bytes(_idx_labels(np.zeros(3)))  # a label file where images belong
    with pytest.raises(ValueError, match="not an IDX image file.*0x00000801"):
        data.load_mnist(folder)
    f.write_bytes(good)
    lab = folder / "train-labels-idx1-ubyte"
    lab.write_bytes(_idx_labels(np.zeros(11)))
    with pytest.raises(ValueError, match="12 images but .* 11 labels"):
        data.load_mnist(folder)
    lab.unlink()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_labels(np.zeros(12)))[:-8])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*(truncated|corrupt)"):
        data.load_mnist(folder)


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(rng, n, name):
    x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, 10, size=n)]
    d = {b"batch_label": name.encode(), b"labels": y, b"data": x,
         b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    return pickle.dumps(d, protocol=2), x, y


def _write_cifar(folder, rng, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        blob, x, y = _cifar_batch(rng, n, name)
        (folder / name).write_bytes(blob)
        parts[name] = (x, y)
    names = [c.encode() for c in data.CIFAR10_CLASSES]
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"num_cases_per_batch": n, b"label_names": names, b"num_vis": 3072}, protocol=2))
    return parts


def _tar(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")


def _check_cifar(train, test, parts):
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.classes == data.CIFAR10_CLASSES
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    x, y = parts["data_batch_2"]
    # rows are 1024 red, 1024 green, 1024 blue values, each plane row-major
    np.testing.assert_allclose(train.images[4] * 255, x[0].reshape(3, 32, 32), atol=1e-3)
    np.testing.assert_allclose(train.images[4, 1, 0, 0] * 255, x[0][1024], atol=1e-3)
    assert list(train.labels[4:8]) == y
    assert list(test.labels) == parts["test_batch"][1]


def test_cifar_folder_tar_and_folder_with_tar(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    parts = _write_cifar(folder, rng)
    _check_cifar(*data.load_cifar10(folder), parts)
    _check_cifar(*data.load_cifar10(tmp_path), parts)   # the folder that holds it
    archive = tmp_path / "dl" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    _tar(folder, archive)
    _check_cifar(*data.load_cifar10(archive), parts)
    _check_cifar(*data.load_cifar10(archive.parent), parts)


def test_cifar_missing(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="does not exist.*cifar-10-python.tar.gz"):
        data.load_cifar10(tmp_path / "nowhere")
    folder = tmp_path / "c"
    _write_cifar(folder, rng)
    os.remove(folder / "test_batch")
    with pytest.raises(FileNotFoundError, match="test_batch"):
        data.load_cifar10(folder)


def test_cifar_truncated_corrupt_and_hostile(tmp_path, rng):
    folder = tmp_path / "c"
    _write_cifar(folder, rng)
    batch = folder / "data_batch_3"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="data_batch_3 is truncated or not a CIFAR-10"):
        data.load_cifar10(folder)
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"data_batch_3.*uint8 \[N, 3072\]"):
        data.load_cifar10(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batch.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="refusing to load"):
        data.load_cifar10(folder)
    batch.write_bytes(good)
    archive = tmp_path / "cifar-10-python.tar.gz"
    _tar(folder, archive)
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz is a truncated or corrupt"):
        data.load_cifar10(archive)
    # an archive of something else
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        payload = b"hello"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="other.tar.gz lacks data_batch_1"):
        data.load_cifar10(other)


def test_load_dataset_specs(tmp_path, rng):
    _write_mnist(tmp_path / "m", rng)
    train, _ = data.load_dataset(f"mnist:{tmp_path / 'm'}")
    assert len(train) == 12
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="say where"):
        data.load_dataset("cifar10")


# --------------------------------------------------------------------------- preprocessing


def test_mean_image_and_channel_mean(rng):
    x = rng.normal(3.0, 2.0, size=(50, 3, 5, 5)).astype(np.float32) \
        + np.arange(3, dtype=np.float32)[:, None, None]
    m = data.MeanImage().fit(x)
    assert m.mean.shape == (3, 5, 5)
    np.testing.assert_allclose(m(x).mean(axis=0), 0, atol=1e-5)
    c = data.ChannelMean(std=True).fit(x)
    assert c.mean.shape == (3, 1, 1)
    y = c(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(c(x[0]), y[0], atol=1e-6)   # one image works too
    assert y.dtype == np.float32
    # state round trip (what checkpoints store)
    c2 = data.preprocessing_from_state(c.state_dict())
    assert isinstance(c2, data.ChannelMean)
    np.testing.assert_array_equal(c2(x), y)
    with pytest.raises(RuntimeError, match="fit"):
        data.MeanImage()(x)
    with pytest.raises(ValueError, match="fitted on images"):
        m(x[:, :, :4, :4])


# --------------------------------------------------------------------------- augmentation


def test_random_crop_cuts_windows_of_the_padded_image(rng):
    x = rng.standard_normal((16, 2, 6, 6)).astype(np.float32)
    crop = data.RandomCrop(6, padding=2, seed=0)
    y = crop(x)
    assert y.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(16):
        hits = [(t, left) for t in range(5) for left in range(5)
                if np.array_equal(padded[i, :, t:t + 6, left:left + 6], y[i])]
        assert hits, f"image {i} is not a window of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 3        # not the same shift for every image
    np.testing.assert_array_equal(data.RandomCrop(6, padding=2, seed=0)(x), y)  # seeded
    assert not np.array_equal(data.RandomCrop(6, padding=2, seed=1)(x), y)
    np.testing.assert_array_equal(data.RandomCrop(6)(x), x)   # no padding, full size
    assert data.RandomCrop(4)(x[0]).shape == (2, 4, 4)


def test_flip_center_crop_compose(rng):
    x = rng.standard_normal((8, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(data.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(p=0.0)(x), x)
    y = data.RandomHorizontalFlip(seed=3)(x)
    flipped = [np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(8)]
    assert all(f or np.array_equal(y[i], x[i]) for i, f in enumerate(flipped))
    np.testing.assert_array_equal(data.CenterCrop((2, 3))(x), x[:, :, 1:3, 1:4])
    comp = data.Compose([data.CenterCrop(4), data.RandomHorizontalFlip(p=1.0)])
    np.testing.assert_array_equal(comp(x), x[:, :, :, :4][..., ::-1])
    with pytest.raises(ValueError, match="larger"):
        data.CenterCrop(9)(x)


# --------------------------------------------------------------------------- DataLoader


def _toy(n=23):
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    return data.ArrayDataset(x, np.arange(n) % 10)


def test_loader_batches_cover_the_data_once_per_epoch():
    ds = _toy()
    loader = data.DataLoader(ds, batch_size=5, shuffle=True, seed=4)
    assert len(loader) == 5
    batches = list(loader)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    x0, y0 = batches[0]
    assert x0.data.dtype == np.float32 and x0.shape == (5, 1, 2, 2)
    assert y0.data.dtype == np.int64
    seen = np.concatenate([x.data[:, 0, 0, 0] for x, _ in batches])
    assert sorted(seen) == list(range(23)) and list(seen) != list(range(23))
    # labels travel with their images
    for x, y in batches:
        np.testing.assert_array_equal(y.data, x.data[:, 0, 0, 0].astype(int) % 10)
    again = np.concatenate([x.data[:, 0, 0, 0] for x, _ in loader])
    assert list(again) != list(seen)          # the next epoch reshuffles
    loader.set_epoch(0)
    replay = np.concatenate([x.data[:, 0, 0, 0] for x, _ in loader])
    np.testing.assert_array_equal(replay, seen)   # epoch 0 again, same order
    fresh = data.DataLoader(ds, batch_size=5, shuffle=True, seed=4)
    np.testing.assert_array_equal(np.concatenate([x.data[:, 0, 0, 0] for x, _ in fresh]), seen)
    dropped = data.DataLoader(ds, batch_size=5, drop_last=True)
    assert len(dropped) == 4 and [len(y) for _, y in dropped] == [5, 5, 5, 5]
    ordered = np.concatenate([x.data[:, 0, 0, 0] for x, _ in data.DataLoader(ds, 7)])
    np.testing.assert_array_equal(ordered, np.arange(23))


def test_loader_prepares_batches_in_a_background_thread():
    threads = []

    def transform(x, rng=None):
        threads.append(threading.current_thread().name)
        return x + 1

    loader = data.DataLoader(_toy(), 4, transform=transform)
    out = [x.data for x, _ in loader]
    assert set(threads) == {"cnnkit-dataloader"}
    np.testing.assert_array_equal(out[0][:, 0, 0, 0], [1, 2, 3, 4])
    # same batches without the thread
    plain = [x.data for x, _ in data.DataLoader(_toy(), 4, transform=transform, prefetch=False)]
    for a, b in zip(out, plain):
        np.testing.assert_array_equal(a, b)


def test_loader_errors_propagate_and_early_exit_does_not_hang():
    def bad(x, rng=None):
        raise RuntimeError("broken transform")

    with pytest.raises(RuntimeError, match="broken transform"):
        list(data.DataLoader(_toy(), 4, transform=bad))
    t = time.perf_counter()
    for _ in range(20):
        for _x, _y in data.DataLoader(_toy(), 2):
            break
    assert time.perf_counter() - t < 2.0
    assert not [th for th in threading.enumerate() if th.name == "cnnkit-dataloader"
                and th.is_alive() and not th.daemon]


def test_loader_over_a_plain_sequence_of_samples():
    samples = [(np.full((1, 2, 2), i, np.float32), i % 3) for i in range(7)]
    batches = list(data.DataLoader(samples, 3))
    assert [x.shape for x, _ in batches] == [(3, 1, 2, 2), (3, 1, 2, 2), (1, 1, 2, 2)]
    np.testing.assert_array_equal(batches[1][1].data, [0, 1, 2])


def test_loader_augmentation_is_seeded_per_epoch():
    ds = _toy()
    crop = data.RandomCrop(2, padding=1)
    a = [x.data for x, _ in data.DataLoader(ds, 8, shuffle=True, seed=1, transform=crop)]
    b = [x.data for x, _ in data.DataLoader(ds, 8, shuffle=True, seed=1, transform=crop)]
    c = [x.data for x, _ in data.DataLoader(ds, 8, shuffle=True, seed=2, transform=crop)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c))
