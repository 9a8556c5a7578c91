"""One transfer, from frozen settings to a written image: load, check, prepare, optimise, write.

`neural_style.py` parses and validates; `run(settings)` does the rest and returns the
exit status. A batch or a video is many of these jobs. Long runs report progress
through progress.Reporter, write checkpoints and the output atomically, and on Ctrl-C
or SIGTERM save the best image so far and return EXIT_INTERRUPTED.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import (
    checkpoints,
    checks,
    coarse_to_fine,
    color,
    images,
    lifecycle,
    masks,
    overscan,
    print_size,
    targets,
    tileable,
)
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from .lifecycle import say
from .memory import evaluation_pool_bytes
from .networks import loading
from .networks.feature_network import FeatureNetwork
from .progress import Reporter
from .settings import LossOptions, Settings, for_network
from .tf_runtime import choose_precision, device_line, reserve_cpu_pool


@dataclass(frozen=True)
class ImageArrays:
    """Images a caller gives as arrays instead of files (the Python API), read in place of
    the settings' content and styles (which are None where an array stands)."""

    content: np.ndarray | None = None  # RGB float32 0..255; None: read settings.run.content
    alpha: np.ndarray | None = None  # the content's alpha plane, 0..1 (None: opaque)
    styles: tuple = ()  # one per style: RGB float32 0..255, or None (read from its file)


@dataclass
class NetworkAndImages:
    """What `load` returns: the network and the images at their file sizes (not resized yet)."""

    network: FeatureNetwork
    content: np.ndarray
    alpha: np.ndarray | None
    styles: list


@dataclass
class Job:
    """What `prepare` makes of the inputs: everything the optimisation needs at the output size."""

    network: object
    target: np.ndarray  # the content as the objective sees it (colours prepared)
    content: np.ndarray  # the content at the output size, for finishing the image
    alpha: np.ndarray | None
    styles: list
    stages: list  # coarse_to_fine.Stage
    initial: np.ndarray | None
    seed: int
    finish_colors: Callable[[np.ndarray], np.ndarray]
    loss: LossOptions  # with the TV weight resolved for the network
    masks: masks.Masks  # spatial control (masks.py); empty without mask flags

    def finish_image(self, rgb):
        """The optimised image -> (RGB at the output size with its colours, alpha)."""
        if rgb.shape != self.content.shape:  # a checkpoint at a coarse scale
            rgb = images.resize(rgb, self.content.shape[:2])
        return self.finish_colors(rgb), self.alpha


def load_network(settings, network=None):
    """The network the run uses: loaded (or `network`, one a batch worker keeps), its
    layers checked, announced, and normalised for the paper's preset (same layers and
    shapes, so every later check holds for both), in the precision --precision chooses
    (the network carries it: every graph built on it computes in it). Shared by a
    transfer and a video."""
    run = settings.run
    network = network or loading.load_net(run.network, run.input_range)
    checks.check_layers(settings.loss, network)
    checks.check_precision(run.precision, network)
    say(network.announce())
    if run.normalize_network:  # --preset gatys2016: the paper's normalised net
        network = loading.load_normalized(network, settings.loss.pooling, log=say)
    return network.with_precision(choose_precision(run.precision, network.precisions))


def load(settings: Settings, network: FeatureNetwork | None = None,
         arrays: ImageArrays | None = None) -> NetworkAndImages:
    """The network (see load_network) and the images at their file sizes: read from their
    files, or taken from `arrays` where the caller gave arrays."""
    network = load_network(settings, network)
    arrays = arrays or ImageArrays()
    if arrays.content is not None:
        content, alpha = arrays.content, arrays.alpha
    else:
        content, alpha = images.load_image(settings.run.content, with_alpha=True)
    given = arrays.styles or (None,) * len(settings.run.styles)
    styles = [images.load_image(path) if array is None else array for path, array in zip(settings.run.styles, given)]
    return NetworkAndImages(network, content, alpha, styles)


