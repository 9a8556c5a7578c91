"""Defaults and the frozen settings of one transfer, free of TensorFlow.

Every default is defined here once; the command line shows them in --help and the
algorithm (stylize.py) uses them, so the two can never disagree. A run's settings are
three frozen dataclasses, made once from the command line (cli.py), transformed by a
preset (presets.py) and checked up front (checks.py):

    LossOptions       what the objective is (stylize.Objective)
    OptimizerOptions  how it is minimised and when to stop (stylize.minimize, coarse-to-fine)
    RunSettings       the files, the network, the start image, colours and the outputs

Nothing downstream of the command line reads the argparse Namespace.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# ---------------------------------------------------------------- defaults
# The classic TensorFlow tool's defaults (anishathalye/neural-style), kept so that its
# users' flags mean the same thing here.
CONTENT_WEIGHT = 5e0
CONTENT_WEIGHT_BLEND = 1.0
STYLE_WEIGHT = 5e2
TV_WEIGHT = 1e2
# The embedded HED VGG-16 has feature losses about 100x smaller than VGG-19's for the
# same images, so the classic TV weight would blur everything. Measured on the example
# images (256 px, 100 L-BFGS iterations): 1e0 keeps the same balance as 1e2 on VGG-19.
# Keras models are scaled to the embedded network's magnitudes (keras_network.py), so
# they get it too: see FeatureNetwork.default_tv_weight.
TV_WEIGHT_EMBEDDED = 1e0
# weight(layer n+1) = exp * weight(layer n). The classic tool's 1 (equal weights) stays the
# HED network's and the Keras models': measured on the quality panel (docs/quality.md), 0.25
# (the shallow layers weigh most) brings back a fine dot mesh in the sky with HED's
# edge-tuned first layers. For ImageNet VGG weights (the embedded VGG-19, .mat/.h5 files)
# 0.5, measured at 256 px on Neckarfront x The Starry Night, 100 iterations (docs/quality.md):
# 1 paints the painting's moons over the town and loses it (SSIM to the photo 0.43); 0.25
# keeps the photo with small strokes only (SSIM 0.56, held-out style distance 3144); 0.5
# paints the sky's swirls and keeps the town readable (SSIM 0.50, style distance 1806).
STYLE_LAYER_WEIGHT_EXP = 1.0
STYLE_LAYER_WEIGHT_EXP_VGG = 0.5
# What --content-weight 5 (the classic tool's number) means with a relative style loss
# (losses.relative_content_weight: each content layer over its target's mean square, times
# this scale). 64 was measured on HED's VGG-16, the embedded network until issue 23, and is
# kept for it and for Keras models (scaled to its magnitudes, keras_network.py). On ImageNet
# VGG weights 64 kept too much of the photo (512 px, 150 iterations: SSIM to the photo
# 0.42-0.52 against the classic reference's 0.18-0.41). Measured on the four reference pairs
# at 512 px (docs/quality.md, "The default on VGG-19"), 64 x 2/5, x 1/5 and x 0.5/5: only the
# last brings The Starry Night, The Scream and Composition VII inside the reference's SSIM
# range with a held-out style distance at or below the reference's, the town still readable;
# the Shipwreck stays above it on both (253 against 177, SSIM 0.47). A higher
# --content-weight gives back the photo-keeping looks (50 is the old balance).
RELATIVE_CONTENT_SCALE = 64.0
RELATIVE_CONTENT_SCALE_VGG = 6.4
LEARNING_RATE = 1e1
BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-08
STYLE_SCALE = 1.0
# Iterations at the final size (coarse-to-fine runs COARSE_ITERATIONS at each coarser
# one). The classic tool's 1000 take about 45 min at 512 px here. From the photo, with
# W2, L-BFGS at 512 px is within 2% of its loss after 500 evaluations after 129
# evaluations; 150 iterations (151-173 evaluations, 8-9 min here) end 1.4% above it at a
# third of its time and give the finished look of docs/quality.md (time to quality:
# docs/performance.md). --preset classic restores 1000.
ITERATIONS = 150
POOLING = "max"
POOLING_CHOICES = ("max", "avg")
OPTIMIZER = "lbfgs"
OPTIMIZERS = ("lbfgs", "adam")
# History size of L-BFGS. SciPy's default is 10; 20 measured at least as good per
# evaluation on the example images, and its memory (2 x 20 image-sized float64
# vectors) is small next to the network's activations.
LBFGS_CORRECTIONS = 20
# The RMS change, in grey levels per pixel, of L-BFGS's first step (stylize.lbfgs_scale).
# With every pixel boxed in 0..255, SciPy's L-BFGS-B takes the gradient itself as its
# first step; the style loss's gradient is ~1e-2..1e-4 per pixel, so the image barely
# moves and the line search spends 15-20 evaluations growing the step (measured: L-BFGS
# 7.6x the best Adam's loss at evaluation 17, 256 px from the content). Measured at
# 256 px, from the content and from noise, for 1, 3, 10 and 30: every one puts L-BFGS
# below the best Adam learning rate from evaluation 15 on; 10 was best in both
# (docs/lbfgs-vs-adam.md). 0 restores SciPy's own start (the classic tools').
LBFGS_FIRST_STEP = 10.0
CONTENT_LAYERS = ("relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Colour control (color.py), coarse-to-fine (coarse_to_fine.py), loss scales, bit depth.
PRESERVE_MODES = ("luminance", "luminance-only", "histogram")
COLOR_MATCHES = ("sqrt", "cholesky")
COLOR_MATCH = "sqrt"
LOSS_SCALE = "classic"
# classic and normalized are for everyday use; the other two are the paper's and the
# authors' later code's (what --preset sets), offered so they can be mixed with other flags.
LOSS_SCALE_CHOICES = ("classic", "normalized", "gatys2016", "gatys-pytorch")
BIT_DEPTHS = (8, 16)
BIT_DEPTH = 8
# How style images are sized: "width" (the classic tool: --style-scales times the
# output width) or "content" (the paper: the content's height and width).
STYLE_SIZES = ("width", "content")
STYLE_SIZE = "width"
# Start from the content photo, not from noise (the classic tools' default). From noise,
# the optimiser must rebuild the photo's layout through the content term alone; measured
# on the quality panel (docs/quality.md), 80-100 L-BFGS iterations from noise at 256 px
# lose the town in abstract shapes, while from the content the layout is kept and the
# style still covers the frame. --initial-noiseblend 1 (or --preset classic) starts from noise.
INITIAL_NOISEBLEND = 0.0
# Coarse-to-fine (coarse_to_fine.py) is on by default only for outputs whose long side
# is above AUTO_ABOVE, from AUTO_START_SIZE; every scale coarser than the final one runs
# COARSE_ITERATIONS. Measured at 512 px (docs/quality.md): one scale keeps the photo's
# layout readable and still covers the sky with strokes, while coarse-to-fine from 128
# px paints large swirls over the town and grows a cypress from the painting; at 256 px
# it was also 1.3x slower to the same loss (docs/performance.md). Above 1024 px memory
# and time make it worth it.
AUTO_ABOVE = 1024
AUTO_START_SIZE = 512
COARSE_ITERATIONS = 100
# Quality options (issue 13; measured in docs/quality.md). Each has a classic value that
# --preset classic restores.
# Padding of the network's convolutions: the classic tools zero-pad, which the network
# reads as a black frame and answers with bright dots along the border; replicate
# padding (crowsonkb's style-transfer-pytorch) removes them. Every convolution, as
# crowsonkb does: with the first one alone replicated (issues 13-23), the deeper layers'
# zero frame still pushed a warm strip into the last 5-6 columns at 512 px (issue 23,
# docs/quality.md). None = the network's default (FeatureNetwork.default_padding:
# replicate for VGG weights, zero for Keras models, whose graph is fixed).
PADDINGS = ("zero", "replicate", "reflect")
# Style statistics: the classic Gram matrix, mean and covariance (MSE of both), or the
# Wasserstein-2 distance between the Gaussians they define (crowsonkb; Risser et al.).
STYLE_LOSSES = ("gram", "mean-cov", "w2")
# W2 by default. Measured on the quality panel with the embedded network (256 px, 80
# L-BFGS iterations from the content, docs/quality.md): with the Gram loss the sky is a
# regular fine mesh of dots and stays the photo's grey-blue; with W2 the mesh is gone and
# the painting's strokes cover the whole frame, the sky included, as in the classic
# reference. For VGG-19 (not measurable here) W2 is also what the literature chose
# (crowsonkb's style-transfer-pytorch; Risser et al. 2017 on the Gram matrix's instability).
# It costs one eigendecomposition per style layer and evaluation (C x C, whatever the
# image size): about +0.1 s at 256 px, a few % at 512 px.
STYLE_LOSS = "w2"
# The style losses measured in units of the painting's own spread (losses.StyleStatistic.
# relative): with them the content term is relative too, and the TV weight depends on the
# network only through its relative content scale. TV_WEIGHT_RELATIVE is HED's VGG-16's
# (TV_WEIGHT_EMBEDDED), measured there with content scale 64; Keras models keep it.
RELATIVE_STYLE_LOSSES = ("w2", "mean-cov")
TV_WEIGHT_RELATIVE = 1e0
# For ImageNet VGG weights (the embedded VGG-19, .mat/.h5 files), whose content scale is 10x
# smaller (6.4), the TV weight is 10x smaller too: the TV:content balance measured on HED.
# With 1, TV held the shallow layers' texture back: on the quality panel at 512 px (150
# iterations, docs/quality.md) the Shipwreck's held-out style distance fell from 253 to 71
# with 0.1 (the classic reference: 177); 0 gives about the same (70) with no guard against
# pixel noise.
TV_WEIGHT_RELATIVE_VGG = 1e-1
# Exponential moving average of the iterates (0 = off): the result is the average, which
# removes the iterate noise of Adam (crowsonkb uses 0.99 at every scale).
ITERATE_AVERAGE = 0.0
# Spatial control (masks.py, docs/spatial-control.md). --style-masks auto-sky: the sky
# from the photo (sky.py), for the first style, and the rest for the second.
AUTO_SKY = "auto-sky"
# Where --content-mask is white the styles do not apply, and a term of this weight holds
# the pixels to the photo (the mean squared difference over the subject, as video.py's
# temporal term; measured in docs/spatial-control.md). Grey: lightly stylised.
CONTENT_MASK_WEIGHT = 1.0
# The precision the network's convolutions run in (--precision; tf_runtime.choose_precision).
# "auto": bfloat16 where the CPU computes it natively (AMX-BF16 or AVX512-BF16, with
# oneDNN on), else float32. Measured on an Intel Xeon with AMX, 2 threads, 512x384, VGG-19
# to relu5_1 forward + backward: 0.96 s in float32, 0.29 s with the network in bfloat16
# (docs/performance.md). Only the network: its features are cast back to float32, and the
# style statistics, the losses and their sums stay float32 (float64 where they are),
# because SciPy's line search needs precise values (bfloat16 sums have 3 significant digits).
PRECISIONS = ("auto", "float32", "bfloat16")
PRECISION = "auto"


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class LossOptions:
    """Everything that defines the objective (not how it is optimised)."""

    content_weight: float = CONTENT_WEIGHT
    content_weight_blend: float = CONTENT_WEIGHT_BLEND
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
    loss_scale: str = LOSS_SCALE  # a key of stylize.LOSS_SCALES: how each term is normalised
    # None: the network's own default (FeatureNetwork.default_padding), see effective_padding.
    padding: str | None = None
    style_loss: str = STYLE_LOSS


@dataclass(frozen=True)
class OptimizerOptions:
    """How the objective is minimised, and when to stop."""

    optimizer: str = OPTIMIZER
    iterations: int = ITERATIONS
    max_evaluations: int | None = None
    time_budget: float | None = None  # seconds
    lbfgs_corrections: int = LBFGS_CORRECTIONS
    lbfgs_first_step: float = LBFGS_FIRST_STEP
    learning_rate: float = LEARNING_RATE
    beta1: float = BETA1
    beta2: float = BETA2
    epsilon: float = EPSILON
    iterate_average: float = ITERATE_AVERAGE  # EMA decay of the iterates, 0 = off
    # Coarse-to-fine (coarse_to_fine.py): the number of sizes, or the first long side.
    scales: int | None = None
    start_size: int | None = None
    coarse_iterations: int = COARSE_ITERATIONS


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
    normalise_network: bool = False
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
