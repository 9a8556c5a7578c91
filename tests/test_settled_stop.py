"""L-BFGS's stop when the loss settles (--min-improvement, optimize.SettledRule; issue 34,
docs/performance.md#a-stop-when-the-loss-settles): the rule on loss sequences, and the
optimizers on a synthetic objective whose gains shrink as an image's do."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
from numpy_reference import random_image

from neural_style_tf import optimize
from neural_style_tf.settings import OptimizerOptions


def test_settled_rule_stops_after_a_whole_window_of_little_gain():
    rule = optimize.SettledRule(1.0, window=3)
    # 80 -> 79.7 over the last three iterations is 0.375%, below 1%; every window before gained more
    assert [rule.settled(v) for v in (100, 90, 80, 79.9, 79.8, 79.7)] == [False] * 5 + [True]


def test_settled_rule_one_good_step_in_the_window_keeps_it_going():
    rule = optimize.SettledRule(1.0, window=3)
    assert not any(rule.settled(v) for v in (100, 100, 100, 95, 95, 95))  # 5% in the window each time
    assert rule.settled(95)  # now three iterations without a gain


def test_settled_rule_off_never_stops():
    rule = optimize.SettledRule(0.0, window=2)
    assert not any(rule.settled(10.0) for _ in range(20))


class SlowQuadratic:
    """A quadratic above a floor, its curvatures spread over three decades: L-BFGS gains less
    and less per iteration, as on an image, and the loss never reaches 0."""

    def __init__(self, center, floor):
        self.center = np.asarray(center, np.float64)
        self.shape = (1,) + self.center.shape
        self.curvatures = np.geomspace(1e-3, 1.0, self.center.size).reshape(self.center.shape)
        self.floor = floor

    def evaluate(self, x):
        diff = np.reshape(np.asarray(x, np.float64), self.shape[1:]) - self.center
        total = 0.5 * float(np.sum(self.curvatures * diff**2)) + self.floor
        return OrderedDict(content=total, style=0.0, tv=0.0, total=total), (self.curvatures * diff).astype(np.float32)[None]


def test_lbfgs_stops_when_the_loss_settles():
    center = random_image(52, (8, 8, 3), 20.0, 230.0)
    x0 = np.full_like(center, 128.0)
    losses = []
    opts = OptimizerOptions(iterations=200, min_improvement=1.0)
    result = optimize.minimize(SlowQuadratic(center, 1e4), x0, opts,
                               callback=lambda p: losses.append(p.terms["total"]))
    assert result.stop_reason == "settled" and "1%" in result.message and result.ok
    assert 10 < result.iterations == len(losses) < 200
    window = [(losses[i - 10] - losses[i]) / losses[i - 10] for i in range(10, len(losses))]
    assert window[-1] < 0.01 and min(window[:-1]) >= 0.01  # the first window below 1% stops it
    assert result.terms["total"] == pytest.approx(losses[-1])
    # Without the rule the same run goes on, and lower
    full = optimize.minimize(SlowQuadratic(center, 1e4), x0, dataclasses.replace(opts, min_improvement=0.0))
    assert full.iterations > result.iterations and full.terms["total"] < result.terms["total"]


def test_adam_runs_every_step_whatever_min_improvement():
    center = random_image(53, (4, 4, 3), 20.0, 230.0)
    opts = OptimizerOptions(optimizer="adam", iterations=40, learning_rate=0.01, min_improvement=50.0)
    result = optimize.minimize(SlowQuadratic(center, 1e6), np.full_like(center, 128.0), opts)
    assert result.stop_reason == "completed" and result.iterations == 40
