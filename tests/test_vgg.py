"""Tests of vgg.py: every loader, the graph it builds, the default search and bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io
import weights_factory as wf
from neural_style_tf.calibration import calibration_images, calibration_paths
from neural_style_tf.feature_network import FeatureNetwork
from neural_style_tf.keras_network import KerasNetwork
from numpy.lib.stride_tricks import sliding_window_view

import vgg
from neural_style_tf import errors, images, settings
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()

# Odd sizes on purpose: SAME pooling then pads one row/column at the bottom/right.
INPUT_SHAPE = (1, 9, 11, 3)


# ---------------------------------------------------------------- NumPy reference


# np.pad's names for the first layer's paddings (settings.PADDINGS).
NP_PAD_MODES = {"zero": "constant", "replicate": "edge", "reflect": "reflect"}


def np_conv_same(x, kernel, bias, padding="zero"):
    """TensorFlow's conv2d (cross-correlation), stride 1, SAME size, plus bias. x is [H, W, C]."""
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((top, kh - 1 - top), (left, kw - 1 - left), (0, 0)), mode=NP_PAD_MODES[padding])
    windows = sliding_window_view(padded, (kh, kw), axis=(0, 1))  # [H, W, C, kh, kw]
    return np.einsum("hwcij,ijco->hwo", windows, kernel.astype(np.float64)) + bias


def np_pool_same(x, pooling):
    """2x2 stride-2 pooling with TensorFlow's SAME padding: an odd size gets one padded
    row/column at the end, which max ignores and avg leaves out of the count."""
    h, w, c = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    padded = np.full((2 * oh, 2 * ow, c), np.nan)
    padded[:h, :w] = x
    blocks = padded.reshape(oh, 2, ow, 2, c)
    return np.nanmax(blocks, axis=(1, 3)) if pooling == "max" else np.nanmean(blocks, axis=(1, 3))


def reference_net(layers, weights, x, pooling="max", padding="zero"):
    """{layer: [H, W, C] float64} computed with NumPy from HWIO weights; x is [1, H, W, C].
    `padding` is the first convolution's; the others zero-pad."""
    out, current = {}, x[0].astype(np.float64)
    for name in layers:
        kind = vgg.layer_kind(name)
        if kind == "conv":
            current = np_conv_same(current, *weights[name], padding if not out else "zero")
        elif kind == "relu":
            current = np.maximum(current, 0.0)
        else:
            current = np_pool_same(current, pooling)
        out[name] = current
    return out


