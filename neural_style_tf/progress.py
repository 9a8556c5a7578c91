"""Progress of one transfer: the callback that turns optimize's Progress reports into a
bar, printed terms, checkpoints, a JSON-lines log, progress.txt and a plot.

The algorithm prints nothing; everything a user sees while it runs comes from here.
Other watchers (the live view, live.py; a Python API caller's callback, api.py) are
listeners: objects with `step(progress, image)` after each iteration and `end(result,
image)` once, where `image()` returns the best image so far as the output will show it
(RGB float32 0..255 at the output size, colours finished), computed only when called.
"""

from __future__ import annotations

import json
import os
import sys

from . import images
from .checks import format_checkpoint


class Reporter:
    """The `callback` of optimize.minimize / coarse_to_fine.run for one transfer."""

    def __init__(self, run, iterations, finish_image, record, listeners=(), stages=None, start=None):
        """`run`: the RunSettings; `finish_image(x) -> (rgb, alpha)`; `record`: the start
        line of the log (settings, seed, sizes); `listeners`: see the module's docstring;
        `stages`: the coarse-to-fine stages (for the bar's ETA across them, see Work);
        `start`: the coarse_to_fine.Position a resumed run starts from."""
        self.run = run
        self.finish_image = finish_image
        self.listeners = tuple(listeners)
        self.history = []
        self.bar = None
        self.log = open(run.log, "a", encoding="utf-8") if run.log else None
        if self.log:
            self.log.write(json.dumps({"event": "start", **record}) + "\n")
        self.work = Work(stages or [], iterations, start)
        if not run.quiet:
            from tqdm import tqdm

            # Over several scales the bar counts work, not iterations (see Work): its
            # percentage and ETA then cover every scale; the postfix says which one runs.
            form = {"bar_format": "{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]"} if self.work.scaled else {}
            self.bar = tqdm(total=self.work.total, initial=self.work.done, unit="it", dynamic_ncols=True,
                            file=sys.stderr, **form)

    def tile(self, stage, fraction):
        """Within one evaluation of a tiled scale (tiled_objective.py): `fraction` of it is
        done. At 3840 px an evaluation is 12 tiles and about 90 s; the bar and its ETA move
        with each tile rather than once per step."""
        if self.bar is not None:
            self.bar.update(self.work.partial(stage, fraction))

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def __call__(self, progress):
        terms = progress.terms
        row = {"iteration": progress.iteration, "evaluations": progress.evaluations,
               "seconds": round(progress.elapsed, 3), **terms}
        scale = getattr(progress, "scale", None)  # (index, count, size) from coarse_to_fine
        where = ""
        if scale is not None and scale[1] > 1:
            row["scale"] = scale[0] + 1
            where = f"scale {scale[0] + 1}/{scale[1]} ({scale[2][1]}x{scale[2][0]}) "
        self.history.append(row)
        if self.bar is not None:
            self.bar.update(self.work.step(scale[0] if scale is not None else 0))
            self.bar.set_postfix(loss=f"{terms['total']:.4g}", evals=progress.evaluations, refresh=False,
                                 **({"scale": row["scale"]} if "scale" in row else {}))
        if self.log:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
        self._print(progress, where)
        every = self.run.checkpoint_iterations
        if every and progress.iteration % every == 0:
            path = format_checkpoint(self.run.checkpoint_output, progress.iteration)
            rgb, alpha = self.finish_image(progress.best_image())
            images.save_image(path, rgb, alpha)
        for listener in self.listeners:
            listener.step(progress, lambda: self.finish_image(progress.best_image())[0])

    def _print(self, progress, where):
        every = self.run.print_iterations
        if every and (progress.iteration % every == 0 or progress.iteration == progress.iterations):
            self.write(
                f"{where}iteration {progress.iteration}/{progress.iterations} ({progress.evaluations} evaluations, "
                f"{progress.elapsed:.1f} s): " + ", ".join(f"{k} {v:.6g}" for k, v in progress.terms.items())
            )

    def close(self, result):
        if self.bar is not None:
            self.bar.close()
        for listener in self.listeners:
            listener.end(result, lambda: None if result.image is None else self.finish_image(result.image)[0])
        if self.log:
            self.log.write(json.dumps({"event": "end", "stop_reason": result.stop_reason, "message": result.message,
                                       "iterations": result.iterations, "evaluations": result.evaluations,
                                       "seconds": round(result.elapsed, 3), "terms": result.terms}) + "\n")
            self.log.close()
        if self.run.output is None:  # the API's image is returned; it refuses these files then
            return
        directory = os.path.dirname(os.path.abspath(self.run.output))
        if self.run.progress_write and self.history:
            write_progress_table(os.path.join(directory, "progress.txt"), self.history)
        if self.run.progress_plot and self.history:
            write_progress_plot(os.path.join(directory, "progress.png"), self.history)


