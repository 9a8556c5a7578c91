"""Command line: neural style transfer with the flags of the classic TensorFlow tool.

    python neural_style.py --content photo.jpg --styles painting.jpg --output out.jpg

Everything is validated before any network is built (TensorFlow is not even imported
until then), so a typo costs about a second. The long run reports progress through a
callback, writes checkpoints and the output atomically, and on Ctrl-C or SIGTERM saves
the best image so far and exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import signal
import sys
import time

import images
import keras_network
import presets
import vgg

# The defaults live in stylize.py (imported lazily, as it pulls TensorFlow in); they
# are repeated here only through these names so --help can show them without TF.
CONTENT_WEIGHT = 5e0
CONTENT_WEIGHT_BLEND = 1.0
STYLE_WEIGHT = 5e2
TV_WEIGHT = 1e2
# The embedded HED VGG-16 has feature losses about 100x smaller than VGG-19's for the
# same images, so the classic TV weight would blur everything. Measured on the example
# images (256 px, 100 L-BFGS iterations): 1e0 keeps the same balance as 1e2 on VGG-19.
TV_WEIGHT_EMBEDDED = 1e0
STYLE_LAYER_WEIGHT_EXP = 1.0
LEARNING_RATE = 1e1
BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-08
STYLE_SCALE = 1.0
ITERATIONS = 1000
POOLING = "max"
OPTIMIZER = "lbfgs"
LBFGS_CORRECTIONS = 20
CONTENT_LAYERS = ("relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Issue 7: colour control, coarse-to-fine, loss scales, bit depth.
PRESERVE_MODES = ("luminance", "luminance-only", "histogram")
COLOR_MATCH = "sqrt"
LOSS_SCALE = "classic"
# classic and normalized are for everyday use; the other two are the paper's and the
# authors' later code's (what --preset sets), offered so they can be mixed with other flags.
LOSS_SCALE_CHOICES = ("classic", "normalized", "gatys2016", "gatys-pytorch")
BIT_DEPTH = 8
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


def _layer_list(text):
    return tuple(name.strip() for name in text.split(",") if name.strip())


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: skips None/False defaults and helps that already say theirs.

    The stock formatter appends "(default: None)" even where the help text explains
    the real default (e.g. --width: "the content's"), which reads as a contradiction.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line (argparse prints the whole 20-line usage first)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    p = _Parser(
        prog="neural_style.py",
        description="Neural style transfer (Gatys, Ecker & Bethge) with L-BFGS or Adam.",
        formatter_class=_DefaultsFormatter,
    )
    io = p.add_argument_group("images")
    io.add_argument("--content", required=True, help="content image")
    io.add_argument("--styles", required=True, nargs="+", metavar="STYLE", help="one or more style images")
    io.add_argument("--output", required=True, help="output image (.png, .jpg, .tif, .webp)")
    io.add_argument("--width", type=int, default=None, help="output width in pixels (default: the content's)")
    io.add_argument("--style-scales", type=float, nargs="+", default=None, metavar="SCALE",
                    help=f"one per style: its width relative to the output's (default {STYLE_SCALE})")
    io.add_argument("--initial", default=None, help="initial image (default: noise)")
    io.add_argument("--initial-noiseblend", type=float, default=None,
                    help="weight of noise blended into the initial image, 0..1 (default: 0 with --initial, "
                         "else 1; below 1 without --initial starts from the content)")
    io.add_argument("--preserve-colors", nargs="?", const="luminance", default=None, choices=PRESERVE_MODES,
                    help="keep the content's colours: luminance (the bare flag: swap chroma after the run), "
                         "luminance-only (optimise on luminance) or histogram (match the style's colours first)")
    io.add_argument("--color-match", choices=("sqrt", "cholesky"), default=COLOR_MATCH,
                    help="histogram: A = S_c^1/2 S_s^-1/2 (sqrt) or L_c L_s^-1 (cholesky)")
    io.add_argument("--color-source", default=None, metavar="IMAGE",
                    help="histogram: take the colours from this image instead of the content (implies histogram)")
    io.add_argument("--bit-depth", type=int, choices=(8, 16), default=BIT_DEPTH,
                    help="bits per channel of the output; 16 needs .png, .tif or .tiff")
    io.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")

    run = p.add_argument_group("optimisation")
    run.add_argument("--optimizer", choices=("lbfgs", "adam"), default=OPTIMIZER, help="optimizer")
    run.add_argument("--iterations", type=int, default=ITERATIONS,
                     help="iterations (L-BFGS iterations or Adam steps; evaluations are counted separately)")
    run.add_argument("--lbfgs-corrections", type=int, default=LBFGS_CORRECTIONS, help="L-BFGS history size")
    run.add_argument("--learning-rate", type=float, default=LEARNING_RATE, help="Adam: learning rate")
    run.add_argument("--beta1", type=float, default=BETA1, help="Adam: beta1")
    run.add_argument("--beta2", type=float, default=BETA2, help="Adam: beta2")
    run.add_argument("--eps", type=float, default=EPSILON, help="Adam: epsilon")
    run.add_argument("--scales", type=int, default=None, metavar="N",
                     help="coarse-to-fine over N sizes, each half the next; --iterations is the total, each scale "
                          "getting half the iterations of the one below (default: on from 512 px for outputs "
                          "above 1024 px, else off)")
    run.add_argument("--start-size", type=int, default=None, metavar="PX",
                     help="coarse-to-fine from this long side, in steps of at most 2")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed and logged)")

    loss = p.add_argument_group("objective")
    loss.add_argument("--network", default=None,
                      help="weights file: MatConvNet .mat, Keras .h5 or .npz (default: ./" + vgg.PAPER_MAT
                           + ", then the Keras VGG-19 cache, then the embedded VGG-16); or a whole Keras model "
                           "(.keras, full-model .h5 or SavedModel directory) with --content-layers and --style-layers naming its layers")
    loss.add_argument("--input-range", choices=keras_network.INPUT_RANGES, default=None,
                      help="Keras models: the input their training used: 0-1 (RGB / 255, the default), 0-255, "
                           "or caffe (BGR minus the ImageNet mean)")
    loss.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT, help="content weight")
    loss.add_argument("--content-weight-blend", type=float, default=CONTENT_WEIGHT_BLEND,
                      help="share of the first content layer (relu4_2); the others get the rest")
    loss.add_argument("--style-weight", type=float, default=STYLE_WEIGHT, help="style weight")
    loss.add_argument("--style-layer-weight-exp", type=float, default=STYLE_LAYER_WEIGHT_EXP,
                      help="weight(layer n+1) = exp * weight(layer n)")
    loss.add_argument("--style-blend-weights", type=float, nargs="+", default=None, metavar="WEIGHT",
                      help="one per style (default: equal)")
    loss.add_argument("--tv-weight", type=float, default=None,
                      help=f"total variation weight (default {TV_WEIGHT:g}; {TV_WEIGHT_EMBEDDED:g} with the embedded network "
                           "or a Keras model)")
    loss.add_argument("--content-layers", type=_layer_list, default=CONTENT_LAYERS, metavar="L1,L2",
                      help="comma-separated content layers (default " + ",".join(CONTENT_LAYERS) + ")")
    loss.add_argument("--style-layers", type=_layer_list, default=STYLE_LAYERS, metavar="L1,L2,...",
                      help="comma-separated style layers (default " + ",".join(STYLE_LAYERS) + ")")
    loss.add_argument("--pooling", choices=vgg.POOLING_CHOICES, default=POOLING, help="pooling")
    loss.add_argument("--loss-scale", choices=LOSS_SCALE_CHOICES, default=LOSS_SCALE,
                      help="normalisation of the loss terms: classic, normalized (equal at 512 px, TV "
                           "independent of the size elsewhere), or the paper's gatys2016 / gatys-pytorch "
                           "(what --preset sets)")
    loss.add_argument("--preset", choices=tuple(presets.PRESETS), default=None,
                      help="the exact settings of the paper (gatys2016) or of the authors' later code (gatys-pytorch); "
                           "flags given explicitly still win")
    loss.add_argument("--ratio", type=float, default=None, metavar="ALPHA/BETA",
                      help="content/style trade-off alpha/beta: sets --content-weight (style weight: the preset's, else 1)")

    out = p.add_argument_group("progress and outputs")
    out.add_argument("--print-iterations", type=int, default=None, help="print every loss term every N iterations")
    out.add_argument("--checkpoint-output", default=None,
                     help="checkpoint file name with a placeholder, e.g. out_{:05}.jpg or out_%%05d.jpg")
    out.add_argument("--checkpoint-iterations", type=int, default=None, help="checkpoint every N iterations")
    out.add_argument("--progress-write", action="store_true", help="write progress.txt to the output's directory")
    out.add_argument("--progress-plot", action="store_true", help="plot progress.png to the output's directory")
    out.add_argument("--log", default=None, help="JSON-lines log: one line per iteration with every loss term")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# ---------------------------------------------------------------- validation


def format_checkpoint(pattern, iteration):
    return pattern % iteration if "%" in pattern else pattern.format(iteration)


def suggest(name, known):
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def validate_arguments(args):
    """Every check that needs no network; raises UsageError with one line."""
    # argparse's float() accepts "nan" and "inf"; no option here means anything with
    # them, and they would fail late (inf style scale) or silently (NaN loss).
    for dest, value in vars(args).items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"--{dest.replace('_', '-')} must be a finite number, not {v}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {args.seed}")
    if args.style_layer_weight_exp < 0:  # negative: every other style layer would get a negative weight
        raise UsageError(f"--style-layer-weight-exp must be non-negative, not {args.style_layer_weight_exp}")
    for label, value in (("--iterations", args.iterations), ("--width", args.width),
                         ("--lbfgs-corrections", args.lbfgs_corrections),
                         ("--print-iterations", args.print_iterations),
                         ("--checkpoint-iterations", args.checkpoint_iterations)):
        if value is not None and value <= 0:
            raise UsageError(f"{label} must be a positive integer, not {value}")
    for label, value in (("--learning-rate", args.learning_rate), ("--eps", args.eps)):
        if not value > 0:
            raise UsageError(f"{label} must be positive, not {value}")
    for label, value in (("--beta1", args.beta1), ("--beta2", args.beta2)):
        if not 0 <= value < 1:
            raise UsageError(f"{label} must be in [0, 1), not {value}")
    # Outside 0..1 one content layer gets a negative weight, and the loss has no minimum.
    if not 0 <= args.content_weight_blend <= 1:
        raise UsageError(f"--content-weight-blend must be between 0 and 1, not {args.content_weight_blend}")
    if args.initial_noiseblend is not None and not 0 <= args.initial_noiseblend <= 1:
        raise UsageError(f"--initial-noiseblend must be between 0 and 1, not {args.initial_noiseblend}")
    for label, values in (("--style-scales", args.style_scales), ("--style-blend-weights", args.style_blend_weights)):
        if values is not None and len(values) != len(args.styles):
            raise UsageError(f"{label} has {len(values)} values for {len(args.styles)} style image(s); give one per style")
    if args.style_scales is not None and any(not s > 0 for s in args.style_scales):
        raise UsageError(f"--style-scales must be positive, not {args.style_scales}")
    if args.style_blend_weights is not None and (any(w < 0 for w in args.style_blend_weights) or sum(args.style_blend_weights) <= 0):
        raise UsageError(f"--style-blend-weights must be non-negative with a positive sum, not {args.style_blend_weights}")
    for label, value in (("--content-weight", args.content_weight), ("--style-weight", args.style_weight),
                         ("--tv-weight", args.tv_weight)):
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise UsageError(f"{label} must be a finite non-negative number, not {value}")
    if getattr(args, "ratio", None) is not None and not (args.ratio > 0 and math.isfinite(args.ratio)):
        raise UsageError(f"--ratio must be a positive number, not {args.ratio}")
    if not args.style_layers:
        raise UsageError("--style-layers is empty; name at least one layer, e.g. relu1_1")
    if (args.checkpoint_output is None) != (args.checkpoint_iterations is None):
        raise UsageError("--checkpoint-output and --checkpoint-iterations go together; give both or neither")
    if args.checkpoint_output is not None:
        if not re.search(r"\{[^}]*\}|%", args.checkpoint_output):
            raise UsageError(f"--checkpoint-output {args.checkpoint_output} needs a placeholder, e.g. out_{{:05}}.jpg")
        try:
            example = format_checkpoint(args.checkpoint_output, 1)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise UsageError(f"--checkpoint-output {args.checkpoint_output}: bad placeholder ({exc})") from exc
        problem = images.check_output_path(example, overwrite=True, what="--checkpoint-output")
        if problem:
            raise UsageError(problem)

    for label, path in [("--content", args.content), ("--initial", args.initial)] + [("--styles", s) for s in args.styles]:
        if path is not None:
            problem = images.check_readable_image(path)
            if problem:
                raise UsageError(f"{label} {problem}")
    problem = images.check_output_path(args.output, args.overwrite)
    if problem:
        raise UsageError(problem)
    validate_issue7(args)
    if args.log is not None:
        log_dir = os.path.dirname(os.path.abspath(args.log))
        if not os.path.isdir(log_dir) or not os.access(log_dir, os.W_OK):
            raise UsageError(f"--log {args.log}: directory {log_dir} is missing or not writable")
        # Found here, not by open() after the network is built (a traceback, minutes later).
        if os.path.isdir(args.log):
            raise UsageError(f"--log {args.log} is a directory; give a file name, e.g. {os.path.join(args.log, 'run.jsonl')}")
        if os.path.exists(args.log) and not os.access(args.log, os.W_OK):
            raise UsageError(f"--log {args.log} is not writable")


def validate_issue7(args):
    """Checks of the colour, coarse-to-fine and bit-depth flags."""
    for label, value in (("--scales", args.scales), ("--start-size", args.start_size)):
        if value is not None and value <= 0:
            raise UsageError(f"{label} must be a positive integer, not {value}")
    if args.scales is not None and args.start_size is not None:
        raise UsageError("--scales and --start-size both choose the coarse-to-fine sizes; give one of them")
    if args.bit_depth == 16 and os.path.splitext(args.output)[1].lower() not in images.BIT_DEPTH_16_EXTENSIONS:
        raise UsageError(f"--bit-depth 16 needs a .png, .tif or .tiff output, not {args.output}")
    if args.color_source is not None:
        if args.preserve_colors not in (None, "histogram"):
            raise UsageError(f"--color-source works with --preserve-colors histogram, not {args.preserve_colors}")
        problem = images.check_readable_image(args.color_source)
        if problem:
            raise UsageError(f"--color-source {problem}")


def validate_layers(args, network):
    for label, names in (("--content-layers", args.content_layers), ("--style-layers", args.style_layers)):
        for name in names:
            if hasattr(network, "layer_problem"):  # a Keras model: its own names and shapes
                problem = network.layer_problem(name)
                if problem:
                    raise UsageError(f"{label}: {problem} (list them with: python vgg.py layers --network "
                                     f"{network.path}; a Keras model needs --content-layers and --style-layers)")
            elif name not in network.layers:
                raise UsageError(
                    f"{label}: unknown layer {name!r} for {network.name}{suggest(name, network.layers)} "
                    f"(list them with: python vgg.py layers --network ...)"
                )


# ---------------------------------------------------------------- running


def loss_options(args, network, stylize):
    tv_weight = args.tv_weight
    if tv_weight is None:
        # Keras models are scaled to the embedded network's feature magnitudes (keras_network.py).
        tv_weight = TV_WEIGHT_EMBEDDED if network.notes.get("embedded") or network.notes.get("keras") else TV_WEIGHT
    return stylize.LossOptions(
        content_weight=args.content_weight,
        content_weight_blend=args.content_weight_blend,
        style_weight=args.style_weight,
        style_layer_weight_exp=args.style_layer_weight_exp,
        tv_weight=tv_weight,
        content_layers=tuple(args.content_layers),
        style_layers=tuple(args.style_layers),
        style_blend_weights=tuple(args.style_blend_weights) if args.style_blend_weights else None,
        style_scales=tuple(args.style_scales) if args.style_scales else None,
        pooling=args.pooling,
        loss_scale=args.loss_scale,
    )


def optimizer_options(args, stylize):
    return stylize.OptimizerOptions(
        optimizer=args.optimizer,
        iterations=args.iterations,
        lbfgs_corrections=args.lbfgs_corrections,
        learning_rate=args.learning_rate,
        beta1=args.beta1,
        beta2=args.beta2,
        epsilon=args.eps,
    )


def luminance_transfer(content, stylized):
    """The classic --preserve-colors: the output's luminance with the content's chroma (YCbCr)."""
    import color

    return color.luminance_transfer(content, stylized)


class Reporter:
    """Turns progress callbacks into a bar, printed terms, checkpoints, logs and plots."""

    def __init__(self, args, finish_image, settings):
        self.args = args
        self.finish_image = finish_image
        self.history = []
        self.bar = None
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        if self.log:
            self.log.write(json.dumps({"event": "start", **settings}) + "\n")
        if not args.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=args.iterations, unit="it", dynamic_ncols=True, file=sys.stderr)

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
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{terms['total']:.4g}", evals=progress.evaluations, refresh=False,
                                 **({"scale": row["scale"]} if "scale" in row else {}))
        if self.log:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
        every = self.args.print_iterations
        if every and (progress.iteration % every == 0 or progress.iteration == progress.iterations):
            self.write(
                f"{where}iteration {progress.iteration}/{progress.iterations} ({progress.evaluations} evaluations, "
                f"{progress.elapsed:.1f} s): " + ", ".join(f"{k} {v:.6g}" for k, v in terms.items())
            )
        every = self.args.checkpoint_iterations
        if every and progress.iteration % every == 0:
            path = format_checkpoint(self.args.checkpoint_output, progress.iteration)
            rgb, alpha = self.finish_image(progress.best_image())
            images.save_image(path, rgb, alpha)

    def close(self, result):
        if self.bar is not None:
            self.bar.close()
        if self.log:
            self.log.write(json.dumps({"event": "end", "stop_reason": result.stop_reason, "message": result.message,
                                       "iterations": result.iterations, "evaluations": result.evaluations,
                                       "seconds": round(result.elapsed, 3), "terms": result.terms}) + "\n")
            self.log.close()
        directory = os.path.dirname(os.path.abspath(self.args.output))
        if self.args.progress_write and self.history:
            keys = list(self.history[0])
            table = "\n".join(" ".join(f"{row[k]:.10g}" for k in keys) for row in self.history)
            images.write_atomically(os.path.join(directory, "progress.txt"),
                                    lambda f: f.write(("# " + " ".join(keys) + "\n" + table + "\n").encode()))
        if self.args.progress_plot and self.history:
            write_progress_plot(os.path.join(directory, "progress.png"), self.history)


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


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def check_memory(args, network, content_shape, style_shapes, memory, stylize):
    """Refuse a run that would not fit in RAM (UsageError), warn near the limit.

    The estimate is for the largest image the network will see: the content at its
    output size, or a style image at its scaled size when that is larger (its features
    are computed once, but at that size). Using the largest is conservative.
    """
    size = tuple(content_shape[:2]) if args.width is None else images.size_at_width(content_shape, args.width)
    sizes = [size]
    if getattr(args, "style_size", "width") == "content":
        sizes += [size] * len(style_shapes)
    else:
        scales = args.style_scales or [stylize.STYLE_SCALE] * len(style_shapes)
        sizes += [images.size_at_width(shape, max(1, int(round(s * size[1])))) for shape, s in zip(style_shapes, scales)]
    height, width = max(sizes, key=lambda hw: hw[0] * hw[1])
    needed = tuple(args.style_layers)
    if args.content_layers:
        needed += tuple(stylize.content_layer_weights(args.content_layers, args.content_weight_blend))
    level, message = memory.preflight(network, height, width, args.optimizer, args.lbfgs_corrections, needed)
    if level and (height, width) != size:
        message += " (the largest image is a style image; a smaller --style-scales helps too)"
    if level == "refuse":
        raise UsageError(message)
    if level == "warn":
        print(f"warning: {message}", file=sys.stderr)


def run(args):
    """Validate, build, optimise, write. Returns the exit status."""
    t0 = time.perf_counter()
    validate_arguments(args)
    try:
        network = vgg.load_net(args.network, args.input_range)
    except vgg.NetworkError as exc:
        raise UsageError(str(exc)) from exc
    validate_layers(args, network)
    print(vgg.announce(network), file=sys.stderr)
    if getattr(args, "normalise_network", False) and network.notes.get("keras"):
        raise UsageError("--preset gatys2016 normalises a VGG network's weights; a Keras model's features are "
                         "scaled already (keras_network.py): use --loss-scale gatys2016 and its --ratio instead")
    if getattr(args, "normalise_network", False):  # --preset gatys2016: the paper's normalised net
        network = presets.normalised_network(network, args.pooling, log=lambda text: print(text, file=sys.stderr))

    content, alpha = images.load_image(args.content, with_alpha=True)
    styles = [images.load_image(path) for path in args.styles]
    import memory
    import stylize  # TensorFlow is imported only now, after every check but memory has passed

    # Preflight before anything is resized: an absurd --width or --style-scales would
    # otherwise exhaust the memory in the resize itself, and the OOM killer gives no message.
    check_memory(args, network, content.shape, [style.shape for style in styles], memory, stylize)
    if args.width is not None:
        content = images.resize_to_width(content, args.width)
        if alpha is not None:
            alpha = images.resize(alpha, content.shape[:2])
    import coarse_to_fine
    import color

    content = color.fill_transparent(content, alpha)  # what lies under alpha 0 is arbitrary
    mask = None if alpha is None else (alpha > 0).astype("float32")  # transparent pixels: no content loss
    mode = args.preserve_colors or ("histogram" if args.color_source else None)
    source = images.load_image(args.color_source) if args.color_source else None
    target, styles, finish_colors = color.prepare_colors(content, styles, mode, args.color_match, source)
    stages = coarse_to_fine.schedule(content.shape, args.iterations, args.scales,
                                     coarse_to_fine.auto_start_size(content.shape, args.scales, args.start_size))
    styles = presets.resize_styles(styles, content.shape, getattr(args, "style_size", "width"))
    initial = None
    if args.initial is not None:
        initial = images.resize(images.load_image(args.initial), content.shape[:2])
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")

    loss = loss_options(args, network, stylize)
    opts = optimizer_options(args, stylize)
    settings = {"seed": seed, "network": network.name, "network_path": network.path,
                "content": args.content, "styles": list(args.styles), "size": list(content.shape[:2]),
                "loss": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(loss).items()},
                "optimizer": {k: v for k, v in vars(opts).items()},
                "preset": getattr(args, "preset", None), "ratio": getattr(args, "ratio", None),
                "style_size": getattr(args, "style_size", "width"),
                "initial_noiseblend": args.initial_noiseblend}
    settings["scales"] = [list(s.size) + [s.iterations] for s in stages]
    print(f"seed: {seed}  size: {content.shape[1]}x{content.shape[0]}  optimizer: {opts.optimizer}", file=sys.stderr)
    if len(stages) > 1:
        print("coarse-to-fine: " + ", ".join(f"{s.size[1]}x{s.size[0]} ({s.iterations} it)" for s in stages),
              file=sys.stderr)

    def finish_image(rgb):
        if rgb.shape != content.shape:  # a checkpoint at a coarse scale
            rgb = images.resize(rgb, content.shape[:2])
        return finish_colors(rgb), alpha

    # SIGTERM gets the same treatment as Ctrl-C: save the best image, exit 130.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    reporter = None
    try:
        reporter = Reporter(args, finish_image, settings)

        def first_x0(scaled):
            start = None if initial is None else images.resize(initial, scaled.shape[:2])
            return stylize.initial_image(scaled, network, start, args.initial_noiseblend, seed)

        def objective_kwargs(size):
            return {"content_mask": None if mask is None else images.resize(mask, size).clip(0, 1)}

        print(f"ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr) if args.quiet else None
        result, _ = coarse_to_fine.run(stages, network, target, styles, loss, opts, first_x0,
                                       callback=reporter, objective_kwargs=objective_kwargs)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # The work is done. A second Ctrl-C or SIGTERM during the last writes (a moment;
    # longer with --progress-plot, which imports matplotlib) must not throw it away, so
    # they are ignored until the output is written, and the output is written first.
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if result.image is not None:
            rgb, alpha_out = finish_image(result.image)
            images.save_image(args.output, rgb, alpha_out, bit_depth=args.bit_depth)
        reporter.close(result)
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)

    if result.image is None:
        print(f"error: {result.message}; no image was produced", file=sys.stderr)
        return EXIT_FAILED
    summary = (f"{result.iterations} iterations, {result.evaluations} evaluations, {result.elapsed:.1f} s; "
               f"loss {result.terms['total']:.6g}")
    if result.stop_reason == "interrupted":
        print(f"interrupted: wrote the best image so far to {args.output} ({summary})", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.stop_reason == "nonfinite":
        print(f"error: {result.message}; wrote the last finite best image to {args.output}", file=sys.stderr)
        return EXIT_FAILED
    if result.stop_reason in ("converged", "stopped"):
        print(f"L-BFGS stopped early: {result.message}", file=sys.stderr)
    print(f"wrote {args.output} ({summary})", file=sys.stderr)
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # see vgg.import_tensorflow
    # oneDNN kernels are off by default on CPUs without AVX-512; on this AVX2 machine they
    # measured 22% faster per evaluation (README, Performance). Read at TensorFlow's import.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import memory

    memory.return_freed_tensors_to_the_os()  # lower peak RSS; before TensorFlow is imported (see memory.py)
    try:
        # A preset fills in every flag the user did not give explicitly.
        explicit = presets.explicit_dests(build_parser, sys.argv[1:] if argv is None else argv)
        presets.apply_preset(args, explicit, args.preset, args.ratio)
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except images.ImageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Interrupted before the optimisation started: nothing to save.
        print(f"{parser.prog}: interrupted before any image was made", file=sys.stderr)
        return EXIT_INTERRUPTED


def console_main():
    sys.exit(main())


if __name__ == "__main__":
    console_main()