def run_net(network, x, pooling="max", last=None, padding="zero"):
    """Build the network's features in a fresh graph and evaluate every layer on `x`."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, shape=x.shape)
        net = network.features(image, last, pooling, padding)
        values = sess.run(net, feed_dict={image: x})
    return {name: value[0] for name, value in values.items()}


def relative_error(actual, expected):
    scale = max(np.abs(expected).max(), 1e-12)
    return float(np.abs(actual - expected).max() / scale)


def random_input(seed=0, shape=INPUT_SHAPE):
    """A preprocessed (mean-subtracted) image: values around +-50, like real input."""
    return np.random.default_rng(seed).normal(0.0, 50.0, size=shape).astype(np.float32)


# ---------------------------------------------------------------- loaders agree with the reference


def _write(fmt, tmp_path, blocks=(1, 2), channels=(4, 6), seed=3):
    """Write a tiny network in `fmt`; return (path, Spec)."""
    if fmt in ("mat-new", "mat-old"):
        path = tmp_path / "net.mat"
        return path, wf.make_mat(path, layout=fmt[4:], blocks=blocks, channels=channels, seed=seed)
    if fmt == "keras":
        path = tmp_path / "net.h5"
        return path, wf.make_keras_h5(path, blocks=blocks, channels=channels, seed=seed)
    if fmt == "keras3":
        path = tmp_path / "net.weights.h5"
        return path, wf.make_keras3_h5(path, blocks=blocks, channels=channels, seed=seed)
    if fmt == "npz":
        path = tmp_path / "net.npz"
        return path, wf.make_npz(path, blocks=blocks, channels=channels, seed=seed)
    raise AssertionError(fmt)


FORMATS = ("mat-new", "mat-old", "keras", "keras3", "npz")


@pytest.mark.parametrize("fmt", FORMATS)
def test_loader_reads_layers_weights_and_conventions(fmt, tmp_path):
    path, spec = _write(fmt, tmp_path)
    network = vgg.load_net(str(path))
    assert network.layers == spec.layers
    assert list(network.weights) == [n for n in spec.layers if vgg.layer_kind(n) == "conv"]
    for name, (kernel, bias) in spec.weights.items():
        loaded_kernel, loaded_bias = network.weights[name]
        assert loaded_kernel.dtype == np.float32 and loaded_bias.dtype == np.float32
        np.testing.assert_array_equal(loaded_kernel, kernel)
        np.testing.assert_array_equal(loaded_bias, bias)
    np.testing.assert_allclose(network.mean_pixel, spec.mean_pixel, rtol=1e-6)
    assert network.mean_pixel.shape == (3,)
    assert network.channel_order == spec.channel_order
    assert network.path == str(path)


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_loader_gives_the_reference_network_function(fmt, pooling, tmp_path):
    path, spec = _write(fmt, tmp_path)
    x = random_input(seed=1)
    got = run_net(vgg.load_net(str(path)), x, pooling=pooling)
    expected = reference_net(spec.layers, spec.weights, x, pooling)
    assert list(got) == list(spec.layers)
    for name in spec.layers:
        assert got[name].shape == expected[name].shape, name
        assert relative_error(got[name], expected[name]) < 1e-4, name
    # 9x11 -> 5x6 -> 3x3: both pools saw an odd dimension.
    assert got["pool1"].shape[:2] == (5, 6) and got["pool2"].shape[:2] == (3, 3)


def test_npz_round_trip_of_a_loaded_network(tmp_path):
    mat_path, _ = _write("mat-old", tmp_path)
    original = vgg.load_net(str(mat_path))
    npz_path = tmp_path / "saved.npz"
    vgg.save_npz(original, str(npz_path))
    copy = vgg.load_net(str(npz_path))
    assert copy.layers == original.layers
    assert copy.name == original.name
    assert copy.channel_order == original.channel_order
    np.testing.assert_array_equal(copy.mean_pixel, original.mean_pixel)
    for name, (kernel, bias) in original.weights.items():
        np.testing.assert_array_equal(copy.weights[name][0], kernel)
        np.testing.assert_array_equal(copy.weights[name][1], bias)
    x = random_input(seed=2)
    a, b = run_net(original, x), run_net(copy, x)
    for name in original.layers:
        np.testing.assert_array_equal(a[name], b[name])


def test_tiny_network_fixture_has_the_transfers_default_layers(tiny_network):
    for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2", "relu5_2"):
        assert name in tiny_network.layers
    x = random_input(seed=4, shape=(1, 16, 16, 3))
    got = run_net(tiny_network, x)
    assert got["pool5"].shape == (1, 1, wf.TINY_VGG_CHANNELS[-1])
    for name in ("relu4_2", "relu5_2"):  # the He-scaled weights keep deep features alive
        assert np.count_nonzero(got[name]) > 0


@pytest.mark.parametrize("padding", ["zero", "replicate", "reflect"])
def test_first_layer_padding_matches_numpy(tiny_network, padding):
    """Only the first convolution takes the padding; its border differs from zero padding."""
    x = random_input(seed=8, shape=(1, 9, 11, 3))
    got = run_net(tiny_network, x, last="relu2_1", padding=padding)
    expected = reference_net(tiny_network.layers[:tiny_network.layers.index("relu2_1") + 1],
                             tiny_network.weights, x, padding=padding)
    assert set(got) == set(expected) and "relu2_1" in got
    for name in expected:
        assert relative_error(got[name], expected[name]) < 1e-4, name
    zero = run_net(tiny_network, x, last="conv1_1")["conv1_1"]
    differs = not np.allclose(got["conv1_1"][0], zero[0], atol=1e-3)
    assert differs == (padding != "zero")
    # The inside of the picture never sees the padding.
    np.testing.assert_allclose(got["conv1_1"][1:-1, 1:-1], zero[1:-1, 1:-1], rtol=1e-5, atol=1e-4)


def test_unknown_padding_is_refused(tiny_network):
    with tf.Graph().as_default(), pytest.raises(ValueError, match="padding must be one of"):
        tiny_network.features(tf.zeros((1, 8, 8, 3)), "relu1_1", "max", "circular")


# ---------------------------------------------------------------- MatConvNet's width-first kernels


def test_matconvnet_kernels_are_stored_width_first(tmp_path):
    # Stored layout [W, H, in, out]: output 0 taps the pixel to the right (x + 1) of input
    # channel 0; output 1 taps the pixel above (y - 1) of input channel 1.
    stored = np.zeros((3, 3, 3, 2), np.float32)
    stored[2, 1, 0, 0] = 1.0
    stored[1, 0, 1, 1] = 1.0
    path = tmp_path / "transpose.mat"
    hwio = stored.transpose(1, 0, 2, 3)
    wf.make_mat(path, blocks=(1,), channels=(2,), weights={"conv1_1": (hwio, np.zeros(2, np.float32))})
    raw = scipy.io.loadmat(str(path))["layers"][0, 0]["weights"][0, 0][0, 0]
    np.testing.assert_array_equal(raw, stored)  # the factory wrote width-first

    network = vgg.load_mat(str(path))
    kernel = network.weights["conv1_1"][0]
    assert kernel[1, 2, 0, 0] == 1.0 and kernel[2, 1, 0, 0] == 0.0

    x = np.zeros((1, 9, 11, 3), np.float32)
    x[0, 4, 5, :] = 1.0
    relu = run_net(network, x, last="relu1_1")["relu1_1"]
    assert list(zip(*np.nonzero(relu[..., 0]))) == [(4, 4)]  # out(y, x) = in(y, x + 1)
    assert list(zip(*np.nonzero(relu[..., 1]))) == [(5, 5)]  # out(y, x) = in(y - 1, x)


# ---------------------------------------------------------------- preprocess / unprocess


def _network(channel_order, mean=(10.0, 20.0, 30.0)):
    return vgg.Network(
        name="t", path="t", layers=(), weights={}, mean_pixel=np.array(mean, np.float32), channel_order=channel_order
    )


def test_preprocess_subtracts_the_mean_and_reverses_channels_for_bgr():
    rgb = np.array([[[100.0, 150.0, 200.0]]], np.float32)
    np.testing.assert_allclose(_network("BGR").preprocess(rgb), [[[170.0, 130.0, 90.0]]])
    np.testing.assert_allclose(_network("RGB").preprocess(rgb), [[[90.0, 130.0, 170.0]]])


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_unprocess_inverts_preprocess(order):
    network = _network(order)
    rgb = np.random.default_rng(0).uniform(0, 255, size=(2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(network.unprocess(network.preprocess(rgb)), rgb, atol=1e-4)
    np.testing.assert_allclose(network.preprocess(network.unprocess(rgb)), rgb, atol=1e-4)


def test_preprocess_works_on_tensors_like_on_arrays():
    network = _network("BGR")
    rgb = np.random.default_rng(1).uniform(0, 255, size=(1, 4, 5, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        pre, back = sess.run([network.preprocess(tf.constant(rgb)), network.unprocess(tf.constant(rgb))])
    np.testing.assert_allclose(pre, network.preprocess(rgb), atol=1e-4)
    np.testing.assert_allclose(back, network.unprocess(rgb), atol=1e-4)


def test_keras_networks_expect_bgr_around_the_caffe_mean(tmp_path):
    path, _ = _write("keras", tmp_path)
    network = vgg.load_net(str(path))
    mean_rgb = np.array(vgg.CAFFE_MEAN_BGR[::-1], np.float32)
    np.testing.assert_allclose(network.preprocess(mean_rgb), 0.0)
    red = network.preprocess(mean_rgb + np.array([50.0, 0.0, 0.0], np.float32))
    np.testing.assert_allclose(red, [0.0, 0.0, 50.0], atol=1e-4)  # red lands in the last channel


# ---------------------------------------------------------------- graph building


def test_last_builds_nothing_past_it(tiny_network):
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 16, 16, 3))
        net = vgg.net_preloaded(tiny_network, image, last="relu2_1")
        convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    layers = list(tiny_network.layers)
    assert list(net) == layers[: layers.index("relu2_1") + 1]
    assert list(net)[-1] == "relu2_1"
    assert len(convs) == 2  # conv1_1 and conv2_1 only


def test_net_preloaded_rejects_unknown_layer_and_pooling(tiny_network):
    with tf.Graph().as_default():
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 8, 8, 3))
        with pytest.raises(ValueError, match="relu9_9"):
            vgg.net_preloaded(tiny_network, image, last="relu9_9")
        with pytest.raises(ValueError, match="pooling"):
            vgg.net_preloaded(tiny_network, image, pooling="median")


def test_vgg_layers_and_deepest(tiny_network):
    assert vgg.vgg_layers((1, 2)) == (
        "conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    )  # fmt: skip
    assert len(vgg.VGG19_LAYERS) == 16 * 2 + 5 and "relu5_4" in vgg.VGG19_LAYERS
    assert vgg.deepest(tiny_network, ["relu4_2", "relu1_1", "relu5_2", "relu3_1"]) == "relu5_2"


# ---------------------------------------------------------------- the FeatureNetwork interface


def test_a_weights_file_is_a_feature_network_with_the_classic_defaults(tiny_network, tiny_net_path):
    assert isinstance(tiny_network, FeatureNetwork) and not isinstance(tiny_network, KerasNetwork)
    assert tiny_network.default_tv_weight == settings.TV_WEIGHT
    assert tiny_network.can_normalise and not tiny_network.is_normalised and tiny_network.cache_beside_source
    assert tiny_network.hint == ""
    assert tiny_network.describe() == f"{tiny_network.name}: 7 conv layers, RGB input, from {tiny_net_path}"


def test_net_preloaded_is_the_networks_features(tiny_network):
    x = random_input(seed=6, shape=(1, 16, 16, 3))
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, shape=x.shape)
        a = sess.run(vgg.net_preloaded(tiny_network, image, "avg", "relu3_1"), {image: x})
        b = sess.run(tiny_network.features(image, "relu3_1", "avg"), {image: x})
    assert list(a) == list(b) and list(a)[-1] == "relu3_1"
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_feature_shapes_are_the_shapes_the_graph_builds(tiny_network):
    got = run_net(tiny_network, random_input(seed=7, shape=(1, 13, 21, 3)), last="relu5_1")
    shapes = tiny_network.feature_shapes(13, 21, "relu5_1")
    assert [name for name, *_ in shapes] == list(got)
    for name, h, w, c in shapes:
        assert got[name].shape == (h, w, c), name
    # weight_bytes: the kernels and biases of the convolutions up to `last` only
    convs = [n for n in tiny_network.layers[: tiny_network.layers.index("relu2_1") + 1] if n.startswith("conv")]
    assert tiny_network.weight_bytes("relu2_1") == sum(
        tiny_network.weights[n][0].nbytes + tiny_network.weights[n][1].nbytes for n in convs)
    assert tiny_network.weight_bytes("relu5_2") > tiny_network.weight_bytes("relu2_1")


def test_layer_problem_and_table(tiny_network):
    assert tiny_network.layer_problem("relu3_1") is None
    problem = tiny_network.layer_problem("relu3_l")
    assert problem == f"unknown layer 'relu3_l' for {tiny_network.name}; did you mean relu3_1?"
    assert "did you mean" not in tiny_network.layer_problem("softmax")
    table = dict(tiny_network.layer_table())
    assert list(table) == list(tiny_network.layers)
    assert table["conv2_1"] == table["pool2"] == f"{wf.TINY_VGG_CHANNELS[1]} channels"


def test_network_error_is_a_usage_error_from_one_place():
    assert vgg.NetworkError is errors.NetworkError
    assert issubclass(vgg.NetworkError, errors.UsageError)


# ---------------------------------------------------------------- embedded default and search order


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """cwd and HOME both empty temporary directories: no default network files anywhere."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("USERPROFILE", raising=False)
    return cwd, home


