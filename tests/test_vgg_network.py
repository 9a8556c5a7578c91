"""vgg_network.py: the VGG graph against a NumPy forward pass (paddings, poolings, `last`),
preprocessing, the layer spec, the FeatureNetwork interface of a weights file, and the
mask weights that follow the network's own convolutions and poolings."""

from __future__ import annotations

import numpy as np
import pytest
import weights_factory as wf
from numpy_reference import constant_bytes, random_input, reference_net, relative_error, run_net

from neural_style_tf import settings
from neural_style_tf.networks import vgg_network
from neural_style_tf.networks.feature_network import FeatureNetwork
from neural_style_tf.networks.keras_network import KerasNetwork
from neural_style_tf.tf_runtime import import_tensorflow, initialize_weights, network_session

tf = import_tensorflow()


# ---------------------------------------------------------------- the graph against NumPy


def test_tiny_network_fixture_has_the_transfers_default_layers(tiny_network):
    for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2", "relu5_2"):
        assert name in tiny_network.layers
    x = random_input(seed=4, shape=(1, 16, 16, 3))
    got = run_net(tiny_network, x)
    assert got["pool5"].shape == (1, 1, wf.TINY_VGG_CHANNELS[-1])
    for name in ("relu4_2", "relu5_2"):  # the He-scaled weights keep deep features alive
        assert np.count_nonzero(got[name]) > 0


@pytest.mark.parametrize("padding", ["zero", "replicate", "reflect", "wrap"])
def test_padding_of_every_convolution_matches_numpy(tiny_network, padding):
    """Every convolution takes the padding; its border differs from zero padding."""
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


# ---------------------------------------------------------------- preprocess / unprocess


def _network(channel_order, mean=(10.0, 20.0, 30.0)):
    return vgg_network.Network(
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


# ---------------------------------------------------------------- graph building


def test_last_builds_nothing_past_it(tiny_network):
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 16, 16, 3))
        net = vgg_network.net_preloaded(tiny_network, image, last="relu2_1")
        convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    layers = list(tiny_network.layers)
    assert list(net) == layers[: layers.index("relu2_1") + 1]
    assert list(net)[-1] == "relu2_1"
    assert len(convs) == 2  # conv1_1 and conv2_1 only


def test_net_preloaded_rejects_unknown_layer_and_pooling(tiny_network):
    with tf.Graph().as_default():
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 8, 8, 3))
        with pytest.raises(ValueError, match="relu9_9"):
            vgg_network.net_preloaded(tiny_network, image, last="relu9_9")
        with pytest.raises(ValueError, match="pooling"):
            vgg_network.net_preloaded(tiny_network, image, pooling="median")


def test_vgg_layers_and_deepest(tiny_network):
    assert vgg_network.vgg_layers((1, 2)) == (
        "conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    )  # fmt: skip
    assert len(vgg_network.VGG19_LAYERS) == 16 * 2 + 5 and "relu5_4" in vgg_network.VGG19_LAYERS
    assert vgg_network.deepest(tiny_network, ["relu4_2", "relu1_1", "relu5_2", "relu3_1"]) == "relu5_2"


# ---------------------------------------------------------------- the weights held once


def test_the_weights_are_variables_fed_once_not_constants_of_the_graph(tiny_network):
    """Every graph that built the network carried the weights as constants in its
    GraphDef (and TensorFlow's copies of it); now each session holds them once."""
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 16, 16, 3))
        net = tiny_network.features(image, "relu5_1")
        again = tiny_network.features(image, "relu5_1", "avg")  # the same arrays: the same variables
    convs = sum(vgg_network.layer_kind(n) == "conv" for n in net)
    variables = [op for op in graph.get_operations() if op.type == "VarHandleOp"]
    assert len(variables) == 2 * convs and len(again) == len(net)
    assert constant_bytes(graph.as_graph_def()) < tiny_network.weight_bytes("relu5_1") / 10
    x = random_input(seed=4, shape=(1, 16, 16, 3))
    with network_session(graph) as sess:
        got = sess.run(net["relu5_1"], {image: x})
    np.testing.assert_array_equal(got, run_net(tiny_network, x, last="relu5_1")["relu5_1"][None])


