"""overscan.py: the canvas with a free margin, padded and cut back exactly, and coarse_to_fine.run
optimising on it while everything outside sees the picture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy_reference import smooth

import stylize
from neural_style_tf import coarse_to_fine, overscan, settings
from neural_style_tf import objective as objective_module
from neural_style_tf.objective import Guidance, Problem
from neural_style_tf.terms import PixelTarget


def test_pad_repeats_the_edge_and_crop_undoes_it():
    image = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    canvas = overscan.pad(image, 2)
    assert canvas.shape == (9, 10, 3)
    np.testing.assert_array_equal(overscan.crop(canvas, 2), image)
    # the edge repeated, not mirrored: a mirror is symmetric about the edge, and the optimiser
    # painted a stroke along that line (see overscan's docstring)
    np.testing.assert_array_equal(canvas[2:-2, 0], image[:, 0])
    np.testing.assert_array_equal(canvas[2:-2, 1], image[:, 0])
    np.testing.assert_array_equal(canvas[0, 2:-2], image[0])
    assert overscan.pad(image, 0) is image and overscan.crop(image, 0) is image and overscan.pad(None, 3) is None
    mask = np.array([[0.0, 1.0]])
    np.testing.assert_array_equal(overscan.pad(mask, 1), [[0, 0, 1, 1]] * 3)
    np.testing.assert_array_equal(overscan.pad(mask, 1, "zero"), [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(overscan.pad(np.ones((1, 2)), 2).shape, (5, 6))


def test_the_margin_is_a_share_of_the_frame_or_the_flags_and_none_for_a_tileable_picture():
    loss = stylize.LossOptions()
    # 1/64 of the long side, at least 4 px: the same canvas, scaled, at every size
    assert settings.OVERSCAN_FRACTION == 1 / 64 and settings.OVERSCAN_MIN == 4
    assert [overscan.margin(loss, size) for size in [(12, 16), (96, 128), (192, 256), (384, 512), (476, 1024),
                                                      (2048, 1536)]] == [4, 4, 4, 8, 16, 32]
    assert overscan.margin(stylize.LossOptions(overscan=7), (384, 512)) == 7
    assert overscan.margin(stylize.LossOptions(overscan=0), (384, 512)) == 0
    assert overscan.margin(stylize.LossOptions(tileable=True), (384, 512)) == 0
    assert overscan.canvas_size((96, 128), 4) == (104, 136)


def test_canvas_problem_pads_every_per_pixel_input(tiny_network):
    content = smooth(12, 16, 0.0)
    ones = np.ones((12, 16), np.float32)
    held = PixelTarget(content, ones * 0.5, 2.0)
    problem = Problem.create(tiny_network, content, [smooth(10, 10, 0.3)], content_mask=ones, temporal=held,
                             guidance=Guidance(masks=(ones, None), region_masks=(None, None), keep=held))
    canvas = overscan.canvas_problem(problem, 3)
    assert canvas.content.shape == (18, 22, 3) and canvas.content_mask.shape == (18, 22)
    np.testing.assert_array_equal(overscan.crop(canvas.content, 3), content)
    assert canvas.guidance.masks[0].shape == (18, 22) and canvas.guidance.masks[1] is None
    for target in (canvas.temporal, canvas.guidance.keep):
        assert target.target.shape == (18, 22, 3) and target.weight == 2.0
        assert target.mask[:3].sum() == 0 and target.mask[3:-3, 3:-3].min() == 0.5  # held nowhere in the margin
    assert canvas.styles == problem.styles and canvas.loss == problem.loss
    assert overscan.canvas_problem(problem, 0) is problem


@pytest.mark.parametrize("margin", [0, 3])
def test_run_optimises_on_the_canvas_and_hands_out_the_picture(tiny_network, margin):
    content = smooth(24, 32, 0.0)
    loss = stylize.LossOptions(overscan=margin)
    built, seen, positions = [], [], []

    def objective(problem):
        built.append(problem.content.shape[:2])
        return objective_module.Objective.for_problem(problem)

    stages = coarse_to_fine.schedule(content.shape, 2, scales=2, coarse_iterations=2)
    result, per_stage = coarse_to_fine.run(
        stages, coarse_to_fine.problems(tiny_network, content, [smooth(16, 16, 0.3)], loss),
        stylize.OptimizerOptions(), lambda c: c.copy(), make_objective=objective,
        callback=lambda p: seen.append(p.best_image().shape), checkpoint=lambda pos, _: positions.append(pos.image.shape))
    assert built == [overscan.canvas_size(s.size, margin) for s in stages]
    assert set(seen) | set(positions) == {(12, 16, 3), (24, 32, 3)}  # never the canvas
    assert [r.image.shape for r in per_stage] == [(12, 16, 3), (24, 32, 3)]
    assert result.image.shape == content.shape and result.ok


def test_the_canvas_changes_the_picture_at_its_edge_not_its_size(tiny_network):
    """With a margin the edge pixels are inside the network's image: the result differs there."""
    content = smooth(24, 32, 0.0)
    style = smooth(16, 16, 0.5)
    out = {}
    for margin in (0, 4):
        loss = dataclasses.replace(stylize.LossOptions(overscan=margin), style_weight=50.0)
        stages = coarse_to_fine.schedule(content.shape, 6)
        out[margin], _ = coarse_to_fine.run(stages, coarse_to_fine.problems(tiny_network, content, [style], loss),
                                            stylize.OptimizerOptions(iterations=6), lambda c: c.copy())
    a, b = out[0].image, out[4].image
    assert a.shape == b.shape == content.shape
    edge = np.abs(a - b)[[0, -1]].mean() + np.abs(a - b)[:, [0, -1]].mean()
    assert edge > 0.01
