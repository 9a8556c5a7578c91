"""Presets: the exact settings of Gatys, Ecker & Bethge (CVPR 2016) and of the authors' later code.

A preset is plain data: values for command-line flags (by argparse dest) plus three
settings that have no flag (`loss_scale`, `style_size`, `normalize_network`).
`apply_preset` turns one `settings.Settings` into another; flags the user gives
explicitly always win over the preset.

The paper's normalised network itself is made and cached by networks/normalization.py.
"""

from __future__ import annotations

STYLE_LAYERS_PAPER = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# Features are taken after the ReLU (relu4_2 for "conv4_2"), as the authors' released
# code does. Settings without a command-line flag are marked (no flag).
PRESETS = {
    # The classic TensorFlow tool (anishathalye/neural-style), for users who want its exact
    # objective and optimiser back: every setting whose default here differs from its.
    "classic": {
        "description": "the classic TensorFlow tool: zero padding, Gram loss, noise start, one scale, "
                       "SciPy's own L-BFGS start",
        "loss_scale": "classic",  # (no flag)
        "content_layers": ("relu4_2", "relu5_2"),
        "content_weight_blend": 1.0,
        "content_size_power": 0.0,  # the same balance at every size, as the classic tool
        "overscan": 0,  # the picture's own canvas, as the classic tool
        "style_layers": STYLE_LAYERS_PAPER,
        "style_layer_weight_exp": 1.0,
        "content_weight": 5e0,
        "style_weight": 5e2,
        "tv_weight": None,  # the network's own: 1e2 for VGG-19 as the classic tool (see TV_WEIGHT_EMBEDDED)
        "pooling": "max",
        "padding": "zero",
        "style_loss": "gram",
        "iterate_average": 0.0,
        "initial_noiseblend": 1.0,  # noise, unless --initial is given
        "optimizer": "lbfgs",
        "min_improvement": 0.0,  # every iteration, as the classic tool
        "iterations": 1000,
        "lbfgs_corrections": 10,  # SciPy's default history, which the classic tool kept
        "lbfgs_first_step": 0.0,  # SciPy's own first step
        "lbfgs_bounds": "box",  # SciPy's bounds, as before the soft box
        "learning_rate": 1e1,
        "scales": 1,  # one scale at every size
        "style_size": "width",  # (no flag)
        "normalize_network": False,  # (no flag)
        "precision": "float32",  # exact: the classic tool computes in float32
    },
    "gatys2016": {
        "description": "Gatys, Ecker & Bethge, CVPR 2016: the paper's losses on the normalised net with avg pooling",
        "loss_scale": "gatys2016",  # (no flag) 1/2 sum (F-P)^2 and sum (G-A)^2 / (4 N^2 M^2)
        "content_layers": ("relu4_2",),
        "content_weight_blend": 1.0,
        "content_size_power": 0.0,  # the paper's weights at every size
        "overscan": 0,  # the paper's canvas is the picture
        "style_layers": STYLE_LAYERS_PAPER,
        # exp 1 gives equal layer weights normalised to sum 1: w_l = 1/5, the paper's.
        "style_layer_weight_exp": 1.0,
        # alpha / beta = 1e-3 (Figure 3, Turner); --ratio changes it.
        "content_weight": 1e-3,
        "style_weight": 1.0,
        "tv_weight": 0.0,  # the paper has no total-variation term
        "pooling": "avg",
        "padding": "zero",  # the paper's network zero-pads every convolution
        "style_loss": "gram",
        "iterate_average": 0.0,  # the result is L-BFGS's best iterate
        "initial_noiseblend": 1.0,  # start from white noise
        "optimizer": "lbfgs",
        "min_improvement": 0.0,  # every iteration, as the classic tool
        "lbfgs_corrections": 20,  # the history its figures were reproduced with (the default until 2026-12-07)
        "lbfgs_bounds": "box",  # SciPy's bounds, as before the soft box
        "scales": 1,  # one scale, as the paper
        "width": 512,
        "iterations": 150,  # the paper gives none; the count its figures were reproduced with (the old default)
        "style_size": "content",  # (no flag) the style image is resized to the content's size
        "normalize_network": True,  # (no flag) mean activation 1 per filter
        "precision": "float32",  # the paper's exact objective
    },
    "gatys-pytorch": {
        "description": "the authors' later PyTorch code: MSE losses, style weights 1e3/N_l^2, content init",
        "loss_scale": "gatys-pytorch",  # (no flag) MSE(F, P) and (1e3/N^2) MSE(G/M, A/M)
        "content_layers": ("relu4_2",),
        "content_weight_blend": 1.0,
        "content_size_power": 0.0,  # the paper's weights at every size
        "overscan": 0,  # the paper's canvas is the picture
        "style_layers": STYLE_LAYERS_PAPER,
        "style_layer_weight_exp": 1.0,
        "content_weight": 1.0,
        # Their code sums the per-layer losses; the Objective averages them (w_l = 1/L),
        # so beta = L reproduces the sum. Resolved to the number of style layers.
        "style_weight": "number of style layers",
        "tv_weight": 0.0,
        "pooling": "max",  # their VGG class defaults to max pooling
        "padding": "zero",  # torchvision's VGG zero-pads
        "style_loss": "gram",
        "iterate_average": 0.0,
        "initial_noiseblend": 0.0,  # from the content image
        "optimizer": "lbfgs",
        "min_improvement": 0.0,  # every iteration, as the classic tool
        "lbfgs_corrections": 20,  # the history its figures were reproduced with (the default until 2026-12-07)
        "lbfgs_bounds": "box",  # SciPy's bounds, as before the soft box
        "scales": 1,  # one scale, as the paper
        "width": 512,
        "iterations": 500,  # their loop stops after 500 evaluations of the closure
        # (no flag) Their code resizes each image on its own (shorter edge 512), keeping
        # aspect ratios; the classic width-relative style scale is the closest here.
        "style_size": "width",
        "normalize_network": False,  # (no flag) the un-normalised network
        "precision": "float32",  # their code's float32
    },
}
# Settings of a run without --preset (the classic tool's behaviour).
NO_PRESET = {"loss_scale": "classic", "style_size": "width", "normalize_network": False}
# Loss scales that normalise a Gram matrix (losses.LOSS_SCALES), so imply --style-loss gram.
GRAM_LOSS_SCALES = ("gatys2016", "gatys-pytorch")
# The keys above that are not command-line flags.
NON_FLAG_KEYS = ("description", "loss_scale", "style_size", "normalize_network")
# A preset value that only makes sense without another explicit flag: with --initial the
# user wants to start from that image, and the classic default (noise blend 0) applies.
YIELDS_TO = {"initial_noiseblend": "initial"}