@pytest.mark.slow
def test_embedded_default_is_used_when_no_default_file_exists(empty_home):
    assert vgg.find_default_network() is None
    network = vgg.load_net()
    assert network.notes.get("embedded") is True
    assert "embedded" in network.name
    assert os.path.basename(network.path) == vgg.HED_WEIGHTS_NAME
    assert vgg.sha256_of(network.path) == vgg.HED_SHA256
    assert network.layers == vgg.VGG16_LAYERS and "relu5_3" in network.layers
    assert network.channel_order == "BGR"
    np.testing.assert_allclose(network.mean_pixel, vgg.HED_MEAN_BGR[::-1], rtol=1e-6)
    assert network.weights["conv5_3"][0].shape == (3, 3, 512, 512)
    assert "not the paper's network" in network.announce()
    # its own TV weight (its losses are ~100x smaller than VGG-19's); a package file is not cached beside
    assert network.default_tv_weight == settings.TV_WEIGHT_EMBEDDED and network.cache_beside_source is False
    assert network.can_normalise and not network.is_normalised
    relu = run_net(network, random_input(seed=5, shape=(1, 16, 16, 3)), last="relu1_1")["relu1_1"]
    assert relu.shape == (16, 16, 64) and np.isfinite(relu).all() and relu.max() > 0


