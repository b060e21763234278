"""AlexNet-style heavy augmentation (resize, RandomResizedCrop, ColorJitter, PCALighting,
five/ten crops) against plainly written float64 references and PIL, and test-time augmentation
in cnnkit.metrics (tta="flip" / "ten_crop")."""

import colorsys

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import data, metrics, nn
from cnnkit.data import transforms as T


def _images(seed, shape):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# --------------------------------------------------------------------------- resize
def _resize_reference(img, out_h, out_w):
    """PIL's bilinear (triangle filter, widened by the scale when shrinking, normalised over the
    in-range pixels), one output pixel at a time in float64. img [C, H, W]."""
    def weights(i, out_len, in_len):
        scale = in_len / out_len
        support = max(scale, 1.0)
        center = (i + 0.5) * scale
        w = {}
        for j in range(in_len):
            d = abs(j + 0.5 - center) / support
            if d < 1.0:
                w[j] = 1.0 - d
        total = sum(w.values())
        return {j: v / total for j, v in w.items()}

    img = np.asarray(img, dtype=np.float64)
    c, hh, ww = img.shape
    out = np.zeros((c, out_h, out_w))
    for y in range(out_h):
        wy = weights(y, out_h, hh)
        for x in range(out_w):
            wx = weights(x, out_w, ww)
            for k in range(c):
                out[k, y, x] = sum(a * b * img[k, j, i] for j, a in wy.items()
                                   for i, b in wx.items())
    return out


@pytest.mark.parametrize("src,dst", [((9, 13), (4, 5)), ((6, 7), (15, 11)), ((8, 8), (8, 3)),
                                     ((5, 16), (12, 9)), ((7, 7), (1, 1))])
def test_resize_matches_per_pixel_reference(src, dst):
    x = _images(0, (2, 3, *src))
    out = T.resize(x, dst)
    assert out.shape == (2, 3, *dst) and out.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(out[i], _resize_reference(x[i], *dst), rtol=0, atol=2e-6)


@pytest.mark.parametrize("src,dst", [((32, 32), (24, 24)), ((13, 17), (5, 7)),
                                     ((8, 8), (19, 11)), ((40, 30), (17, 30)),
                                     ((64, 48), (32, 32))])
def test_resize_matches_pil_float_image(src, dst):
    from PIL import Image

    img = _images(1, src)
    ref = np.asarray(Image.fromarray(img, mode="F").resize(dst[::-1], Image.BILINEAR),
                     dtype=np.float64)
    np.testing.assert_allclose(T.resize(img[None], dst)[0], ref, rtol=0, atol=1e-5)


def test_resize_constant_identity_and_rank():
    const = np.full((2, 3, 11, 7), 0.37, dtype=np.float32)
    for size in [(5, 3), (20, 30), (11, 2), 4]:
        np.testing.assert_allclose(T.resize(const, size), 0.37, rtol=0, atol=1e-6)
    x = _images(2, (3, 3, 10, 12))
    np.testing.assert_array_equal(T.resize(x, (10, 12)), x)
    # resize to the same size through the general path (a whole-image box) is exact too
    np.testing.assert_array_equal(
        T._resize_boxes(x, [0] * 3, [0] * 3, [10] * 3, [12] * 3, (10, 12)), x)
    one = T.resize(x[0], 6)
    assert one.shape == (3, 6, 6)
    np.testing.assert_array_equal(one, T.resize(x, 6)[0])
    with pytest.raises(ValueError, match="resize"):
        T.resize(x, (0, 4))
    with pytest.raises(ValueError, match="expected an image"):
        T.resize(x[0, 0], 4)


