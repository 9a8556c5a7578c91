"""optimize.py: the Evaluator's cache, budgets and failure handling; minimize on the real
objective (the tiny network of conftest.py, 16 px) and both optimizers on a small
quadratic objective whose minimum is known exactly; the iterate average.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import numpy as np
import pytest
from numpy_reference import SIZE, random_image

from neural_style_tf import optimize
from neural_style_tf.objective import Objective
from neural_style_tf.settings import OPTIMIZERS, TV_WEIGHT, LossOptions, OptimizerOptions
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()


@pytest.fixture(scope="module")
def objective(tiny_network, content, style):
    """conftest's default objective, but with the classic TV weight (100) these tests were
    calibrated with: from noise the TV term is most of the loss, so a few Adam steps halve
    it. The default (the network's own, 0.1 with W2) leaves a loss that 8 steps lower by 14%."""
    with Objective(tiny_network, content, [style], LossOptions(tv_weight=TV_WEIGHT)) as obj:
        yield obj


# ---------------------------------------------------------------- Evaluator: cache


class Counting:
    """Wraps objective.evaluate and records the images it was called with."""

    def __init__(self, evaluate):
        self.evaluate = evaluate
        self.calls = []

    def __call__(self, x):
        self.calls.append(np.array(x, copy=True))
        return self.evaluate(x)


@pytest.fixture
def counted(objective, monkeypatch):
    counter = Counting(objective.evaluate)
    monkeypatch.setattr(objective, "evaluate", counter)
    return counter


def flat(x):
    return np.asarray(x, np.float64).ravel()


def test_grads_called_first_evaluates_then_loss_uses_the_cache(objective, counted):
    x = flat(random_image(20))
    ev = optimize.Evaluator(objective)
    grad = ev.grads(x)
    assert len(counted.calls) == 1
    terms, expected_grad = counted.evaluate(x)
    np.testing.assert_allclose(grad, expected_grad.ravel(), rtol=1e-6)
    assert ev.loss(x) == pytest.approx(terms["total"], rel=1e-6)
    assert len(counted.calls) == 1 and ev.evaluations == 1


def test_same_x_in_another_array_is_not_evaluated_again(objective, counted):
    x = flat(random_image(21))
    ev = optimize.Evaluator(objective)
    ev.loss(x)
    ev.grads(x.copy())
    ev.terms(np.array(x))
    ev.loss(x)
    assert len(counted.calls) == 1 and ev.evaluations == 1


def test_out_of_order_calls_never_return_another_xs_values(objective, counted):
    x1, x2 = flat(random_image(22)), flat(random_image(23))
    ev = optimize.Evaluator(objective)
    loss1 = ev.loss(x1)
    loss2 = ev.loss(x2)
    grad1 = ev.grads(x1)  # the cache holds x2 now: x1 must be evaluated again, not answered with x2's gradient
    assert len(counted.calls) == 3 and ev.evaluations == 3
    np.testing.assert_allclose(grad1, counted.evaluate(x1)[1].ravel(), rtol=1e-6)
    assert loss1 != loss2
    assert ev.loss(x1) == pytest.approx(loss1)
    assert len(counted.calls) == 3


def test_x_changed_in_place_after_the_call_is_evaluated_again(objective, counted):
    # SciPy may reuse its x buffer: the cache must keep its own copy.
    x = flat(random_image(24))
    ev = optimize.Evaluator(objective)
    before = ev.loss(x)
    x += 3.0
    after = ev.loss(x)
    assert len(counted.calls) == 2
    assert after != before
    np.testing.assert_allclose(counted.calls[1].ravel(), x)


def test_best_image_is_the_lowest_loss_ever_evaluated(objective, content):
    candidates = [random_image(25), content + 1.0, 0.5 * (content + random_image(25)), random_image(26)]
    losses = [objective.evaluate(c)[0]["total"] for c in candidates]
    order = np.argsort(losses)  # evaluate the best second, so neither first nor last wins by accident
    sequence = [order[1], order[0], order[3], order[2]]
    ev = optimize.Evaluator(objective)
    assert ev.best_image() is None
    for i in sequence:
        ev.loss(flat(candidates[i]))
    np.testing.assert_allclose(ev.best_image(), candidates[order[0]], atol=1e-4)
    assert ev.best_loss == pytest.approx(losses[order[0]])
    assert ev.best_terms["total"] == pytest.approx(losses[order[0]])
    assert ev.best_image().shape == (SIZE, SIZE, 3) and ev.best_image().dtype == np.float32


def test_on_evaluation_is_called_once_per_evaluation(objective):
    seen = []
    ev = optimize.Evaluator(objective, on_evaluation=lambda i, seconds, terms: seen.append((i, terms["total"])))
    x1, x2 = flat(random_image(26)), flat(random_image(27))
    ev.loss(x1), ev.grads(x1), ev.loss(x2), ev.grads(x2)
    assert [i for i, _ in seen] == [1, 2]


# ---------------------------------------------------------------- Evaluator: budget and non-finite loss


def test_evaluation_budget_stops_exactly_at_the_budget(objective, counted):
    ev = optimize.Evaluator(objective, max_evaluations=2)
    x1, x2, x3 = (flat(random_image(s)) for s in (30, 31, 32))
    ev.loss(x1)
    ev.loss(x2)
    with pytest.raises(optimize.BudgetExhausted):
        ev.loss(x3)
    assert len(counted.calls) == 2
    ev.grads(x2)  # the cached x is still answered
    assert len(counted.calls) == 2


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_minimize_with_an_evaluation_budget_uses_exactly_that_many(objective, counted, optimizer):
    opts = OptimizerOptions(optimizer=optimizer, iterations=50, max_evaluations=7)
    result = optimize.minimize(objective, random_image(33), opts)
    assert result.stop_reason == "budget"
    assert result.evaluations == 7 == len(counted.calls)
    assert result.image is not None and result.ok


def test_minimize_with_a_time_budget_stops(objective):
    opts = OptimizerOptions(iterations=10_000, time_budget=0.0)
    result = optimize.minimize(objective, random_image(34), opts)
    assert result.stop_reason == "budget"
    assert result.evaluations == 0 and result.image is None


def poison_after(objective, monkeypatch, good_calls, bad=math.nan):
    """Make the loss `bad` from evaluation good_calls + 1 on."""
    real = objective.evaluate
    calls = []

    def evaluate(x):
        calls.append(1)
        terms, grad = real(x)
        if len(calls) > good_calls:
            terms = OrderedDict((k, bad) for k in terms)
        return terms, grad

    monkeypatch.setattr(objective, "evaluate", evaluate)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_and_keeps_the_last_finite_best(objective, monkeypatch, optimizer, bad):
    finite = []
    poison_after(objective, monkeypatch, good_calls=4, bad=bad)
    opts = OptimizerOptions(optimizer=optimizer, iterations=50)
    result = optimize.minimize(objective, random_image(35), opts,
                              on_evaluation=lambda i, s, terms: finite.append(terms["total"]))
    assert result.stop_reason == "nonfinite" and not result.ok
    assert str(bad).lower() in result.message.lower()
    assert result.evaluations == 5
    assert len(finite) == 4  # the non-finite evaluation is not reported as progress
    assert result.image is not None and np.isfinite(result.image).all()
    assert math.isfinite(result.terms["total"]) and result.terms["total"] == pytest.approx(min(finite))


def test_non_finite_gradient_also_stops(objective, monkeypatch):
    real = objective.evaluate

    def evaluate(x):
        terms, grad = real(x)
        grad = grad.copy()
        grad[0, 0, 0, 0] = np.nan
        return terms, grad

    monkeypatch.setattr(objective, "evaluate", evaluate)
    result = optimize.minimize(objective, random_image(36), OptimizerOptions(iterations=5))
    assert result.stop_reason == "nonfinite"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_keyboard_interrupt_returns_the_best_image_so_far(objective, optimizer):
    seen = []

    def callback(progress):
        seen.append(progress.best_loss)
        if progress.iteration == 3:
            raise KeyboardInterrupt

    result = optimize.minimize(objective, random_image(37), OptimizerOptions(optimizer=optimizer, iterations=50),
                              callback=callback)
    assert result.stop_reason == "interrupted" and result.iterations == 3
    assert result.image is not None
    assert result.terms["total"] == pytest.approx(seen[-1])


# ---------------------------------------------------------------- minimize on the real objective


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_minimize_decreases_the_loss_and_reports_every_iteration(objective, optimizer):
    progress = []
    x0 = random_image(40)
    start = objective.evaluate(x0)[0]["total"]
    opts = OptimizerOptions(optimizer=optimizer, iterations=8)
    result = optimize.minimize(objective, x0, opts, callback=progress.append)
    assert result.stop_reason == "completed" and result.ok
    assert result.iterations == 8 == len(progress)
    assert [p.iteration for p in progress] == list(range(1, 9))
    assert all(p.iterations == 8 for p in progress)
    evaluations = [p.evaluations for p in progress]
    assert evaluations == sorted(evaluations) and evaluations[-1] <= result.evaluations
    if optimizer == "adam":
        assert evaluations == list(range(1, 9))  # one evaluation per step
    else:
        assert all(e >= i for i, e in enumerate(evaluations, start=1))  # line searches may add more
    assert result.terms["total"] < 0.5 * start
    best = [p.best_loss for p in progress]
    assert best == sorted(best, reverse=True)
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0.0 and result.image.max() <= 255.0
    # The image returned is the one whose loss is reported.
    assert objective.evaluate(result.image)[0]["total"] == pytest.approx(result.terms["total"], rel=1e-4)


@pytest.mark.parametrize("bounds", ["soft", "fold", "box"])
def test_lbfgs_is_one_scipy_run_with_the_history_size(objective, monkeypatch, bounds):
    import scipy.optimize

    calls = []
    real = scipy.optimize.fmin_l_bfgs_b

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "fmin_l_bfgs_b", spy)
    opts = OptimizerOptions(iterations=12, lbfgs_corrections=7, lbfgs_bounds=bounds)
    result = optimize.minimize(objective, random_image(41), opts)
    assert len(calls) == 1  # never restarted: the curvature history is kept for the whole run
    assert calls[0]["m"] == 7 and calls[0]["maxiter"] == 12
    assert result.evaluations >= result.iterations
    assert 0.0 <= result.image.min() and result.image.max() <= 255.0
    if bounds != "box":  # the change of variable keeps the box: SciPy gets no bounds to check
        assert calls[0].get("bounds") is None
        return
    bounds = calls[0]["bounds"]
    # the pixels are optimised as x / s (see test_lbfgs_first_step_moves_pixels_by_the_asked_amount)
    assert len(bounds) == SIZE * SIZE * 3 and len(set(bounds)) == 1
    low, high = bounds[0]
    assert low == 0.0 and 0 < high < math.inf
    assert result.evaluations >= result.iterations


