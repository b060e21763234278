"""cnnkit.quantization.quantize (issue 19): post-training static int8 quantization of trained
models; accuracy kept, layers replaced, clear errors."""

import numpy as np
import pytest

import cnnkit as ck
from cnnkit import nn, optim
from cnnkit.data import DataLoader, load_digits
from cnnkit.quantization import QuantizedConv2d, QuantizedLinear, input_range, quantize


@pytest.fixture(scope="module")
def digits_model():
    # half of the digits held out (899 images): 0.5 points of accuracy are 4 images, so the
    # bound tests the quantization, not the luck of one image on a 360-image split
    tr, te = load_digits(test_fraction=0.5)
    ck.random.manual_seed(0)
    model = ck.models.digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ck.train.fit(model, DataLoader(tr, batch_size=64, shuffle=True), epochs=6, optimizer=opt)
    model.eval()
    return model, tr, te


def accuracy(model, ds):
    x, y = ds[:len(ds)]
    with ck.no_grad():
        return float((model(ck.Tensor(x)).data.argmax(1) == y).mean())


def calibration(ds, batches=4, size=128):
    x, _ = ds[:batches * size]
    return [x[i:i + size] for i in range(0, len(x), size)]


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_digits_accuracy_is_kept(digits_model, method):
    model, tr, te = digits_model
    before = accuracy(model, te)
    q = quantize(model, calibration(tr), method=method)
    after = accuracy(q, te)
    assert before > 0.9
    assert after >= before - 0.005, (before, after)
    assert accuracy(model, te) == before  # the float model is untouched


def test_layers_are_replaced_and_logits_stay_close(digits_model):
    model, tr, te = digits_model
    q = quantize(model, calibration(tr))
    kinds = [type(m) for m in q.modules()]
    assert kinds.count(QuantizedConv2d) == 3 and kinds.count(QuantizedLinear) == 2
    assert nn.Conv2d not in kinds and nn.Linear not in kinds
    assert "int8" in repr(q)
    x, _ = te[:64]
    with ck.no_grad():
        ref = model(ck.Tensor(x)).data
    got = q(ck.Tensor(x)).data
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    # a DataLoader's (x, y) batches calibrate too, per tensor as well as per channel
    q2 = quantize(model, DataLoader(tr, batch_size=128), per_channel=False)
    assert np.abs(q2(ck.Tensor(x)).data - ref).max() < 0.15 * np.abs(ref).max()


def test_input_range_contains_zero_exactly():
    scale, zp = input_range(-1.0, 3.0)
    assert np.isclose(scale, 4.0 / 255) and zp == round(1.0 / (4.0 / 255))
    assert input_range(0.5, 2.0) == (np.float32(2.0 / 255), 0)      # widened down to 0
    assert input_range(-2.0, -0.5) == (np.float32(2.0 / 255), 255)  # and up to 0
    assert input_range(0.0, 0.0) == (np.float32(1.0), 0)


def test_quantized_conv_matches_float_conv_within_steps(rng):
    conv = nn.Conv2d(8, 16, 3, padding=1)
    conv.eval()
    x = np.abs(rng.standard_normal((2, 8, 9, 9)).astype(np.float32))
    q = QuantizedConv2d(conv)
    q._set_input(0.0, float(x.max()))
    with ck.no_grad():
        ref = conv(ck.Tensor(x)).data
    got = q(ck.Tensor(x)).data
    assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max()


def test_errors_are_clear(digits_model):
    model, tr, _ = digits_model
    model.train()
    try:
        with pytest.raises(ValueError, match="quantize: the model is in training mode"):
            quantize(model, calibration(tr))
    finally:
        model.eval()
    with pytest.raises(ValueError, match="quantize: method must be one of"):
        quantize(model, calibration(tr), method="kl")
    with pytest.raises(ValueError, match=r"quantize: percentile must be in \(50, 100\]"):
        quantize(model, calibration(tr), method="percentile", percentile=20)
    with pytest.raises(ValueError, match="quantize: the calibration data gave no batch"):
        quantize(model, [])
    with pytest.raises(TypeError, match="calibration batches must be arrays or Tensors"):
        quantize(model, ["not an array"])
    with pytest.raises(TypeError, match="quantize: model must be a cnnkit.nn.Module"):
        quantize("model", calibration(tr))
    with pytest.raises(ValueError, match="no Conv2d or Linear layer"):
        quantize(nn.Sequential(nn.ReLU()).eval(), calibration(tr))
    with pytest.raises(ValueError):  # calibration images of the wrong shape: the model says so
        quantize(model, [np.zeros((4, 3, 8, 8), np.float32)])


