"""Coarse-to-fine: optimise at a small size first, then upsample and refine at larger sizes.

Why: memory and time grow with the pixel count, and at a large size the network's
receptive fields cover a smaller part of the picture, so a run started from the
content at 2048 px only ever changes fine texture. Solving at a small size first fixes
the large-scale structure cheaply; each larger scale starts from the upsampled result
of the previous one and only has to add detail.

The schedule (docs/beyond-the-classic-tools.md, measured in docs/performance.md):

- on by default for outputs whose long side is above AUTO_ABOVE (1024 px), from
  AUTO_START_SIZE (512 px); `--scales 1` switches it off, `--scales N` or
  `--start-size PX` choose;
- sizes: the long side goes geometrically from the start size to the final size, in
  steps of at most 2 (`--start-size PX`), or halves `N - 1` times below the final
  size (`--scales N`);
- budget: `--iterations` is the number at the final size; every coarser scale runs
  `--coarse-iterations` (default 100). A coarse scale costs a quarter of the next per
  iteration, so the coarse scales of a 512 px run cost about 0.3 of 100 final ones;
  and since their budget does not depend on --iterations, a longer run is the same
  run carried further (which is how the time-to-quality study reads its curves);
- initialisation: the first scale starts as a single-scale run would (content, noise
  or --initial, at that size); every later scale starts from the previous scale's
  best image resized (bicubic) to the new size.

Why not for every size: measured at 512 px (docs/quality.md), one scale keeps the
photo's layout readable, while coarse-to-fine from 128 px paints the painting's large
swirls over the town; at 256 px it was 1.3x slower to the same loss (docs/performance.md).

Every scale builds a fresh `objective.Objective` for its `objective.Problem` (the
content and masks at that size) and runs the same `optimize.minimize`; the previous
Objective is closed first so its graph and session are freed before the larger one is
built. A caller that runs many problems (video.py's frames, a batch worker's jobs)
passes an `Objectives` instead, which keeps the graphs built and retargets them: one
graph per output size.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from . import images, objective, optimize, targets
from .settings import AUTO_ABOVE, AUTO_START_SIZE, COARSE_ITERATIONS

# The largest ratio between the long sides of two consecutive scales.
MAX_STEP = 2.0


@dataclass(frozen=True)
class Stage:
    index: int  # 0-based
    size: tuple  # (height, width)
    iterations: int
    # Print size (print_size.plan): the tiles' core side when the scale is evaluated in tiles,
    # and the optimizer and learning rate it then uses (None: the run's).
    core: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None

    def options(self, opts):
        """The run's optimizer options for this stage."""
        changes = {"iterations": self.iterations}
        if self.optimizer is not None:
            changes["optimizer"] = self.optimizer
        if self.learning_rate is not None:
            changes["learning_rate"] = self.learning_rate
        return replace(opts, **changes)


def scaled_size(shape, long_side):
    """(height, width) of `shape` = (H, W, ...) with its long side set to `long_side`."""
    height, width = int(shape[0]), int(shape[1])
    factor = long_side / max(height, width)
    return max(1, int(round(height * factor))), max(1, int(round(width * factor)))


def schedule(shape, iterations, scales=None, start_size=None, coarse_iterations=COARSE_ITERATIONS):
    """The list of Stages for a final image of shape (H, W, ...).

    Give `scales` (number of sizes, each half the next) or `start_size` (long side of
    the first size; steps of at most MAX_STEP up to the final size), or neither for a
    single scale. The final size runs `iterations`, every coarser one `coarse_iterations`.
    """
    final_long = max(int(shape[0]), int(shape[1]))
    if scales is not None and start_size is not None:
        raise ValueError("give scales or start_size, not both")
    if scales is not None:
        if scales < 1:
            raise ValueError(f"scales must be at least 1, not {scales}")
        longs = [final_long / 2.0 ** k for k in range(scales - 1, -1, -1)]
    elif start_size is not None and start_size < final_long:
        steps = max(1, math.ceil(math.log(final_long / start_size) / math.log(MAX_STEP) - 1e-9))
        ratio = (final_long / start_size) ** (1.0 / steps)
        longs = [start_size * ratio**k for k in range(steps)] + [final_long]
    else:
        longs = [final_long]
    longs = [max(1, int(round(v))) for v in longs]
    longs[-1] = final_long
    sizes = [scaled_size(shape, v) for v in longs[:-1]] + [(int(shape[0]), int(shape[1]))]
    budgets = [int(coarse_iterations)] * (len(sizes) - 1) + [int(iterations)]
    return [Stage(i, size, n) for i, (size, n) in enumerate(zip(sizes, budgets))]