def stages(settings, shape, network):
    """The coarse-to-fine stages of an output of `shape` (H, W, ...), with the tiles, optimizer
    and budget of each (print_size.plan): planned once, here."""
    opt = settings.optimizer
    planned = coarse_to_fine.schedule(shape, opt.iterations, opt.scales,
                                      coarse_to_fine.auto_start_size(shape, opt.scales, opt.start_size),
                                      opt.coarse_iterations)
    if settings.loss.tileable:  # every size a multiple of the network's stride (tileable.py)
        planned = tileable.tileable_stages(planned, tileable.network_stride(network, checks.used_layers(settings.loss)))
    planned = print_size.plan(planned, network, settings, checks.used_layers(settings.loss),
                              checks.guided_styles(settings.run))
    tiled = [s for s in planned if s.core is not None]
    if settings.loss.tileable and tiled:
        # tiling.py's tiles take their halos from their neighbours and pad at the picture's
        # border: they do not wrap round yet, and a silent seam is worse than a refusal.
        height, width = tiled[0].size
        raise UsageError(f"--tileable: the {width}x{height} scale would be evaluated in tiles, which do not wrap "
                         "round yet; use a smaller --width, or a larger --memory-budget and no --tile-size to keep it whole")
    return planned


def check(settings, inputs):
    """The checks that need the network and the images' sizes, before anything is resized
    (an absurd --width would otherwise exhaust the memory in the resize itself, and the
    OOM killer gives no message). Returns the planned stages; changes nothing."""
    size, _ = checks.largest_size(settings, inputs.content.shape, [s.shape for s in inputs.styles])
    checks.check_size(inputs.network, settings.loss, [size], "the output")
    planned = stages(settings, size, inputs.network)
    checks.check_size(inputs.network, settings.loss, [s.size for s in planned[:1]], "the first coarse-to-fine scale")
    checks.check_memory(settings, inputs.network, inputs.content.shape, [s.shape for s in inputs.styles], planned)
    return planned


def prepare(settings, inputs, planned=None):
    """Resize, fill transparency, prepare the colours, choose the seed, resolve the
    network's defaults (once, here: everything downstream takes `Job.loss` as it is).
    `planned`: the stages `check` planned for the output size (planned here if not given:
    a video frame's job, whose budget is the frame's)."""
    run = settings.run
    content, alpha = inputs.content, inputs.alpha
    size = content.shape[:2] if run.width is None else images.size_at_width(content.shape, run.width)
    planned = planned or stages(settings, size, inputs.network)
    if settings.loss.tileable and tuple(size) != planned[-1].size:
        say(f"tileable: {size[1]}x{size[0]} rounded to {planned[-1].size[1]}x{planned[-1].size[0]}, multiples of "
            f"the network's stride, so that the picture wraps round exactly (tileable.py)")
        size = planned[-1].size
    if tuple(size) != content.shape[:2]:
        content = images.resize(content, size)
        if alpha is not None:
            alpha = images.resize(alpha, size)
    content = color.fill_transparent(content, alpha)  # what lies under alpha 0 is arbitrary
    mode = run.preserve_colors or ("histogram" if run.color_source else None)
    source = images.load_image(run.color_source) if run.color_source else None
    target, styles, finish_colors = color.prepare_colors(content, inputs.styles, mode, run.color_match, source)
    styles = targets.size_styles_to_content(styles, content.shape, run.style_size)
    initial = None
    if run.initial is not None:
        initial = images.resize(images.load_image(run.initial), content.shape[:2])
    seed = lifecycle.choose_seed(run.seed)
    loss = for_network(settings.loss, inputs.network)
    # The masks follow the photo as it is (auto-sky looks at its real colours).
    job_masks = masks.prepare(run, content)
    return Job(inputs.network, target, content, alpha, styles, planned, initial, seed, finish_colors, loss, job_masks)


def record(settings, job):
    """The start line of the log: what makes this run reproducible."""
    run, parts = settings.run, settings.as_dict()
    return {"seed": job.seed, "network": job.network.name, "network_path": job.network.path,
            "content": run.content, "styles": list(run.styles), "size": list(job.content.shape[:2]),
            "loss": parts["loss"] | {k: getattr(job.loss, k) for k in ("tv_weight", "padding", "style_layer_weight_exp")},
            "optimizer": parts["optimizer"],
            "preset": run.preset, "ratio": run.ratio, "style_size": run.style_size,
            "initial_noiseblend": run.initial_noiseblend,
            "masks": {k: parts["run"][k] for k in ("style_masks", "style_region_masks", "content_mask",
                                                   "content_mask_weight")} if job.masks.any else None,
            "scales": [list(s.size) + [s.iterations] for s in job.stages]}