def test_save_and_load_keep_the_int8_model_bit_for_bit(digits_model, tmp_path):
    model, tr, te = digits_model
    q = quantize(model, calibration(tr), method="percentile")
    path = tmp_path / "q.safetensors"
    ck.save(q, path)
    back = ck.load(path)
    x, _ = te[:100]
    np.testing.assert_array_equal(back(ck.Tensor(x)).data, q(ck.Tensor(x)).data)
    assert back.quantized == q.quantized and not back.training
    from safetensors.numpy import load_file

    stored = load_file(str(path))
    assert stored["0.weight_int8"].dtype == np.int8
    assert stored["0.input_zero_point"].dtype == np.int32 and stored["0.input_scale"].shape == ()
    np.testing.assert_array_equal(stored["0.weight_int8"], q.state_dict()["0.weight_int8"])


def test_every_isa_gives_the_same_bits_and_the_weight_cache_follows(digits_model):
    model, tr, te = digits_model
    q = quantize(model, calibration(tr))
    x, _ = te[:50]
    before = ck.get_isa()
    outs = {}
    try:
        for isa in ck.cpu_info()["supported_isas"]:
            ck.set_isa(isa)
            outs[isa] = q(ck.Tensor(x)).data  # packs its weights for this ISA's kernels
            np.testing.assert_array_equal(q(ck.Tensor(x)).data, outs[isa])  # from the cache
    finally:
        ck.set_isa(before)
    first = next(iter(outs.values()))
    for isa, y in outs.items():
        np.testing.assert_array_equal(y, first, err_msg=isa)
    # new weights through load_state_dict: the packed panels are not reused
    other = quantize(model, calibration(tr, batches=1), per_channel=False)
    q.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(q(ck.Tensor(x)).data, other(ck.Tensor(x)).data)


