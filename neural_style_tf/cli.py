"""The command-line pieces every command shares: flags, parsing into settings, errors.

The transfer's flags are defined once, here, in groups that `neural_style.py` uses
whole and the experiment commands (compare.py) reuse; their defaults come from
settings.py. `settings_from_keywords` turns the flags given, as keywords ({dest: value}),
into one frozen, validated `settings.Settings` with the preset applied: the command line
parses argv once into them (`parse_given`), and the Python API (api.py) passes its
keywords as they are. Nothing after it reads an argparse Namespace.
"""

from __future__ import annotations

import argparse
import importlib.util
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import checks, presets, settings
from .errors import EXIT_USAGE, UsageError
from .networks.keras_network import INPUT_RANGES
from .settings import Settings


def layer_list(text):
    """'relu1_1, relu2_1' -> ('relu1_1', 'relu2_1')."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: skips None/False defaults and helps that already say theirs.

    The stock formatter appends "(default: None)" even where the help text explains
    the real default (e.g. --width: "the content's"), which reads as a contradiction.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line (argparse prints the whole 20-line usage first)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def command_name(default):
    """The name a command goes by in its usage line and errors: an installed script's own
    name (`neural-style`, `neural-style-batch`, ...: the console entry points of
    pyproject.toml, all named neural-style*), else `default`, the checkout's file
    (`neural_style.py`). Read from sys.argv[0] when the parser is built, so a test or a
    program that calls main([...]) gets the file's name."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name.lower().endswith(".exe"):  # Windows' console-script launchers
        name = name[:-4]
    return name if name.startswith("neural-style") else default


# The optional dependencies of pyproject.toml: {extra: ((module, what it is), ...)}.
EXTRAS = {
    "batch": (("ray", "Ray"),),
    "video": (("cv2", "OpenCV (opencv-python-headless)"), ("imageio_ffmpeg", "imageio-ffmpeg")),
}
DISTRIBUTION = "neural-style-tf"


def require_extra(extra):
    """Raise UsageError (one line: exit 2) naming the pip extra to install when a module
    of `extra` is missing. Looks the modules up without importing them."""
    for module, what in EXTRAS[extra]:
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"{what} is not installed; install it with: pip install '{DISTRIBUTION}[{extra}]'")