def test_embedded_checks_sha256(tmp_path):
    bogus = tmp_path / "damaged.weights.h5"
    bogus.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(vgg.NetworkError, match="sha256") as err:
        vgg.load_embedded(str(bogus))
    assert str(bogus) in str(err.value)


def test_embedded_path_that_cannot_be_read(tmp_path):
    path = tmp_path / "gone.weights.h5"
    with pytest.raises(vgg.NetworkError) as err:
        vgg.load_embedded(str(path))
    assert str(path) in str(err.value) and "reinstall" in str(err.value)


def test_file_named_like_the_embedded_weights_is_sha256_checked(tmp_path):
    bogus = tmp_path / vgg.HED_WEIGHTS_NAME
    wf.make_keras3_h5(bogus)
    with pytest.raises(vgg.NetworkError, match="sha256"):
        vgg.load_net(str(bogus))


def test_load_embedded_reads_a_keras3_backbone_with_the_hed_mean(tmp_path):
    path = tmp_path / "backbone.weights.h5"
    spec = wf.make_keras3_h5(path, blocks=(2, 1), channels=(3, 5))
    network = vgg.load_embedded(str(path), expected_sha256=vgg.sha256_of(str(path)))
    assert network.notes["embedded"] is True and "embedded" in network.name
    assert network.layers == spec.layers
    np.testing.assert_allclose(network.mean_pixel, vgg.HED_MEAN_BGR[::-1], rtol=1e-6)