# --------------------------------------------------------------------------- RandomResizedCrop
def test_random_resized_crop_shape_range_and_windows():
    x = _images(3, (16, 3, 20, 28))
    t = T.RandomResizedCrop((12, 10), scale=(0.2, 0.9))
    out = t(x, rng=np.random.default_rng(7))
    assert out.shape == (16, 3, 12, 10) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    # each output is the plain resize of the window get_params drew (same draws)
    tops, lefts, hs, ws = t.get_params(16, 20, 28, np.random.default_rng(7))
    for i in range(16):
        assert 0 <= tops[i] <= 20 - hs[i] and 0 <= lefts[i] <= 28 - ws[i]
        win = x[i, :, tops[i]:tops[i] + hs[i], lefts[i]:lefts[i] + ws[i]]
        np.testing.assert_allclose(out[i], T.resize(win, (12, 10)), rtol=0, atol=2e-6)
    # the windows drawn over many images: area fraction and aspect ratio within the ranges
    # (up to the rounding of the sides to whole pixels)
    tops, lefts, hs, ws = t.get_params(4000, 200, 280, np.random.default_rng(1))
    frac = hs * ws / (200 * 280)
    assert frac.min() > 0.2 * 0.95 and frac.max() < 0.9 * 1.05
    r = ws / hs
    assert r.min() > 0.75 * 0.97 and r.max() < 4 / 3 * 1.03
    assert np.log(r).std() > 0.1 and frac.std() > 0.1    # both are drawn


def test_random_resized_crop_whole_image_and_fallback():
    x = _images(4, (5, 3, 24, 24))
    t = T.RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=0)
    np.testing.assert_allclose(t(x), T.resize(x, 16), rtol=0, atol=1e-6)
    # an impossible area (twice the image): torchvision's fallback, the central window with
    # the aspect ratio clamped into ``ratio``
    g = np.random.default_rng(0)
    tall = T.RandomResizedCrop(8, scale=(2.0, 2.0), ratio=(1.0, 1.0))
    assert [a.tolist() for a in tall.get_params(3, 20, 40, g)] == [[0] * 3, [10] * 3,
                                                                   [20] * 3, [20] * 3]
    wide = T.RandomResizedCrop(8, scale=(2.0, 2.0), ratio=(0.5, 1.0))
    assert [a.tolist() for a in wide.get_params(2, 30, 10, g)] == [[5] * 2, [0] * 2,
                                                                   [20] * 2, [10] * 2]
    inside = T.RandomResizedCrop(8, scale=(2.0, 2.0), ratio=(0.5, 2.0))
    assert [a.tolist() for a in inside.get_params(1, 30, 40, g)] == [[0], [0], [30], [40]]


def test_random_resized_crop_seeding_and_errors():
    x = _images(5, (8, 3, 16, 16))
    a = T.RandomResizedCrop(12, seed=3)(x)
    np.testing.assert_array_equal(a, T.RandomResizedCrop(12, seed=3)(x))
    assert not np.array_equal(a, T.RandomResizedCrop(12, seed=4)(x))
    t = T.RandomResizedCrop(12)
    np.testing.assert_array_equal(t(x, rng=np.random.default_rng(9)),
                                  t(x, rng=np.random.default_rng(9)))
    g = np.random.default_rng(9)
    assert not np.array_equal(t(x, rng=g), t(x, rng=g))
    assert t(x[0], rng=np.random.default_rng(0)).shape == (3, 12, 12)
    for kw in [dict(scale=(0.9, 0.1)), dict(ratio=(2.0, 1.0)), dict(ratio=(0.0, 1.0)),
               dict(scale=(0.0, 0.0)), dict(scale=(0.5,))]:
        with pytest.raises(ValueError, match="RandomResizedCrop"):
            T.RandomResizedCrop(8, **kw)


# --------------------------------------------------------------------------- ColorJitter
def _gray64(img):
    return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]


def _ref_brightness(img, f):
    return np.clip(img * f, 0, 1)


def _ref_contrast(img, f):
    m = _gray64(img).mean() if img.shape[0] == 3 else img.mean()
    return np.clip(f * img + (1 - f) * m, 0, 1)


def _ref_saturation(img, f):
    return np.clip(f * img + (1 - f) * _gray64(img)[None], 0, 1)


