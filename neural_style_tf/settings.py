"""Defaults and the frozen settings of one transfer, free of TensorFlow.

Every default is defined here once: the command line shows them in --help, and the
dataclasses below default to them, so a library call (objective.Objective with no options)
and the plain command build the same objective (tests/test_problem.py shows it). A run's
settings are three frozen dataclasses, made once by cli.build_settings from the command
line's or the API's keywords, transformed by a preset (presets.py) and checked up front
(checks.py):

    LossOptions       what the objective is (objective.Objective)
    OptimizerOptions  how it is minimised and when to stop (optimize.minimize, coarse-to-fine)
    RunSettings       the files, the network, the start image, colours and the outputs

Nothing downstream of cli.build_settings reads an argparse Namespace.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# ---------------------------------------------------------------- defaults
# Each default has its reason in a line, and the measurement behind it on the page the
# link names; a default that differs from the classic tool's is in the table of
# docs/quality.md#the-defaults-now.
# The classic TensorFlow tool's defaults (anishathalye/neural-style): its users' flags mean the same here.
CONTENT_WEIGHT = 5e0
CONTENT_WEIGHT_BLEND = 1.0
# 600, the classic 500 x 1.2: with the stop below the plain 512 px command ends after 60-100
# iterations instead of 100, and the stronger style pull gives the painting's look of 150
# iterations there (issue 34; docs/performance.md#a-stop-when-the-loss-settles). The presets keep 500.
STYLE_WEIGHT = 6e2
TV_WEIGHT = 1e2
# HED's VGG-16 and Keras models (scaled to its magnitudes): its feature losses are ~100x
# smaller than VGG-19's, so 1 keeps the balance 100 has there (docs/quality.md#settings-measured-on-heds-vgg-16).
TV_WEIGHT_EMBEDDED = 1e0
# weight(layer n+1) = exp * weight(layer n). 1 (the classic equal weights) for HED's VGG-16 and
# Keras models: 0.25 brings the dot mesh back there (docs/quality.md#screening-the-options-256-px-three-pairs).
# 0.5 for ImageNet VGG weights: 1 loses the town, 0.25 keeps only small strokes
# (docs/quality.md#the-default-on-vgg-19-the-embedded-network-since-issue-23).
STYLE_LAYER_WEIGHT_EXP = 1.0
STYLE_LAYER_WEIGHT_EXP_VGG = 0.5
# What --content-weight 5 means with a relative style loss (losses.relative_content_weight).
# 64: HED's VGG-16 and Keras models (docs/quality.md#settings-measured-on-heds-vgg-16); 6.4: ImageNet
# VGG weights, where 64 kept too much photo (docs/quality.md#the-default-on-vgg-19-the-embedded-network-since-issue-23).
RELATIVE_CONTENT_SCALE = 64.0
RELATIVE_CONTENT_SCALE_VGG = 6.4
# Below CONTENT_SIZE_REFERENCE px (the long side) that relative content term grows as
# (CONTENT_SIZE_REFERENCE / long side) ** CONTENT_SIZE_POWER (losses.content_size_factor): at
# 128 px the defaults balanced for 512 px paint the painting's own composition over the photo,
# and at 256 px moons over the houses (docs/quality.md#one-look-at-every-size). 0: the same at every size.
CONTENT_SIZE_REFERENCE = 512
CONTENT_SIZE_POWER = 2.0
# Below this long side the factor stays at its value here: the law was measured down to 128 px.
CONTENT_SIZE_SMALLEST = 128
LEARNING_RATE = 1e1
BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-08
STYLE_SCALE = 1.0
# Iterations at the final size (coarse-to-fine runs COARSE_ITERATIONS at each coarser one): 100
# look as 150 did on all six panel pairs, a third sooner (docs/performance.md#time-to-a-finished-look).
ITERATIONS = 100
# L-BFGS stops before --iterations when the loss fell less than MIN_IMPROVEMENT percent over
# the last STOP_WINDOW iterations (optimize.Settled): the iterations that barely change the
# picture. 1.3 stops the six panel pairs at 512 px after 62-98 iterations, each with the look
# of 150 (docs/performance.md#a-stop-when-the-loss-settles). 0: run every iteration.
MIN_IMPROVEMENT = 1.3
STOP_WINDOW = 10
POOLING = "max"
POOLING_CHOICES = ("max", "avg")
OPTIMIZER = "lbfgs"
OPTIMIZERS = ("lbfgs", "adam")
# History size of L-BFGS (SciPy's default): at 512 px with VGG-19 the six panel pairs after
# 100 iterations look as with 20 (style distance -1.8% to +2.7%, SSIM within 0.003), for 94 MB
# less memory and a cheaper SciPy step (docs/lbfgs-vs-adam.md#the-history-10-corrections).
LBFGS_CORRECTIONS = 10
# The RMS change, in grey levels per pixel, of L-BFGS's first step (optimize.lbfgs_scale):
# SciPy's own start barely moves the image for 15-20 evaluations; 10 was the best of 1, 3,
# 10 and 30 (docs/lbfgs-vs-adam.md#l-bfgss-start). 0 restores SciPy's start.
LBFGS_FIRST_STEP = 10.0
# How L-BFGS keeps the pixels in 0..255: fold (optimize.fold), a change of variable that mirrors
# a pixel back into the box, with no bounds for SciPy, whose boxed step cost most of the time
# outside session.run. On the six panel pairs at 512 px it gives the box's pictures (style
# distance -6% to +2%, SSIM within 0.014, fewer pixels stuck at 0 or 255). The soft box's
# tails darkened the Shipwreck's shadows (docs/performance.md#the-soft-box-and-the-fold);
# box is SciPy's bounds, the presets' choice.
LBFGS_BOUNDS_CHOICES = ("soft", "fold", "box")
LBFGS_BOUNDS = "fold"
CONTENT_LAYERS = ("relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Colour control (color.py), coarse-to-fine (coarse_to_fine.py), loss scales, bit depth.
PRESERVE_MODES = ("luminance", "luminance-only", "histogram")
COLOR_MATCHES = ("sqrt", "cholesky")
COLOR_MATCH = "sqrt"
LOSS_SCALE = "classic"
# classic and normalized for everyday use; the paper's and its authors' code's (what --preset
# sets) are offered too, to mix with other flags (docs/beyond-the-classic-tools.md).
LOSS_SCALE_CHOICES = ("classic", "normalized", "gatys2016", "gatys-pytorch")
BIT_DEPTHS = (8, 16)
BIT_DEPTH = 8
# How style images are sized: "width" (the classic tool: --style-scales times the
# output width) or "content" (the paper: the content's height and width).
STYLE_SIZES = ("width", "content")
STYLE_SIZE = "width"
# Start from the content photo, not from noise (the classic tools'): from noise 100 iterations
# lose the layout (docs/quality.md#screening-the-options-256-px-three-pairs). 1 starts from noise.
INITIAL_NOISEBLEND = 0.0
# Coarse-to-fine only above AUTO_ABOVE px, from AUTO_START_SIZE, COARSE_ITERATIONS per coarser
# scale: at 512 px one scale keeps the layout and is faster (docs/quality.md#coarse-to-fine-or-one-scale-at-512-px).
AUTO_ABOVE = 1024
AUTO_START_SIZE = 512
COARSE_ITERATIONS = 100
# L-BFGS stops before --iterations when the loss fell less than MIN_IMPROVEMENT percent over
# the last STOP_WINDOW iterations (optimize.Settled): the iterations that barely change the
# picture. 1.3 stops the six panel pairs at 512 px after 62-98 iterations, each with the look
# of 150 (docs/performance.md#a-stop-when-the-loss-settles). 0: run every iteration.
MIN_IMPROVEMENT = 1.3
STOP_WINDOW = 10
# --photo-detail: each larger scale starts from the previous one's image resized plus the
# photo's detail that the smaller size could not hold. At 512 px from 256 or 362 px it gave the
# single scale's SSIM to the photo back (0.357 -> 0.401) at the same style distance; off by
# default, as the print-size schedule above AUTO_ABOVE was measured without it
# (docs/performance.md#coarse-to-fine-with-the-photos-detail).
PHOTO_DETAIL = False
# Print size (print_size.py, tiling.py): a scale whose untiled estimate is above this many GB
# is evaluated in tiles, so that a 4K print runs in the memory of an ordinary laptop
# (docs/print-size.md).
MEMORY_BUDGET_GB = 6.0
# Quality options: each has a classic value that --preset classic restores.
# Overscan (overscan.py): each scale is optimised on a canvas larger on every side by this
# fraction of its long side, at least OVERSCAN_MIN px, and the picture cut from its middle: the
# network's padding made a light or dark strip along some edges, as wide as a fixed share of the
# frame (docs/quality.md#clean-edges-overscan). --overscan PX fixes the margin; 0: none.
OVERSCAN_FRACTION = 1 / 64
OVERSCAN_MIN = 4
# Padding of every convolution: zero padding is a black frame to the network (bright dots,
# a warm strip at the right edge), so the network's default is replicate for VGG weights
# (zero for Keras models, whose graph is fixed): docs/quality.md#the-strip-along-the-right-edge-issue-23.
PADDINGS = ("zero", "replicate", "reflect")
# --tileable (tileable.py, docs/tileable.md): the optimised image's convolutions wrap round, so
# that its left edge is the right edge's neighbour and a tile of it repeats without a seam. Not
# one of --padding's choices: the targets (the photo, the paintings) are not periodic and keep
# --padding; only the image being made is, and the TV term wraps round with it.
WRAP_PADDING = "wrap"
# Style statistics: the classic Gram matrix, mean and covariance (MSE of both), or the
# Wasserstein-2 distance between the Gaussians they define (crowsonkb; Risser et al.).
STYLE_LOSSES = ("gram", "mean-cov", "w2")
# W2: the Gram loss leaves a mesh of dots in the sky, W2 paints strokes across the frame
# (docs/quality.md#screening-the-options-256-px-three-pairs), for 8% (float32) to 31% (bfloat16)
# of an evaluation at 512 px (docs/performance.md#bfloat16-w2-and-the-time-around-sessionrun-2026-12-03).
STYLE_LOSS = "w2"
# The style losses in units of the painting's own spread (losses.StyleStatistic.relative): the
# content term is then relative too, and the TV weight follows the network's content scale.
# 1: HED's VGG-16's, measured with content scale 64 (docs/quality.md#settings-measured-on-heds-vgg-16); Keras models keep it.
RELATIVE_STYLE_LOSSES = ("w2", "mean-cov")
TV_WEIGHT_RELATIVE = 1e0
# 0.1 for ImageNet VGG weights: content scale 10x smaller, TV 10x smaller; 1 held the fine
# texture back (docs/quality.md#the-default-on-vgg-19-the-embedded-network-since-issue-23).
TV_WEIGHT_RELATIVE_VGG = 1e-1
# Exponential moving average of the iterates (0 = off; crowsonkb uses 0.99): with W2 it removes
# nothing visible, so off (docs/quality.md#the-iterate-average-for-adam).
ITERATE_AVERAGE = 0.0
# Spatial control (masks.py, docs/spatial-control.md). --style-masks auto-sky: the sky
# from the photo (sky.py), for the first style, and the rest for the second.
AUTO_SKY = "auto-sky"
# Where --content-mask is white the styles do not apply, and a term of this weight holds the
# pixels to the photo (as video.py's temporal term; docs/spatial-control.md#how-it-works). Grey: lightly stylised.
CONTENT_MASK_WEIGHT = 1.0
# The network's precision (--precision; tf_runtime.choose_precision). "auto": bfloat16 where the
# CPU computes it natively, 3.3x faster; the losses stay float32 for SciPy's line search
# (docs/performance.md#--precision-autofloat32bfloat16).
PRECISIONS = ("auto", "float32", "bfloat16")
PRECISION = "auto"
# Resumable checkpoints (checkpoints.py, --resume): besides one at every scale's end, one every
# this many evaluations, so that a kill loses at most that much work (0: only at the scales' ends).
# About a minute of work at 512 px on 2 cores; writing one (a float32 .npz) takes milliseconds.
CHECKPOINT_EVERY = 50


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class LossOptions:
    """Everything that defines the objective (not how it is optimised)."""

    content_weight: float = CONTENT_WEIGHT
    content_weight_blend: float = CONTENT_WEIGHT_BLEND
    # With a relative style loss, the content term's growth below CONTENT_SIZE_REFERENCE px.
    content_size_power: float = CONTENT_SIZE_POWER
    style_weight: float = STYLE_WEIGHT
    # None: the network's own default (FeatureNetwork.default_style_layer_weight_exp).
    style_layer_weight_exp: float | None = None
    # None: the network's own default (FeatureNetwork.default_tv_weight), see effective_tv_weight.
    # None here as on the command line (--tv-weight's default), so that the library's
    # Objective(net, content, styles) and the plain command build the same objective.
    tv_weight: float | None = None
    content_layers: tuple = CONTENT_LAYERS
    style_layers: tuple = STYLE_LAYERS
    style_blend_weights: tuple | None = None  # one per style; normalised to sum to 1
    style_scales: tuple | None = None  # one per style; relative to the content width
    pooling: str = POOLING
    loss_scale: str = LOSS_SCALE  # a key of losses.LOSS_SCALES: how each term is normalised
    # None: the network's own default (FeatureNetwork.default_padding), see effective_padding.
    padding: str | None = None
    style_loss: str = STYLE_LOSS
    tileable: bool = False  # --tileable: wrap-around convolutions and TV for the image (WRAP_PADDING)
    overscan: int | None = None  # px of free margin on each side while optimising; None: by size (overscan.py)


@dataclass(frozen=True)
class OptimizerOptions:
    """How the objective is minimised, and when to stop."""

    optimizer: str = OPTIMIZER
    iterations: int = ITERATIONS
    # Percent over STOP_WINDOW iterations, L-BFGS at the final scale only; 0: off.
    min_improvement: float = MIN_IMPROVEMENT
    max_evaluations: int | None = None
    time_budget: float | None = None  # seconds
    lbfgs_corrections: int = LBFGS_CORRECTIONS
    lbfgs_first_step: float = LBFGS_FIRST_STEP
    lbfgs_bounds: str = LBFGS_BOUNDS
    learning_rate: float = LEARNING_RATE
    beta1: float = BETA1
    beta2: float = BETA2
    epsilon: float = EPSILON
    iterate_average: float = ITERATE_AVERAGE  # EMA decay of the iterates, 0 = off
    # Coarse-to-fine (coarse_to_fine.py): the number of sizes, or the first long side.
    scales: int | None = None
    start_size: int | None = None
    coarse_iterations: int = COARSE_ITERATIONS
    photo_detail: bool = PHOTO_DETAIL  # later scales start with the photo's finer detail added
    # Print size (print_size.py): the memory budget in GB, and the tiles' core side (None: from the budget).
    memory_budget: float = MEMORY_BUDGET_GB
    tile_size: int | None = None


# What a RunSettings field is, declared once on the field (dataclasses.field metadata) and
# read through input_file_fields() and presentation_fields(), so that every list of "the
# input files" or "what does not change the image" (a batch job's id, a video's resume
# fingerprint, a batch worker's copies of the inputs) follows a new field by itself.
INPUT = "input"  # metadata key: "file" (one path or None) or "files" (a tuple of paths or None)
PRESENTATION = "presentation"  # metadata key: True when the field does not change the image


def _input_file(*default):
    """A field naming a file the transfer reads (the network: a file, or None for the embedded one)."""
    return dataclasses.field(**({"default": default[0]} if default else {}), metadata={INPUT: "file"})


def _input_files(*default):
    """A field naming files the transfer reads, one per style (masks: or AUTO_SKY)."""
    return dataclasses.field(**({"default": default[0]} if default else {}), metadata={INPUT: "files"})


def _presentation(default):
    """A field that does not change the image: where it goes, what is printed, checkpoints, logs."""
    return dataclasses.field(default=default, metadata={PRESENTATION: True})


@dataclass(frozen=True)
class RunSettings:
    """The files, the network, the start image, colours and the outputs of one transfer."""

    content: str = _input_file()
    styles: tuple = _input_files()
    # mypy reads the _input_file() calls above as defaults; they are required fields (no default).
    output: str = dataclasses.field(metadata={PRESENTATION: True})  # type: ignore[misc]  # the format is the image's encoding only
    width: int | None = None
    initial: str | None = _input_file(None)
    initial_noiseblend: float | None = INITIAL_NOISEBLEND
    preserve_colors: str | None = None
    color_match: str = COLOR_MATCH
    color_source: str | None = _input_file(None)
    bit_depth: int = BIT_DEPTH
    overwrite: bool = _presentation(False)
    seed: int | None = None
    network: str | None = _input_file(None)
    input_range: str | None = None
    precision: str = PRECISION
    preset: str | None = None
    ratio: float | None = None
    style_size: str = STYLE_SIZE
    normalize_network: bool = False
    print_iterations: int | None = _presentation(None)
    checkpoint_output: str | None = _presentation(None)
    checkpoint_iterations: int | None = _presentation(None)
    progress_write: bool = _presentation(False)
    progress_plot: bool = _presentation(False)
    log: str | None = _presentation(None)
    quiet: bool = _presentation(False)
    # --web [PORT]: the live view (live.py) on 127.0.0.1:PORT while the run goes; 0: any free port.
    web: int | None = _presentation(None)
    # Spatial control: mask files (or AUTO_SKY), see masks.py.
    style_masks: tuple | None = _input_files(None)  # one per style, over the content
    style_region_masks: tuple | None = _input_files(None)  # one per style, over that style image
    content_mask: str | None = _input_file(None)  # white: keep the photo there
    content_mask_weight: float = CONTENT_MASK_WEIGHT
    # Resumable checkpoints (checkpoints.py): every N evaluations and at each scale's end;
    # --resume continues a killed run. Only neural_style.py's command has the flags and
    # keeps them (transfer.execute's `resumable`): a batch job's output is made on a
    # worker, a video resumes by its frames, the API returns its image.
    checkpoint_every: int = _presentation(CHECKPOINT_EVERY)
    resume: bool = _presentation(False)


def input_file_fields(kind=None):
    """The RunSettings fields that name input files, in declaration order; `kind`: only
    "file" (one path) or only "files" (a tuple of paths)."""
    return tuple(f.name for f in dataclasses.fields(RunSettings)
                 if f.metadata.get(INPUT) and kind in (None, f.metadata[INPUT]))


def presentation_fields():
    """The RunSettings fields that do not change the image, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(RunSettings) if f.metadata.get(PRESENTATION))