def test_announce_of_a_file_network_has_no_hint(tiny_network, tiny_net_path):
    line = tiny_network.announce()
    assert line == f"network: {tiny_network.describe()}"
    assert line.startswith("network: ") and tiny_net_path in line
    assert "not the paper's network" not in line


def test_search_order_paper_mat_in_cwd_first_then_keras_cache(empty_home):
    cwd, home = empty_home
    cache = home / ".keras" / "models" / os.path.basename(vgg.KERAS_VGG19_CACHE)
    cache.parent.mkdir(parents=True)
    wf.make_keras_h5(cache)
    wf.make_mat(cwd / vgg.PAPER_MAT)

    assert vgg.find_default_network() == vgg.PAPER_MAT
    network = vgg.load_net()
    assert network.path == vgg.PAPER_MAT and network.channel_order == "RGB"

    os.remove(cwd / vgg.PAPER_MAT)
    assert vgg.find_default_network() == str(cache)
    network = vgg.load_net()
    assert network.path == str(cache) and network.channel_order == "BGR"


# ---------------------------------------------------------------- bad files


def assert_network_error(path, *fragments):
    """load_net(path) raises NetworkError whose one-line message names the file (and `fragments`)."""
    with pytest.raises(vgg.NetworkError) as err:
        vgg.load_net(str(path))
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def _truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_mat(tmp_path, fraction):
    path = tmp_path / "truncated.mat"
    wf.make_mat(path)
    _truncate(path, fraction)
    assert_network_error(path)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.95])
def test_truncated_h5(tmp_path, fraction):
    path = tmp_path / "truncated.h5"
    wf.make_keras_h5(path)
    _truncate(path, fraction)
    assert_network_error(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_npz(tmp_path, fraction):
    path = tmp_path / "truncated.npz"
    wf.make_npz(path)
    _truncate(path, fraction)
    assert_network_error(path)


def test_text_file_named_mat(tmp_path):
    path = tmp_path / "notes.mat"
    path.write_text("these are not the weights you are looking for\n" * 20)
    assert_network_error(path, "not a readable MATLAB")


def test_png_named_h5(tmp_path):
    from PIL import Image

    path = tmp_path / "picture.h5"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, format="PNG")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert_network_error(path, "HDF5")


def test_unknown_extension(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(1, 200)))
    assert_network_error(path, "unknown weights format")


def test_missing_file(tmp_path):
    assert_network_error(tmp_path / "nowhere.mat", "does not exist")


def test_directory(tmp_path):
    path = tmp_path / "weights.mat"
    path.mkdir()
    assert_network_error(path, "directory")


def test_mat_with_a_conv_without_weights(tmp_path):
    path = tmp_path / "empty-weights.mat"
    wf.make_mat(path, weights={"conv2_1": None})
    assert_network_error(path, "conv2_1")