def fail(prog, message):
    """Print a user mistake as one line; returns the usage exit code."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# ---------------------------------------------------------------- the transfer's flags


def add_style_scales(group):
    group.add_argument("--style-scales", type=float, nargs="+", default=None, metavar="SCALE",
                       help=f"one per style: its width relative to the output's (default {settings.STYLE_SCALE})")


def add_image_arguments(p):
    io = p.add_argument_group("images")
    io.add_argument("--content", required=True, help="content image")
    io.add_argument("--styles", required=True, nargs="+", metavar="STYLE", help="one or more style images")
    io.add_argument("--output", required=True, help="output image (.png, .jpg, .tif, .webp)")
    io.add_argument("--width", type=int, default=None, help="output width in pixels (default: the content's)")
    add_style_scales(io)
    io.add_argument("--initial", default=None, help="initial image (default: the content)")
    io.add_argument("--initial-noiseblend", type=float, default=settings.INITIAL_NOISEBLEND,
                    help="weight of noise blended into the initial image (--initial, else the content), 0..1; "
                         "1 starts from noise as the classic tool")
    io.add_argument("--preserve-colors", nargs="?", const="luminance", default=None, choices=settings.PRESERVE_MODES,
                    help="keep the content's colours: luminance (the bare flag: swap chroma after the run), "
                         "luminance-only (optimise on luminance) or histogram (match the style's colours first)")
    io.add_argument("--color-match", choices=settings.COLOR_MATCHES, default=settings.COLOR_MATCH,
                    help="histogram: A = S_c^1/2 S_s^-1/2 (sqrt) or L_c L_s^-1 (cholesky)")
    io.add_argument("--color-source", default=None, metavar="IMAGE",
                    help="histogram: take the colours from this image instead of the content (implies histogram)")
    io.add_argument("--bit-depth", type=int, choices=settings.BIT_DEPTHS, default=settings.BIT_DEPTH,
                    help="bits per channel of the output; 16 needs .png, .tif or .tiff")
    io.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    return io


def add_optimization_arguments(p):
    run = p.add_argument_group("optimisation")
    run.add_argument("--optimizer", choices=settings.OPTIMIZERS, default=settings.OPTIMIZER, help="optimizer")
    run.add_argument("--iterations", type=int, default=settings.ITERATIONS,
                     help="iterations (L-BFGS iterations or Adam steps; evaluations are counted separately)")
    run.add_argument("--min-improvement", type=float, default=settings.MIN_IMPROVEMENT, metavar="PERCENT",
                     help=f"L-BFGS: stop before --iterations once the loss fell less than PERCENT %% over the last "
                          f"{settings.STOP_WINDOW} iterations (0: run every iteration, as the classic tool)")
    run.add_argument("--lbfgs-corrections", type=int, default=settings.LBFGS_CORRECTIONS, help="L-BFGS history size")
    run.add_argument("--lbfgs-first-step", type=float, default=settings.LBFGS_FIRST_STEP, metavar="GREY_LEVELS",
                     help="L-BFGS: RMS change per pixel of its first step (0: SciPy's own start, as the classic tool)")
    run.add_argument("--lbfgs-bounds", choices=settings.LBFGS_BOUNDS_CHOICES, default=settings.LBFGS_BOUNDS,
                     help="L-BFGS: how pixels stay in 0..255: fold (the default: a pixel past 0 or 255 is mirrored "
                          "back, and SciPy has no bounds to check), box (SciPy's bounds on every pixel, the presets') "
                          "or soft (exponential tails: darker shadows on dark paintings)")
    run.add_argument("--learning-rate", type=float, default=settings.LEARNING_RATE, help="Adam: learning rate")
    run.add_argument("--beta1", type=float, default=settings.BETA1, help="Adam: beta1")
    run.add_argument("--beta2", type=float, default=settings.BETA2, help="Adam: beta2")
    run.add_argument("--eps", type=float, default=settings.EPSILON, help="Adam: epsilon")
    run.add_argument("--iterate-average", type=float, default=settings.ITERATE_AVERAGE, metavar="DECAY",
                     help="result = exponential moving average of the iterates with this decay, 0..1 "
                          "(0: off, the lowest-loss iterate); removes Adam's iterate noise")
    run.add_argument("--scales", type=int, default=None, metavar="N",
                     help="coarse-to-fine over N sizes, each half the next (default: from "
                          f"{settings.AUTO_START_SIZE} px for outputs above {settings.AUTO_ABOVE} px, else one scale)")
    run.add_argument("--start-size", type=int, default=None, metavar="PX",
                     help="coarse-to-fine from this long side, in steps of at most 2")
    run.add_argument("--coarse-iterations", type=int, default=settings.COARSE_ITERATIONS, metavar="N",
                     help="iterations of each scale below the final one (--iterations is the final scale's)")
    run.add_argument("--photo-detail", action="store_true", default=settings.PHOTO_DETAIL,
                     help="coarse-to-fine: start each larger scale from the previous one's image resized plus the "
                          "photo's detail the smaller size could not hold (keeps the photo's fine lines)")
    run.add_argument("--memory-budget", type=float, default=settings.MEMORY_BUDGET_GB, metavar="GB",
                     help="a scale that would need more memory than this is evaluated in tiles, exactly, with Adam "
                          f"(default {settings.MEMORY_BUDGET_GB:g}; docs/print-size.md)")
    run.add_argument("--tile-size", type=int, default=None, metavar="PX",
                     help="evaluate every scale larger than PX in tiles of PX (default: tiles only past "
                          "--memory-budget, as large as it allows)")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed and logged)")
    return run


def add_network_arguments(group):
    """The flags that choose the network and its arithmetic, into `group` (a parser or a group)."""
    group.add_argument("--network", default=None,
                       help="weights file: MatConvNet .mat, Keras .h5 or .npz (default: the embedded ImageNet "
                            "VGG-19, the paper's network; no folder is searched); or a whole Keras model "
                            "(.keras, full-model .h5 or SavedModel directory) with --content-layers and "
                            "--style-layers naming its layers")
    group.add_argument("--input-range", choices=INPUT_RANGES, default=None,
                       help="Keras models: the input their training used: 0-1 (RGB / 255, the default), 0-255, "
                            "or caffe (BGR minus the ImageNet mean)")
    group.add_argument("--precision", choices=settings.PRECISIONS, default=settings.PRECISION,
                       help="the network's arithmetic: auto is bfloat16 on CPUs that compute it natively "
                            "(AMX-BF16, AVX512-BF16), else float32; the losses stay float32 either way, "
                            "and the presets keep float32")
    return group


def add_objective_arguments(group):
    """The flags that define the objective and its network, into `group` (a parser or a group)."""
    add_network_arguments(group)
    group.add_argument("--content-weight", type=float, default=settings.CONTENT_WEIGHT, help="content weight")
    group.add_argument("--content-weight-blend", type=float, default=settings.CONTENT_WEIGHT_BLEND,
                       help="share of the first content layer (relu4_2); the others get the rest")
    group.add_argument("--content-size-power", type=float, default=settings.CONTENT_SIZE_POWER, metavar="P",
                       help=f"with the W2 and mean-cov style losses, the content weight grows below "
                            f"{settings.CONTENT_SIZE_REFERENCE} px as ({settings.CONTENT_SIZE_REFERENCE} / long side) ** P, "
                            f"so that a small image keeps the photo as a 512 px one does; 0: the same at every size")
    group.add_argument("--style-weight", type=float, default=settings.STYLE_WEIGHT, help="style weight")
    group.add_argument("--style-layer-weight-exp", type=float, default=None,
                       help=f"weight(layer n+1) = exp * weight(layer n) (default {settings.STYLE_LAYER_WEIGHT_EXP_VGG:g} "
                            f"with ImageNet VGG weights: the embedded VGG-19 and VGG files; "
                            f"{settings.STYLE_LAYER_WEIGHT_EXP:g}, equal, with HED's VGG-16 or a Keras model)")
    group.add_argument("--style-blend-weights", type=float, nargs="+", default=None, metavar="WEIGHT",
                       help="one per style (default: equal)")
    group.add_argument("--tv-weight", type=float, default=None,
                       help=f"total variation weight (default with the W2 and mean-cov style losses "
                            f"{settings.TV_WEIGHT_RELATIVE_VGG:g} with ImageNet VGG weights, the embedded VGG-19 and "
                            f"VGG files, {settings.TV_WEIGHT_RELATIVE:g} with HED's VGG-16 or a Keras model; with "
                            f"the Gram loss {settings.TV_WEIGHT:g} on VGG weights and {settings.TV_WEIGHT_EMBEDDED:g} "
                            f"with HED's VGG-16 or a Keras model)")
    group.add_argument("--content-layers", type=layer_list, default=settings.CONTENT_LAYERS, metavar="L1,L2",
                       help="comma-separated content layers (default " + ",".join(settings.CONTENT_LAYERS) + ")")
    group.add_argument("--style-layers", type=layer_list, default=settings.STYLE_LAYERS, metavar="L1,L2,...",
                       help="comma-separated style layers (default " + ",".join(settings.STYLE_LAYERS) + ")")
    group.add_argument("--pooling", choices=settings.POOLING_CHOICES, default=settings.POOLING, help="pooling")
    group.add_argument("--padding", choices=settings.PADDINGS, default=None,
                       help="padding of every convolution (default: replicate for VGG weights, against "
                            "bright dots and a warm strip along the border; zero, the classic tools', for Keras models)")
    group.add_argument("--tileable", action="store_true",
                       help="an output that tiles seamlessly (wallpapers, textures): every convolution of the "
                            "image and its TV term wrap round; the size is rounded to a multiple of 16 "
                            "(docs/tileable.md)")
    group.add_argument("--overscan", type=int, default=None, metavar="PX",
                       help=f"optimise on a canvas PX larger on every side and cut the picture from its middle, "
                            f"so that no strip forms along the edges (default: 1/{round(1 / settings.OVERSCAN_FRACTION)} "
                            f"of each scale's long side, at least {settings.OVERSCAN_MIN}; 0: off, as the presets; "
                            f"--tileable has no edge)")
    group.add_argument("--style-loss", choices=settings.STYLE_LOSSES, default=settings.STYLE_LOSS,
                       help="style statistic: Gram matrix (classic), mean-cov (means and covariances), or w2 "
                            "(Wasserstein-2 between their Gaussians)")
    group.add_argument("--loss-scale", choices=settings.LOSS_SCALE_CHOICES, default=settings.LOSS_SCALE,
                       help="normalisation of the loss terms: classic, normalized (equal at 512 px, TV "
                            "independent of the size elsewhere), or the paper's gatys2016 / gatys-pytorch "
                            "(what --preset sets)")
    group.add_argument("--preset", choices=tuple(presets.PRESETS), default=None,
                       help="exact settings: the classic TensorFlow tool's (classic), the paper's (gatys2016) "
                            "or the authors' later code's (gatys-pytorch); flags given explicitly still win")
    group.add_argument("--ratio", type=float, default=None, metavar="ALPHA/BETA",
                       help="content/style trade-off alpha/beta: sets --content-weight (style weight: the "
                            "preset's, else 1)")
    return group


def port(text):
    """--web's PORT: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number from 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: give a number from 0 to 65535 (0: any free port)")
    return value