def _ref_hue(img, f):
    out = np.empty_like(img)
    for y in range(img.shape[1]):
        for x in range(img.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*img[:, y, x])
            out[:, y, x] = colorsys.hsv_to_rgb((h + f) % 1.0, s, v)
    return out


_REFS = {"brightness": _ref_brightness, "contrast": _ref_contrast,
         "saturation": _ref_saturation, "hue": _ref_hue}


def _rgb_test_images():
    x = _images(6, (4, 3, 6, 7)).astype(np.float64)
    x[1, :, 0, :] = 0.5            # gray pixels (no hue)
    x[2, 0, 1, :] = x[2, 1, 1, :]  # ties between channels (red = green)
    x[3, :, :2] = 0.0              # black
    x[3, :, 2, :3] = 1.0           # white
    return x.astype(np.float32)


@pytest.mark.parametrize("op,factor", [("brightness", 0.6), ("brightness", 1.7),
                                       ("contrast", 0.3), ("contrast", 1.8),
                                       ("saturation", 0.0), ("saturation", 1.9),
                                       ("hue", 0.23), ("hue", -0.41), ("hue", 0.5)])
def test_color_jitter_each_op_against_reference(op, factor):
    x = _rgb_test_images()
    out = T.ColorJitter(**{op: (factor, factor)}, seed=0)(x)   # a fixed factor
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    for i in range(len(x)):
        np.testing.assert_allclose(out[i], _REFS[op](x[i].astype(np.float64), factor),
                                   rtol=0, atol=2e-6)


def test_color_jitter_random_order_and_factor_ranges():
    x = _rgb_test_images()
    t = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    out = t(x, rng=np.random.default_rng(11))
    factors, order = t.get_params(len(x), np.random.default_rng(11))
    assert sorted(map(tuple, np.sort(order, axis=1))) == [(0, 1, 2, 3)] * len(x)
    for i in range(len(x)):
        ref = x[i].astype(np.float64)
        for k in order[i]:
            ref = _REFS[T.ColorJitter.OPS[k]](ref, factors[k, i])
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=1e-5)
    factors, order = t.get_params(5000, np.random.default_rng(0))
    for k, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.1, 0.1)]):
        assert lo <= factors[k].min() < lo + 0.01 and hi - 0.01 < factors[k].max() <= hi
    # every op lands at every position: the order really is drawn per image
    assert all(len(np.unique(order[:, s])) == 4 for s in range(4))
    assert T.ColorJitter(brightness=2.0).brightness == (0.0, 3.0)


def test_color_jitter_gray_images_seeding_and_errors():
    g1 = _images(7, (6, 1, 5, 5))
    t = T.ColorJitter(brightness=(1.3, 1.3), contrast=(0.5, 0.5))
    out = t(g1, rng=np.random.default_rng(0))
    _, order = t.get_params(6, np.random.default_rng(0))
    for i in range(6):
        ref = g1[i].astype(np.float64)
        for k in order[i]:
            if k < 2:
                ref = _REFS[T.ColorJitter.OPS[k]](ref, [1.3, 0.5][k])
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=2e-6)
    for kw in [dict(saturation=0.2), dict(hue=0.1), dict(brightness=0.2, hue=0.1)]:
        with pytest.raises(ValueError, match="RGB"):
            T.ColorJitter(**kw)(g1)
    with pytest.raises(ValueError, match="contrast"):
        T.ColorJitter(contrast=0.2)(_images(0, (2, 4, 3, 3)))
    # brightness alone works on any number of channels
    assert T.ColorJitter(brightness=0.2)(_images(0, (2, 4, 3, 3))).shape == (2, 4, 3, 3)
    x = _rgb_test_images()
    a = T.ColorJitter(0.4, 0.4, 0.4, 0.2, seed=5)(x)
    np.testing.assert_array_equal(a, T.ColorJitter(0.4, 0.4, 0.4, 0.2, seed=5)(x))
    g = np.random.default_rng(1)
    t = T.ColorJitter(0.4, 0.4, 0.4, 0.2)
    assert not np.array_equal(t(x, rng=g), t(x, rng=g))
    np.testing.assert_array_equal(T.ColorJitter()(x), x)   # all off: unchanged
    for kw in [dict(brightness=-0.1), dict(hue=0.6), dict(hue=(-0.7, 0.1)),
               dict(contrast=(1.5, 0.5)), dict(saturation=(-0.5, 1.0))]:
        with pytest.raises(ValueError, match="ColorJitter"):
            T.ColorJitter(**kw)