def test_held_weights_compute_exactly_what_constants_did(tiny_network):
    """The same convolutions of the same float32 values: bit-for-bit the features that the
    constants gave (the network built with tf.constant weights, as before)."""
    x = random_input(seed=5, shape=(1, 16, 16, 3))
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.float32, shape=x.shape)
        held = tiny_network.features(image, "relu5_1", "max", "replicate")
        current, constants = image, {}
        for name in held:
            kind = vgg_network.layer_kind(name)
            if kind == "conv":
                kernel, bias = tiny_network.weights[name]
                current = vgg_network._conv(current, tf.constant(kernel), kernel.shape, "replicate")
                current = tf.nn.bias_add(current, tf.constant(bias))
            elif kind == "relu":
                current = tf.nn.relu(current)
            else:
                current = tf.nn.max_pool2d(current, ksize=2, strides=2, padding="SAME")
            constants[name] = current
    with network_session(graph) as sess:
        a, b = sess.run([held, constants], {image: x})
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_bfloat16_network_holds_its_weights_in_bfloat16_without_casting_them(tiny_network):
    low = tiny_network.with_precision("bfloat16")
    with tf.Graph().as_default() as graph:
        low.features(tf.compat.v1.placeholder(tf.float32, shape=(1, 16, 16, 3)), "relu2_1")
    variables = [op for op in graph.get_operations() if op.type == "VarHandleOp"]
    assert variables and all(op.get_attr("dtype") == tf.bfloat16 for op in variables)
    cast_inputs = {op.inputs[0].op.type for op in graph.get_operations() if op.type == "Cast"}
    assert "ReadVariableOp" not in cast_inputs  # only the input and the layers' outputs are cast
    assert constant_bytes(graph.as_graph_def()) < low.weight_bytes("relu2_1") / 10


def test_a_session_without_initialize_weights_refuses_to_run(tiny_network):
    """What a new place that opens its own session would see: an error, not zeros."""
    with tf.Graph().as_default() as graph:
        image = tf.compat.v1.placeholder(tf.float32, shape=(1, 8, 8, 3))
        net = tiny_network.features(image, "relu1_1")
    with tf.compat.v1.Session(graph=graph) as sess, pytest.raises(tf.errors.FailedPreconditionError):
        sess.run(net["relu1_1"], {image: np.zeros((1, 8, 8, 3), np.float32)})


# ---------------------------------------------------------------- the FeatureNetwork interface


def test_a_weights_file_is_a_feature_network_with_the_classic_defaults(tiny_network, tiny_net_path):
    assert isinstance(tiny_network, FeatureNetwork) and not isinstance(tiny_network, KerasNetwork)
    assert tiny_network.default_tv_weight == settings.TV_WEIGHT
    assert tiny_network.can_normalize and not tiny_network.is_normalized and tiny_network.cache_beside_source
    assert tiny_network.hint == ""
    assert tiny_network.describe() == f"{tiny_network.name}: 7 conv layers, RGB input, from {tiny_net_path}"


def test_net_preloaded_is_the_networks_features(tiny_network):
    x = random_input(seed=6, shape=(1, 16, 16, 3))
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, shape=x.shape)
        a, b = vgg_network.net_preloaded(tiny_network, image, "avg", "relu3_1"), tiny_network.features(image, "relu3_1", "avg")
        initialize_weights(sess)
        a, b = sess.run([a, b], {image: x})
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


# ---------------------------------------------------------------- mask weights (spatial control)


@pytest.mark.parametrize("pooling", ["max", "avg"])
@pytest.mark.parametrize("shape", [(37, 23), (16, 16), (9, 30)])
def test_mask_weights_have_each_layers_size(tiny_network, pooling, shape):
    mask = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    layers = tuple(n for n in tiny_network.layers if not n.startswith("conv"))
    weights = tiny_network.mask_weights(mask, layers, pooling)
    x = np.random.default_rng(1).uniform(0, 255, (1, *shape, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, x.shape)
        net = tiny_network.features(image, None, pooling)
        initialize_weights(sess)
        net = sess.run(net, {image: x})
    for name in layers:
        assert weights[name].shape == net[name].shape[1:3], name
        assert 0.0 <= weights[name].min() and weights[name].max() <= 1.0


def test_mask_weights_follow_the_receptive_field_and_keep_complementary_masks_complementary(tiny_network):
    left = np.zeros((16, 16), np.float32)
    left[:, :8] = 1.0
    layers = ("relu1_1", "pool1", "relu2_1", "relu5_1")
    a, b = tiny_network.mask_weights(left, layers), tiny_network.mask_weights(1.0 - left, layers)
    # After one 3x3 convolution a position at the edge of the region sees 2/3 or 1/3 of it.
    np.testing.assert_allclose(a["relu1_1"][5, 6:10], [1.0, 2 / 3, 1 / 3, 0.0], atol=1e-6)
    # Then a 2x2 average, not a max (which would grow every region).
    np.testing.assert_allclose(a["pool1"][5, 2:6], [1.0, 5 / 6, 1 / 6, 0.0], atol=1e-6)
    for name in layers:
        np.testing.assert_allclose(a[name] + b[name], 1.0, atol=1e-6)