def add_web_argument(group):
    """--web [PORT]: neural_style.py's live view (live.py); not a batch job's or a video's flag."""
    from .live import WEB_PORT  # the standard library only

    group.add_argument("--web", type=port, nargs="?", const=WEB_PORT, default=None, metavar="PORT",
                       help=f"show the image and the loss curve as the run goes on http://127.0.0.1:PORT/ "
                            f"(this computer only; PORT {WEB_PORT} when not given, 0: any free port)")
    return group


def add_resume_arguments(group):
    """--checkpoint-every and --resume: neural_style.py's resumable checkpoints (checkpoints.py);
    a batch job (made on a worker) and a video (which resumes by its frames) have neither."""
    group.add_argument("--checkpoint-every", type=int, default=settings.CHECKPOINT_EVERY, metavar="N",
                       help="a resumable checkpoint (beside the output, hidden) every N evaluations, and at the "
                            "end of every scale (0: only there)")
    group.add_argument("--resume", action="store_true",
                       help="continue a run that was killed from its checkpoint, at its scale (same settings)")
    return group


def add_output_arguments(p):
    out = p.add_argument_group("progress and outputs")
    out.add_argument("--print-iterations", type=int, default=None, help="print every loss term every N iterations")
    out.add_argument("--checkpoint-output", default=None,
                     help="checkpoint file name with a placeholder, e.g. out_{:05}.jpg or out_%%05d.jpg")
    out.add_argument("--checkpoint-iterations", type=int, default=None, help="checkpoint every N iterations")
    out.add_argument("--progress-write", action="store_true", help="write progress.txt to the output's directory")
    out.add_argument("--progress-plot", action="store_true", help="plot progress.png to the output's directory")
    out.add_argument("--log", default=None, help="JSON-lines log: one line per iteration with every loss term")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return out


