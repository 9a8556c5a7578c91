"""Validation of a transfer's settings, up front: every check that needs no network runs
before TensorFlow is imported, and the few that need the network (layer names, the
smallest usable size, memory) run before any graph is built.

Each check raises UsageError with one line that names the bad value and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys

import numpy as np

from . import images, losses, masks, memory, targets, tf_runtime
from .errors import UsageError
from .settings import STYLE_SCALE, WRAP_PADDING, RunSettings, Settings


def flag(dest):
    return "--" + dest.replace("_", "-")


def format_checkpoint(pattern, iteration):
    return pattern % iteration if "%" in pattern else pattern.format(iteration)


def validate(settings: Settings, content: np.ndarray | None = None) -> None:
    """Every check of `settings` that needs no network. `content`: the content image when
    the caller gives it as an array (RGB float 0..255; the settings' content is None then),
    else it is read from its file where a check needs its pixels (auto-sky)."""
    check_numbers(settings)
    check_per_style(settings.run.styles, settings.loss)
    check_checkpoints(settings.run)
    check_files(settings.run)
    check_colour_and_scales(settings)
    check_log(settings.run.log)
    masks.check(settings.run, content)


def _finite(settings):
    # argparse's float() accepts "nan" and "inf"; no option here means anything with
    # them, and they would fail late (inf style scale) or silently (NaN loss).
    for part in (settings.run, settings.loss, settings.optimizer):
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, float) and not math.isfinite(v):
                    name = "eps" if f.name == "epsilon" else f.name
                    raise UsageError(f"{flag(name)} must be a finite number, not {v}")


def check_numbers(settings):
    _finite(settings)
    run, loss, opt = settings.run, settings.loss, settings.optimizer
    if run.seed is not None and run.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {run.seed}")
    if loss.style_layer_weight_exp is not None and loss.style_layer_weight_exp < 0:  # negative: every other style layer would get a negative weight
        raise UsageError(f"--style-layer-weight-exp must be non-negative, not {loss.style_layer_weight_exp}")
    for label, value in (("--iterations", opt.iterations), ("--width", run.width),
                         ("--lbfgs-corrections", opt.lbfgs_corrections),
                         ("--print-iterations", run.print_iterations),
                         ("--checkpoint-iterations", run.checkpoint_iterations),
                         ("--scales", opt.scales), ("--start-size", opt.start_size),
                         ("--coarse-iterations", opt.coarse_iterations), ("--tile-size", opt.tile_size)):
        if value is not None and value <= 0:
            raise UsageError(f"{label} must be a positive integer, not {value}")
    if run.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be a non-negative integer (0: only at the scales' ends), "
                         f"not {run.checkpoint_every}")
    if not 0 <= opt.min_improvement < 100:
        raise UsageError(f"--min-improvement must be a percentage from 0 (off) to below 100, not {opt.min_improvement}")
    if opt.lbfgs_first_step < 0:
        raise UsageError(f"--lbfgs-first-step must be non-negative (0: SciPy's own start), not {opt.lbfgs_first_step}")
    for label, value in (("--learning-rate", opt.learning_rate), ("--eps", opt.epsilon),
                         ("--memory-budget", opt.memory_budget)):
        if not value > 0:
            raise UsageError(f"{label} must be positive, not {value}")
    for label, value in (("--beta1", opt.beta1), ("--beta2", opt.beta2)):
        if not 0 <= value < 1:
            raise UsageError(f"{label} must be in [0, 1), not {value}")
    if loss.overscan is not None and loss.overscan < 0:
        raise UsageError(f"--overscan must be 0 or more pixels, not {loss.overscan}")
    if not loss.content_size_power >= 0:  # also NaN
        raise UsageError(f"--content-size-power must be non-negative, not {loss.content_size_power}")
    # Outside 0..1 one content layer gets a negative weight, and the loss has no minimum.
    if not 0 <= loss.content_weight_blend <= 1:
        raise UsageError(f"--content-weight-blend must be between 0 and 1, not {loss.content_weight_blend}")
    if run.initial_noiseblend is not None and not 0 <= run.initial_noiseblend <= 1:
        raise UsageError(f"--initial-noiseblend must be between 0 and 1, not {run.initial_noiseblend}")
    check_weights(loss)
    check_quality_options(loss, opt)
    if run.ratio is not None and not run.ratio > 0:
        raise UsageError(f"--ratio must be a positive number, not {run.ratio}")


def check_weights(loss):
    for label, value in (("--content-weight", loss.content_weight), ("--style-weight", loss.style_weight),
                         ("--tv-weight", loss.tv_weight)):
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise UsageError(f"{label} must be a finite non-negative number, not {value}")
    if not loss.style_layers:
        raise UsageError("--style-layers is empty; name at least one layer, e.g. relu1_1")


def check_quality_options(loss, opt):
    """--iterate-average, and --style-loss against the loss scale that normalises a Gram matrix."""
    if not 0 <= opt.iterate_average < 1:
        raise UsageError(f"--iterate-average must be in [0, 1) (0: off), not {opt.iterate_average}")
    if loss.style_loss != "gram" and loss.loss_scale in ("gatys2016", "gatys-pytorch"):
        raise UsageError(f"--style-loss {loss.style_loss} replaces the Gram matrix that the {loss.loss_scale} "
                         "loss scale (the paper's) is defined on; use --style-loss gram with it")


def check_per_style(styles, loss):
    """--style-scales and --style-blend-weights: one positive value per style image."""
    for label, values in (("--style-scales", loss.style_scales), ("--style-blend-weights", loss.style_blend_weights)):
        if values is not None and len(values) != len(styles):
            raise UsageError(f"{label} has {len(values)} values for {len(styles)} style image(s); give one per style")
    if loss.style_scales is not None and any(not s > 0 for s in loss.style_scales):
        raise UsageError(f"--style-scales must be positive, not {list(loss.style_scales)}")
    weights = loss.style_blend_weights
    if weights is not None and (any(w < 0 for w in weights) or sum(weights) <= 0):
        raise UsageError(f"--style-blend-weights must be non-negative with a positive sum, not {list(weights)}")


def check_checkpoints(run):
    if (run.checkpoint_output is None) != (run.checkpoint_iterations is None):
        raise UsageError("--checkpoint-output and --checkpoint-iterations go together; give both or neither")
    if run.checkpoint_output is None:
        return
    if not re.search(r"\{[^}]*\}|%", run.checkpoint_output):
        raise UsageError(f"--checkpoint-output {run.checkpoint_output} needs a placeholder, e.g. out_{{:05}}.jpg")
    try:
        example = format_checkpoint(run.checkpoint_output, 1)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise UsageError(f"--checkpoint-output {run.checkpoint_output}: bad placeholder ({exc})") from exc
    problem = images.check_output_path(example, overwrite=True, what="--checkpoint-output")
    if problem:
        raise UsageError(problem)


def check_files(run: RunSettings) -> None:
    """The input files are readable images, and the output can be written (nothing is
    written). None names no file: an image given as an array, or no output (the API's)."""
    inputs = [("--content", run.content), ("--initial", run.initial)] + [("--styles", s) for s in run.styles]
    if run.color_source is not None:
        inputs.append(("--color-source", run.color_source))
    for label, path in inputs:
        if path is not None:
            problem = images.check_readable_image(path)
            if problem:
                raise UsageError(f"{label} {problem}")
    # --resume may replace the output: an interrupted run wrote its best image there, and
    # its checkpoint (checked before any network is loaded) says the output is that run's.
    problem = None if run.output is None else images.check_output_path(run.output, run.overwrite or run.resume)
    if problem:
        raise UsageError(problem)


def check_colour_and_scales(settings):
    """Checks of the colour, coarse-to-fine and bit-depth flags."""
    run, opt = settings.run, settings.optimizer
    if opt.scales is not None and opt.start_size is not None:
        raise UsageError("--scales and --start-size both choose the coarse-to-fine sizes; give one of them")
    if run.bit_depth == 16 and run.output is not None and os.path.splitext(run.output)[1].lower() not in images.BIT_DEPTH_16_EXTENSIONS:
        raise UsageError(f"--bit-depth 16 needs a .png, .tif or .tiff output, not {run.output}")
    if run.color_source is not None and run.preserve_colors not in (None, "histogram"):
        raise UsageError(f"--color-source works with --preserve-colors histogram, not {run.preserve_colors}")


def check_log(log):
    if log is None:
        return
    log_dir = os.path.dirname(os.path.abspath(log))
    if not os.path.isdir(log_dir) or not os.access(log_dir, os.W_OK):
        raise UsageError(f"--log {log}: directory {log_dir} is missing or not writable")
    # Found here, not by open() after the network is built (a traceback, minutes later).
    if os.path.isdir(log):
        raise UsageError(f"--log {log} is a directory; give a file name, e.g. {os.path.join(log, 'run.jsonl')}")
    if os.path.exists(log) and not os.access(log, os.W_OK):
        raise UsageError(f"--log {log} is not writable")


# ---------------------------------------------------------------- checks that need the network


def check_layers(loss, network):
    """The layers exist in `network`, and it can take the padding asked for (and wrap round, for --tileable)."""
    if loss.padding is not None and loss.padding not in network.paddings:
        raise UsageError(f"--padding {loss.padding}: {network.name} keeps its own padding (a Keras model's graph "
                         f"is fixed); it can take {', '.join(network.paddings)}")
    if loss.tileable and WRAP_PADDING not in network.paddings:
        raise UsageError(f"--tileable: {network.name} keeps its own padding (a Keras model's graph is fixed), and a "
                         "seamless tile needs every convolution to wrap round; use VGG weights (the embedded "
                         "network, a .mat or .npz file)")
    for label, names in (("--content-layers", loss.content_layers), ("--style-layers", loss.style_layers)):
        for name in names:
            problem = network.layer_problem(name)
            if problem:
                raise UsageError(f"{label}: {problem} ({network.layer_advice})")


def check_precision(precision, network):
    """--precision names an arithmetic `network` can run in ("auto" always can)."""
    if precision != "auto" and precision not in network.precisions:
        raise UsageError(f"--precision {precision}: {network.name} computes in {', '.join(network.precisions)} "
                         f"only (a Keras model's graph is fixed)")
    problem = tf_runtime.bfloat16_problem() if precision == "bfloat16" else None
    if problem:
        raise UsageError(f"--precision bfloat16: {problem}")


def used_layers(loss):
    """The layers the objective reads (content layers of weight 0 are never computed)."""
    return tuple(loss.style_layers) + tuple(losses.content_layer_weights(loss.content_layers,
                                                                          loss.content_weight_blend))


def minimum_side(network, layers):
    """The smallest image side at which the deepest of `layers` is not degenerate.

    A side of 1 px has no neighbour for the TV term, whose mean over nothing is NaN
    (the run failed with "loss became nan at evaluation 1"). And the network halves the
    picture at each pooling before the deepest layer (factor f = 2^poolings): at f/2 px
    or less, the last of those poolings sees a map one pixel wide, so the deepest
    layer's features describe a single pixel padded with zeros. Hence f/2 + 1, at least 2.
    """
    probe = 256
    _, h, w, _ = network.feature_shapes(probe, probe, network.deepest(layers))[-1]
    factor = probe // max(1, min(h, w))
    return max(2, factor // 2 + 1)


def check_size(network, loss, sizes, what="the output"):
    """Refuse sizes (height, width) too small for the network's deepest used layer."""
    layers = used_layers(loss)
    need = minimum_side(network, layers)
    for height, width in sizes:
        if min(height, width) < need:
            raise UsageError(f"{what} would be {width}x{height} px, and {network.deepest(layers)} of "
                             f"{network.name} needs at least {need} px on each side: use a larger --width "
                             f"(or a less elongated content image)")


def largest_size(settings, content_shape, style_shapes):
    """(output size, largest image the network sees): the content at its output size, or a
    style image at its scaled size when that is larger."""
    run, loss = settings.run, settings.loss
    size = tuple(content_shape[:2]) if run.width is None else images.size_at_width(content_shape, run.width)
    scales = loss.style_scales or [STYLE_SCALE] * len(style_shapes)
    sizes = [size] + [targets.style_shape(shape, size, s, run.style_size) for shape, s in zip(style_shapes, scales)]
    return size, max(sizes, key=lambda hw: hw[0] * hw[1])


def guided_styles(run):
    """How many styles have statistics of their own region (memory.py): all of them with masks."""
    return len(run.styles) if run.style_masks is not None or run.content_mask is not None else 0


def check_array_size(settings: Settings, what: str, shape: tuple[int, ...], is_content: bool) -> None:
    """Refuse an image given as an array (the API's) that cannot fit in RAM whatever the
    network, from its shape alone: before it is converted to float (a 40000x40000 array
    would take NumPy minutes and then fail with MemoryError) and before any network is
    loaded. Counted: the TensorFlow runtime, two float32 copies of the image, and for the
    content the optimizer's arrays at the output size (memory.optimizer_parts); the full
    estimate, with the network's activations, comes later (check_memory)."""
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) > 2 else 1
    need = memory.TENSORFLOW_BASELINE_BYTES + 2 * height * width * max(channels, 3) * memory.FLOAT32
    if is_content:
        out_height, out_width = (height, width) if settings.run.width is None else images.size_at_width(
            shape, settings.run.width)
        opt = settings.optimizer
        # The lighter of the two optimizers: a scale too large for L-BFGS's arrays is tiled
        # and optimised with Adam (print_size.py).
        need += min(sum(memory.optimizer_parts(out_height, out_width, name, opt.lbfgs_corrections).values())
                    for name in (opt.optimizer, "adam"))
    available = memory.available_bytes()
    if available and need > available:
        raise UsageError(f"{what}: a {width}x{height} image needs about {memory.format_bytes(need)} of memory and "
                         f"{memory.format_bytes(available)} is available; give a smaller image"
                         + (" or a smaller width=" if is_content else ""))


def check_memory(settings, network, content_shape, style_shapes, planned=None):
    """Refuse a run that would not fit in RAM (UsageError), warn near the limit.

    The estimate is for the largest image the network will see; using the largest is
    conservative (the style images' features are computed once, but at that size).
    With `planned` stages of which some are tiled (print_size.plan), the estimate is the
    tiled path's: one tile's activations, the whole image's arrays.
    """
    opt = settings.optimizer
    if planned and any(s.core is not None for s in planned):
        from . import print_size

        need = print_size.peak_estimate(planned, network, settings, used_layers(settings.loss),
                                        guided_styles(settings.run))
        available = memory.available_bytes()
        height, width = planned[-1].size
        text = (f"a {width}x{height} image needs about {memory.format_bytes(need)} of memory in tiles of "
                f"{planned[-1].core} px and {memory.format_bytes(available or 0)} is available")
        if available and need > available:
            raise UsageError(f"{text}; use a smaller --width")
        if available and need > memory.WARN_FRACTION * available:
            print(f"warning: {text}; the run may swap or be killed", file=sys.stderr)
        elif need > opt.memory_budget * 2**30:
            print(f"warning: {text}: above --memory-budget {opt.memory_budget:g} GB even in the smallest tiles "
                  "that keep the speed", file=sys.stderr)
        return
    size, (height, width) = largest_size(settings, content_shape, style_shapes)
    level, message = memory.preflight(network, height, width, opt.optimizer, opt.lbfgs_corrections,
                                      used_layers(settings.loss), guided_styles=guided_styles(settings.run))
    if level and (height, width) != size:
        message += " (the largest image is a style image; a smaller --style-scales helps too)"
    if level == "refuse":
        raise UsageError(message)
    if level == "warn":
        print(f"warning: {message}", file=sys.stderr)