def apply_preset(settings, explicit, preset=None, ratio=None):
    """`settings` (a settings.Settings) with the preset's values for the flags not in `explicit`.

    Also sets `loss_scale`, `style_size` and `normalize_network` (to the classic ones
    without a preset). `ratio` (alpha/beta) sets the content weight; with no preset also
    the style weight to 1. Raises ValueError for an unknown preset or a ratio that
    conflicts with an explicit --content-weight.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset]) if preset else {}
    if ratio is not None:
        if "content_weight" in explicit:
            raise ValueError(f"--ratio {ratio:g} and --content-weight both set the content weight; give one")
        values["content_weight"] = ratio
        values.setdefault("style_weight", 1.0)
        explicit = set(explicit) - {"content_weight"}
    # e.g. --loss-scale given on the command line wins over the preset's
    changes: dict = {key: values.get(key, default) for key, default in NO_PRESET.items() if key not in explicit}
    for key, value in values.items():
        if key in NON_FLAG_KEYS or key in explicit or YIELDS_TO.get(key) in explicit:
            continue
        changes[key] = value
    if changes.get("style_weight") == "number of style layers":
        changes["style_weight"] = float(len(changes.get("style_layers", settings.loss.style_layers)))
    # The paper's loss scales are defined on the Gram matrix: with one of them (by preset
    # or by --loss-scale) the style loss is the Gram one unless --style-loss says otherwise.
    if changes.get("loss_scale", settings.loss.loss_scale) in GRAM_LOSS_SCALES and "style_loss" not in explicit:
        changes["style_loss"] = "gram"
    return settings.with_values(changes)
