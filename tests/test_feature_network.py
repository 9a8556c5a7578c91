"""feature_network.py: the interface every feature network implements (an ABC), what it
gives every network for free (announce, layer_problem, deepest, the generic mask weights)
and its mask helpers."""

from __future__ import annotations

import numpy as np

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