def test_minimize_rejects_an_unknown_optimizer(objective):
    with pytest.raises(ValueError, match="sgd"):
        optimize.minimize(objective, random_image(42), OptimizerOptions(optimizer="sgd"))


# ---------------------------------------------------------------- the optimizers on a known quadratic


class Quadratic:
    """0.5 * sum(a * (x - c)^2): an objective with a known minimum, shaped like an image."""

    def __init__(self, center, curvature=1.0):
        self.center = np.asarray(center, np.float64)
        self.shape = (1,) + self.center.shape
        self.curvature = curvature
        self.calls = 0

    def evaluate(self, x):
        self.calls += 1
        diff = np.reshape(np.asarray(x, np.float64), self.shape[1:]) - self.center
        total = 0.5 * self.curvature * float(np.sum(diff**2))
        terms = OrderedDict(content=total, style=0.0, tv=0.0, total=total)
        return terms, (self.curvature * diff).astype(np.float32)[None]


def test_lbfgs_finds_the_minimum_inside_the_box():
    center = random_image(50, (4, 5, 3), 20.0, 230.0)
    result = optimize.minimize(Quadratic(center), np.full_like(center, 128.0), OptimizerOptions(iterations=50))
    np.testing.assert_allclose(result.image, center, atol=1e-2)
    assert result.stop_reason == "converged" and result.iterations < 50
    assert result.message  # SciPy's reason, e.g. CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL


class Recording(Quadratic):
    def evaluate(self, x):
        self.seen = getattr(self, "seen", []) + [np.array(x, np.float64)]
        return super().evaluate(x)


@pytest.mark.parametrize("first_step", [0.0, 0.5, 1.0, 4.0])
@pytest.mark.parametrize("bounds", ["soft", "fold", "box"])
def test_lbfgs_first_step_moves_pixels_by_the_asked_amount(first_step, bounds):
    """The first trial step moves the pixels by first_step grey levels RMS along the
    gradient. 0: SciPy's own start, which with every variable boxed is the gradient itself,
    and without bounds (the soft box, the fold) a step of length 1."""
    center = random_image(53, (6, 7, 3), 20.0, 230.0)
    x0 = np.full_like(center, 128.0)
    objective = Recording(center, curvature=1e-3)
    optimize.minimize(objective, x0, OptimizerOptions(iterations=3, lbfgs_first_step=first_step, lbfgs_bounds=bounds))
    step = objective.seen[1].reshape(x0.shape) - objective.seen[0].reshape(x0.shape)
    gradient = objective.curvature * (x0 - center)
    scipy_own = math.sqrt(np.mean(gradient**2)) if bounds == "box" else 1 / math.sqrt(x0.size)
    expected = first_step if first_step > 0 else scipy_own
    assert math.sqrt(np.mean(step**2)) == pytest.approx(expected, rel=1e-3)
    # along the negative gradient
    cosine = -np.sum(step * gradient) / (np.linalg.norm(step) * np.linalg.norm(gradient))
    assert cosine == pytest.approx(1.0, abs=1e-4)