def optimize(settings, job, reporter, make_objective=None, saved=None):
    """Run the stages; SIGTERM gets the same treatment as Ctrl-C (the best image is kept).
    `make_objective`: see coarse_to_fine.run (a batch worker's cache of built objectives).
    Each scale's problem is the job's, at that size (coarse_to_fine.problems). `saved`: the
    run's checkpoints.Checkpoints (written as it goes; a resumed run starts from its `start`)."""
    def first_x0(scaled):
        x0 = lifecycle.first_image(scaled, job.network, job.initial, settings.run.initial_noiseblend, job.seed)
        return tileable.periodic_start(x0) if job.loss.tileable else x0

    def objective_kwargs(size):
        """Each scale's masks, resized to it: the content term's weights (transparent
        pixels none), where each style applies and the protected subject."""
        kwargs = {"content_mask": masks.content_weights(job.alpha, size)}
        if job.loss.tileable:  # the photo's edges do not meet: its term lets go there (tileable.border_weights)
            border = tileable.border_weights(size)
            kwargs["content_mask"] = border if kwargs["content_mask"] is None else kwargs["content_mask"] * border
        if job.masks.any:
            kwargs["guidance"] = job.masks.guidance(images.resize(job.target, size), len(job.styles))
        return kwargs

    problem_at = coarse_to_fine.problems(job.network, job.target, job.styles, job.loss, objective_kwargs)
    reserve_pool(settings, job)
    # The tiled scales' objectives (print_size.py) share one tile graph, closed at the end;
    # each is told by its problem's size, the canvas's (overscan.py).
    cores = {canvas_size(job, s): s.core for s in job.stages if s.core is not None}
    tiled = (print_size.Objectives(cores, make_objective, on_tile=tile_progress(job, reporter))
             if cores else None)
    try:
        with lifecycle.interrupts_as_keyboard_interrupt():
            result, _ = coarse_to_fine.run(job.stages, problem_at, settings.optimizer, first_x0, callback=reporter,
                                           make_objective=tiled or make_objective,
                                           start=saved.start if saved else None, checkpoint=saved)
    finally:
        if tiled is not None:
            tiled.close()
    return result


def reserve_pool(settings, job):
    """TensorFlow's CPU pool grown in one piece for the first scale's evaluation, before its
    targets and graph are built (tf_runtime.reserve_cpu_pool says why). A tiled first
    scale (print_size.py) is left to the pool's own growth. Sized for the scale's canvas
    (overscan.py), which is what the evaluation holds."""
    first = job.stages[0]
    if first.core is None:
        height, width = canvas_size(job, first)
        reserve_cpu_pool(evaluation_pool_bytes(job.network, height, width, checks.used_layers(settings.loss),
                                               checks.guided_styles(settings.run)))


def canvas_size(job, stage):
    """(height, width) of the canvas `stage` of `job` is optimised on (overscan.py)."""
    return overscan.canvas_size(stage.size, overscan.margin(job.loss, stage.size))


def tile_progress(job, reporter):
    """The `on_tile(size, fraction)` of print_size.Objectives: the bar moves tile by tile
    (progress.Reporter.tile), told which stage runs by its canvas's size (overscan.py)."""
    report = getattr(reporter, "tile", None)
    if report is None:
        return None
    stage_of = {canvas_size(job, s): i for i, s in enumerate(job.stages)}
    return lambda size, fraction: report(stage_of[size], fraction)


def write(settings, job, result, reporter):
    """Write the output first, then the logs. A second Ctrl-C or SIGTERM during these last
    writes (a moment; longer with --progress-plot, which imports matplotlib) must not
    throw the work away, so both are ignored until they are done."""
    with lifecycle.signals_held():
        if result.image is not None:
            rgb, alpha = job.finish_image(result.image)
            images.save_image(settings.run.output, rgb, alpha, bit_depth=settings.run.bit_depth)
        reporter.close(result)