@dataclass(frozen=True)
class Settings:
    """One transfer: the three parts above."""

    run: RunSettings
    loss: LossOptions = LossOptions()
    optimizer: OptimizerOptions = OptimizerOptions()

    def with_values(self, values):
        """A copy with `values` ({command-line dest: value}) put in their parts."""
        parts: dict[str, dict] = {"run": {}, "loss": {}, "optimizer": {}}
        for dest, value in values.items():
            part, name = FIELD_OF_DEST[dest]
            parts[part][name] = value
        return Settings(**{part: dataclasses.replace(getattr(self, part), **changes)
                           for part, changes in parts.items()})

    def value(self, dest):
        """The value of the setting a command-line dest names."""
        part, name = FIELD_OF_DEST[dest]
        return getattr(getattr(self, part), name)

    def as_dict(self):
        """Plain JSON-ready values, for logs and result records."""
        return {part: jsonable(dataclasses.asdict(getattr(self, part))) for part in ("run", "loss", "optimizer")}


# Command-line dests whose setting has another name.
_RENAMED = {"eps": "epsilon"}


def _field_of_dest():
    table = {}
    for part, cls in (("run", RunSettings), ("loss", LossOptions), ("optimizer", OptimizerOptions)):
        for f in dataclasses.fields(cls):
            table[f.name] = (part, f.name)
    for dest, name in _RENAMED.items():
        table[dest] = table.pop(name)
    return table