# --------------------------------------------------------------------------- PCALighting
def _random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def test_pca_lighting_fit_recovers_covariance():
    p = _random_rotation(0)
    lam = np.array([0.04, 0.01, 0.0025])
    cov = p @ np.diag(lam) @ p.T
    g = np.random.default_rng(1)
    pixels = g.multivariate_normal([0.5, 0.4, 0.3], cov, size=300 * 16 * 16)
    imgs = pixels.reshape(300, 16, 16, 3).transpose(0, 3, 1, 2).astype(np.float32)
    t = T.PCALighting(0.1).fit(imgs, chunk=37)
    # exactly numpy's covariance over all pixels (float64), chunked or not
    flat = imgs.astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
    ref_val, ref_vec = np.linalg.eigh(np.cov(flat))
    np.testing.assert_allclose(t.eigval, ref_val[::-1], rtol=1e-9)
    np.testing.assert_allclose(np.abs(t.eigvec), np.abs(ref_vec[:, ::-1]), atol=1e-7)
    t2 = T.PCALighting(0.1).fit(imgs)
    np.testing.assert_allclose(t2.eigval, t.eigval, rtol=1e-9)
    # and close to the covariance the data was drawn from (eigenvectors up to sign)
    np.testing.assert_allclose(t.eigval, lam, rtol=0.03)
    assert np.all(np.abs(np.abs(np.sum(t.eigvec * p, axis=0)) - 1) < 1e-3)
    np.testing.assert_allclose(t.eigvec.T @ t.eigvec, np.eye(3), atol=1e-12)


def test_pca_lighting_offsets_statistics():
    t = T.PCALighting(alphastd=0.2)
    p = _random_rotation(3)
    t.eigval, t.eigvec = np.array([0.5, 0.2, 0.05]), p
    x = _images(8, (40000, 3, 2, 2))
    out = t(x, rng=np.random.default_rng(4))
    off = (out.astype(np.float64) - x).reshape(40000, 3, 4)
    # one RGB offset per image, the same at every pixel
    np.testing.assert_allclose(off, off[:, :, :1].repeat(4, axis=2), atol=1e-6)
    off = off[:, :, 0]
    want = p @ np.diag((0.2 * t.eigval) ** 2) @ p.T   # cov of sum_i alpha_i lambda_i p_i
    np.testing.assert_allclose(np.cov(off.T), want, atol=0.03 * want.max())
    assert np.all(np.abs(off.mean(axis=0)) < 4 * np.sqrt(np.diag(want) / 40000))
    # the offsets are exactly eigvec @ (alpha * eigval), alpha from the generator
    alpha = np.random.default_rng(4).normal(0.0, 0.2, size=(40000, 3))
    np.testing.assert_allclose(off, (alpha * t.eigval) @ p.T, atol=1e-6)


def test_pca_lighting_state_seeding_and_errors():
    imgs = _images(9, (20, 3, 8, 8))
    t = T.PCALighting(0.1, seed=0).fit(imgs)
    u = T.PCALighting().load_state_dict(t.state_dict())
    assert u.alphastd == 0.1 and t.state_dict()["kind"] == "PCALighting"
    np.testing.assert_array_equal(t(imgs, rng=np.random.default_rng(2)),
                                  u(imgs, rng=np.random.default_rng(2)))
    np.testing.assert_array_equal(T.PCALighting(0.1, seed=3).fit(imgs)(imgs),
                                  T.PCALighting(0.1, seed=3).fit(imgs)(imgs))
    g = np.random.default_rng(5)
    assert not np.array_equal(t(imgs, rng=g), t(imgs, rng=g))
    assert t(imgs[0]).shape == (3, 8, 8)
    np.testing.assert_array_equal(T.PCALighting(0.0).fit(imgs)(imgs), imgs)
    with pytest.raises(RuntimeError, match="fit"):
        T.PCALighting()(imgs)
    with pytest.raises(ValueError, match="RGB"):
        t(_images(0, (2, 1, 8, 8)))
    with pytest.raises(ValueError, match="PCALighting.fit"):
        T.PCALighting().fit(_images(0, (2, 1, 8, 8)))
    with pytest.raises(ValueError, match="alphastd"):
        T.PCALighting(-1.0)
    assert "not fitted" in repr(T.PCALighting())


