"""The soft box and the fold (optimize.soft_box, optimize.fold): the changes of variable that
keep L-BFGS's pixels in 0..255 without SciPy's bounds. Pure NumPy, plus real SciPy runs on a
tiny problem."""

from __future__ import annotations

import numpy as np
import pytest

from neural_style_tf.optimize import SOFT_BOX_FLOOR, SOFT_BOX_KNEE, fold, minimize, soft_box, soft_box_inverse
from neural_style_tf.settings import OptimizerOptions


def test_identity_away_from_the_bounds():
    u = np.linspace(SOFT_BOX_KNEE, 255.0 - SOFT_BOX_KNEE, 101)
    x, slope = soft_box(u)
    np.testing.assert_array_equal(x, u)
    np.testing.assert_array_equal(slope, 1.0)


def test_inside_the_box_for_any_variable():
    u = np.array([-1e6, -500.0, -10.0, 0.0, 3.0, 252.0, 300.0, 1e6])
    x, slope = soft_box(u)
    assert np.all(x >= 0.0) and np.all(x <= 255.0)
    assert np.all(np.diff(x) >= 0.0)  # monotone
    assert np.all(slope >= 0.0) and np.all(slope <= 1.0)


def test_slope_is_the_derivative_and_continuous_at_the_knees():
    u = np.array([-30.0, 0.0, 5.0, SOFT_BOX_KNEE, 100.0, 255.0 - SOFT_BOX_KNEE, 250.0, 280.0])
    h = 1e-6
    numeric = (soft_box(u + h)[0] - soft_box(u - h)[0]) / (2 * h)
    np.testing.assert_allclose(soft_box(u)[1], numeric, rtol=1e-5, atol=1e-9)


def test_inverse_round_trip_and_floor():
    x = np.array([0.0, 0.2, 1.0, 4.0, 8.0, 127.5, 250.0, 254.9, 255.0])
    back = soft_box(soft_box_inverse(x))[0]
    np.testing.assert_allclose(back, np.clip(x, SOFT_BOX_FLOOR, 255.0 - SOFT_BOX_FLOOR), rtol=1e-12, atol=1e-9)


def test_the_fold_mirrors_at_both_bounds_with_slope_one():
    u = np.array([-300.0, -10.0, 0.0, 3.0, 254.0, 255.0, 265.0, 520.0, 765.0 + 2.0])
    x, slope = fold(u)
    np.testing.assert_allclose(x, [210.0, 10.0, 0.0, 3.0, 254.0, 255.0, 245.0, 10.0, 253.0])
    assert np.all(np.abs(slope) == 1.0)
    inside = np.linspace(0.0, 255.0, 52)
    np.testing.assert_array_equal(fold(inside)[0], inside)  # the identity in the box: the start is the image
    v = np.array([-100.3, -7.5, 40.0, 260.2, 500.1, 900.7])
    h = 1e-6
    np.testing.assert_allclose(fold(v)[1], (fold(v + h)[0] - fold(v - h)[0]) / (2 * h), rtol=1e-5)


class Quadratic:
    """A pixel objective whose minimum lies partly outside the box: sum (x - t)^2 / 2."""

    def __init__(self, target):
        self.target = np.asarray(target, np.float32)
        self.shape = (1,) + self.target.shape

    def evaluate(self, x):
        r = np.reshape(x, self.target.shape).astype(np.float64) - self.target
        return {"total": float(0.5 * np.sum(r * r))}, r.astype(np.float32)[None]


@pytest.mark.parametrize("bounds", ["soft", "fold", "box"])
def test_lbfgs_stays_in_the_box_and_reaches_the_clipped_minimum(bounds):
    rng = np.random.default_rng(0)
    target = rng.uniform(-60.0, 320.0, (8, 8, 3))  # a third of it outside 0..255
    opts = OptimizerOptions(iterations=200, lbfgs_bounds=bounds, lbfgs_first_step=10.0)
    result = minimize(Quadratic(target), np.full((8, 8, 3), 128.0, np.float32), opts)
    image = result.image
    assert image.min() >= 0.0 and image.max() <= 255.0
    # The constrained minimum is the target clipped to the box: the soft box gets within a
    # grey level of it (its tails approach the bounds asymptotically); the fold within 1.5
    # (here a third of the pixels want to be past a bound, and their kinks stall L-BFGS's
    # line search: 1.43 after 200 iterations as after 400; a photo has ~1% at the bounds).
    atol = {"box": 1e-3, "soft": 1.0, "fold": 1.5}[bounds]
    np.testing.assert_allclose(image, np.clip(target, 0, 255), atol=atol)
