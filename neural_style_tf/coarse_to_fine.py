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
  best image resized (bicubic) to the new size, and with `--photo-detail` the photo's
  detail that the smaller size could not hold added to it (`upsampled_start`).

Why not for every size: measured at 512 px (docs/quality.md), one scale keeps the
photo's layout readable, while coarse-to-fine from 128 px paints the painting's large
swirls over the town; at 256 px it was 1.3x slower to the same loss (docs/performance.md).

Every scale builds a fresh `objective.Objective` for its `objective.Problem` (the
content and masks at that size) and runs the same `optimize.minimize`; the previous
Objective is closed first so its graph and session are freed before the larger one is
built. A caller that runs many problems (video.py's frames, a batch worker's jobs)
passes an `Objectives` instead, which keeps the graphs built and retargets them: one
graph per output size.

Each stage is optimised on its problem's overscan canvas (overscan.py: a free margin around
the picture); the start image is padded to it, and every image handed out (to the callback,
the checkpoints, the result) is the picture cut from it.

Where a run stands is a `Position` (the stage, what was done at it, the best image): `run`
tells a `checkpoint` hook after every iteration and at every stage's end, and starts from
a Position to resume a killed run (checkpoints.py: the file and --resume).
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import images, objective, optimize, overscan, targets
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
        changes: dict[str, Any] = {"iterations": self.iterations}
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


def upsampled_start(image, photo, photo_detail=False):
    """The start of a larger scale: the previous scale's `image` resized to the `photo`'s
    size (H, W); with `photo_detail`, plus the photo's detail that the smaller size could
    not hold (the photo minus the photo taken down to the image's size and back up).

    Why: a bicubic upsampling is blurred, and the larger scale's iterations put back the
    painting's fine texture sooner than the photo's fine lines (a cat's whiskers, window
    frames): at 512 px from 362 px the SSIM to the photo was 0.05 below one scale's
    (docs/performance.md#coarse-to-fine-with-the-photos-detail)."""
    size = photo.shape[:2]
    start = images.resize(image, size)
    if photo_detail:
        start = start + (photo - images.resize(images.resize(photo, image.shape[:2]), size))
    return start


def problems(network, content, styles, loss, objective_kwargs=None):
    """`problem_at` for `run`: the objective.Problem at each size, of `content` resized to
    it, `styles` and `loss`; `objective_kwargs(size)` may give more of the Problem's
    fields (e.g. a content mask resized to that size)."""
    content = np.asarray(content, np.float32)

    def problem_at(size):
        extra = objective_kwargs(size) if objective_kwargs else {}
        return objective.Problem.create(network, images.resize(content, size), styles, loss, **extra)

    return problem_at


@dataclass(frozen=True)
class Position:
    """Where a run of `run` stands: what a checkpoint holds (checkpoints.py) and a resumed
    run starts from."""

    stage: int  # the stage's index
    iterations: int  # done at that stage
    evaluations: int  # done at that stage
    finished: bool  # that stage is done: a resumed run starts the next one from `image`
    image: np.ndarray  # the best image so far, RGB float32 0..255 (at that stage's size, or a coarser one)
    terms: dict | None  # its loss terms
    done: tuple = (0, 0, 0.0)  # (iterations, evaluations, seconds) over all stages so far, this one's included


def _stage_options(opts, stage, before, final=True):
    """The options of a stage (Stage.options) of which `before` = (iterations, evaluations)
    were done before a resume. A scale before the `final` one runs all its iterations
    (--min-improvement stops the last scale only): its count was chosen by measurement, and
    the layout it lays down is what the larger scales keep."""
    opts = stage.options(opts)
    budget = None if opts.max_evaluations is None else opts.max_evaluations - before[1]
    return replace(opts, iterations=stage.iterations - before[0], max_evaluations=budget,
                   min_improvement=opts.min_improvement if final else 0.0)


def _minimize_stage(make_objective, problem, x0, opts, report):
    """One stage's optimisation, from x0; None when its budget was used up before a resume."""
    if opts.iterations <= 0 or (opts.max_evaluations is not None and opts.max_evaluations <= 0):
        return None
    # One Objective at a time: the `with` closes this scale's session before the next
    # (larger) graph is built.
    with make_objective(problem) as built:
        return optimize.minimize(built, x0, opts, callback=report)