def test_lbfgs_scale_changes_only_the_start():
    """The scaled and unscaled runs reach the same minimum of a quadratic."""
    center = random_image(54, (4, 5, 3), 20.0, 230.0)
    for first_step in (0.0, 1.0):
        result = optimize.minimize(Quadratic(center), np.full_like(center, 128.0),
                                  OptimizerOptions(iterations=60, lbfgs_first_step=first_step))
        np.testing.assert_allclose(result.image, center, atol=1e-2)


def test_lbfgs_box_bounds_hold_pixels_at_the_edges():
    center = np.full((3, 3, 3), 300.0, np.float32)
    center[:, :, 1] = -40.0
    center[:, :, 2] = 100.0
    result = optimize.minimize(Quadratic(center), np.full_like(center, 128.0),
                               OptimizerOptions(iterations=50, lbfgs_bounds="box"))
    np.testing.assert_allclose(result.image[..., 0], 255.0)
    np.testing.assert_allclose(result.image[..., 1], 0.0)
    np.testing.assert_allclose(result.image[..., 2], 100.0, atol=1e-2)


def test_adam_follows_tensorflows_adam_update():
    """Same steps as tf.compat.v1.train.AdamOptimizer (the classic tool's optimizer)."""
    center = random_image(51, (3, 4, 3), 60.0, 200.0)
    x0 = random_image(52, (3, 4, 3), 60.0, 200.0)
    steps, lr, b1, b2, eps = 6, 2.0, 0.8, 0.95, 1e-3
    seen = []

    quad = Quadratic(center, curvature=0.3)
    opts = OptimizerOptions(optimizer="adam", iterations=steps, learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps)
    optimize.minimize(quad, x0, opts, on_evaluation=lambda *a: None,
                     callback=lambda p: seen.append(np.array(p.evaluator._x)))

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        var = tf.Variable(x0.astype(np.float64))
        loss = 0.5 * 0.3 * tf.reduce_sum(tf.square(var - center.astype(np.float64)))
        train = tf.compat.v1.train.AdamOptimizer(lr, b1, b2, eps).minimize(loss)
        sess.run(tf.compat.v1.global_variables_initializer())
        expected = []
        for _ in range(steps):
            expected.append(sess.run(var).ravel())
            sess.run(train)
    # seen[i] is the image evaluated at step i + 1, i.e. after i updates.
    np.testing.assert_allclose(np.array(seen), np.array(expected), rtol=1e-6, atol=1e-6)
    assert quad.calls == steps


