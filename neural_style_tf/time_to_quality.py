"""Time to a finished image: how long each route takes to reach the loss that single-scale
L-BFGS reaches after REFERENCE_EVALUATIONS evaluations, on the same objective.

    python benchmark.py --time-to-quality [--width 512] [--route NAME="FLAGS" ...] [--out-dir DIR]

Every route is a neural_style.py command line (plus --width), run in this process
through the same code as the command (transfer.load, check, prepare, optimise), one
after the other, so they share the machine's state. The clock is the wall clock from
the start of the optimisation: it includes building each scale's graph and targets,
which coarse-to-fine pays once per scale. A route's loss is the best loss so far of
the full-size objective, so coarse scales count as time but never as loss.

The reference route is single-scale L-BFGS with the default objective; its best loss
after REFERENCE_EVALUATIONS evaluations is the target. Each other route's time to the
target is the first moment its full-size best loss is at or below it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import time

from . import cli, images, transfer

REFERENCE_EVALUATIONS = 500
# The route the default command takes is measured as "default"; the others are the
# alternatives it was chosen from (docs/performance.md).
ROUTES = (
    ("default", ""),
    ("coarse-to-fine 3 scales", "--scales 3"),
    ("adam lr 10", "--optimizer adam --scales 1 --iterations 600"),
)
REFERENCE = ("single-scale L-BFGS", "--scales 1 --iterations 100000")


def settings_for(flags, content, style, width, out_dir):
    import neural_style

    argv = ["--content", content, "--styles", style, "--output", os.path.join(out_dir, "unused.png"),
            "--width", str(width), "--quiet", "--overwrite", "--seed", "0", *flags]
    parser = neural_style.build_parser()
    return cli.parse_settings(parser.parse_args(argv), cli.explicit_dests(neural_style.build_parser, argv))


class Trace:
    """The reporter of one route: (CPU seconds, wall seconds, full-size best loss,
    evaluations) per iteration.

    Routes are compared on the CPU time of this process (every thread of it): on a
    shared machine the wall clock also counts the other programs' load, which varies
    from one route to the next; the CPU time of the same computation does not.
    """

    def __init__(self):
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        self.rows = []
        self.best = math.inf

    def __call__(self, progress):
        scale = getattr(progress, "scale", None)
        if scale is None or scale[0] == scale[1] - 1:  # the full size
            self.best = min(self.best, progress.terms["total"])
        self.rows.append((time.process_time() - self.cpu0, time.perf_counter() - self.wall0, self.best,
                          progress.evaluations))

    def time_to(self, target):
        """CPU seconds until the full-size best loss was at or below `target` (None: never)."""
        return next((cpu for cpu, _, best, _ in self.rows if best <= target), None)


def _inputs(settings, network):
    if network is None:
        return transfer.load(settings)
    content, alpha = images.load_image(settings.run.content, with_alpha=True)
    return transfer.Inputs(network, content, alpha, [images.load_image(p) for p in settings.run.styles])


def run_route(settings, network=None):
    """Optimise one route; returns (its Trace, the network). `network`, if given, is reused."""
    inputs = _inputs(settings, network)
    transfer.check(settings, inputs)
    job = transfer.prepare(settings, inputs)
    trace = Trace()
    transfer.optimise(settings, job, trace)
    return trace, inputs.network


def measure(content, style, width, routes, out_dir, objective="", say=print):
    """The reference and every route: {name: {seconds_to_target, ratio, final_loss, evaluations}}.

    `objective` (flags) is added to every route, the reference's included, so that all
    of them minimise the same objective."""
    name, flags = REFERENCE
    common = shlex.split(objective)
    reference = settings_for(shlex.split(flags) + common, content, style, width, out_dir)
    reference = reference.with_values({"max_evaluations": REFERENCE_EVALUATIONS})
    say(f"{name}: {REFERENCE_EVALUATIONS} evaluations at {width} px ...")
    ref_trace, network = run_route(reference)
    target = ref_trace.best
    ref_time = ref_trace.time_to(target)
    results = {name: {"flags": flags, "seconds_to_target": ref_time, "ratio": 1.0, "final_loss": target,
                      "evaluations": ref_trace.rows[-1][3], "trace": ref_trace.rows}}
    say(f"  target loss {target:.6g}, reached in {ref_time:.0f} CPU s")
    for route, flags in routes:
        say(f"{route}: {flags or '(no flags)'} ...")
        trace, _ = run_route(settings_for(shlex.split(flags) + common, content, style, width, out_dir), network)
        seconds = trace.time_to(target)
        results[route] = {"flags": flags, "seconds_to_target": seconds,
                          "ratio": None if seconds is None else seconds / ref_time, "final_loss": trace.best,
                          "evaluations": trace.rows[-1][3], "seconds": trace.rows[-1][0], "trace": trace.rows}
        say(f"  best {trace.best:.6g} after {trace.rows[-1][0]:.0f} CPU s; "
            + ("never reached the target" if seconds is None else f"target at {seconds:.0f} s = {seconds / ref_time:.2f} x"))
    return results


def markdown(results, width):
    lines = [f"| route ({width} px) | flags | CPU seconds to the target | x single-scale L-BFGS | final loss |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        seconds = "never" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f}"
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {name} | `{r['flags'] or '(none)'}` | {seconds} | {ratio} | {r['final_loss']:.5g} |")
    return "\n".join(lines) + "\n"


def parse_route(text):
    name, sep, flags = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--route {text!r}: give NAME=FLAGS")
    return name.strip(), flags


def add_arguments(p):
    g = p.add_argument_group("time to quality (--time-to-quality)")
    g.add_argument("--time-to-quality", action="store_true",
                   help="time each route to the loss of single-scale L-BFGS after "
                        f"{REFERENCE_EVALUATIONS} evaluations")
    g.add_argument("--width", type=int, default=512, help="output width of the time-to-quality runs")
    g.add_argument("--route", action="append", type=parse_route, default=None, metavar="NAME=FLAGS",
                   help="a route to time (default: the default command, 3-scale coarse-to-fine, Adam)")
    g.add_argument("--objective", default="", metavar="FLAGS",
                   help="objective flags added to every route and the reference (default: the default objective)")
    g.add_argument("--out-dir", default="time-to-quality", help="where the JSON and Markdown results go")


def run(args, content, style):
    os.makedirs(args.out_dir, exist_ok=True)
    results = measure(content, style, args.width, args.route or ROUTES, args.out_dir, args.objective)
    with open(os.path.join(args.out_dir, "time_to_quality.json"), "w") as f:
        json.dump({"width": args.width, "objective": args.objective, "routes": results}, f)
    table = markdown(results, args.width)
    with open(os.path.join(args.out_dir, "time_to_quality.md"), "w") as f:
        f.write(table)
    print(table)
    return 0