def _reporter(stage, counts, base, before, callback, checkpoint, margin=0):
    """A stage's `callback` for optimize.minimize: its Progress with the counts accumulated over
    the stages (`base`: those done before this stage's run; `counts`: (stages, total
    iterations)) to `callback`, and where the run stands to `checkpoint`; `before`: the
    (iterations, evaluations) of this stage done before a resume; `margin`: the overscan's,
    cut from every image they see."""
    def report(progress):
        if margin:
            progress = replace(progress, evaluator=overscan.CroppedEvaluator(progress.evaluator, margin))
        if checkpoint is not None:
            checkpoint(Position(stage.index, before[0] + progress.iteration, before[1] + progress.evaluations,
                                False, progress.best_image(), progress.evaluator.best_terms,
                                (base[0] + progress.iteration, base[1] + progress.evaluations,
                                 base[2] + progress.elapsed)), True)
        if callback is not None:
            callback(replace(progress, iteration=base[0] + progress.iteration, iterations=counts[1],
                             evaluations=base[1] + progress.evaluations, elapsed=base[2] + progress.elapsed,
                             scale=(stage.index, counts[0], stage.size)))

    return report


def run(stages, problem_at, opts, first_x0, callback=None, make_objective=None, start=None, checkpoint=None):
    """Run `stages` in order; returns (optimize.OptimizationResult at the final size, [per-stage ones]).

    `problem_at(size)` gives the objective.Problem of a stage's (height, width) (see
    `problems`); the last stage's size is the output's. `first_x0(content_at_size)` makes
    the start image of the first stage. `callback` receives each iteration's
    `optimize.Progress` with the iteration and evaluation counts accumulated over all
    stages, `iterations` set to the total, and its `scale` = (index, count, (height, width)).
    `make_objective(problem)` returns a context manager giving the objective (default: a
    new objective.Objective, closed after its stage; a batch worker passes its cache of
    built ones, an `Objectives`).
    `start`: a Position to resume from (a checkpoint's): the stages before it are skipped,
    and its stage goes on from its image with the rest of its budget (finished: the next
    stage starts from it). `checkpoint(position, periodic)`: told where the run stands after
    every iteration (periodic True), and at the end of every stage and on an interrupt (False).
    """
    make_objective = make_objective or objective.Objective.for_problem
    total = sum(s.iterations for s in stages)
    done = tuple(start.done) if start is not None else (0, 0, 0.0)
    x = None if start is None else start.image
    terms = None if start is None else start.terms
    results = []
    for stage in stages[0 if start is None else start.stage + int(start.finished):]:
        # A stage resumed midway counts the iterations and evaluations done before the kill.
        before = (start.iterations, start.evaluations) if start is not None and stage.index == start.stage else (0, 0)
        problem = problem_at(stage.size)
        x0 = first_x0(problem.content) if x is None else upsampled_start(x, problem.content, opts.photo_detail)
        x0 = np.clip(x0, 0.0, 255.0).astype(np.float32)
        # Optimised on a canvas with a free margin, cut back to the picture (overscan.py).
        margin = overscan.margin(problem.loss, problem.content.shape[:2])

        report = _reporter(stage, (len(stages), total), done, before, callback, checkpoint, margin)
        try:
            result = _minimize_stage(make_objective, overscan.canvas_problem(problem, margin),
                                     overscan.pad(x0, margin),
                                     _stage_options(opts, stage, before, stage is stages[-1]), report)
            if result is not None:
                result = replace(result, image=overscan.crop(result.image, margin))
        except KeyboardInterrupt:
            if x is None:
                raise  # nothing made yet: the caller reports that
            # Interrupted while building a larger scale: the previous scale's image is the result.
            result = optimize.OptimizationResult(x, terms, 0, 0, 0.0, "interrupted", "interrupted")
        result = result or optimize.OptimizationResult(x0, terms, 0, 0, 0.0, "completed")
        results.append(result)
        done = (done[0] + result.iterations, done[1] + result.evaluations, done[2] + result.elapsed)
        if result.image is not None:
            x, terms = result.image, result.terms
        if checkpoint is not None and x is not None and result.stop_reason != "nonfinite":
            checkpoint(Position(stage.index, before[0] + result.iterations, before[1] + result.evaluations,
                                result.ok, x, terms, done), False)
        if not result.ok or result.image is None:
            break
    # Resumed after the last stage had finished: nothing left to run.
    final = results[-1] if results else optimize.OptimizationResult(x, terms, 0, 0, 0.0, "completed")
    image = None if x is None else images.resize(x, stages[-1].size)
    combined = replace(final, image=image, iterations=done[0], evaluations=done[1], elapsed=done[2])
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
