"""Presets: the exact settings of Gatys, Ecker & Bethge (CVPR 2016) and of the authors' later code.

A preset is plain data: values for command-line flags (by argparse dest) plus three
settings that have no flag (`loss_scale`, `style_size`, `normalise_network`).
`apply_preset` turns one `settings.Settings` into another; flags the user gives
explicitly always win over the preset.

`normalised_network` gives the paper's normalised network (every filter's mean
activation 1 on calibration images), computed once and cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import vgg

from . import calibration, images

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
        "iterations": 1000,
        "lbfgs_corrections": 10,  # SciPy's default history, which the classic tool kept
        "lbfgs_first_step": 0.0,  # SciPy's own first step
        "learning_rate": 1e1,
        "scales": 1,  # one scale at every size
        "style_size": "width",  # (no flag)
        "normalise_network": False,  # (no flag)
    },
    "gatys2016": {
        "description": "Gatys, Ecker & Bethge, CVPR 2016: the paper's losses on the normalised net with avg pooling",
        "loss_scale": "gatys2016",  # (no flag) 1/2 sum (F-P)^2 and sum (G-A)^2 / (4 N^2 M^2)
        "content_layers": ("relu4_2",),
        "content_weight_blend": 1.0,
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
        "width": 512,
        "style_size": "content",  # (no flag) the style image is resized to the content's size
        "normalise_network": True,  # (no flag) mean activation 1 per filter
    },
    "gatys-pytorch": {
        "description": "the authors' later PyTorch code: MSE losses, style weights 1e3/N_l^2, content init",
        "loss_scale": "gatys-pytorch",  # (no flag) MSE(F, P) and (1e3/N^2) MSE(G/M, A/M)
        "content_layers": ("relu4_2",),
        "content_weight_blend": 1.0,
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
        "width": 512,
        "iterations": 500,  # their loop stops after 500 evaluations of the closure
        # (no flag) Their code resizes each image on its own (shorter edge 512), keeping
        # aspect ratios; the classic width-relative style scale is the closest here.
        "style_size": "width",
        "normalise_network": False,  # (no flag) the un-normalised network
    },
}
# Settings of a run without --preset (the classic tool's behaviour).
NO_PRESET = {"loss_scale": "classic", "style_size": "width", "normalise_network": False}
# Loss scales that normalise a Gram matrix (stylize.LOSS_SCALES), so imply --style-loss gram.
GRAM_LOSS_SCALES = ("gatys2016", "gatys-pytorch")
# The keys above that are not command-line flags.
NON_FLAG_KEYS = ("description", "loss_scale", "style_size", "normalise_network")
# A preset value that only makes sense without another explicit flag: with --initial the
# user wants to start from that image, and the classic default (noise blend 0) applies.
YIELDS_TO = {"initial_noiseblend": "initial"}


def apply_preset(settings, explicit, preset=None, ratio=None):
    """`settings` (a settings.Settings) with the preset's values for the flags not in `explicit`.

    Also sets `loss_scale`, `style_size` and `normalise_network` (to the classic ones
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
    changes = {key: values.get(key, default) for key, default in NO_PRESET.items() if key not in explicit}
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


def resize_styles(styles, content_shape, style_size):
    """With style_size 'content' (the paper), every style image gets the content's (H, W)."""
    if style_size != "content":
        return styles
    return [images.resize(s, content_shape[:2]) for s in styles]


# ---------------------------------------------------------------- the normalised network


def cache_dir():
    """~/.cache/neural-style-tf (or $XDG_CACHE_HOME/neural-style-tf)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "neural-style-tf")


def _file_id(path):
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def cache_key(network, calibration, pooling, size, target=1.0):
    """A short hash of the source weights file (path, size, mtime) and the calibration settings.

    The file's identity is cheaper to take than its sha256 (534 MB for VGG-19) and
    changes whenever the file is replaced.
    """
    data = {"network": _file_id(network.path), "images": [_file_id(p) for p in calibration],
            "pooling": pooling, "size": size, "target": target, "floor": vgg.NORMALISE_FLOOR}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def cache_paths(network, key):
    """Where a normalised copy may live: next to the source (if writable and not the
    embedded package's file, which belongs to pip), then the user's cache folder."""
    base = os.path.splitext(os.path.basename(network.path))[0] + f".normalised-{key}.npz"
    paths = []
    source_dir = os.path.dirname(os.path.abspath(network.path))
    if network.cache_beside_source and os.access(source_dir, os.W_OK):
        paths.append(os.path.join(source_dir, base))
    paths.append(os.path.join(cache_dir(), base))
    return paths


def normalised_network(network, pooling="avg", images_dir=None, size=calibration.CALIBRATION_SIZE, log=None):
    """`network` normalised as in the paper, from the cache if it was computed before.

    Calibrates on the images in `images_dir` (default: the shipped calibration images).
    A network that is already normalised (e.g. a `vgg.py normalize` .npz) is returned as is.
    """
    if not network.can_normalise:
        raise ValueError("--preset gatys2016 normalises a VGG network's weights; a Keras model's features are "
                         "scaled already (keras_network.py): use --loss-scale gatys2016 and its --ratio instead")
    if network.is_normalised:
        return network
    say = log or (lambda text: None)
    paths = calibration.calibration_paths(images_dir)
    key = cache_key(network, paths, pooling, size)
    candidates = cache_paths(network, key)
    for path in candidates:
        if os.path.isfile(path):
            try:
                cached = vgg.load_npz(path)
            except vgg.NetworkError:
                continue  # a damaged cache file is recomputed and replaced
            say(f"normalised network: {path} (cached)")
            return _with_notes(cached, network, path)
    where = images_dir or f"the {len(paths)} shipped calibration images (no calibration folder given)"
    say(f"normalising {network.name} on {where}, {pooling} pooling (once; cached)")
    rgbs = calibration.calibration_images(paths, size)
    normalised = vgg.normalize(network, rgbs, pooling)
    for path in candidates:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            images.write_atomically(path, lambda f: vgg.save_npz_to(normalised, f))
        except OSError:
            continue
        say(f"normalised network cached in {path}")
        return _with_notes(normalised, network, path)
    say("normalised network: no writable cache folder; it will be recomputed next time")
    return normalised


def _with_notes(normalised, source, path):
    """Keep the source's notes and attributes (e.g. the embedded network's hint) on the copy."""
    notes = dict(source.notes)
    notes.update(normalised.notes)
    notes["normalised"] = notes.get("normalised") or True
    notes["normalised_from"] = source.path
    # The path is the cached file's, whether it was just written or read back, so that
    # logs and manifests name the same file on a first and a resumed run.
    return dataclasses.replace(normalised, path=path, notes=notes, default_tv_weight=source.default_tv_weight,
                               default_style_layer_weight_exp=source.default_style_layer_weight_exp, hint=source.hint, cache_beside_source=source.cache_beside_source, is_normalised=True)