def add_mask_arguments(p):
    """Spatial control (masks.py, docs/spatial-control.md)."""
    masks = p.add_argument_group("spatial control (masks: any image; white = 1, black = 0; its alpha if it has one)")
    masks.add_argument("--style-masks", nargs="+", default=None, metavar="MASK",
                       help="one mask per style over the content: where each style applies; or "
                            f"'{settings.AUTO_SKY}': the photo's sky for the first style, the rest for the second")
    masks.add_argument("--style-region-masks", nargs="+", default=None, metavar="MASK",
                       help="one mask per style over that style image: the region its style is taken from "
                            "(e.g. the painting's sky for the photo's sky)")
    masks.add_argument("--content-mask", default=None, metavar="MASK",
                       help="white: keep the photo there (no style, more content weight); grey: lightly stylised")
    masks.add_argument("--content-mask-weight", type=float, default=settings.CONTENT_MASK_WEIGHT,
                       help="the content weight where --content-mask is white, relative to elsewhere")
    return masks


def add_transfer_arguments(p):
    """Every flag of neural_style.py, in its five groups."""
    add_image_arguments(p)
    add_mask_arguments(p)
    add_optimization_arguments(p)
    add_objective_arguments(p.add_argument_group("objective"))
    add_output_arguments(p)
    return p


# ---------------------------------------------------------------- keywords -> settings
# The two front doors meet here. The command line parses argv once into the keywords the
# user gave (parse_given); the Python API (api.py) takes them as the caller typed them.
# Both go down settings_from_keywords: each value converted and checked by its flag's own
# type= and choices, the defaults filled in, the preset applied, the checks run.

# What parse_given's namespace holds for a flag not given: argparse sets a default only on
# a dest the namespace lacks, so one parse tells the given flags from the defaults, while
# the parser keeps its defaults for --help.
_NOT_GIVEN = object()