class Work:
    """The bar's units over coarse-to-fine scales: an iteration of a scale counts its pixels
    over the final scale's (a final-scale iteration is 1).

    Why: an evaluation's cost grows with the pixel count (the network's convolutions and
    L-BFGS's vectors alike), so a scale of half the side runs its iterations about 4x
    faster; a bar counted in iterations would show an ETA 4x too short during the coarse
    scales. Counted in work, tqdm's rate and ETA hold across them. One scale: iterations.
    """

    def __init__(self, stages, iterations, start=None):
        final = stages[-1].size[0] * stages[-1].size[1] if stages else 1
        budgets = [s.iterations for s in stages] or [iterations]
        self.scaled = len(budgets) > 1
        # One scale: whole iterations, so that the bar reads "8/8" as it always did.
        self.weights = [s.size[0] * s.size[1] / final for s in stages] if self.scaled else [1]
        # What each stage's work starts at, and the total.
        self.starts = [sum(w * n for w, n in zip(self.weights[:k], budgets[:k])) for k in range(len(budgets) + 1)]
        self.total = self.starts[-1] if self.scaled else budgets[0]
        self.done, self.stage = 0, 0
        if start is not None:  # a resumed run: the stages before and what was done of its own
            self.stage = min(start.stage + int(start.finished), len(budgets) - 1)
            self.done = self.starts[self.stage] + (0 if start.finished else start.iterations * self.weights[self.stage])
        self.position = self.done
        self.within = 0.0  # what partial() showed of the iteration that runs

    def _enter(self, stage):
        """On the first report of a new stage: what the last one left undone (it stopped early)."""
        if stage <= self.stage:
            return 0.0
        self.stage, self.within = stage, 0.0
        return max(0.0, self.starts[stage] - self.position)

    def _weight(self, stage):
        return self.weights[stage] if stage < len(self.weights) else 1

    def step(self, stage):
        """The bar's update for one iteration of `stage`: its weight (less what partial()
        showed of it already), plus what `_enter` adds."""
        step = self._enter(stage) + self._weight(stage) - self.within
        self.within = 0.0
        return self._advance(step)

    def partial(self, stage, fraction):
        """The bar's update when `fraction` of an iteration of `stage` is done (a tiled
        evaluation, tile by tile). Never backwards: a second evaluation within the same
        iteration (L-BFGS's line search) shows nothing until it passes the first."""
        jump = self._enter(stage)
        move = max(0.0, min(fraction, 1.0) * self._weight(stage) - self.within)
        self.within += move
        return self._advance(jump + move)

    def _advance(self, step):
        """Never past the total: the stages' float weights add up to a little more than it
        (2e-14 on the 4K run's four scales), and tqdm warns of a fraction above 1."""
        if self.scaled:
            step = min(step, max(0.0, self.total - self.position))
        elif float(step).is_integer():
            step = int(step)  # one scale: whole iterations, so that the bar reads "8/8" (not "8.0/8")
        self.position += step
        return step


def write_progress_table(path, history):
    keys = list(history[0])
    table = "\n".join(" ".join(f"{row[k]:.10g}" for k in keys) for row in history)
    images.write_atomically(path, lambda f: f.write(("# " + " ".join(keys) + "\n" + table + "\n").encode()))


def write_progress_plot(path, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [row["iteration"] for row in history]
    for key in ("content", "style", "tv", "total"):
        values = [row[key] for row in history]
        if any(v > 0 for v in values):
            ax.semilogy(x, values, label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    images.write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
