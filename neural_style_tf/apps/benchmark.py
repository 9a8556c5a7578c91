"""Benchmark the hot path: seconds per evaluation, FLOPs, share of the machine's matmul speed, peak RSS.

    python benchmark.py [--sizes 256 512 1024] [--network FILE] [--repeats N] [--out BENCHMARKS.md]

For each network and size, a fresh child process (so that peak memory does not
accumulate across sizes) builds the real objective through `stylize.Objective`, times
`Objective.evaluate` (median of --repeats after a warm-up), then runs the real L-BFGS-B
(`stylize.minimize`, history 20) for --lbfgs-evaluations evaluations to measure the time
spent outside `session.run` (SciPy and the Evaluator) and the peak RSS. The parent
measures NumPy's float32 matrix multiply in the same run and writes a Markdown table.

Timing does not depend on the weights' values, so without a VGG-19 file the benchmark
uses random weights of VGG-19's real shapes; it always also times the embedded VGG-16.

`--compare` runs interleaved A/B measurements of the hot-path settings (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import stylize
import vgg

from .. import calibration, images, memory
from ..errors import UsageError
from ..tf_runtime import import_tensorflow, return_freed_tensors_to_the_os
from . import time_to_quality

REFERENCE_SIZE = "512x384"  # the size the targets are set at; always measured
REPEATS = 5
LBFGS_EVALUATIONS = 25  # > history 20, so that L-BFGS's history is full at the peak
LBFGS_CORRECTIONS = 20
MATMUL_SIZE = 2048
MATMUL_REPEATS = 7
OUT = "BENCHMARKS.md"
# The checkout's example images; an installed tool measures on the shipped 256 px copies.
# The checkout: this file is neural_style_tf/apps/benchmark.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def example_image(name):
    path = os.path.join(EXAMPLES, name)
    return path if os.path.isfile(path) else os.path.join(calibration.DATA_DIR, os.path.splitext(name)[0] + ".png")


CONTENT_IMAGE = example_image("tubingen_neckarfront.jpg")
STYLE_IMAGE = example_image("starry_night.jpg")
RANDOM_VGG19 = "random-vgg19"  # a --network value: VGG-19's shapes, random weights
EMBEDDED = "embedded"  # a --network value: the embedded VGG-16
VGG19_CHANNELS = (64, 128, 256, 512, 512)
COMPARISONS = ("threads", "gram", "deepest", "onednn", "xla", "malloc", "evaluator")
# The objective whose cost is counted and timed: the classic Gram loss, whose FLOPs
# count_flops knows exactly. The default W2 loss adds one C x C eigendecomposition per
# style layer (float64, not a matrix product); its time is in the time-to-quality mode.
BENCH_LOSS = stylize.LossOptions(style_loss="gram")


# ---------------------------------------------------------------- networks


def random_vgg19(seed=0):
    """A `vgg.Network` with VGG-19's layers and kernel shapes and He-scaled random weights."""
    rng = np.random.default_rng(seed)
    weights, cin = {}, 3
    for b, (count, cout) in enumerate(zip(vgg.VGG19_BLOCKS, VGG19_CHANNELS), start=1):
        for c in range(1, count + 1):
            kernel = (rng.standard_normal((3, 3, cin, cout), dtype=np.float32) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
            weights[f"conv{b}_{c}"] = (kernel, np.zeros(cout, np.float32))
            cin = cout
    return vgg.Network(name="VGG-19 shapes (random weights)", path="(random)", layers=vgg.VGG19_LAYERS,
                       weights=weights, mean_pixel=np.array(vgg.CAFFE_MEAN_BGR[::-1], np.float32))


def load_network(spec):
    if spec == RANDOM_VGG19:
        return random_vgg19()
    if spec == EMBEDDED:
        return vgg.load_embedded()
    return vgg.load_net(spec)


def default_networks():
    """The paper's VGG-19 if a file is at hand, else its shapes with random weights; and the embedded VGG-16."""
    return [vgg.find_default_network() or RANDOM_VGG19, EMBEDDED]


# ---------------------------------------------------------------- FLOPs


def used_layers(loss):
    """The layers the objective reads, as stylize.Objective chooses them (zero-weight content layers dropped)."""
    content = stylize.content_layer_weights(loss.content_layers, loss.content_weight_blend)
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
    - each style layer's Gram matrix G = F^T F with F of shape (H W, C): forward
      2 * H * W * C^2; backward, TensorFlow's MatMul gradient does two products of the
      same size (dF = F dG^T and F dG), 4 * H * W * C^2;
    - ReLU, bias, pooling, the loss reductions and total variation are O(H W C) with no
      multiply-add structure and are not counted (a few percent of the conv count's
      memory traffic, and no arithmetic to speak of).
    Returns {"conv_forward", "conv_backward", "gram_forward", "gram_backward", "total"}.
    """
    last = vgg.deepest(network, layers_needed)
    h, w, cin = height, width, 3
    out = dict(conv_forward=0, conv_backward=0, gram_forward=0, gram_backward=0)
    for name in network.layers:
        kind = vgg.layer_kind(name)
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
            out["gram_backward"] += 4 * h * w * cin * cin
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


def parse_size(text):
    """'512x384' -> (512, 384); '1024' -> long side 1024 at 4:3 -> (1024, 768)."""
    if "x" in text:
        w, h = text.lower().split("x", 1)
        size = (int(w), int(h))
    else:
        size = (int(text), round(int(text) * 3 / 4))
    if min(size) < 16:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small; give at least 16 px")
    return size


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


def measure(network_spec, width, height, repeats, lbfgs_evaluations, corrections, mallopt=True):
    """Everything about one network at one size, in this process. Returns a JSON-able dict."""
    if mallopt:
        return_freed_tensors_to_the_os()  # as neural_style.main does (tf_runtime.configure_process)
    network = load_network(network_spec)
    import_tensorflow()  # here, so that the baseline RSS includes it
    content, style = test_images(width, height)
    loss = BENCH_LOSS
    needed, style_layers = used_layers(loss)
    baseline = max_rss_bytes()
    t0 = time.perf_counter()
    objective = stylize.Objective(network, content, [style], loss)
    build = time.perf_counter() - t0
    after_build = max_rss_bytes()
    assert objective.graph.finalized
    x = stylize.initial_image(content, network, noiseblend=0.0)
    objective.evaluate(x)  # warm-up: first-run allocations and kernel selection
    after_warmup = max_rss_bytes()
    times = [_timed(lambda: objective.evaluate(x)) for _ in range(repeats)]

    timed = TimedObjective(objective)
    opts = stylize.OptimizerOptions(optimizer="lbfgs", iterations=10**6, max_evaluations=lbfgs_evaluations,
                                    lbfgs_corrections=corrections)
    t0 = time.perf_counter()
    result = stylize.minimize(timed, x, opts)
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


def run_child(network_spec, size, args, env=None, mallopt=True):
    """`measure` in a fresh Python process, so that its peak RSS is its own."""
    job = {"network": network_spec, "width": size[0], "height": size[1], "repeats": args.repeats,
           "lbfgs_evaluations": args.lbfgs_evaluations, "corrections": args.lbfgs_corrections, "mallopt": mallopt}
    # `-m` with the project's root on the path: the child imports this package as the parent does.
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "neural_style_tf.apps.benchmark", "--child", json.dumps(job)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed for {network_spec} at {size}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table


def table(rows, gflops, load_before, load_after, matmul_size):
    lines = [
        f"Machine: {os.cpu_count()} cores, {cpu_model()}; NumPy float32 matmul ({matmul_size}x{matmul_size}, "
        f"best of {MATMUL_REPEATS}): **{gflops:.0f} GFLOP/s**; load average (1 min) {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; TensorFlow {_tf_version()}, NumPy {np.__version__}.",
        "",
        "| network | size | GFLOP / evaluation | s / evaluation (median) | GFLOP/s | share of matmul "
        "| outside session.run, ms / evaluation | peak RSS (L-BFGS, m=20) | estimate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        total = r["flops"]["total"] / 1e9
        speed = total / r["seconds"]
        lines.append(
            f"| {r['network']} | {r['size']} | {total:.1f} (gram {(r['flops']['gram_forward'] + r['flops']['gram_backward']) / 1e9:.1f}) "
            f"| {r['seconds']:.3f} | {speed:.0f} | {100 * speed / gflops:.0f}% | {1000 * r['overhead_seconds']:.1f} "
            f"| {memory.format_bytes(r['peak_rss'])} | {memory.format_bytes(r['estimate'])} |"
        )
    return "\n".join(lines) + "\n"


def _tf_version():
    try:
        from importlib.metadata import version

        return version("tensorflow")
    except Exception:  # the table is still useful without it
        return "?"


# ---------------------------------------------------------------- comparisons (--compare)


def _config(intra=None, inter=None):
    tf = import_tensorflow()

    # Per-session pools: otherwise every session shares the process's inter-op pool,
    # sized by whichever session came first, and the variants would not differ.
    kwargs = {"use_per_session_threads": True}
    if intra is not None:
        kwargs["intra_op_parallelism_threads"] = intra
    if inter is not None:
        kwargs["inter_op_parallelism_threads"] = inter
    return tf.compat.v1.ConfigProto(**kwargs)


def _einsum_gram(features):
    tf = import_tensorflow()

    shape = tf.shape(features)
    size = tf.cast(shape[1] * shape[2] * shape[3], features.dtype)
    return tf.einsum("bijc,bijd->cd", features, features) / size


def compare_in_process(name, network, width, height, rounds):
    """Build one Objective per variant, then evaluate them interleaved (A B C A B C ...)."""
    import dataclasses

    content, style = test_images(width, height)
    loss = BENCH_LOSS
    variants = {}
    original_config = stylize.session_config
    try:
        if name == "threads":
            for label, kw in (("intra 2, inter 1 (ours)", dict(intra=os.cpu_count(), inter=1)),
                              ("intra 2, inter 2", dict(intra=os.cpu_count(), inter=2)),
                              ("TF defaults (0, 0)", {})):
                stylize.session_config = lambda kw=kw: _config(**kw)
                variants[label] = stylize.Objective(network, content, [style], loss)
        elif name == "gram":
            stylize.LOSS_SCALES["_einsum"] = dataclasses.replace(stylize.LOSS_SCALES["classic"], gram=_einsum_gram)
            variants["tf.matmul (ours)"] = stylize.Objective(network, content, [style], loss)
            variants["tf.einsum"] = stylize.Objective(network, content, [style], dataclasses.replace(loss, loss_scale="_einsum"))
        elif name == "deepest":
            variants["graph stops at deepest layer (ours)"] = stylize.Objective(network, content, [style], loss)
            whole = dataclasses.replace(network)
            object.__setattr__(whole, "deepest", lambda names: whole.layers[-1])  # a frozen dataclass
            variants["whole network in the graph"] = stylize.Objective(whole, content, [style], loss)
        else:
            raise ValueError(name)
    finally:
        stylize.session_config = original_config
    x = stylize.initial_image(content, network, noiseblend=0.0)
    times = {label: [] for label in variants}
    for objective in variants.values():
        objective.evaluate(x)
    for _ in range(rounds):
        for label, objective in variants.items():
            times[label].append(_timed(lambda o=objective: o.evaluate(x)))
    ops = {label: len(o.graph.get_operations()) for label, o in variants.items()}
    for objective in variants.values():
        objective.close()
    return {label: {"median": statistics.median(t), "all": t, "ops": ops[label]} for label, t in times.items()}


def compare_env(name, network_spec, size, rounds, args):
    """Variants that must be set before TensorFlow is imported: alternate child processes."""
    if name == "onednn":
        variants = {"oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
                    "oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)": {"TF_ENABLE_ONEDNN_OPTS": "1"}}
    elif name == "malloc":  # glibc's dynamic mmap threshold lets freed tensors fragment the heap
        variants = {"glibc malloc defaults": {"mallopt": False},
                    "mallopt: mmap threshold 1 MB, 2 arenas (ours)": {"mallopt": True}}
    else:  # XLA auto-clustering on the CPU needs the CPU flag as well as the JIT level
        variants = {"XLA off": {"TF_XLA_FLAGS": ""},
                    "XLA auto-jit on": {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"}}
    child_args = argparse.Namespace(repeats=args.repeats, lbfgs_evaluations=2, lbfgs_corrections=args.lbfgs_corrections)
    results = {label: [] for label in variants}
    peaks = {label: [] for label in variants}
    for _ in range(rounds):
        for label, env in variants.items():
            env = dict(env)
            r = run_child(network_spec, size, child_args, env, mallopt=env.pop("mallopt", True))
            results[label] += r["seconds_all"]
            peaks[label].append(r["peak_rss"])
    return {label: {"median": statistics.median(t), "all": t, "peak_rss": max(peaks[label])}
            for label, t in results.items()}


def compare_evaluator(n, rounds=50):
    """The Evaluator's own NumPy work per evaluation (cache check, float32/float64 copies, finiteness),
    with an objective that returns a ready gradient at once: no TensorFlow in the timing."""
    from collections import OrderedDict

    rng = np.random.default_rng(0)
    grad = rng.standard_normal((1, n // 3, 1, 3), dtype=np.float32)
    terms = OrderedDict((k, 1.0) for k in stylize.LOSS_TERMS)

    class Ready:
        shape = grad.shape

        def evaluate(self, x):
            return terms, grad

    evaluator = stylize.Evaluator(Ready())
    xs = [rng.uniform(0, 255, n) for _ in range(2)]
    times = []
    for i in range(rounds):
        x = xs[i % 2]
        times.append(_timed(lambda x=x: (evaluator.loss(x), evaluator.grads(x))))
    return {"Evaluator.loss + grads, per evaluation": {"median": statistics.median(times)}}


# ---------------------------------------------------------------- command line


def build_parser():
    p = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", nargs="*", type=parse_size, default=[], metavar="SIZE",
                   help=f"extra sizes, WxH or a long side (4:3); {REFERENCE_SIZE} is always measured")
    p.add_argument("--network", action="append", default=None, metavar="FILE",
                   help=f"weights file, or '{RANDOM_VGG19}' or '{EMBEDDED}'; repeatable "
                        "(default: the VGG-19 file if found, else random VGG-19 shapes; and the embedded VGG-16)")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed evaluations per size (median reported)")
    p.add_argument("--lbfgs-evaluations", type=int, default=LBFGS_EVALUATIONS,
                   help="L-BFGS evaluations per size (overhead and peak RSS)")
    p.add_argument("--lbfgs-corrections", type=int, default=LBFGS_CORRECTIONS, help="L-BFGS history size")
    p.add_argument("--matmul-size", type=int, default=MATMUL_SIZE, help="matrix size of the matmul reference")
    p.add_argument("--out", default=OUT, help="Markdown file to write the table to")
    p.add_argument("--no-reference-size", action="store_true",
                   help=f"skip {REFERENCE_SIZE} (for quick runs and tests)")
    p.add_argument("--compare", choices=COMPARISONS, default=None,
                   help="instead of the table: interleaved A/B timings of one hot-path setting")
    p.add_argument("--rounds", type=int, default=3, help="rounds of interleaved A/B with --compare")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    time_to_quality.add_arguments(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    # As tf_runtime.configure_process, but the allocator is set per child (--compare malloc).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if args.time_to_quality:
        return time_to_quality.run(args, CONTENT_IMAGE, STYLE_IMAGE)
    if args.child is not None:
        job = json.loads(args.child)
        print(json.dumps(measure(job["network"], job["width"], job["height"], job["repeats"],
                                 job["lbfgs_evaluations"], job["corrections"], job.get("mallopt", True))))
        return 0
    for label, value in (("--repeats", args.repeats), ("--lbfgs-evaluations", args.lbfgs_evaluations),
                         ("--lbfgs-corrections", args.lbfgs_corrections), ("--matmul-size", args.matmul_size),
                         ("--rounds", args.rounds)):
        if value <= 0:
            parser.error(f"{label} must be a positive integer, not {value}")
    sizes = ([] if args.no_reference_size else [parse_size(REFERENCE_SIZE)]) + [s for s in args.sizes]
    sizes = list(dict.fromkeys(sizes))
    if not sizes:
        parser.error("no size to measure: give --sizes or drop --no-reference-size")
    networks = args.network or default_networks()
    try:
        for spec in networks:
            if spec not in (RANDOM_VGG19, EMBEDDED):
                vgg.load_net(spec)  # fail now, with one line, rather than in a child
    except UsageError as exc:  # a NetworkError: one line
        parser.error(str(exc))

    if args.compare:
        return run_comparison(args, networks[0], sizes[0])

    load_before = load_average()
    gflops = matmul_gflops(args.matmul_size)
    rows = []
    for spec in networks:
        for size in sizes:
            print(f"measuring {spec} at {size[0]}x{size[1]} ...", file=sys.stderr)
            rows.append(run_child(spec, size, args))
    text = table(rows, gflops, load_before, load_average(), args.matmul_size)
    print(text)
    images.write_atomically(args.out, lambda f: f.write(text.encode()))
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump({"matmul_gflops": gflops, "load_before": load_before, "rows": rows}, f, indent=1)
    return 0


def run_comparison(args, spec, size):
    load = load_average()
    if args.compare == "evaluator":
        result = compare_evaluator(size[0] * size[1] * 3)
    elif args.compare in ("onednn", "xla", "malloc"):
        result = compare_env(args.compare, spec, size, args.rounds, args)
    else:
        result = compare_in_process(args.compare, load_network(spec), size[0], size[1], args.rounds * args.repeats)
    print(f"# --compare {args.compare} at {size[0]}x{size[1]}, {spec}, load average {load[0]:.2f} "
          f"-> {load_average()[0]:.2f}")
    for label, r in result.items():
        extra = "".join(f", {k} {v}" for k, v in r.items() if k in ("ops",))
        if "peak_rss" in r:
            extra += f", peak RSS {memory.format_bytes(r['peak_rss'])}"
        samples = " ".join(f"{t:.2f}" for t in r.get("all", []))
        print(f"{label}: median {1000 * r['median']:.1f} ms{extra}" + (f" (samples, s: {samples})" if samples else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