def parse_given(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """argv parsed once -> {dest: value} of the flags given (whatever their value: `--pooling
    max` is given, though max is the default, and a preset must not override it). A missing
    required flag and a bad value are the parser's own errors (its error())."""
    namespace = argparse.Namespace(**{action.dest: _NOT_GIVEN for action in parser._actions})
    args = parser.parse_args(list(argv), namespace)
    return {dest: value for dest, value in vars(args).items() if value is not _NOT_GIVEN}


def _default(action: argparse.Action) -> Any:
    """The value argparse gives a flag that is not given (a string default goes through type=)."""
    if isinstance(action.default, str) and callable(action.type):
        return action.type(action.default)
    return action.default


def parse_once(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> tuple[argparse.Namespace, set[str]]:
    """(every dest with its value or default, the dests given): for a command that reads
    flags of its own beside the transfer's (compare.py, video.py). argv is parsed once."""
    parser = build_parser()
    given = parse_given(parser, argv)
    values = {action.dest: _default(action) for action in parser._actions if action.default is not argparse.SUPPRESS}
    return argparse.Namespace(**(values | given)), set(given)


def _one_value(parser: argparse.ArgumentParser, action: argparse.Action, value: Any) -> Any:
    """One value of a flag, as argparse would make it: a string goes through argparse itself
    (type= and its message); a typed value is checked against type= (5 for an int flag, a
    sequence of names for a layer list). Then choices. Raises argparse.ArgumentError."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        # argparse's own conversion, so that the message is the command line's word for word.
        result = parser._get_value(action, value)
    elif action.type is layer_list and isinstance(value, Iterable):
        result = layer_list(",".join(map(str, value)))
    elif action.type is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        result = int(value)
    elif action.type is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        result = float(value)
    elif action.type not in (None, int, float, layer_list) and callable(action.type) and not isinstance(value, bool):
        try:  # e.g. port(), which takes a number as well as its text
            result = action.type(value)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(action, str(exc)) from None
    else:
        kind = getattr(action.type, "__name__", "str")
        raise argparse.ArgumentError(action, f"invalid {kind} value: {value!r}")
    parser._check_value(action, result)
    return result


def convert(parser: argparse.ArgumentParser, action: argparse.Action, value: Any) -> Any:
    """A keyword's value -> the flag's value, as argparse makes it of the command line's
    text: True for a switch, the const for a bare optional value (preserve_colors=True),
    a tuple for a flag of many values (one value or a sequence), each converted and checked.
    Raises UsageError with argparse's one-line message."""
    try:
        if action.nargs == 0:  # a switch (store_true)
            if not isinstance(value, bool):
                raise argparse.ArgumentError(action, f"a switch takes True or False, not {value!r}")
            return action.const if value else action.default
        if value is True and action.nargs == "?":
            return action.const
        if action.nargs in ("+", "*"):
            single = isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable)
            items = [value] if single else list(value)
            if not items and action.nargs == "+":
                raise argparse.ArgumentError(action, "expected at least one argument")
            return tuple(_one_value(parser, action, item) for item in items)
        return _one_value(parser, action, value)
    except argparse.ArgumentError as exc:
        raise UsageError(str(exc)) from None


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def parse_settings(args: argparse.Namespace, explicit: Iterable[str] = ()) -> Settings:
    """Parsed arguments -> one frozen Settings, with --preset and --ratio applied; `explicit`:
    the dests given (see parse_once).

    Every dest of `args` that names a setting is taken; the others (e.g. a command's
    own flags) are left to the command. Raises ValueError for a preset conflict.
    """
    values = {dest: _tuple(value) for dest, value in vars(args).items() if dest in settings.FIELD_OF_DEST}
    values.setdefault("content", None)
    values.setdefault("styles", ())
    values.setdefault("output", None)
    run = settings.RunSettings(content=values.pop("content"), styles=values.pop("styles"),
                               output=values.pop("output"))
    base = Settings(run=run).with_values(values)
    return presets.apply_preset(base, set(explicit), base.run.preset, base.run.ratio)


def build_settings(parser: argparse.ArgumentParser, keywords: Mapping[str, Any],
                   files: Mapping[str, Any] | None = None) -> Settings:
    """The keywords given ({dest: value}, typed or as text) -> frozen Settings, with the
    parser's defaults for the rest and the preset applied (it fills in only what was not
    given); not yet validated. `files`: content, styles and output as they are, not
    converted (the API's: None for an image given as an array, or for no output file).
    Raises UsageError for an unknown dest, a bad value or a preset conflict."""
    actions = {action.dest: action for action in parser._actions
               if action.option_strings and action.default is not argparse.SUPPRESS}
    unknown = sorted(set(keywords) - set(actions))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]}")
    given = {dest: convert(parser, actions[dest], value) for dest, value in keywords.items()} | dict(files or {})
    values = {dest: _default(action) for dest, action in actions.items()} | given
    try:
        return parse_settings(argparse.Namespace(**values), given)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def settings_from_keywords(parser: argparse.ArgumentParser, keywords: Mapping[str, Any]) -> Settings:
    """build_settings, validated (checks.validate): the one path of every front door."""
    result = build_settings(parser, keywords)
    checks.validate(result)
    return result


def settings_from_argv(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> Settings:
    """A transfer's argv -> validated, frozen Settings (a preset applied): what neural_style.py
    does with its command line and a batch with each job's. Raises UsageError; a flag argparse
    rejects is reported by the parser's own error() (one line and exit 2, or a UsageError)."""
    parser = build_parser()
    return settings_from_keywords(parser, parse_given(parser, argv))
