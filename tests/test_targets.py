"""targets.py: the target graphs kept and reused (TargetGraphs) against one-off ones, the
style targets remembered, and the size a style image is used at."""

from __future__ import annotations

import numpy as np
import pytest
from numpy_reference import SIZE, random_image

from neural_style_tf import losses
from neural_style_tf.objective import Objective, statistic_of
from neural_style_tf.settings import LossOptions, for_network
from neural_style_tf.targets import TargetGraph, TargetGraphs, size_styles_to_content, style_shape, targets

LAYERS = ("relu4_2",), ("relu1_1", "relu3_1")


def test_one_target_graph_serves_every_image_size_as_one_off_graphs_would(tiny_network):
    """Contents and styles of three sizes through one kept graph: the same arrays as a
    graph built for each, with and without a style's region mask."""
    gram = statistic_of("gram", losses.LOSS_SCALES["classic"]).compute
    region = np.zeros((20, 24), np.float32)
    region[:, 8:] = 1.0
    with TargetGraphs() as graphs:
        for seed, shape in enumerate([(16, 16, 3), (24, 20, 3), (12, 30, 3)]):
            content, style = random_image(seed, shape), random_image(seed + 5, (20, 24, 3))
            for masks in (None, [region]):
                graph = graphs.graph(tiny_network, *LAYERS, "max", gram, "zero", masks is not None)
                got = graph.content_features(content), [graph.style_statistics(style, None if masks is None
                                                                               else masks[0])]
                one_off = TargetGraph(tiny_network, *LAYERS, "max", gram, "zero", masks is not None)
                try:
                    expected = one_off.content_features(content), [one_off.style_statistics(style, None if masks is None
                                                                                            else masks[0])]
                finally:
                    one_off.close()
                for a, b in zip(got[0].values(), expected[0].values()):
                    assert np.array_equal(a, b)
                for name in LAYERS[1]:
                    assert all(np.array_equal(a, b) for a, b in zip(got[1][0][name], expected[1][0][name]))
        assert graphs.built == 2  # one unmasked, one with the mask placeholders


def test_style_targets_are_remembered_by_their_pixels(tiny_network, monkeypatch):
    """A second problem with the same style (a video's next frame) computes only its
    content target; another style is computed."""
    loss = for_network(LossOptions(), tiny_network)
    statistic = statistic_of(loss.style_loss, losses.LOSS_SCALES[loss.loss_scale])
    style = random_image(7, (20, 24, 3))
    with TargetGraphs() as graphs:
        first = targets(tiny_network, random_image(1), [style], loss, statistic, graphs=graphs)
        graph = next(iter(graphs.graphs.values()))
        calls = []
        real = type(graph).style_statistics
        monkeypatch.setattr(type(graph), "style_statistics", lambda self, *a: calls.append(1) or real(self, *a))
        second = targets(tiny_network, random_image(2), [style.copy()], loss, statistic, graphs=graphs)
        assert calls == [] and graphs.built == 1
        assert all(a is b for a, b in zip(first[2][0].values(), second[2][0].values()))
        assert not np.array_equal(first[1]["relu4_2"], second[1]["relu4_2"])
        targets(tiny_network, random_image(2), [random_image(8, (20, 24, 3))], loss, statistic, graphs=graphs)
        assert calls == [1]


def test_resize_styles_only_for_the_papers_style_size():
    styles = [np.zeros((10, 30, 3), np.float32), np.zeros((40, 20, 3), np.float32)]
    assert size_styles_to_content(styles, (12, 16, 3), "width") is styles
    assert [s.shape for s in size_styles_to_content(styles, (12, 16, 3), "content")] == [(12, 16, 3)] * 2


@pytest.mark.parametrize("style_size", ["width", "content"])
def test_style_shape_is_the_size_the_objective_uses(tiny_network, content, style, style_size):
    """One owner of a style image's size: what the checks ask style_shape is what the
    Objective's targets are computed at (after the transfer's size_styles_to_content)."""
    second = random_image(14, (30, 12, 3))
    loss = LossOptions(style_scales=(1.0, 0.5))
    styles = size_styles_to_content([style, second], content.shape, style_size)
    with Objective(tiny_network, content, styles, loss) as obj:
        used = [s.shape[:2] for s in obj.style_images]
    expected = [style_shape(s.shape, content.shape, scale, style_size)
                for s, scale in zip((style, second), loss.style_scales)]
    assert used == expected
    if style_size == "content":
        assert expected == [(SIZE, SIZE), (SIZE // 2, SIZE // 2)]
    else:  # each its own aspect, at scale x the content's width
        assert expected == [(13, SIZE), (20, SIZE // 2)]