def _write_idx(folder, prefix, images, labels):
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
        + images.astype(np.uint8).tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        (0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def test_lenet5_on_mnist_format_files_keeps_its_accuracy(digits_model, tmp_path):
    """lenet5 trained on MNIST-format IDX files (the bundled digits drawn at 28x28) loses at
    most 0.5 points of test accuracy after quantization with the default calibration."""
    _, tr, te = digits_model
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, ds in (("train", tr), ("t10k", te)):
        x, y = ds[:len(ds)]
        big = np.kron(x[:, 0], np.ones((3, 3), np.float32))  # 8x8 -> 24x24, then a 2-pixel frame
        big = np.pad(big, ((0, 0), (2, 2), (2, 2)))
        _write_idx(folder, prefix, np.clip(big * 255, 0, 255), y)
    train, test = ck.data.load_mnist(folder)
    ck.random.manual_seed(1)
    model = ck.models.lenet5()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ck.train.fit(model, DataLoader(train, batch_size=32, shuffle=True), epochs=8, optimizer=opt)
    model.eval()
    before = accuracy(model, test)
    q = quantize(model, calibration(train))
    after = accuracy(q, test)
    # 92.6 % here; seeds 1-5 gave 71-95 % (the bound below is about int8, not training), int8
    # -0.2 to +0.2 points
    assert before > 0.6, before
    assert after >= before - 0.005, (before, after)


def test_cifar_net_logits_stay_within_the_stated_tolerance(rng):
    """The cifar-style net (4 conv + BN + ReLU, 2 pools, 2 linear): int8 logits within 6 % of
    the largest fp32 logit (measured 2.8 %), top class unchanged for >= 97 % of inputs."""
    ck.random.manual_seed(0)
    model = ck.models.cifar_cnn().eval()
    cal = [rng.standard_normal((32, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    q = quantize(model, cal)
    x = rng.standard_normal((128, 3, 32, 32)).astype(np.float32)
    with ck.no_grad():
        ref = model(ck.Tensor(x)).data
    got = q(ck.Tensor(x)).data
    assert np.abs(got - ref).max() / np.abs(ref).max() < 0.06
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.97


def test_summary_says_what_runs_in_int8(digits_model):
    model, tr, _ = digits_model
    q = quantize(model, calibration(tr))
    fp, qs = ck.summary(model, (1, 8, 8)), ck.summary(q, (1, 8, 8))
    assert {r.precision for r in fp.rows if r.kind in ("Conv2d", "Linear")} == {"fp32"}
    kinds = {r.kind: r.precision for r in qs.rows}
    assert kinds["QuantizedConv2d"] == "int8" and kinds["QuantizedLinear"] == "int8"
    assert kinds["QuantizedFlatten"] == ""  # (uint8 rows between the int8 layers)
    assert qs.total_mult_adds == fp.total_mult_adds  # the same products, in int8
    # the folded batch norms are gone from the count: weights + biases of the int8 layers
    assert qs.total_params == sum(m.weight_count() for m in q.modules()
                                  if hasattr(m, "weight_count")) and qs.trainable_params == 0
    assert "Precision" in str(qs) and "int8" in str(qs)


def test_onnx_export_in_qdq_form_runs_in_onnxruntime(rng):
    """QuantizeLinear/DequantizeLinear around each int8 layer's input, its int8 weights
    through DequantizeLinear (per channel): onnxruntime gives the int8 model's outputs."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ck.random.manual_seed(0)
    model = ck.models.cifar_cnn().eval()
    q = quantize(model, [rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
                         for _ in range(2)])
    proto = ck.onnx.export(q, (3, 32, 32))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    dtypes = {i.name: i.data_type for i in proto.graph.initializer}
    assert dtypes["0.weight_int8"] == onnx.TensorProto.INT8
    assert dtypes["0.input_zero_point.u8"] == onnx.TensorProto.UINT8
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    want = q(ck.Tensor(x)).data
    # The graph as written (no fusion: each DequantizeLinear, then a float Conv / Gemm): the
    # same quantized values but for the float sums' order, which now and then moves an
    # activation across a rounding boundary of the next layer's quantization (one step).
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), plain,
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    err = np.abs(got - want) / np.abs(want).max()
    assert np.median(err) <= 1e-5 and err.max() <= 2e-2, (np.median(err), err.max())
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9
    # Its default optimisations fuse the QDQ pairs into int8 kernels; on a CPU without VNNI
    # they use VPMADDUBSW, whose int16 pair sums saturate (onnxruntime documents this), so
    # only a looser agreement holds there.
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    assert np.abs(got - want).max() / np.abs(want).max() <= 5e-2
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_int8_layers_hand_uint8_to_each_other_as_the_float32_hand_off_would():
    # cifar_cnn: conv -> conv+pool -> conv -> conv+pool -> flatten -> linear -> linear, every
    # hand-off uint8 NHWC (the flatten in (h, w, c) order, which the Linear's packing undoes);
    # inside a trace the same layers hand float32 over (what the ONNX export sees)
    from cnnkit.autograd import record_applications
    from cnnkit.quantization import QTensor
    ck.random.manual_seed(0)
    model = ck.models.build("cifar_cnn").eval()
    rng = np.random.default_rng(3)
    q = quantize(model, [rng.standard_normal((16, 3, 32, 32)).astype(np.float32)])
    x = ck.Tensor(rng.standard_normal((24, 3, 32, 32)).astype(np.float32))
    with ck.no_grad():
        first = q[0](x)
        chained = q(x).data
        with record_applications():
            handed = q(x).data
        ref = ck.nn.utils.fuse(model)(x).data
    assert isinstance(first, QTensor) and first.q.dtype == np.uint8
    assert first.q.shape == (24, 32, 32, 32) and first.shape == (24, 32, 32, 32)
    assert np.abs(chained - handed).max() / np.abs(handed).max() < 0.02
    assert np.abs(chained - ref).max() / np.abs(ref).max() < 0.06
    assert (chained.argmax(1) == handed.argmax(1)).mean() >= 0.9
    # a uint8 tensor's float view: the first layer's output, NCHW, on the next one's grid
    back = first.dequantize()
    with ck.no_grad():
        want = np.maximum(ck.nn.utils.fuse(model)[0](x).data, 0)
    assert back.shape == want.shape and np.abs(back - want).max() / want.max() < 0.1
