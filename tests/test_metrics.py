"""metrics.py: the image measures compare.py and the quality panel share, on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from neural_style_tf.apps import metrics
from neural_style_tf.errors import UsageError


def test_the_ssim_and_gram_metrics_of_the_content_itself():
    content = np.random.default_rng(0).uniform(0, 255, (18, 24, 3)).astype(np.float32)
    assert metrics.ssim_to_content(content, content) == pytest.approx(1.0)
    assert metrics.ssim_to_content(content, 255 - content) < 0.5




class _Layers:
    """Just what choose_gram_layers asks a network: its layer names, and why a name is bad."""

    layers = ("conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "relu2_2", "pool2", "relu4_3")

    def layer_problem(self, name):
        return f"no layer {name}"


def test_held_out_layers_are_the_defaults_unless_the_objective_uses_them():
    net = _Layers()
    assert metrics.choose_gram_layers(net, None, ("relu1_1",)) == metrics.GRAM_LAYERS
    # relu4_3 in the objective: only relu2_2 of the defaults is held out.
    assert metrics.choose_gram_layers(net, None, ("relu4_3",)) == ("relu2_2",)
    assert metrics.choose_gram_layers(net, ("relu2_1",), ("relu1_1",)) == ("relu2_1",)


def test_a_requested_layer_the_objective_uses_or_lacks_is_refused():
    net = _Layers()
    with pytest.raises(UsageError, match="relu1_1 is in the objective"):
        metrics.choose_gram_layers(net, ("relu1_1",), ("relu1_1",))
    with pytest.raises(UsageError, match="--gram-layers: no layer relu9_9"):
        metrics.choose_gram_layers(net, ("relu9_9",), ())
