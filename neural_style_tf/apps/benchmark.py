"""Benchmark the hot path: seconds per evaluation, FLOPs, share of the machine's matmul speed, peak RSS.

    python benchmark.py [--sizes 256 512 1024] [--network FILE] [--repeats N] [--out BENCHMARKS.md]

For each network and size, a fresh child process (so that peak memory does not
accumulate across sizes) builds the real objective through `objective.Objective`, times
`Objective.evaluate` (median of --repeats after a warm-up), then runs the real L-BFGS-B
(`optimize.minimize`, history 20) for --lbfgs-evaluations evaluations to measure the time
spent outside `session.run` (SciPy and the Evaluator) and the peak RSS. The parent
measures NumPy's float32 matrix multiply in the same run and writes a Markdown table.

Timing does not depend on the weights' values, so without a VGG-19 file the benchmark
uses random weights of VGG-19's real shapes; it always also times the embedded VGG-16.

`--compare` runs interleaved A/B measurements of the hot-path settings (see README).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys

import numpy as np

from .. import cli, images, memory
from ..errors import UsageError
from ..losses import LOSS_SCALES
from ..networks.loading import load_net
from ..objective import LOSS_TERMS, Objective, Problem, initial_image
from ..optimize import Evaluator
from ..settings import LBFGS_BOUNDS, LBFGS_BOUNDS_CHOICES, LBFGS_CORRECTIONS
from ..tf_runtime import choose_precision, import_tensorflow
from ..tiled_objective import TiledObjective
from . import benchmark_command, time_to_quality
from .benchmark_measure import (
    BENCH_LOSS,
    CONTENT_IMAGE,
    EMBEDDED,
    HED,
    MATMUL_REPEATS,
    MATMUL_SIZE,
    RANDOM_VGG19,
    ROOT,
    STYLE_IMAGE,
    STYLE_LOSSES,
    _timed,
    cpu_model,
    default_networks,
    load_average,
    load_network,
    matmul_gflops,
    measure,
    test_images,
)

REFERENCE_SIZE = "512x384"  # the size the targets are set at; always measured
REPEATS = 5
LBFGS_EVALUATIONS = 25  # > the history (settings.LBFGS_CORRECTIONS), so that it is full at the peak
OUT = "BENCHMARKS.md"


COMPARISONS = ("threads", "gram", "deepest", "onednn", "xla", "malloc", "evaluator", "tiling")
# --compare tiling: the cores of the tiled evaluations set beside the untiled one.
TILING_CORES = (768, 512)


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


def run_child(network_spec, size, args, env=None, mallopt=True, precision="float32", style_loss="w2"):
    """`measure` in a fresh Python process, so that its peak RSS is its own."""
    job = {"network": network_spec, "width": size[0], "height": size[1], "repeats": args.repeats,
           "lbfgs_evaluations": args.lbfgs_evaluations, "corrections": args.lbfgs_corrections, "mallopt": mallopt,
           "precision": precision, "style_loss": style_loss, "bounds": getattr(args, "lbfgs_bounds", LBFGS_BOUNDS)}
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
        "| network | size | precision | style loss | GFLOP / evaluation | s / evaluation (median) | GFLOP/s "
        "| share of matmul | outside session.run, ms / evaluation | share outside | peak RSS (L-BFGS) "
        "| estimate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        total = r["flops"]["total"] / 1e9
        speed = total / r["seconds"]
        lines.append(
            f"| {r['network']} | {r['size']} | {r['precision']} | {r['style_loss']} "
            f"| {total:.1f} (gram {(r['flops']['gram_forward'] + r['flops']['gram_backward']) / 1e9:.1f}) "
            f"| {r['seconds']:.3f} | {speed:.0f} | {100 * speed / gflops:.0f}% | {1000 * r['overhead_seconds']:.1f} "
            f"| {100 * r['overhead_seconds'] / (r['overhead_seconds'] + r['lbfgs_session_median']):.0f}% "
            f"| {memory.format_bytes(r['peak_rss'])} | {memory.format_bytes(r['estimate'])} |"
        )
    lines += ["", *w2_shares(rows)]
    return "\n".join(lines) + "\n"


def w2_shares(rows):
    """One line per (network, size, precision) measured with both losses: W2's share of its
    evaluation, (W2 - Gram) / W2."""
    seconds = {(r["network"], r["size"], r["precision"], r["style_loss"]): r["seconds"] for r in rows}
    out = []
    for (network, size, precision, loss), w2 in seconds.items():
        gram = seconds.get((network, size, precision, "gram"))
        if loss == "w2" and gram is not None:
            out.append(f"- W2's share of an evaluation, {network} at {size} in {precision}: "
                       f"{100 * (w2 - gram) / w2:.0f}% ({w2:.3f} s against Gram's {gram:.3f} s)")
    return out


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


def _whole(network):
    """A copy of the VGG `network` whose graph always runs to its last layer: the variant
    without the deepest-layer cut (a subclass, so the shipped class stays as it is)."""
    @dataclasses.dataclass(frozen=True, eq=False)
    class WholeNetwork(type(network)):
        def deepest(self, names):
            return self.layers[-1]

    return WholeNetwork(**{f.name: getattr(network, f.name) for f in dataclasses.fields(network)})


def compare_in_process(name, network, width, height, rounds):
    """Build one Objective per variant, then evaluate them interleaved (A B C A B C ...).
    Each variant is a parameter of the shipped Objective (its session config, its loss
    scale, its network): nothing of the shipped modules is changed to make it."""
    content, style = test_images(width, height)
    loss = BENCH_LOSS
    variants = {}
    if name == "threads":
        for label, kw in (("intra 2, inter 1 (ours)", dict(intra=os.cpu_count(), inter=1)),
                          ("intra 2, inter 2", dict(intra=os.cpu_count(), inter=2)),
                          ("TF defaults (0, 0)", {})):
            variants[label] = Objective(network, content, [style], loss, config=_config(**kw))
    elif name == "gram":
        einsum = dataclasses.replace(LOSS_SCALES[loss.loss_scale], gram=_einsum_gram)
        variants["tf.matmul (ours)"] = Objective(network, content, [style], loss)
        variants["tf.einsum"] = Objective(network, content, [style], loss, loss_scale=einsum)
    elif name == "deepest":
        variants["graph stops at deepest layer (ours)"] = Objective(network, content, [style], loss)
        variants["whole network in the graph"] = Objective(_whole(network), content, [style], loss)
    elif name == "tiling":  # print size: the same objective, untiled and in tiles (tiled_objective.py)
        network = network.with_precision(choose_precision("auto", network.precisions))
        problem = Problem.create(network, content, [style], loss)
        variants["untiled"] = Objective.for_problem(problem)
        for core in TILING_CORES:
            tiled = TiledObjective(problem, core=core)
            variants[f"tiled, core {core} px ({len(tiled.tiles)} tiles)"] = tiled
    else:
        raise ValueError(name)
    x = initial_image(content, network, noiseblend=0.0)
    times = {label: [] for label in variants}
    for objective in variants.values():
        objective.evaluate(x)
    for _ in range(rounds):
        for label, objective in variants.items():
            times[label].append(_timed(lambda o=objective: o.evaluate(x)))
    ops = {label: len((o.graph if isinstance(o, Objective) else o.tile_graph.graph).get_operations())
           for label, o in variants.items()}
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
    terms = OrderedDict((k, 1.0) for k in LOSS_TERMS)

    class Ready:
        shape = grad.shape

        def evaluate(self, x):
            return terms, grad

    evaluator = Evaluator(Ready())
    xs = [rng.uniform(0, 255, n) for _ in range(2)]
    times = []
    for i in range(rounds):
        x = xs[i % 2]
        times.append(_timed(lambda x=x: (evaluator.loss(x), evaluator.grads(x))))
    return {"Evaluator.loss + grads, per evaluation": {"median": statistics.median(times)}}


# ---------------------------------------------------------------- command line


def build_parser():
    p = argparse.ArgumentParser(prog=cli.command_name("benchmark.py"), description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", nargs="*", type=parse_size, default=[], metavar="SIZE",
                   help=f"extra sizes, WxH or a long side (4:3); {REFERENCE_SIZE} is always measured")
    p.add_argument("--network", action="append", default=None, metavar="FILE",
                   help=f"weights file, or '{RANDOM_VGG19}', '{EMBEDDED}' (the embedded VGG-19) or '{HED}' "
                        "(HED's VGG-16); repeatable (default: the embedded VGG-19 and HED's VGG-16)")
    p.add_argument("--precisions", nargs="+", choices=("float32", "bfloat16"), default=None,
                   help="the network's precisions to time (default: float32, and bfloat16 where the CPU has it)")
    p.add_argument("--style-losses", nargs="+", choices=STYLE_LOSSES, default=list(STYLE_LOSSES),
                   help="style losses to time: the default W2 and the classic Gram beside it")
    p.add_argument("--repeats", type=int, default=REPEATS, help="timed evaluations per size (median reported)")
    p.add_argument("--lbfgs-evaluations", type=int, default=LBFGS_EVALUATIONS,
                   help="L-BFGS evaluations per size (overhead and peak RSS)")
    p.add_argument("--lbfgs-corrections", type=int, default=LBFGS_CORRECTIONS, help="L-BFGS history size")
    p.add_argument("--lbfgs-bounds", choices=LBFGS_BOUNDS_CHOICES, default=LBFGS_BOUNDS,
                   help="how L-BFGS keeps the pixels in 0..255 (neural_style.py's --lbfgs-bounds)")
    p.add_argument("--matmul-size", type=int, default=MATMUL_SIZE, help="matrix size of the matmul reference")
    p.add_argument("--out", default=OUT, help="Markdown file to write the table to")
    p.add_argument("--no-reference-size", action="store_true",
                   help=f"skip {REFERENCE_SIZE} (for quick runs and tests)")
    p.add_argument("--compare", choices=COMPARISONS, default=None,
                   help="instead of the table: interleaved A/B timings of one hot-path setting")
    p.add_argument("--rounds", type=int, default=3, help="rounds of interleaved A/B with --compare")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    whole = p.add_argument_group("the whole plain command (--command)")
    whole.add_argument("--command", nargs="*", default=None, metavar="NAME=FLAGS",
                       help="instead of the table: time neural_style.py as a user runs it (wall time to the image, "
                            "start-up, evaluations per scale, peak RSS), with each variant's flags; alone: the "
                            "plain command")
    whole.add_argument("--command-width", type=int, default=512, help="--width of the --command runs")
    whole.add_argument("--command-rounds", type=int, default=1, help="runs of each --command variant, alternating")
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
    if args.command is not None:
        variants = [benchmark_command.parse_variant(v) for v in args.command] or list(benchmark_command.DEFAULT_VARIANTS)
        benchmark_command.run(variants, args.command_width, args.command_rounds,
                              None if args.out == OUT else args.out)
        return 0
    if args.child is not None:
        job = json.loads(args.child)
        print(json.dumps(measure(job["network"], job["width"], job["height"], job["repeats"],
                                 job["lbfgs_evaluations"], job["corrections"], job.get("mallopt", True),
                                 job.get("precision", "float32"), job.get("style_loss", "w2"),
                                 job.get("bounds", LBFGS_BOUNDS))))
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
            if spec not in (RANDOM_VGG19, EMBEDDED, HED):
                load_net(spec)  # fail now, with one line, rather than in a child
    except UsageError as exc:  # a NetworkError: one line
        parser.error(str(exc))

    if args.compare:
        return run_comparison(args, networks[0], sizes[0])

    precisions = args.precisions or ["float32"] + (["bfloat16"] if choose_precision("auto") == "bfloat16" else [])
    load_before = load_average()
    gflops = matmul_gflops(args.matmul_size)
    rows = []
    for spec in networks:
        for size in sizes:
            for precision in precisions:
                for style_loss in args.style_losses:
                    print(f"measuring {spec} at {size[0]}x{size[1]}, {precision}, {style_loss} ...", file=sys.stderr)
                    rows.append(run_child(spec, size, args, precision=precision, style_loss=style_loss))
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