def test_adam_keeps_the_lowest_loss_image_not_the_last():
    # A learning rate far too large makes Adam overshoot; the best image is still returned.
    center = np.full((2, 2, 3), 100.0, np.float32)
    quad = Quadratic(center)
    opts = OptimizerOptions(optimizer="adam", iterations=6, learning_rate=90.0)
    losses = []
    result = optimize.minimize(quad, np.full_like(center, 120.0), opts, callback=lambda p: losses.append(p.terms["total"]))
    assert losses[-1] > min(losses)
    assert result.terms["total"] == pytest.approx(min(losses))


def test_adam_projects_pixels_into_the_box():
    center = np.full((2, 2, 3), 400.0, np.float32)
    quad = Quadratic(center)
    opts = OptimizerOptions(optimizer="adam", iterations=40, learning_rate=20.0)
    seen = []
    optimize.minimize(quad, np.full_like(center, 200.0), opts, callback=lambda p: seen.append(p.evaluator._x.max()))
    assert max(seen) <= 255.0 and seen[-1] == pytest.approx(255.0)


# ---------------------------------------------------------------- the iterate average


def test_iterate_average_is_bias_corrected():
    average = optimize.IterateAverage(0.9)
    assert average.get() is None
    average.update(np.full(3, 10.0))
    np.testing.assert_allclose(average.get(), 10.0)  # one iterate: itself, not 10% of it
    average.update(np.full(3, 20.0))
    np.testing.assert_allclose(average.get(), (0.9 * 0.1 * 10 + 0.1 * 20) / (1 - 0.81), rtol=1e-6)


def test_minimize_with_an_iterate_average_returns_the_average_and_its_own_loss(objective, content):
    opts = OptimizerOptions(optimizer="adam", iterations=6, learning_rate=5.0, iterate_average=0.5)
    seen = []
    result = optimize.minimize(objective, content, opts, callback=lambda p: seen.append(p.best_image().copy()))
    plain = optimize.minimize(objective, content, dataclasses.replace(opts, iterate_average=0.0))
    assert result.evaluations == plain.evaluations == 6
    terms, _ = objective.evaluate(result.image)
    assert result.terms["total"] == pytest.approx(terms["total"], rel=1e-6)  # the loss is the average's own
    assert not np.array_equal(result.image, plain.image)  # not the best iterate
    assert 0.0 <= result.image.min() and result.image.max() <= 255.0


def test_same_bounds_is_the_list_of_pairs_that_fmin_l_bfgs_b_takes():
    """optimize.SameBounds stands for [(low, high)] * n without the list: the same
    sequence, and the same L-BFGS-B result on a quadratic whose minimum lies outside
    the box."""
    from scipy.optimize import fmin_l_bfgs_b

    bounds = optimize.SameBounds(5, 0.0, 2.0)
    assert len(bounds) == 5 and list(bounds) == [(0.0, 2.0)] * 5
    assert bounds[-1] == (0.0, 2.0) and bounds[1:4] == [(0.0, 2.0)] * 3
    with pytest.raises(IndexError):
        bounds[5]
    target = np.array([-1.0, 0.5, 1.0, 3.0, 1.5])

    def f(x):
        return float(np.sum((x - target) ** 2)), 2 * (x - target)

    x0 = np.ones(5)
    lazy, _, _ = fmin_l_bfgs_b(f, x0, bounds=bounds)
    listed, _, _ = fmin_l_bfgs_b(f, x0, bounds=[(0.0, 2.0)] * 5)
    np.testing.assert_array_equal(lazy, listed)
    np.testing.assert_allclose(lazy, np.clip(target, 0.0, 2.0))
