"""vgg_files.py: every VGG weights loader (MatConvNet .mat in both layouts, Keras legacy and
Keras-3 .h5, this tool's .npz) against the factory's files and a NumPy forward pass;
MatConvNet's width-first kernels; Keras' BGR convention; and broken files, each refused
in one line that names the file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import weights_factory as wf
from numpy_reference import random_input, reference_net, relative_error, run_net
from weights_factory import assert_network_error

from neural_style_tf.networks import loading, vgg_files, vgg_network

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
    network = loading.load_net(str(path))
    assert network.layers == spec.layers
    assert list(network.weights) == [n for n in spec.layers if vgg_network.layer_kind(n) == "conv"]
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
    got = run_net(loading.load_net(str(path)), x, pooling=pooling)
    expected = reference_net(spec.layers, spec.weights, x, pooling)
    assert list(got) == list(spec.layers)
    for name in spec.layers:
        assert got[name].shape == expected[name].shape, name
        assert relative_error(got[name], expected[name]) < 1e-4, name
    # 9x11 -> 5x6 -> 3x3: both pools saw an odd dimension.
    assert got["pool1"].shape[:2] == (5, 6) and got["pool2"].shape[:2] == (3, 3)


def test_npz_round_trip_of_a_loaded_network(tmp_path):
    mat_path, _ = _write("mat-old", tmp_path)
    original = loading.load_net(str(mat_path))
    npz_path = tmp_path / "saved.npz"
    vgg_files.save_npz(original, str(npz_path))
    copy = loading.load_net(str(npz_path))
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

    network = vgg_files.load_mat(str(path))
    kernel = network.weights["conv1_1"][0]
    assert kernel[1, 2, 0, 0] == 1.0 and kernel[2, 1, 0, 0] == 0.0

    x = np.zeros((1, 9, 11, 3), np.float32)
    x[0, 4, 5, :] = 1.0
    relu = run_net(network, x, last="relu1_1")["relu1_1"]
    assert list(zip(*np.nonzero(relu[..., 0]))) == [(4, 4)]  # out(y, x) = in(y, x + 1)
    assert list(zip(*np.nonzero(relu[..., 1]))) == [(5, 5)]  # out(y, x) = in(y - 1, x)


# ---------------------------------------------------------------- Keras' convention


def test_keras_networks_expect_bgr_around_the_caffe_mean(tmp_path):
    path, _ = _write("keras", tmp_path)
    network = loading.load_net(str(path))
    mean_rgb = np.array(vgg_network.CAFFE_MEAN_BGR[::-1], np.float32)
    np.testing.assert_allclose(network.preprocess(mean_rgb), 0.0)
    red = network.preprocess(mean_rgb + np.array([50.0, 0.0, 0.0], np.float32))
    np.testing.assert_allclose(red, [0.0, 0.0, 50.0], atol=1e-4)  # red lands in the last channel


# ---------------------------------------------------------------- bad files


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