def outcome(output, result):
    """The closing line and the exit status of a finished run."""
    if result.image is None:
        say(f"error: {result.message}; no image was produced")
        return EXIT_FAILED
    summary = (f"{result.iterations} iterations, {result.evaluations} evaluations, {result.elapsed:.1f} s; "
               f"loss {result.terms['total']:.6g}")
    if result.stop_reason == "interrupted":
        say(f"interrupted: wrote the best image so far to {output} ({summary})")
        return EXIT_INTERRUPTED
    if result.stop_reason == "nonfinite":
        say(f"error: {result.message}; wrote the last finite best image to {output}")
        return EXIT_FAILED
    if result.stop_reason in ("converged", "stopped"):
        say(f"L-BFGS stopped early: {result.message}")
    if result.stop_reason == "settled":
        say(f"settled: {result.message} (--min-improvement 0 runs every iteration)")
    say(f"wrote {output} ({summary})")
    return EXIT_OK


def announce(settings, job):
    content = job.content
    say(f"seed: {job.seed}  size: {content.shape[1]}x{content.shape[0]}  optimizer: {settings.optimizer.optimizer}"
        f"  device: {device_line(job.network.precision)}")
    if job.masks.any:
        say(job.masks.describe(settings.run))
    if len(job.stages) > 1 or job.stages[-1].core is not None:
        say("coarse-to-fine: " + print_size.describe(job.stages))


def run(settings: Settings) -> int:
    """Load, check, prepare, optimise, write. Returns the exit status; raises UsageError
    (or its NetworkError, ImageError) for a user mistake found on the way."""
    status, _, _ = execute(settings)
    return EXIT_OK if status is None else status


def execute(settings: Settings, network: FeatureNetwork | None = None, make_objective: Any = None,
            listeners: Sequence[Any] = (), arrays: ImageArrays | None = None,
            resumable: bool = False) -> tuple[int | None, Job, Any]:
    """The one transfer of every front door (neural_style.py, the API, a batch worker), with
    hooks for what a caller keeps or watches: `network`, a loaded network (see load_network);
    `make_objective`, its built objectives (see optimize); `listeners` (e.g. the live view,
    the API's callback: see progress.Reporter); `arrays`, images given as arrays (see load);
    `resumable`, keep checkpoints for --resume (neural_style.py's command: see resumable()).
    The output is written, and the closing line said, when settings.run.output names a file;
    without one (the API's: the image is returned) the exit status is None.
    Returns (exit status, Job, optimize.OptimizationResult)."""
    t0 = time.perf_counter()
    settings, saved = resumable_run(settings) if resumable else (settings, None)
    inputs = load(settings, network, arrays)
    job = prepare(settings, inputs, check(settings, inputs))
    # The images at their files' sizes, in float32, are not needed past here: the job holds
    # them at the output's size (at 512 px from the example's 1024 px files, 18 MB less for
    # the whole run: issue 33).
    del inputs
    announce(settings, job)
    if saved is not None:
        saved.begin(job)
    reporter = Reporter(settings.run, settings.optimizer.iterations, job.finish_image, record(settings, job),
                        listeners, stages=job.stages, start=saved.start if saved else None)
    if settings.run.quiet:
        say(f"ready in {time.perf_counter() - t0:.1f} s")
    result = optimize(settings, job, reporter, make_objective, saved)
    if settings.run.output is None:
        reporter.close(result)
        return None, job, result
    write(settings, job, result, reporter)
    status = outcome(settings.run.output, result)
    if saved is not None and saved.finish(result):
        say(f"its checkpoint is kept: the same command with --resume continues the run ({saved.path})")
    return status, job, result


def resumable_run(settings):
    """(settings, checkpoints.Checkpoints or None): the run's resumable checkpoints, when it
    writes an output. With --resume the checkpoint is read and checked here, before any
    network is loaded, and its seed becomes the run's."""
    run = settings.run
    if run.output is None:
        return settings, None
    saved = checkpoints.Checkpoints(settings, say)
    if saved.start is not None:
        settings = dataclasses.replace(settings, run=dataclasses.replace(run, seed=saved.seed))
    return settings, saved