# --------------------------------------------------------------------------- crops
def test_five_and_ten_crop_slices():
    x = _images(10, (2, 3, 9, 12))
    crops = T.ten_crop(x, (5, 7))
    assert crops.shape == (10, 2, 3, 5, 7)
    want = [x[:, :, :5, :7], x[:, :, :5, 5:], x[:, :, 4:, :7], x[:, :, 4:, 5:],
            x[:, :, 2:7, 2:9]]
    for k, w in enumerate(want):
        np.testing.assert_array_equal(crops[k], w)
        np.testing.assert_array_equal(crops[5 + k], w[..., ::-1])
    np.testing.assert_array_equal(T.five_crop(x, (5, 7)), crops[:5])
    np.testing.assert_array_equal(T.five_crop(x[1], (5, 7)), crops[:5, 1])
    assert T.ten_crop(x[0], 4).shape == (10, 3, 4, 4)
    np.testing.assert_array_equal(T.five_crop(x, (5, 7))[4], T.CenterCrop((5, 7))(x))
    with pytest.raises(ValueError, match="five_crop"):
        T.ten_crop(x, (10, 4))


# --------------------------------------------------------------------------- the pipeline
def test_alexnet_pipeline_through_the_dataloader():
    imgs = _images(11, (40, 3, 16, 16))
    ds = data.ArrayDataset(imgs, np.arange(40) % 4)
    pipe = data.Compose([data.RandomResizedCrop(12, scale=(0.3, 1.0)),
                         data.RandomHorizontalFlip(), data.ColorJitter(0.4, 0.4, 0.4),
                         data.PCALighting(0.1).fit(imgs), data.ChannelMean().fit(imgs)])

    def epoch(seed, e):
        loader = data.DataLoader(ds, batch_size=16, shuffle=True, seed=seed, transform=pipe)
        loader.set_epoch(e)
        return np.concatenate([x.numpy() for x, _ in loader])

    a = epoch(0, 0)
    assert a.shape == (40, 3, 12, 12) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, epoch(0, 0))
    assert not np.array_equal(a, epoch(0, 1))
    assert not np.array_equal(a, epoch(1, 0))


# --------------------------------------------------------------------------- TTA
def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loader(n=24, shape=(3, 8, 8), classes=5, seed=12, batch=10):
    imgs = _images(seed, (n, *shape))
    labels = np.random.default_rng(seed).integers(0, classes, size=n)
    return data.DataLoader(data.ArrayDataset(imgs, labels), batch_size=batch), imgs, labels


def _linear_model(shape=(3, 8, 8), classes=5):
    ck.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), classes))


