"""Preflight estimate of the peak memory (RSS) of one style transfer, before TensorFlow starts.

`estimate_peak_bytes` adds up what a run holds at its peak, from the network's shapes
and the image size alone:

- the TensorFlow runtime and the loaded network (a constant, measured);
- the sessions' copies of the used weights (each session's variables, oneDNN's
  reordered kernels: about 3 copies);
- a measured share of the activations of every layer up to the deepest one used,
  float32, with the backward pass's two largest gradients and the Gram matrices;
- the optimizer's arrays, float64 at SciPy's boundary: L-BFGS-B's history of 2 m
  image-sized vectors and its working arrays (x, g, bounds, 5 n of scratch), or Adam's
  moments; plus the Evaluator's cached copies (x in float64 and float32, gradient).

The constants are calibrated on peaks measured by `benchmark.py` (README, section
Performance, where the estimate is compared with the measured peak at three sizes);
it is meant for a warning, not to the megabyte.
"""

from __future__ import annotations

import os

from .settings import LBFGS_CORRECTIONS

# Calibrated on the peaks measured by benchmark.py at 256x192 and 512x384 (VGG-19 shapes
# and the embedded VGG-16; README, Performance) and checked at 1024x768:
# RSS of a process that imported TensorFlow 2.21 and loaded a network (benchmark.py's
# "baseline_rss": 680-700 MB); it does not depend on the image size.
TENSORFLOW_BASELINE_BYTES = 700 * 2**20
# The used weights beside the network's own arrays (counted in the baseline): one set of
# variables per session (the targets' and the objective's; tf_runtime.held_weight) and
# oneDNN's reordered kernels while a convolution runs. They were 13-14 copies when every
# graph held them as constants (its GraphDef, Grappler's copies, the sessions' tensors):
# at 512x384 (bfloat16) the plain command's peak went from 1.56 to 1.37 GB without them.
GRAPH_WEIGHT_COPIES = 3
GRAPH_FIXED_BYTES = 200 * 2**20
# Share of all the activations (+ gradients) resident at the peak: TensorFlow frees
# what the backward pass no longer needs, and Grappler fuses conv + bias + relu.
ACTIVATIONS_RESIDENT = 0.4
# A tile's activations against an untiled graph's of the same size: the partial run that
# keeps the last tile's forward pass for its gradient (tiled_objective.py) holds every
# tensor of it until the end. Measured at 1962x1472 (VGG-19 to relu5_1, bfloat16): one
# tile 6.3 GB, the untiled objective 5.1 GB; in tiles of 1024, 2.6 GB (docs/print-size.md).
TILED_ACTIVATIONS = 1.6
FLOAT32 = 4
FLOAT64 = 8


def estimate_parts(network, height, width, optimizer="lbfgs", lbfgs_corrections=LBFGS_CORRECTIONS, layers_needed=None,
                   guided_styles=0):
    """The estimate, term by term, in bytes: {part: bytes}. `guided_styles`: how many
    styles have a mask (--style-masks, --content-mask), each with its own statistics."""
    layers_needed = tuple(layers_needed or network.layers)
    last = network.deepest(layers_needed)
    shapes = network.feature_shapes(height, width, last)
    used_weights = network.weight_bytes(last)
    activations = activation_bytes(network, height, width, layers_needed)
    largest = max(h * w * c for _, h, w, c in shapes) * FLOAT32
    grams = sum(c * c for name, _, _, c in shapes if name in layers_needed) * FLOAT32
    parts = {
        "tensorflow": TENSORFLOW_BASELINE_BYTES,
        "graph weights": GRAPH_WEIGHT_COPIES * used_weights + GRAPH_FIXED_BYTES,
        "activations": int(ACTIVATIONS_RESIDENT * (activations + 2 * largest + 3 * grams)),
    } | optimizer_parts(height, width, optimizer, lbfgs_corrections)
    if guided_styles:
        # A guided style's statistics read its own mask-weighted (and centred) copy of
        # each style layer's features, and the backward pass holds their gradients.
        style_features = sum(h * w * c for name, h, w, c in shapes if name in layers_needed) * FLOAT32
        parts["guidance"] = int(ACTIVATIONS_RESIDENT * 4 * style_features * guided_styles)
    return parts