# {command-line dest: (part, field)}: how flags (and presets, which are keyed by them) map to settings.
FIELD_OF_DEST = _field_of_dest()


def effective_tv_weight(loss, network):
    """The TV weight of a run: the one given; else the network's own, for a relative style loss
    (W2, mean-cov: FeatureNetwork.relative_tv_weight) or for the Gram loss (default_tv_weight)."""
    if loss.tv_weight is not None:
        return loss.tv_weight
    return network.relative_tv_weight if loss.style_loss in RELATIVE_STYLE_LOSSES else network.default_tv_weight


def effective_padding(loss, network):
    """The convolutions' padding of a run: the one given, else the network's own default."""
    return network.default_padding if loss.padding is None else loss.padding


def for_network(loss, network):
    """`loss` with every setting left to the network (None) resolved: TV weight, the
    convolutions' padding and style-layer weight exponent. Idempotent: options already
    resolved come back equal."""
    exp = network.default_style_layer_weight_exp if loss.style_layer_weight_exp is None else loss.style_layer_weight_exp
    return dataclasses.replace(loss, tv_weight=effective_tv_weight(loss, network), padding=effective_padding(loss, network),
                               style_layer_weight_exp=exp)


def jsonable(value):
    """Tuples as lists, recursively: a value json.dumps writes as the settings mean it."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value