def test_mat_with_a_conv_without_a_weights_field(tmp_path):
    path = tmp_path / "no-weights-field.mat"
    wf.make_mat(path, layout="old", missing_weights_field=("conv2_2",))
    assert_network_error(path, "weights")


def test_mat_with_mismatched_channels(tmp_path):
    path = tmp_path / "bad-shape.mat"
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 5, 6)).astype(np.float32)  # conv1_1 gives 4 channels, not 5
    wf.make_mat(path, weights={"conv2_1": (kernel, np.zeros(6, np.float32))})
    assert_network_error(path, "conv2_1", "kernel shape")


def test_mat_with_a_bias_of_the_wrong_length(tmp_path):
    path = tmp_path / "bad-bias.mat"
    kernel = wf.random_weights()["conv1_1"][0]
    wf.make_mat(path, weights={"conv1_1": (kernel, np.zeros(7, np.float32))})
    assert_network_error(path, "conv1_1", "bias shape")


def test_mat_without_layers(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(str(path), {"x": np.eye(3)})
    assert_network_error(path, "layers")


def test_h5_with_neither_layout(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=np.arange(10))
    assert_network_error(path, "neither Keras VGG layout")


def test_keras_h5_missing_a_conv_in_a_block(tmp_path):
    # conv1_2 maps 4 -> 4 channels, so leaving it out keeps the shapes consistent:
    # only the layer list (block1_conv3 exists) can tell that a convolution is missing.
    path = tmp_path / "gap.h5"
    wf.make_keras_h5(path, blocks=(3, 1), channels=(4, 6), skip=("conv1_2",))
    assert_network_error(path, "conv1_2")


def test_keras3_h5_missing_a_block(tmp_path):
    path = tmp_path / "gap.weights.h5"
    wf.make_keras3_h5(path, blocks=(1, 1, 1), channels=(4, 4, 6), skip=("conv2_1",))
    assert_network_error(path, "block 2")


def test_keras3_h5_missing_a_conv_in_a_block(tmp_path):
    path = tmp_path / "gap.weights.h5"
    wf.make_keras3_h5(path, blocks=(3,), channels=(4,), skip=("conv1_2",))
    assert_network_error(path, "conv2d_1")


def test_mat_with_a_three_dimensional_kernel(tmp_path):
    path = tmp_path / "flat-kernel.mat"
    kernel = wf.random_weights()["conv1_1"][0][..., 0]  # [3, 3, 3]: as MATLAB stores a 1-output kernel
    wf.make_mat(path, weights={"conv1_1": (kernel, np.zeros(1, np.float32))})
    assert_network_error(path, "conv1_1", "kernel shape")


def test_mat_with_a_layer_name_that_does_not_match_its_type(tmp_path):
    path = tmp_path / "renamed.mat"
    wf.make_mat(path, blocks=(1,), channels=(4,), with_head=False)
    data = scipy.io.loadmat(str(path))
    data["layers"][0, 1]["name"][0, 0] = np.array(["norm1"])  # the relu, renamed
    scipy.io.savemat(str(path), {k: v for k, v in data.items() if not k.startswith("__")})
    assert_network_error(path, "norm1")


def test_npz_with_a_bad_mean_pixel(tmp_path):
    path = tmp_path / "mean.npz"
    wf.make_npz(path, mean_pixel=(1.0, 2.0))
    assert_network_error(path, "mean_pixel")


def test_npz_missing_a_kernel(tmp_path):
    good = tmp_path / "good.npz"
    wf.make_npz(good)
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files if k != "conv2_2/kernel"}
    path = tmp_path / "missing.npz"
    np.savez(path, **arrays)
    assert_network_error(path, "conv2_2")


# ---------------------------------------------------------------- command line