def _forward(model, x):
    with ck.no_grad():
        return model(ck.tensor(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def test_tta_flip_on_a_mirror_symmetric_model():
    loader, imgs, labels = _loader(n=40, classes=3)
    ck.manual_seed(1)
    # a conv with left-right symmetric kernels, then a global average: the mirror image gives
    # the same output (up to rounding)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(6, 3))
    w = model[0].weight.data
    w[...] = (w + w[..., ::-1]) / 2
    np.testing.assert_allclose(_forward(model, imgs[..., ::-1]), _forward(model, imgs),
                               atol=1e-5)
    plain = metrics.evaluate(model, loader)
    flip = metrics.evaluate(model, loader, tta="flip")
    assert flip.accuracy == plain.accuracy and flip.count == 40
    np.testing.assert_array_equal(flip.confusion, plain.confusion)
    scores, _, _ = metrics.predict(model, loader, tta="flip")
    np.testing.assert_allclose(scores, _softmax(_forward(model, imgs)), atol=1e-5)


def test_tta_flip_and_ten_crop_equal_hand_computed_mean_softmax():
    loader, imgs, labels = _loader()
    model = _linear_model()
    ce = nn.CrossEntropyLoss()
    # flip
    want = (_softmax(_forward(model, imgs)) + _softmax(_forward(model, imgs[..., ::-1]))) / 2
    scores, got_labels, total = metrics.predict(model, loader, ce, tta="flip")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(total, -np.log(want[np.arange(24), labels]).sum(), rtol=1e-5)
    # ten crops of round(0.75 * 8) = 6, cut by hand, each resized back to 8x8
    windows = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]
    views = [imgs[:, :, t:t + 6, s:s + 6] for t, s in windows]
    views += [v[..., ::-1] for v in views]
    want = sum(_softmax(_forward(model, T.resize(v, 8))) for v in views) / 10
    ev = metrics.evaluate(model, loader, ce, tta="ten_crop", crop_fraction=0.75)
    scores, _, total = metrics.predict(model, loader, ce, tta="ten_crop", crop_fraction=0.75)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-7)
    nll = -np.log(want[np.arange(24), labels])
    assert ev.loss == pytest.approx(nll.mean(), rel=1e-5)
    assert ev.accuracy == pytest.approx(np.mean(want.argmax(axis=1) == labels))
    # crop_fraction 1: five identical whole images and five mirrors = tta="flip"
    full, _, _ = metrics.predict(model, loader, tta="ten_crop", crop_fraction=1.0)
    flip, _, _ = metrics.predict(model, loader, tta="flip")
    np.testing.assert_allclose(full, flip, rtol=1e-6, atol=1e-7)


def test_default_path_unchanged_and_ensemble_probabilities():
    loader, imgs, labels = _loader()
    model = _linear_model()
    ce = nn.CrossEntropyLoss()
    scores, _, total = metrics.predict(model, loader, ce)
    batches = np.concatenate([_forward(model, imgs[i:i + 10]) for i in (0, 10, 20)])
    np.testing.assert_array_equal(scores, batches)   # the logits, as before
    ev = metrics.evaluate(model, loader, ce)
    assert ev.loss == pytest.approx(total / 24)
    # an Ensemble already returns probabilities: tta averages them, no second softmax
    ck.manual_seed(5)
    other = nn.Sequential(nn.Flatten(), nn.Linear(192, 5))
    ens = ck.ensemble.Ensemble([model, other])
    want = sum(_softmax(_forward(m, v)) for m in (model, other)
               for v in (imgs, imgs[..., ::-1])) / 4
    scores, _, _ = metrics.predict(ens, loader, tta="flip")
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-7)


def test_tta_errors():
    loader, _, _ = _loader()
    model = _linear_model()
    for bad in ["mirror", "FLIP", 1, ("flip",)]:
        with pytest.raises(ValueError) as e:
            metrics.evaluate(model, loader, tta=bad)
        msg = str(e.value)
        assert all(w in msg for w in ("evaluate", "tta", "expected", "got", repr(bad)))
    with pytest.raises(ValueError, match="predict: unknown tta"):
        metrics.predict(model, loader, tta="five_crop")
    for cf in [0.0, 1.5, -0.2, "x"]:
        with pytest.raises(ValueError, match="evaluate: crop_fraction"):
            metrics.evaluate(model, loader, tta="ten_crop", crop_fraction=cf)
    empty = data.DataLoader(data.ArrayDataset(np.zeros((0, 3, 8, 8)), np.zeros(0)), 4)
    with pytest.raises(ValueError, match="no batches"):
        metrics.evaluate(model, empty, tta="flip")
