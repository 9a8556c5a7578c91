"""The optimisers on one objective: an `Evaluator` that caches loss and gradient on x,
SciPy's L-BFGS-B, Adam, and `minimize`, which runs either and returns an `OptimizationResult`.

Progress is reported to the caller through callbacks (`Progress` after each iteration,
each evaluation's terms); nothing is printed here. Ctrl-C stops a run with the best
image so far.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .settings import OPTIMIZERS, STOP_WINDOW, OptimizerOptions

# The defaults of minimize (frozen, so one instance serves every call).
DEFAULT_OPTIMIZER = OptimizerOptions()

class BudgetExhausted(Exception):
    """Raised inside the optimizer when the evaluation or time budget is used up."""


class NonFiniteLoss(Exception):
    """Raised inside the optimizer when the loss or gradient stops being finite."""


class Settled(Exception):
    """Raised after an L-BFGS iteration when the loss has settled (see SettledRule)."""


class SettledRule:
    """--min-improvement: the loss fell less than `percent` % over the last `window` iterations.

    Why: L-BFGS spends most of a fixed budget on iterations that barely change the picture,
    and how many a picture needs depends on the pair (at 512 px the Scream needs 90, the
    Starry Night 65, for the look of 150: docs/performance.md#a-stop-when-the-loss-settles).
    The loss's relative fall ranks the pairs as that need does; the image's own change per
    iteration does not (it is smaller on the Scream, which still has further to go). Over a
    window, not one iteration: one step of L-BFGS can gain little and the next much.
    """

    def __init__(self, percent: float, window: int = STOP_WINDOW):
        self.fraction = float(percent) / 100.0
        self.window = int(window)
        self.losses: list[float] = []

    def settled(self, loss: float) -> bool:
        """Records an iteration's loss; True when the last `window` iterations gained too little."""
        self.losses.append(float(loss))
        if self.fraction <= 0 or len(self.losses) <= self.window:
            return False
        before = self.losses[-1 - self.window]
        return before > 0 and (before - self.losses[-1]) < self.fraction * before


class Evaluator:
    """Loss and gradient for SciPy, computed together and cached on x.

    `loss(x)` and `grads(x)` both look at the cache first: called with the x of the
    last evaluation they return its values, with any other x they evaluate again. No
    call order is assumed. It also remembers the lowest-loss image ever evaluated,
    counts evaluations, enforces budgets, and reports each evaluation to `on_evaluation`.
    """

    def __init__(self, objective: Any, max_evaluations: int | None = None, time_budget: float | None = None,
                 on_evaluation: Callable[[int, float, dict], None] | None = None, gradient_dtype: Any = np.float64):
        self.objective = objective
        # float64 for SciPy's L-BFGS-B, which works in it; float32 for Adam, which needs no
        # more, and at print size a float64 copy of the gradient is 1 GB (7680 x 5760).
        self.gradient_dtype = gradient_dtype
        self.max_evaluations = max_evaluations
        self.time_budget = time_budget
        self.on_evaluation = on_evaluation
        self.evaluations = 0
        self.session_seconds = 0.0
        self.start = time.perf_counter()
        self.best_loss = math.inf
        self.best_x: np.ndarray | None = None
        self.best_terms: dict | None = None
        self._x: np.ndarray | None = None
        self._terms: dict = {}
        self._grad: np.ndarray = np.zeros(0)

    def _ensure(self, x):
        # The cache key is x as the graph sees it, in float32: two float64 x that round to
        # the same float32 image have exactly the same loss and gradient. This makes the
        # float32 cast the only copy of x (it is also the cached and the best image).
        x = np.array(x, dtype=np.float32)
        if self._x is not None and x.shape == self._x.shape and np.array_equal(x, self._x):
            return
        if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
            raise BudgetExhausted(f"evaluation budget of {self.max_evaluations} reached")
        if self.time_budget is not None and self.elapsed() >= self.time_budget:
            raise BudgetExhausted(f"time budget of {self.time_budget:g} s reached")
        t0 = time.perf_counter()
        terms, grad = self.objective.evaluate(x)
        self.session_seconds += time.perf_counter() - t0
        self.evaluations += 1
        self._x = x
        self._terms = terms
        # SciPy's L-BFGS-B works in float64: this is the one conversion at its boundary.
        self._grad = grad.ravel().astype(self.gradient_dtype)
        total = terms["total"]
        if not (math.isfinite(total) and np.isfinite(grad).all()):
            raise NonFiniteLoss(f"loss became {total} at evaluation {self.evaluations}")
        if total < self.best_loss:
            self.best_loss = total
            self.best_x = self._x
            self.best_terms = terms
        if self.on_evaluation is not None:
            self.on_evaluation(self.evaluations, self.elapsed(), terms)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def loss(self, x: np.ndarray) -> float:
        self._ensure(x)
        return self._terms["total"]

    def grads(self, x: np.ndarray) -> np.ndarray:
        self._ensure(x)
        return self._grad

    def terms(self, x: np.ndarray) -> dict:
        """All loss terms at x (evaluating only if x is not the cached one)."""
        self._ensure(x)
        return self._terms

    def best_image(self) -> np.ndarray | None:
        shape = self.objective.shape[1:]
        return None if self.best_x is None else np.asarray(self.best_x, np.float32).reshape(shape)


# ---------------------------------------------------------------- optimisation


@dataclass
class Progress:
    """What the optimizer reports after each iteration (an L-BFGS iteration or an Adam step).

    `evaluations` counts loss-and-gradient evaluations so far, which for L-BFGS is at
    least `iteration` (its line search may evaluate several times per iteration).
    """

    iteration: int
    iterations: int
    evaluations: int
    elapsed: float
    terms: dict
    best_loss: float
    evaluator: Evaluator = field(repr=False)
    # (index, count, (height, width)) of the coarse-to-fine scale this iteration belongs
    # to, set by coarse_to_fine.run; None in a single-scale run.
    scale: tuple | None = None

    def best_image(self):
        return self.evaluator.best_image()


@dataclass
class OptimizationResult:
    """What `minimize` returns (api.Result is the library's finished picture)."""

    image: np.ndarray | None  # the lowest-loss image evaluated, RGB float32 (H, W, 3)
    terms: dict | None  # its loss terms
    iterations: int
    evaluations: int
    elapsed: float
    stop_reason: str  # "completed", "budget", "converged", "interrupted", "nonfinite", "stopped"
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.stop_reason not in ("nonfinite", "interrupted")


def lbfgs_scale(gradient: np.ndarray, first_step: float) -> float:
    """The s of x = s * y that makes L-BFGS-B's first step move x by `first_step` grey levels RMS.

    With every variable boxed, SciPy's L-BFGS-B takes as its first trial step the
    gradient itself (unit Hessian, step length 1). The style loss's gradient is tiny per
    pixel (about 1e-2 to 1e-4 here), so the first step barely moves the image and the
    line search spends 15-20 evaluations growing it. In y = x / s the gradient is s g,
    the step s g in y is s^2 g in x: s = sqrt(first_step / RMS(g)) makes it first_step
    grey levels RMS. A uniform scale changes nothing after that first step (L-BFGS
    rescales its Hessian estimate from the first pair of steps on), so only the wasted
    start is removed. This deviates from the classic tools, which give SciPy the pixels
    as they are (first_step 0 does too).
    """
    rms = float(np.sqrt(np.mean(np.square(gradient, dtype=np.float64))))
    return math.sqrt(first_step / rms) if first_step > 0 and rms > 0 else 1.0


# The soft box (optimize.soft_box): pixels further than this from 0 or 255 are the
# variables themselves; nearer, an exponential tail keeps them inside the box.
SOFT_BOX_KNEE = 8.0
# A start pixel at the bound itself would map to an infinite variable: it starts this close.
SOFT_BOX_FLOOR = 0.5


def soft_box(u: np.ndarray, knee: float = SOFT_BOX_KNEE) -> tuple[np.ndarray, np.ndarray]:
    """(x, dx/du) of the change of variable x(u) that keeps every pixel inside (0, 255).

    x = u in [knee, 255 - knee]; below, x = knee * exp((u - knee) / knee) (above,
    mirrored), which joins with value and slope 1 at the knee and tends to 0 (255) as u
    goes to -inf (+inf). Why: SciPy's L-BFGS-B with every variable boxed spends about
    123 ms per evaluation at 512x384 (m = 20; 92 ms with m = 10), unboxed 53 ms (25 ms),
    measured on its own on an AMD EPYC (docs/performance.md#the-soft-box-and-the-fold); this map keeps the image in the box with no bounds at all, and leaves the
    problem unchanged for every pixel away from the bounds. Not the default: a pixel that
    wanders into a tail is slow to come back (its slope is small there), and on the
    Shipwreck 6% of the pixels ended at 0-1 (0.5% with the box), SSIM to the photo 0.423
    against 0.454 (docs/performance.md#the-soft-box-and-the-fold).
    """
    x = np.array(u, np.float64)
    slope = np.ones_like(x)
    low = u < knee
    x[low] = knee * np.exp((u[low] - knee) / knee)
    slope[low] = x[low] / knee
    high = u > 255.0 - knee
    x[high] = 255.0 - knee * np.exp((255.0 - knee - u[high]) / knee)
    slope[high] = (255.0 - x[high]) / knee
    return x, slope


def fold(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, dx/du) of the fold: x = u folded back into [0, 255] at both bounds, as light between
    two mirrors (period 510), slope +1 or -1 everywhere.

    Why (the default, settings.LBFGS_BOUNDS): it keeps the image in the box with no SciPy
    bounds (their cost, see soft_box) and, unlike the soft box's tails, nowhere makes a pixel
    slow to move: a pixel pushed past 255 comes back as far below it, and the gradient, whose
    sign the fold turns, pushes it back towards 255. On the six panel pairs at 512 px the
    pictures are the box's by eye, style distance -6% to +2% and SSIM within 0.014, with
    fewer pixels at 0-1 (0.1-0.3% against 0.2-0.5%). Its kinks do cost L-BFGS where many
    pixels want to be past a bound (tests/test_soft_box.py: a third of them, 1.4 grey levels
    short); a photo has well under 1% there."""
    t = np.mod(np.asarray(u, np.float64), 510.0)
    upper = t > 255.0
    return np.where(upper, 510.0 - t, t), np.where(upper, -1.0, 1.0)


def soft_box_inverse(x: np.ndarray, knee: float = SOFT_BOX_KNEE, floor: float = SOFT_BOX_FLOOR) -> np.ndarray:
    """u with soft_box(u)[0] == x, for pixels moved at most `floor` in from the bounds."""
    x = np.clip(np.asarray(x, np.float64), floor, 255.0 - floor)
    u = x.copy()
    low = x < knee
    u[low] = knee + knee * np.log(x[low] / knee)
    high = x > 255.0 - knee
    u[high] = 255.0 - knee - knee * np.log((255.0 - x[high]) / knee)
    return u


class ChangedVariable:
    """The Evaluator seen through a change of variable x = mapping(u) (CHANGES_OF_VARIABLE):
    loss and gradient in u, cached on u."""

    def __init__(self, evaluator: Evaluator, mapping, scale: float = 1.0):
        self.evaluator, self.mapping, self.scale = evaluator, mapping, scale
        self._u: np.ndarray | None = None
        self._x = self._slope = np.zeros(0)

    def pixels(self, y: np.ndarray) -> np.ndarray:
        u = y * self.scale
        if self._u is None or not np.array_equal(u, self._u):
            self._u = u
            self._x, self._slope = self.mapping(u)
        return self._x

    def loss(self, y: np.ndarray) -> float:
        return self.evaluator.loss(self.pixels(y))

    def grads(self, y: np.ndarray) -> np.ndarray:
        x = self.pixels(y)
        return self.evaluator.grads(x) * self._slope * self.scale


# --lbfgs-bounds values that keep the pixels in the box by a change of variable, with no SciPy
# bounds: (x(u) with dx/du, the u of a start image x).
CHANGES_OF_VARIABLE = {
    "soft": (soft_box, soft_box_inverse),
    "fold": (fold, lambda x: np.asarray(x, np.float64)),  # the identity inside the box
}


class SameBounds(Sequence):
    """The same (low, high) for each of n variables, as fmin_l_bfgs_b takes bounds, without
    a list of n tuples: that list (a pointer per variable, 4.7 MB at 512 px) lived as long
    as the run, and SciPy reads it once, into arrays of its own."""

    def __init__(self, n: int, low: float, high: float):
        self.n, self.pair = n, (low, high)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        # SciPy unpacks the bounds as zip(*bounds): Sequence's own __iter__ would call
        # __getitem__ once per variable (0.3 s at 512 px), repeat is a list's speed.
        return itertools.repeat(self.pair, self.n)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.pair] * len(range(*i.indices(self.n)))
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.pair


def _lbfgs(evaluator, x0, opts, report):
    from scipy.optimize import fmin_l_bfgs_b

    n = x0.size
    common = dict(m=opts.lbfgs_corrections, maxiter=opts.iterations, maxfun=max(15000, 2 * opts.iterations + 10))
    if opts.lbfgs_bounds in CHANGES_OF_VARIABLE:
        mapping, inverse = CHANGES_OF_VARIABLE[opts.lbfgs_bounds]
        u0 = inverse(x0.ravel())
        # Without bounds, L-BFGS-B's first trial step has length 1 (not the gradient's, as
        # with bounds: lbfgs_scale): in y = u / s that is s / sqrt(n) per pixel RMS, so
        # s = first_step * sqrt(n) makes it first_step grey levels RMS along the gradient.
        s = opts.lbfgs_first_step * math.sqrt(n) if opts.lbfgs_first_step > 0 else 1.0
        box = ChangedVariable(evaluator, mapping, s)
        _, _, info = fmin_l_bfgs_b(box.loss, u0 / s, fprime=box.grads,
                                   callback=lambda yk: report(evaluator.terms(box.pixels(yk)), box.pixels(yk)),
                                   **common)
        return info
    y0 = x0.ravel().astype(np.float64)
    # The gradient at x0 is evaluated here, once: SciPy's first call finds it cached.
    s = lbfgs_scale(evaluator.grads(y0), opts.lbfgs_first_step) if opts.lbfgs_first_step > 0 else 1.0
    y0 /= s  # in place: one image-sized float64 array fewer for the whole run (issue 33)
    # One L-BFGS-B run for the whole job: restarting it would throw away its history.
    # Box bounds keep every pixel in 0..255 without any clipping. The Evaluator sees x = s y
    # (its cache and best image are in pixels); the gradient in y is s times the gradient in x.
    _, _, info = fmin_l_bfgs_b(
        lambda y: evaluator.loss(y * s),
        y0,
        fprime=lambda y: evaluator.grads(y * s) * s,
        bounds=SameBounds(n, 0.0, 255.0 / s),
        callback=lambda yk: report(evaluator.terms(yk * s), yk * s),
        **common,
    )
    return info


def _adam(evaluator, x0, opts, report):
    """Adam on the same Evaluator, with TensorFlow's update rule (as the classic tool).

    Unlike the classic tool, pixels are projected back into 0..255 after each step, so
    that both optimizers search the same box; the lowest-loss image is kept. The image
    and the moments are float32, as the graph's image is: at 3840 x 2880 the three arrays
    take 400 MB (800 in float64), which print_size.py counts on.
    """
    x = x0.ravel().astype(np.float32)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = opts.beta1, opts.beta2
    for t in range(1, opts.iterations + 1):
        terms = evaluator.terms(x)
        g = evaluator.grads(x)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step = opts.learning_rate * math.sqrt(1 - b2**t) / (1 - b1**t)
        x -= step * m / (np.sqrt(v) + opts.epsilon)
        np.clip(x, 0.0, 255.0, out=x)
        report(terms, x)


class IterateAverage:
    """A bias-corrected exponential moving average of the iterates (as Adam's moments).

    Why: Adam's iterates keep jittering around the minimum by about the learning rate,
    which shows as a fine noise mesh; their average does not (crowsonkb's tool returns
    it). The bias correction makes the average of the first few iterates their mean
    rather than a fraction of it.
    """

    def __init__(self, decay: float):
        self.decay = float(decay)
        self.value: np.ndarray | None = None
        self.weight = 0.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).ravel()
        if self.value is None:
            self.value = np.zeros_like(x)
        value = self.value
        value *= self.decay
        value += (1.0 - self.decay) * x
        self.weight = self.weight * self.decay + (1.0 - self.decay)

    def get(self) -> np.ndarray | None:
        return None if self.value is None else (self.value / self.weight).astype(np.float32)


def _averaged(result, average, objective):
    """`result` with the averaged iterate as its image and that image's own loss terms
    (one more evaluation, outside any budget: the result's loss is always measured)."""
    x = average.get()
    if x is None:
        return result
    terms, _ = objective.evaluate(x)
    return dataclasses.replace(result, image=x.reshape(objective.shape[1:]), terms=terms)


def minimize(objective: Any, x0: np.ndarray, opts: OptimizerOptions = DEFAULT_OPTIMIZER,
             callback: Callable[[Progress], None] | None = None,
             on_evaluation: Callable[[int, float, dict], None] | None = None) -> OptimizationResult:
    """Minimise `objective` from image `x0`; return the lowest-loss image as an `OptimizationResult`.

    `callback(progress)` is called after every iteration; `on_evaluation(index,
    seconds, terms)` after every evaluation. Ctrl-C (KeyboardInterrupt) stops the run
    and returns the best image so far with stop_reason "interrupted".
    """
    if opts.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {opts.optimizer!r}")
    evaluator = Evaluator(objective, opts.max_evaluations, opts.time_budget, on_evaluation,
                          np.float64 if opts.optimizer == "lbfgs" else np.float32)
    average = IterateAverage(opts.iterate_average) if opts.iterate_average > 0 else None
    # Adam's loss does not fall steadily step by step: the rule is L-BFGS's only.
    rule = SettledRule(opts.min_improvement if opts.optimizer == "lbfgs" else 0.0)
    iteration = 0

    def report(terms, x):
        nonlocal iteration
        iteration += 1
        if average is not None:
            average.update(x)
        if callback is not None:
            callback(Progress(iteration, opts.iterations, evaluator.evaluations, evaluator.elapsed(),
                              terms, evaluator.best_loss, evaluator))
        if iteration < opts.iterations and rule.settled(terms["total"]):
            raise Settled(f"the loss fell less than {opts.min_improvement:g}% over the last {rule.window} iterations")

    stop, message = "completed", ""
    try:
        if opts.optimizer == "lbfgs":
            info = _lbfgs(evaluator, np.asarray(x0, np.float32), opts, report)
            if iteration < opts.iterations:
                text = info.get("task", "")
                message = text.decode() if isinstance(text, bytes) else str(text)
                stop = "converged" if info.get("warnflag", 0) == 0 else "stopped"
        else:
            _adam(evaluator, np.asarray(x0, np.float32), opts, report)
    except BudgetExhausted as exc:
        stop, message = "budget", str(exc)
    except Settled as exc:
        stop, message = "settled", str(exc)
    except NonFiniteLoss as exc:
        stop, message = "nonfinite", str(exc)
    except KeyboardInterrupt:
        stop, message = "interrupted", "interrupted"
    result = OptimizationResult(
        image=evaluator.best_image(),
        terms=evaluator.best_terms,
        iterations=iteration,
        evaluations=evaluator.evaluations,
        elapsed=evaluator.elapsed(),
        stop_reason=stop,
        message=message,
    )
    # With averaging the result is the average, not the lowest-loss iterate: its loss is a
    # little higher, but it is the image without the iterates' jitter.
    return _averaged(result, average, objective) if average is not None and stop != "nonfinite" else result
