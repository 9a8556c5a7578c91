"""feature_network.py: the interface every feature network implements (an ABC), what it
gives every network for free (announce, layer_problem, deepest, the generic mask weights)
and its mask helpers."""

from __future__ import annotations

import numpy as np
import pytest

from neural_style_tf.networks import feature_network
from neural_style_tf.networks.feature_network import FeatureNetwork


def test_announce_of_a_file_network_has_no_hint(tiny_network, tiny_net_path):
    line = tiny_network.announce()
    assert line == f"network: {tiny_network.describe()}"
    assert line.startswith("network: ") and tiny_net_path in line
    assert "not the paper's network" not in line


def test_the_generic_network_resizes_masks_to_its_feature_shapes(tiny_network):
    """A network without its own mask_weights (a Keras model) uses FeatureNetwork's: the mask
    averaged over each position's area."""
    left = np.zeros((16, 24), np.float32)
    left[:, :12] = 1.0
    weights = FeatureNetwork.mask_weights(tiny_network, left, ("relu1_1", "relu3_1"))
    assert weights["relu1_1"].shape == (16, 24) and weights["relu3_1"].shape == (4, 6)
    np.testing.assert_allclose(weights["relu3_1"], np.repeat([[1, 1, 1, 0, 0, 0]], 4, 0), atol=1e-6)


# ---------------------------------------------------------------- the interface is an ABC


ABSTRACT = {"preprocess", "unprocess", "features", "describe", "layer_table", "feature_shapes", "weight_bytes"}


class Grid(FeatureNetwork):
    """The smallest complete network: two 'layers', each halving the input, no graph.

    Implements every abstract method, and nothing the interface gives for free."""

    name, path, layers = "grid", "grid.bin", ("half", "quarter")
    mean_pixel, notes = np.full(3, 127.5, np.float32), {}

    def preprocess(self, rgb):
        return rgb - self.mean_pixel

    def unprocess(self, x):
        return x + self.mean_pixel

    def features(self, input_image, last=None, pooling="max", padding="zero"):
        raise AssertionError("nothing the tests call builds a graph")

    def describe(self):
        return "a grid"

    def layer_table(self):
        return [(n, "1 channel") for n in self.layers]

    def feature_shapes(self, height, width, last):
        shapes = [("half", -(-height // 2), -(-width // 2), 1), ("quarter", -(-height // 4), -(-width // 4), 1)]
        return shapes[: self.layers.index(last or self.layers[-1]) + 1]

    def weight_bytes(self, last):
        return 0


def test_the_abstract_methods_are_what_every_network_must_implement():
    assert FeatureNetwork.__abstractmethods__ == ABSTRACT
    with pytest.raises(TypeError, match="abstract"):
        FeatureNetwork()
    for missing in sorted(ABSTRACT):  # leaving out any one of them is refused at construction
        partial = type("Partial", (FeatureNetwork,), {k: v for k, v in vars(Grid).items() if k != missing})
        assert partial.__abstractmethods__ == {missing}
        with pytest.raises(TypeError, match=missing):
            partial()
    Grid()  # all of them: a network


def test_a_complete_network_gets_the_rest_of_the_interface_for_free():
    grid = Grid()
    assert grid.deepest(["quarter", "half"]) == "quarter"
    assert grid.announce() == "network: a grid"
    grid.hint = "try another"
    assert grid.announce() == "network: a grid (try another)"
    assert grid.layer_problem("half") is None
    assert grid.layer_problem("quartre") == "unknown layer 'quartre' for grid; did you mean quarter?"
    assert grid.layer_advice == "list them with: python vgg.py layers --network grid.bin"
    # the classic defaults, and no normalisation, unless a network says otherwise
    assert (grid.default_padding, grid.paddings, grid.can_normalize, grid.is_normalized) == ("zero", ("zero",), False,
                                                                                             False)
    weights = grid.mask_weights(np.eye(4, dtype=np.float32), ("half", "quarter"))
    np.testing.assert_allclose(weights["half"], [[0.5, 0], [0, 0.5]])
    np.testing.assert_allclose(weights["quarter"], [[0.25]])


# ---------------------------------------------------------------- the mask helpers


def test_shown_layers_cuts_a_long_list():
    assert feature_network.shown_layers(("a", "b")) == "a, b"
    names = tuple(f"l{i}" for i in range(35))
    assert feature_network.shown_layers(names, limit=3) == "l0, l1, l2, ... (32 more)"
    assert feature_network.shown_layers(names).endswith(f"l{feature_network.LIST_LIMIT - 1}, ... (5 more)")


def test_area_resize_averages_and_keeps_a_mask_of_the_right_size():
    mask = np.zeros((4, 6), np.float32)
    mask[:, :3] = 1.0
    assert feature_network.area_resize(mask, (4, 6)) is mask
    np.testing.assert_allclose(feature_network.area_resize(mask, (2, 2)), [[1.0, 0.0], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(feature_network.area_resize(mask, (1, 3)), [[1.0, 0.5, 0.0]], atol=1e-6)


def test_halve_mask_is_a_same_padded_stride_two_average():
    mask = np.arange(15, dtype=np.float32).reshape(3, 5)
    halved = feature_network.halve_mask(mask)
    assert halved.shape == (2, 3)
    np.testing.assert_allclose(halved[0], [3.0, 5.0, 6.5])  # the last column repeated to pad
    np.testing.assert_allclose(halved[1], [10.5, 12.5, 14.0])  # and the last row
