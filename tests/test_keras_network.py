"""A whole Keras model as the feature network (keras_network.py), end to end and in parts."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

import neural_style
import vgg
from neural_style_tf import memory, settings
from neural_style_tf.networks import keras_network
from neural_style_tf.networks.feature_network import FeatureNetwork
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow, quietly)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_model():
    """Two named blocks (conv + pool) and a classifier head, a few channels."""
    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv")(image)
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="block2_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    logits = keras.layers.Dense(3, name="head_logits")(x)
    return keras.Model(image, logits, name="tiny")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    model = tiny_model()
    paths = {"keras": str(folder / "tiny.keras"), "h5": str(folder / "tiny.h5")}
    model.save(paths["keras"])
    model.save(paths["h5"])
    return model, paths


@pytest.fixture
def pictures(content_and_style):
    return content_and_style


def run_cli(paths, model_path, out, *extra):
    return neural_style.main(["--content", paths[0], "--styles", paths[1], "--output", str(out),
                              "--network", model_path, "--content-layers", "block2_conv",
                              "--style-layers", "block1_conv,block2_conv", "--quiet", *extra])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_keras_model_runs_through_the_cli_and_the_loss_decreases(model_files, pictures, tmp_path, optimizer):
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    status = run_cli(pictures, model_files[1]["keras"], out, "--optimizer", optimizer, "--iterations", "15",
                     "--log", str(log), "--seed", "3")
    assert status == 0
    assert Image.open(out).size == (32, 24)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    start = lines[0]
    assert start["network"] == "Keras model 'tiny'"
    totals = [line["total"] for line in lines if "iteration" in line]
    assert len(totals) >= 5 and totals[-1] < 0.9 * totals[0]


def test_imported_features_equal_the_models_own(model_files):
    model, paths = model_files
    network = keras_network.load(paths["keras"])
    assert network.layers == ("block1_conv", "block1_pool", "block2_conv")
    x = np.random.default_rng(0).uniform(0, 1, (1, 20, 28, 3)).astype(np.float32)
    sub = keras.Model(model.inputs[0], [model.get_layer(n).output for n in network.layers])
    expected = [np.asarray(t) for t in sub(x, training=False)]
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, 20, 28, 3))
        raw = network.features(image, normalize=False)
        scaled = network.features(image)
        with tf.compat.v1.Session(graph=graph) as sess:
            got_raw, got_scaled = sess.run((raw, scaled), {image: x})
    for name, want in zip(network.layers, expected):
        assert np.linalg.norm(got_raw[name] - want) <= 1e-5 * np.linalg.norm(want), name
        # the normalised features are the raw ones times one positive scalar per layer
        factor = network.feature_scales()[name]
        assert factor > 0
        np.testing.assert_allclose(got_scaled[name], got_raw[name] * factor, rtol=1e-5, atol=1e-6)


def test_the_frozen_graph_stops_at_the_deepest_requested_layer(model_files):
    network = keras_network.load(model_files[1]["keras"])
    graph_def, _, outputs = network.frozen("block1_pool")
    assert list(outputs) == ["block1_conv", "block1_pool"]
    ops = {node.op for node in graph_def.node}
    names = " ".join(node.name for node in graph_def.node)
    assert "MaxPool" in ops and "Conv2D" in ops
    assert "block2" not in names and "head" not in names
    assert not ops & {"MatMul", "Mean"}  # neither the dense layer nor the global pooling
    # through vgg.net_preloaded (what stylize.py calls) the same holds
    graph = tf.Graph()
    with graph.as_default():
        net = vgg.net_preloaded(network, tf.compat.v1.placeholder(tf.float32, (1, 8, 8, 3)), last="block1_conv")
        assert list(net) == ["block1_conv"]
        assert not {op.type for op in graph.get_operations()} & {"MatMul", "Mean", "MaxPool"}


def test_load_net_dispatches_a_whole_model_to_keras_network(model_files, tiny_net_path):
    network = vgg.load_net(model_files[1]["keras"])
    assert isinstance(network, keras_network.KerasNetwork) and isinstance(network, FeatureNetwork)
    assert network.layers == ("block1_conv", "block1_pool", "block2_conv")
    # scaled to the embedded network's magnitudes, so it gets the embedded TV weight
    assert network.default_tv_weight == settings.TV_WEIGHT_EMBEDDED
    assert not network.can_normalize and not network.is_normalized
    assert network.announce() == f"network: {network.describe()}" and "input range 0-1" in network.describe()
    assert vgg.load_net(model_files[1]["keras"], "caffe").input_range == "caffe"
    with pytest.raises(vgg.NetworkError, match="--input-range is for Keras models"):
        vgg.load_net(tiny_net_path, "0-255")


def test_full_model_h5_loads_like_keras(model_files):
    network = keras_network.load(model_files[1]["h5"])
    assert network.layers == ("block1_conv", "block1_pool", "block2_conv")
    assert keras_network.kind_of(model_files[1]["h5"]) == "h5-model"


def test_layer_listing_shows_names_shapes_and_what_is_usable(model_files, capsys):
    assert vgg.main(["layers", "--network", model_files[1]["keras"]]) == 0
    out = capsys.readouterr().out
    assert "block2_conv\t(None, None, None, 6)" in out
    assert "head_logits\t(None, 3)\t(not usable: not a 4-D feature map)" in out
    assert "image\t(None, None, None, 3)\t(not usable: input)" in out


def test_unknown_layer_gets_the_list_and_a_suggestion(model_files, pictures, tmp_path, capsys):
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", pictures[0], "--styles", pictures[1], "--output", str(out),
                                "--network", model_files[1]["keras"], "--content-layers", "block2_cnv",
                                "--style-layers", "block1_conv"])
    err = capsys.readouterr().err
    assert status == 2 and not out.exists()
    assert "did you mean block2_conv?" in err and "block1_conv, block1_pool, block2_conv" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_vgg_default_layers_ask_for_the_models_own(model_files, pictures, tmp_path, capsys):
    status = neural_style.main(["--content", pictures[0], "--styles", pictures[1], "--output",
                                str(tmp_path / "o.png"), "--network", model_files[1]["keras"]])
    err = capsys.readouterr().err
    assert status == 2 and "unknown layer 'relu4_2'" in err and "needs --content-layers and --style-layers" in err


def test_a_layer_that_is_not_a_feature_map_is_refused(model_files, pictures, tmp_path, capsys):
    status = run_cli(pictures, model_files[1]["keras"], tmp_path / "o.png", "--style-layers", "head_pool")
    err = capsys.readouterr().err
    assert status == 2 and "outputs shape (None, 6), not a 4-D feature map" in err and "Traceback" not in err


@pytest.mark.parametrize("export", ["tf.saved_model.save", "model.export"])
def test_a_savedmodel_gives_the_same_features_and_runs(model_files, pictures, tmp_path, export):
    model = model_files[0]
    folder = str(tmp_path / "saved")
    if export == "model.export":
        model.export(folder, verbose=False)
    else:
        tf.saved_model.save(model, folder)
    network = keras_network.load(folder)
    assert network.layers == ("block1_conv", "block1_pool", "block2_conv")
    assert len(network.shapes["head_logits"]) == 2  # listed, not usable
    graph_def, _, _ = network.frozen("block2_conv")
    assert not {node.op for node in graph_def.node} & {"MatMul", "Mean"}  # the head is cut off
    x = np.random.default_rng(2).uniform(0, 1, (1, 16, 20, 3)).astype(np.float32)
    want = np.asarray(keras.Model(model.inputs[0], model.get_layer("block2_conv").output)(x))
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, 16, 20, 3))
        net = network.features(image, "block2_conv", normalize=False)
        with tf.compat.v1.Session(graph=graph) as sess:
            got = sess.run(net["block2_conv"], {image: x})
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
    assert run_cli(pictures, folder, tmp_path / "o.png", "--iterations", "3") == 0


def test_bad_savedmodel_and_input_range_mistakes_are_one_line(pictures, tmp_path, tiny_net_path, capsys):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert run_cli(pictures, str(saved), tmp_path / "o.png") == 2
    err = capsys.readouterr().err
    assert "not a SavedModel with a serving_default signature" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # --input-range is for Keras models only
    status = neural_style.main(["--content", pictures[0], "--styles", pictures[1], "--output",
                                str(tmp_path / "o.png"), "--network", tiny_net_path, "--input-range", "0-255"])
    assert status == 2 and "--input-range is for Keras models" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_the_paper_preset_is_refused_with_advice(model_files, pictures, tmp_path, capsys):
    assert run_cli(pictures, model_files[1]["keras"], tmp_path / "o.png", "--preset", "gatys2016") == 2
    err = capsys.readouterr().err
    assert "use --loss-scale gatys2016" in err and "Traceback" not in err
    assert run_cli(pictures, model_files[1]["keras"], tmp_path / "o.png", "--loss-scale", "gatys2016",
                   "--ratio", "1e-3", "--iterations", "3") == 0


def test_input_ranges_and_noise_centre(model_files):
    rgb = np.array([[[255.0, 127.5, 0.0]]], np.float32)
    path = model_files[1]["keras"]
    np.testing.assert_allclose(keras_network.load(path, "0-1").preprocess(rgb), rgb / 255)
    np.testing.assert_allclose(keras_network.load(path, "0-255").preprocess(rgb), rgb)
    caffe = keras_network.load(path, "caffe").preprocess(rgb)
    np.testing.assert_allclose(caffe, [[[0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68]]], rtol=1e-6)


def test_memory_preflight_understands_keras_models(model_files):
    network = keras_network.load(model_files[1]["keras"])
    shapes = network.feature_shapes(24, 32, "block2_conv")
    assert shapes == [("block1_conv", 24, 32, 4), ("block1_pool", 12, 16, 4), ("block2_conv", 12, 16, 6)]
    # the conv's kernel and bias, plus a few bytes of the graph's small constants (shapes)
    weights = (3 * 3 * 3 * 4 + 4) * 4
    assert weights <= network.weight_bytes("block1_conv") <= weights + 64
    assert network.weight_bytes("block2_conv") >= weights + (3 * 3 * 4 * 6 + 6) * 4
    small = memory.estimate_peak_bytes(network, 24, 32, layers_needed=("block2_conv",))
    large = memory.estimate_peak_bytes(network, 240, 320, layers_needed=("block2_conv",))
    assert large > small > memory.TENSORFLOW_BASELINE_BYTES


def test_example_script_writes_a_model_the_tool_loads(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("custom_network", os.path.join(ROOT, "examples", "custom_network.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "inception.keras"
    assert example.main(["--output", str(out), "--channels", "4"]) == 0
    network = keras_network.load(str(out))
    assert {"stem_conv", "inception_1", "inception_4"} <= set(network.layers)
    assert "logits" not in network.layers and network.shapes["logits"] == (None, 10)
    with pytest.raises(SystemExit):  # an existing file is not replaced without --overwrite
        example.main(["--output", str(out), "--channels", "4"])
    assert "exists" in capsys.readouterr().err


@pytest.mark.slow
def test_a_damaged_keras_file_is_one_line(model_files, pictures, tmp_path, capsys):
    import subprocess
    import sys

    cut = tmp_path / "cut.keras"
    cut.write_bytes(open(model_files[1]["keras"], "rb").read()[:2000])
    assert run_cli(pictures, str(cut), tmp_path / "o.png") == 2
    err = capsys.readouterr().err
    assert "not a valid .keras file" in err and "Traceback" not in err
    # also from `python vgg.py layers`, where vgg.py is __main__ and keras_network raises vgg.NetworkError
    done = subprocess.run([sys.executable, os.path.join(ROOT, "vgg.py"), "layers", "--network", str(cut)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "not a valid .keras file" in done.stderr and "Traceback" not in done.stderr


def test_a_keras_model_keeps_its_own_padding(model_files, pictures, tmp_path, capsys):
    """--padding changes a VGG network's convolutions; a Keras model's graph is fixed,
    so asking for another padding is refused up front, and its default is zero."""
    network = keras_network.load(model_files[1]["keras"])
    assert network.paddings == ("zero",) and network.default_padding == "zero"
    out = tmp_path / "o.png"
    status = run_cli(pictures, model_files[1]["keras"], out, "--padding", "replicate")
    err = capsys.readouterr().err
    assert status == 2 and not out.exists()
    assert "--padding replicate:" in err and "it can take zero" in err and len(err.strip().splitlines()) == 1


def test_a_keras_model_cannot_tile(model_files, pictures, tmp_path, capsys):
    """--tileable wraps every convolution round, which a Keras model's fixed graph cannot:
    refused in one line, before anything is built or written."""
    out = tmp_path / "o.png"
    status = run_cli(pictures, model_files[1]["keras"], out, "--tileable")
    err = capsys.readouterr().err
    assert status == 2 and not out.exists()
    assert "--tileable:" in err and "VGG weights" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