def optimizer_parts(height, width, optimizer="lbfgs", lbfgs_corrections=LBFGS_CORRECTIONS):
    """The parts of the estimate that need no network: the optimizer's and the Evaluator's
    image-sized arrays, in bytes ({"optimizer": ..., "evaluator": ...})."""
    n = height * width * 3
    if optimizer == "lbfgs":
        m = lbfgs_corrections
        optimizer_bytes = (2 * m * n + 5 * n + 11 * m * m + 8 * m) * FLOAT64  # SciPy's `wa`
        optimizer_bytes += 6 * n * FLOAT64  # x, g, lower and upper bounds, the (n, 2) bounds array
        optimizer_bytes += 3 * n * 4  # nbd and iwa (int32)
        evaluator = n * FLOAT64 + 2 * n * FLOAT32  # gradient in float64; cached x and gradient in float32
    else:
        optimizer_bytes = 3 * n * FLOAT32  # x, m, v (optimize._adam)
        evaluator = 3 * n * FLOAT32  # the gradient, the cached x and the graph's gradient
    return {"optimizer": optimizer_bytes, "evaluator": evaluator}


def evaluation_pool_bytes(network, height, width, layers_needed=None, guided_styles=0):
    """What tf_runtime.reserve_cpu_pool reserves before an evaluation at height x width:
    twice the estimate's resident activations, so that the whole evaluation fits in the
    piece (only the pages it writes become resident)."""
    parts = estimate_parts(network, height, width, layers_needed=layers_needed, guided_styles=guided_styles)
    return 2 * (parts["activations"] + parts.get("guidance", 0))


def activation_bytes(network, height, width, layers_needed):
    """float32 bytes of every layer's output up to the deepest of `layers_needed`."""
    shapes = network.feature_shapes(height, width, network.deepest(layers_needed))
    return sum(h * w * c for _, h, w, c in shapes) * FLOAT32


def estimate_peak_bytes(network, height, width, optimizer="lbfgs", lbfgs_corrections=LBFGS_CORRECTIONS, layers_needed=None,
                        guided_styles=0):
    """Estimated peak RSS in bytes of a transfer at height x width (see the module docstring).

    `layers_needed`: the content and style layers (only layers up to the deepest are built).
    """
    return sum(estimate_parts(network, height, width, optimizer, lbfgs_corrections, layers_needed,
                              guided_styles).values())


def estimate_tiled_parts(network, height, width, core, layers_needed=None, guided_styles=0, optimizer="adam",
                         lbfgs_corrections=LBFGS_CORRECTIONS, content_layers=("relu4_2", "relu5_2")):
    """The estimate of a transfer at height x width evaluated in tiles of `core` pixels a
    side (tiling.py), term by term in bytes: the activations are those of one tile's
    window (the core and its halos), the optimizer's and the Evaluator's arrays are the
    whole image's, and the whole image's own arrays (the image, its gradient, the content
    targets) are added."""
    layers_needed = tuple(layers_needed or network.layers)
    last = network.deepest(layers_needed)
    halo = network.tile_halo(last) or (0, 0, 1)
    window_h = min(height, core + halo[0] + halo[1])
    window_w = min(width, core + halo[0] + halo[1])
    parts = estimate_parts(network, window_h, window_w, optimizer, lbfgs_corrections, layers_needed, guided_styles)
    parts["activations"] = int(TILED_ACTIVATIONS * parts["activations"])
    parts |= optimizer_parts(height, width, optimizer, lbfgs_corrections)
    shapes = network.feature_shapes(height, width, last)
    content = sum(h * w * c for name, h, w, c in shapes if name in content_layers)
    # The image, its gradient and the gradient's sum over tiles (float32), and the content
    # targets at their layers.
    parts["whole image"] = 4 * height * width * 3 * FLOAT32 + content * FLOAT32
    return parts


def available_bytes():
    """RAM available to a new process: MemAvailable from /proc/meminfo, else total physical RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n):
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


# Warn above this share of the available RAM: the estimate is approximate, and other
# programs' memory comes and goes.
WARN_FRACTION = 0.7


def preflight(network, height, width, optimizer="lbfgs", lbfgs_corrections=LBFGS_CORRECTIONS, layers_needed=None, available=None,
              guided_styles=0):
    """(level, message): level None (fine), "warn" (above 70% of available RAM) or "refuse" (above it)."""
    available = available_bytes() if available is None else available
    if not available:
        return None, ""
    need = estimate_peak_bytes(network, height, width, optimizer, lbfgs_corrections, layers_needed, guided_styles)
    text = (f"a {width}x{height} image needs about {format_bytes(need)} of memory "
            f"and {format_bytes(available)} is available")
    advice = "use a smaller --width"
    if optimizer == "lbfgs":
        advice += f" or fewer --lbfgs-corrections (now {lbfgs_corrections})"
    if need > available:
        return "refuse", f"{text}; {advice}"
    if need > WARN_FRACTION * available:
        return "warn", f"{text}; the run may swap or be killed ({advice} to be safe)"
    return None, ""
