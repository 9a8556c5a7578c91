"""The tiled evaluation (tiling.py) against the untiled Objective: the same loss terms and
gradient, to float rounding, on a tiny network and images cut into several tiles,
edge tiles included (sizes that are not multiples of the network's stride)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neural_style_tf import tiling
from neural_style_tf.objective import Guidance, Objective, Problem
from neural_style_tf.settings import LossOptions
from neural_style_tf.terms import PixelTarget
from neural_style_tf.tiled_objective import TiledObjective

# 70 x 90 with cores of 32: 3 x 3 tiles, the last row and column narrower than the others.
SHAPE = (70, 90, 3)
CORE = 32


def image(seed, shape=SHAPE):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def assert_same(problem, x, core=CORE, tile_graph=None):
    """The tiled objective of `problem` evaluates as the untiled one at `x`; returns it (open)."""
    tiled = TiledObjective(problem, core=core, tile_graph=tile_graph)
    assert len(tiled.tiles) > 1
    with Objective.for_problem(problem) as whole:
        expected, expected_grad = whole.evaluate(x)
    terms, grad = tiled.evaluate(x)
    assert list(terms) == list(expected)
    for name in expected:
        assert terms[name] == pytest.approx(expected[name], rel=2e-5, abs=1e-6), name
    scale = float(np.abs(expected_grad).max())
    assert scale > 0
    np.testing.assert_allclose(grad, expected_grad, atol=2e-5 * scale)
    return tiled


@pytest.mark.parametrize("style_loss", ["gram", "w2", "mean-cov"])
def test_tiled_and_whole_agree_for_every_style_loss(tiny_network, style_loss):
    loss = dataclasses.replace(LossOptions(), style_loss=style_loss)
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], loss)
    assert_same(problem, image(3)).close()


@pytest.mark.parametrize("loss_scale", ["normalized", "gatys2016", "gatys-pytorch"])
def test_tiled_and_whole_agree_for_every_loss_scale(tiny_network, loss_scale):
    loss = dataclasses.replace(LossOptions(), style_loss="gram", loss_scale=loss_scale, tv_weight=1.0)
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], loss)
    assert_same(problem, image(3)).close()


@pytest.mark.parametrize("padding", ["zero", "reflect"])
def test_tiled_and_whole_agree_for_the_other_paddings(tiny_network, padding):
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))],
                             dataclasses.replace(LossOptions(), padding=padding))
    assert_same(problem, image(3)).close()


def test_tiled_and_whole_agree_with_masks_two_styles_and_a_content_mask(tiny_network):
    rng = np.random.default_rng(5)
    left = np.zeros(SHAPE[:2], np.float32)
    left[:, :40] = 1.0
    left[:, 40:50] = 0.5  # a soft edge
    region = np.zeros((50, 60), np.float32)
    region[10:40, 5:50] = 1.0
    content_mask = rng.uniform(0.2, 1.0, SHAPE[:2]).astype(np.float32)
    guidance = Guidance(masks=(left, None), region_masks=(region, None))
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3)), image(4, (40, 40, 3))],
                             LossOptions(), content_mask=content_mask, guidance=guidance)
    assert_same(problem, image(3)).close()


def test_tiled_and_whole_agree_with_the_temporal_and_keep_terms(tiny_network):
    rng = np.random.default_rng(6)
    temporal = PixelTarget(image(7), rng.uniform(0, 1, SHAPE[:2]).astype(np.float32), 30.0)
    keep_mask = np.zeros(SHAPE[:2], np.float32)
    keep_mask[20:50, 30:70] = 1.0
    guidance = Guidance(keep=PixelTarget(image(1), keep_mask, 5.0))
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], LossOptions(), temporal=temporal,
                             guidance=guidance)
    tiled = assert_same(problem, image(3))
    terms, _ = tiled.evaluate(image(3))
    assert {"temporal", "keep"} <= set(terms) and terms["temporal"] > 0 and terms["keep"] > 0
    tiled.close()


def test_one_tile_graph_serves_every_tile_size_and_problem(tiny_network, monkeypatch):
    built = []
    original = tiling.TileGraph.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(tiling.TileGraph, "__init__", counting)
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], LossOptions())
    tiled = assert_same(problem, image(3))
    # Another size and other images: retargeted, nothing built.
    smaller = Problem.create(tiny_network, image(8, (48, 66, 3)), [image(9, (30, 30, 3))], LossOptions())
    tiled.retarget(smaller)
    assert_same(smaller, image(10, (48, 66, 3)), tile_graph=tiled.tile_graph).close()
    with Objective.for_problem(smaller) as whole:
        expected, _ = whole.evaluate(image(10, (48, 66, 3)))
    terms, _ = tiled.evaluate(image(10, (48, 66, 3)))
    assert terms["total"] == pytest.approx(expected["total"], rel=2e-5)
    assert len(built) == 1
    tiled.close()


def test_a_network_without_known_receptive_fields_is_not_tiled(tiny_network, monkeypatch):
    monkeypatch.setattr(type(tiny_network), "tile_halo", lambda self, last: None)
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], LossOptions())
    with pytest.raises(ValueError, match="cannot be evaluated in tiles"):
        TiledObjective(problem, core=CORE)


def test_a_halo_short_of_the_receptive_field_is_not_exact(tiny_network):
    # What the halo is for: with windows a stride short of it, the cores' features differ.
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], LossOptions())
    before, after, stride = tiny_network.tile_halo("relu5_1")
    tiled = TiledObjective(problem, core=CORE)
    tiled.tiles = tiling.plan(SHAPE[0], SHAPE[1], CORE, (before - stride, after - stride, stride))
    with Objective.for_problem(problem) as whole:
        _, expected = whole.evaluate(image(3))
    _, grad = tiled.evaluate(image(3))
    assert np.abs(grad - expected).max() > 1e-3 * np.abs(expected).max()
    tiled.close()


@pytest.mark.parametrize("styled", [True, False])
def test_each_tile_reports_the_share_of_the_evaluation_done(tiny_network, styled):
    """9 tiles: with a style, a first pass (1 unit a tile) and a second (2 units), 27 in all;
    without one, only the second pass (18)."""
    loss = LossOptions() if styled else LossOptions(style_weight=0.0)
    problem = Problem.create(tiny_network, image(1), [image(2, (50, 60, 3))], loss)
    with TiledObjective(problem, core=CORE) as tiled:
        told = []
        tiled.on_tile = told.append
        tiled.evaluate(image(3))
        count = len(tiled.tiles)
        if tiled._finish is None:
            assert not styled
            assert told == pytest.approx([2 * k / (2 * count) for k in range(1, count + 1)])
        else:
            assert told == pytest.approx([k / (3 * count) for k in range(1, count + 1)]
                                         + [(count + 2 * k) / (3 * count) for k in range(1, count + 1)])