def auto_start_size(shape, scales=None, start_size=None):
    """The start size to use when the user chose nothing: AUTO_START_SIZE above AUTO_ABOVE px, else off."""
    if scales is not None or start_size is not None:
        return start_size
    return AUTO_START_SIZE if max(shape[0], shape[1]) > AUTO_ABOVE else None


def problems(network, content, styles, loss, objective_kwargs=None):
    """`problem_at` for `run`: the objective.Problem at each size, of `content` resized to
    it, `styles` and `loss`; `objective_kwargs(size)` may give more of the Problem's
    fields (e.g. a content mask resized to that size)."""
    content = np.asarray(content, np.float32)

    def problem_at(size):
        extra = objective_kwargs(size) if objective_kwargs else {}
        return objective.Problem.create(network, images.resize(content, size), styles, loss, **extra)

    return problem_at


def run(stages, problem_at, opts, first_x0, callback=None, make_objective=None):
    """Run `stages` in order; returns (optimize.OptimizationResult at the final size, [per-stage ones]).

    `problem_at(size)` gives the objective.Problem of a stage's (height, width) (see
    `problems`); the last stage's size is the output's. `first_x0(content_at_size)` makes
    the start image of the first stage. `callback` receives each iteration's
    `optimize.Progress` with the iteration and evaluation counts accumulated over all
    stages, `iterations` set to the total, and its `scale` = (index, count, (height, width)).
    `make_objective(problem)` returns a context manager giving the objective (default: a
    new objective.Objective, closed after its stage; a batch worker passes its cache of
    built ones, an `Objectives`).
    """
    make_objective = make_objective or objective.Objective.for_problem
    total = sum(s.iterations for s in stages)
    done_iterations = done_evaluations = 0
    done_seconds = 0.0
    results = []
    x = None
    for stage in stages:
        problem = problem_at(stage.size)
        x0 = first_x0(problem.content) if x is None else images.resize(x, stage.size)
        x0 = np.clip(x0, 0.0, 255.0).astype(np.float32)

        def report(progress, stage=stage, base=(done_iterations, done_evaluations, done_seconds)):
            if callback is None:
                return
            callback(replace(progress, iteration=base[0] + progress.iteration, iterations=total,
                             evaluations=base[1] + progress.evaluations, elapsed=base[2] + progress.elapsed,
                             scale=(stage.index, len(stages), stage.size)))

        try:
            # One Objective at a time: the `with` closes this scale's session before the
            # next (larger) graph is built.
            with make_objective(problem) as built:
                result = optimize.minimize(built, x0, stage.options(opts), callback=report)
        except KeyboardInterrupt:
            if x is None:
                raise  # nothing made yet: the caller reports that
            # Interrupted while building a larger scale: the previous scale's image is the result.
            result = optimize.OptimizationResult(x, results[-1].terms, 0, 0, 0.0, "interrupted", "interrupted")
        results.append(result)
        done_iterations += result.iterations
        done_evaluations += result.evaluations
        done_seconds += result.elapsed
        if result.image is not None:
            x = result.image
        if not result.ok or result.image is None:
            break
    final = results[-1]
    image = None if x is None else images.resize(x, stages[-1].size)
    combined = replace(final, image=image, iterations=done_iterations, evaluations=done_evaluations,
                       elapsed=done_seconds)
    return combined, results


class Objectives:
    """A `make_objective` for `run` that keeps the last `kept` Objectives built, by their
    objective.GraphKey, and one targets.TargetGraphs for all of them.

    A problem of a kept key is the kept Objective retargeted (new targets assigned in its
    graph and warmed-up session, the weights fed): nothing is built. Measured per video
    frame at 256 px: 15-19 s of graph building and TensorFlow's first-run set-up saved
    (docs/performance.md). `counts` says how many were built and reused.
    """

    def __init__(self, kept=1, config=None):
        self.kept, self.config = kept, config
        self.objectives = OrderedDict()  # graph key -> Objective, the most recently used last
        self.graphs = targets.TargetGraphs(config)
        self.counts = {"built": 0, "reused": 0}

    def __call__(self, problem):
        """An objective.Problem -> a context manager giving its Objective (kept open:
        `close` closes them all)."""
        key = objective.graph_key(problem)
        if key in self.objectives:
            self.objectives.move_to_end(key)
            self.objectives[key].retarget(problem)
            self.counts["reused"] += 1
        else:
            while len(self.objectives) >= self.kept:  # before the next is built
                self.objectives.popitem(last=False)[1].close()
            self.objectives[key] = objective.Objective.for_problem(problem, config=self.config, graphs=self.graphs)
            self.counts["built"] += 1
        return contextlib.nullcontext(self.objectives[key])

    def close(self):
        while self.objectives:
            self.objectives.popitem()[1].close()
        self.graphs.close()
