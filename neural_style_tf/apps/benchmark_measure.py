"""benchmark.py's measurements: the networks it times, the exact FLOPs of one evaluation,
the machine (matmul speed, load, CPU, peak RSS) and one measurement of one network at one
size (`measure`, run in a child process so that its peak RSS is its own).

The command, its table and its A/B comparisons are in benchmark.py.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time

import numpy as np

from .. import memory
from ..losses import content_layer_weights
from ..networks import calibration
from ..networks.embedded import load_embedded
from ..networks.loading import load_net
from ..networks.vgg_network import CAFFE_MEAN_BGR, VGG19_BLOCKS, VGG19_LAYERS, Network, deepest, layer_kind
from ..objective import Objective, initial_image
from ..optimize import minimize
from ..settings import LossOptions, OptimizerOptions
from ..tf_runtime import import_tensorflow, return_freed_tensors_to_the_os, single_threaded_blas

MATMUL_SIZE = 2048
MATMUL_REPEATS = 7
# The checkout: this file is neural_style_tf/apps/benchmark_measure.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The checkout's example images; an installed tool measures on the shipped 256 px copies.
EXAMPLES = os.path.join(ROOT, "examples")


def example_image(name):
    path = os.path.join(EXAMPLES, name)
    return path if os.path.isfile(path) else os.path.join(calibration.DATA_DIR, os.path.splitext(name)[0] + ".png")


CONTENT_IMAGE = example_image("tubingen_neckarfront.jpg")
STYLE_IMAGE = example_image("starry_night.jpg")
RANDOM_VGG19 = "random-vgg19"  # a --network value: VGG-19's shapes, random weights
EMBEDDED = "embedded"  # a --network value: the embedded default (ImageNet VGG-19)
HED = "hed"  # a --network value: HED's edge-tuned VGG-16 (the embedded default before VGG-19)
VGG19_CHANNELS = (64, 128, 256, 512, 512)
# The objective whose cost is timed: what users run (the default W2 loss, replicate padding,
# the network's defaults), with the classic Gram loss beside it. count_flops counts the
# network's and the Gram products' multiply-adds; W2's eigendecompositions (float64, one per
# style layer) are not products, and show as the difference of the two rows' seconds.
BENCH_LOSS = LossOptions(tv_weight=None)
STYLE_LOSSES = ("w2", "gram")


# ---------------------------------------------------------------- networks


def random_vgg19(seed=0):
    """A `vgg_network.Network` with VGG-19's layers and kernel shapes and He-scaled random weights."""
    rng = np.random.default_rng(seed)
    weights, cin = {}, 3
    for b, (count, cout) in enumerate(zip(VGG19_BLOCKS, VGG19_CHANNELS), start=1):
        for c in range(1, count + 1):
            kernel = (rng.standard_normal((3, 3, cin, cout), dtype=np.float32) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
            weights[f"conv{b}_{c}"] = (kernel, np.zeros(cout, np.float32))
            cin = cout
    return Network(name="VGG-19 shapes (random weights)", path="(random)", layers=VGG19_LAYERS,
                       weights=weights, mean_pixel=np.array(CAFFE_MEAN_BGR[::-1], np.float32))


def load_network(spec):
    if spec == RANDOM_VGG19:
        return random_vgg19()
    if spec == EMBEDDED:
        return load_net()
    if spec == HED:
        return load_embedded()
    return load_net(spec)


def default_networks():
    """The embedded default (the paper's VGG-19, ImageNet weights) and HED's VGG-16 beside it."""
    return [EMBEDDED, HED]


# ---------------------------------------------------------------- FLOPs


def used_layers(loss):
    """The layers the objective reads, as objective.Objective chooses them (zero-weight content layers dropped)."""
    content = content_layer_weights(loss.content_layers, loss.content_weight_blend)
    return tuple(content) + tuple(loss.style_layers), tuple(loss.style_layers)


def count_flops(network, height, width, layers_needed, style_layers):
    """Exact multiply-add FLOPs (1 multiply-add = 2 FLOPs) of one evaluation: loss and gradient.

    What the graph computes, up to the deepest layer in `layers_needed` (nothing past it
    is built):
    - each convolution, forward: 2 * H * W * k * k * Cin * Cout (SAME padding, stride 1;
      H, W the output size; border zeros are counted as TensorFlow multiplies them too);
    - each convolution, backward: the gradient with respect to its input only
      (Conv2DBackpropInput), the same count again. The kernels are constants, so no
      weight gradient (Conv2DBackpropFilter) exists in the graph: `tests/test_benchmark.py`
      checks that. The first convolution's input gradient is needed too: it is the image's;
    - each style layer's Gram matrix G = F^T F (or covariance) with F of shape (H W, C):
      forward 2 * H * W * C^2; backward one product of the same size, dF = F (dG + dG^T)
      (feature_statistics.py writes it out; TensorFlow's own gradient did two);
    - ReLU, bias, pooling, the loss reductions and total variation are O(H W C) with no
      multiply-add structure and are not counted (a few percent of the conv count's
      memory traffic, and no arithmetic to speak of).
    Returns {"conv_forward", "conv_backward", "gram_forward", "gram_backward", "total"}.
    """
    last = deepest(network, layers_needed)
    h, w, cin = height, width, 3
    out = dict(conv_forward=0, conv_backward=0, gram_forward=0, gram_backward=0)
    for name in network.layers:
        kind = layer_kind(name)
        if kind == "conv":
            kernel = network.weights[name][0]
            kh, kw, _, cout = kernel.shape
            flops = 2 * h * w * kh * kw * cin * cout
            out["conv_forward"] += flops
            out["conv_backward"] += flops
            cin = cout
        elif kind == "pool":
            h, w = -(-h // 2), -(-w // 2)
        if name in style_layers:
            out["gram_forward"] += 2 * h * w * cin * cin
            out["gram_backward"] += 2 * h * w * cin * cin
        if name == last:
            break
    out["total"] = sum(out.values())
    return out


# ---------------------------------------------------------------- the machine


def matmul_gflops(size=MATMUL_SIZE, repeats=MATMUL_REPEATS):
    """NumPy float32 matrix multiply speed in GFLOP/s, best of `repeats` (after one warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)
    best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def max_rss_bytes():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ---------------------------------------------------------------- one measurement (child process)


def test_images(width, height):
    from .. import images

    content = images.resize(images.load_image(CONTENT_IMAGE), (height, width))
    style = images.resize(images.load_image(STYLE_IMAGE), (height, width))
    return content, style


class TimedObjective:
    """Wraps an Objective: records when each session.run starts and ends (for the Evaluator's overhead)."""

    def __init__(self, objective):
        self.objective = objective
        self.shape = objective.shape
        self.spans = []

    def evaluate(self, x):
        t0 = time.perf_counter()
        result = self.objective.evaluate(x)
        self.spans.append((t0, time.perf_counter()))
        return result


def measure(network_spec, width, height, repeats, lbfgs_evaluations, corrections, mallopt=True,
            precision="float32", style_loss="w2", bounds="soft"):
    """Everything about one network at one size, precision and style loss, in this process.
    Returns a JSON-able dict."""
    if mallopt:
        return_freed_tensors_to_the_os()  # as neural_style.main does (tf_runtime.configure_process)
    single_threaded_blas()  # as tf_runtime.configure_process
    network = load_network(network_spec).with_precision(precision)
    import_tensorflow()  # here, so that the baseline RSS includes it
    content, style = test_images(width, height)
    loss = dataclasses.replace(BENCH_LOSS, style_loss=style_loss)
    needed, style_layers = used_layers(loss)
    baseline = max_rss_bytes()
    t0 = time.perf_counter()
    objective = Objective(network, content, [style], loss)
    build = time.perf_counter() - t0
    after_build = max_rss_bytes()
    assert objective.graph.finalized
    x = initial_image(content, network, noiseblend=0.0)
    objective.evaluate(x)  # warm-up: first-run allocations and kernel selection
    after_warmup = max_rss_bytes()
    times = [_timed(lambda: objective.evaluate(x)) for _ in range(repeats)]

    timed = TimedObjective(objective)
    opts = OptimizerOptions(optimizer="lbfgs", iterations=10**6, max_evaluations=lbfgs_evaluations,
                            lbfgs_corrections=corrections, lbfgs_bounds=bounds, min_improvement=0.0)
    t0 = time.perf_counter()
    result = minimize(timed, x, opts)
    lbfgs_wall = time.perf_counter() - t0
    spans = timed.spans
    # Steady state: from the end of the first evaluation to the end of the last, minus the
    # session.run time in between. SciPy's one-off set-up (it converts the n bounds in a
    # Python loop) comes before the first evaluation and is reported on its own.
    between = spans[-1][1] - spans[0][1]
    session = sum(b - a for a, b in spans[1:])
    overhead = (between - session) / max(1, len(spans) - 1)
    flops = count_flops(network, height, width, needed, style_layers)
    objective.close()
    return {
        "network": network.name,
        "size": f"{width}x{height}",
        "precision": precision,
        "style_loss": style_loss,
        "flops": flops,
        "seconds": statistics.median(times),
        "seconds_all": times,
        "build_seconds": build,
        "lbfgs_evaluations": result.evaluations,
        "lbfgs_session_median": statistics.median(b - a for a, b in spans),
        "overhead_seconds": overhead,
        "lbfgs_setup_seconds": spans[0][0] - t0,
        "lbfgs_wall": lbfgs_wall,
        "baseline_rss": baseline,
        "peak_rss_after_build": after_build,
        "peak_rss_after_first_evaluation": after_warmup,
        "peak_rss": max_rss_bytes(),
        "estimate": memory.estimate_peak_bytes(network, height, width, "lbfgs", corrections, needed),
    }