def test_main_layers_lists_layer_names_and_channels(tiny_net_path, tiny_network, capsys):
    assert vgg.main(["layers", "--network", tiny_net_path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("network: ") and tiny_net_path in out[0]
    rows = [line.split("\t") for line in out[1:]]
    assert [name for name, _ in rows] == list(tiny_network.layers)
    channels = dict(rows)
    assert channels["relu1_1"] == f"{wf.TINY_VGG_CHANNELS[0]} channels"
    assert channels["relu5_2"] == f"{wf.TINY_VGG_CHANNELS[4]} channels"


def test_main_layers_reports_a_bad_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.mat"
    path.write_text("not a mat file")
    assert vgg.main(["layers", "--network", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_main_normalize_reports_a_bad_network_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.mat"
    path.write_text("not a mat file")
    assert vgg.main(["normalize", "--network", str(path), "--out", str(tmp_path / "n.npz")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert not (tmp_path / "n.npz").exists()


# ---------------------------------------------------------------- normalisation (the paper's)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example_at(name, width=32):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, name)), width)


@pytest.fixture(scope="module")
def calibration_set():
    return [example_at(n) for n in ("tubingen_neckarfront.jpg", "starry_night.jpg", "the_scream.jpg")]


def relu_features(network, rgb, layers, pooling):
    """{layer: (M, N) float64 features} of one image, from vgg.net_preloaded."""
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1,) + rgb.shape)
        net = vgg.net_preloaded(network, network.preprocess(image), pooling)
        with tf.compat.v1.Session(graph=graph) as sess:
            out = sess.run({n: net[n] for n in layers}, {image: rgb[None]})
    return {n: v.reshape(-1, v.shape[-1]).astype(np.float64) for n, v in out.items()}


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_normalised_mean_activations_are_one_and_features_only_rescaled(tiny_network, calibration_set, pooling):
    original = vgg.mean_activations(tiny_network, calibration_set, pooling)
    normalised = vgg.normalize(tiny_network, calibration_set, pooling)
    means = vgg.mean_activations(normalised, calibration_set, pooling)
    checked = 0
    for layer, mean in means.items():
        median = np.median(original[layer][original[layer] > 0])
        alive = original[layer] >= vgg.NORMALISE_FLOOR * median
        assert np.all(np.abs(mean[alive] - 1.0) < 1e-3), (layer, mean)
        # nearly dead filters keep their proportion to the layer's median filter
        np.testing.assert_allclose(mean[~alive], original[layer][~alive] / median, rtol=1e-3, atol=1e-7)
        checked += alive.sum()
    assert checked > 20
    # On an image that was not used for calibration, the deepest style layer's features
    # are the original's times a positive per-channel factor: 1 / (original mean).
    other = example_at("composition_vii.jpg", 40)
    deepest = vgg.deepest(tiny_network, settings.STYLE_LAYERS + ("relu4_2",))
    assert deepest == "relu5_1"
    before = relu_features(tiny_network, other, [deepest], pooling)[deepest]
    after = relu_features(normalised, other, [deepest], pooling)[deepest]
    factor = vgg.normalising_factors(original[deepest])
    assert np.all(factor > 0) and not np.allclose(factor, 1.0)
    assert before.max() > 0
    np.testing.assert_allclose(after, before * factor, rtol=1e-4, atol=1e-5 * after.max())
    # the factor is estimated, not assumed: it matches the ratio of the features themselves
    active = before.mean(axis=0) > 0
    np.testing.assert_allclose(after.mean(axis=0)[active] / before.mean(axis=0)[active], factor[active], rtol=1e-3)


def test_nearly_dead_filters_get_the_median_factor():
    mean = np.array([2.0, 4.0, 1e-7, 0.0, 8.0, 4.0])  # median of the non-zero means: 4
    factor = vgg.normalising_factors(mean, floor=1e-2)
    np.testing.assert_allclose(factor, [0.5, 0.25, 0.25, 0.25, 0.125, 0.25])
    # without a floor, 1/mean for every live filter (the paper's rule); dead ones still finite
    np.testing.assert_allclose(vgg.normalising_factors(mean, floor=0.0), [0.5, 0.25, 1e7, 0.25, 0.125, 0.25])


def test_vgg_normalize_command_writes_a_network_that_loads(tiny_net_path, tmp_path, capsys):
    folder = tmp_path / "cal"
    folder.mkdir()
    for name in ("tubingen_neckarfront.jpg", "the_scream.jpg"):
        images.save_image(str(folder / name.replace(".jpg", ".png")), example_at(name, 24))
    out = tmp_path / "normalised.npz"
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out),
                     "--size", "24"]) == 0
    network = vgg.load_net(str(out))
    assert "normalised" in network.name
    cal = calibration_images(calibration_paths(str(folder)), 24)
    means = vgg.mean_activations(network, cal, "avg")
    assert abs(means["relu3_1"][means["relu3_1"] > 0] - 1).max() < 1e-3
    # an existing output is not replaced; a bad folder is one line and status 2
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err
