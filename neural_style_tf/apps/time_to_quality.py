"""Time to a finished image: how long each route takes to reach the loss that single-scale
L-BFGS reaches after REFERENCE_EVALUATIONS evaluations, on the same objective.

    python benchmark.py --time-to-quality [--width 512] [--route NAME="FLAGS" ...] [--out-dir DIR]

Every route is a neural_style.py command line (plus --width), run in this process
through the same code as the command (transfer.load, check, prepare, optimize), one
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

from .. import cli, images, transfer

REFERENCE_EVALUATIONS = 500
# The route the default command takes is measured as "default"; the others are the
# alternatives it was chosen from (docs/performance.md).
ROUTES = (
    ("default", ""),
    ("Adam lr 10 one scale", "--optimizer adam --scales 1 --iterations 300"),
)
REFERENCE = ("single-scale L-BFGS", "--scales 1 --iterations 100000")
# The second table: CPU seconds to within these shares above the target. The last few
# tenths of a percent take L-BFGS as long as the first 25% (docs/performance.md), and a
# route that stops 0.5% short is "never" in the first table; this shows how close it got.
WITHIN = (0.25, 0.10, 0.05, 0.02, 0.01)


def settings_for(flags, content, style, width, out_dir):
    argv = ["--content", content, "--styles", style, "--output", os.path.join(out_dir, "unused.png"),
            "--width", str(width), "--quiet", "--overwrite", "--seed", "0", *flags]
    return cli.parse_settings(*cli.parse_once(_parser, argv))


def _parser():
    """neural_style.py's flags (a command does not import another command)."""
    return cli.add_transfer_arguments(cli.Parser(prog="neural_style.py"))


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
        scale = progress.scale  # (index, count, size) on a coarse-to-fine route, None on one scale
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
    return transfer.NetworkAndImages(network, content, alpha, [images.load_image(p) for p in settings.run.styles])


def run_route(settings, network=None):
    """Optimise one route; returns (its Trace, the network). `network`, if given, is reused."""
    inputs = _inputs(settings, network)
    transfer.check(settings, inputs)
    job = transfer.prepare(settings, inputs)
    trace = Trace()
    transfer.optimize(settings, job, trace)
    return trace, inputs.network


def trace_path(out_dir, name):
    return os.path.join(out_dir, "trace_" + "".join(c if c.isalnum() else "-" for c in name) + ".json")


def run_routes(content, style, width, routes, out_dir, objective="", say=print):
    """Run each (name, flags) route, the reference among them, and save its trace at once
    (trace_<name>.json), so a long study survives an interrupt and routes can run in
    separate processes: CPU seconds add up the same in parallel (see Trace).

    `objective` (flags) is added to every route so that all minimise the same objective."""
    common, network = shlex.split(objective), None
    for name, flags in routes:
        settings = settings_for(shlex.split(flags) + common, content, style, width, out_dir)
        if (name, flags) == REFERENCE:
            # All its evaluations: the converged loss every route is measured against.
            settings = settings.with_values({"max_evaluations": REFERENCE_EVALUATIONS, "min_improvement": 0.0})
        say(f"{name}: {flags or '(no flags)'} at {width} px ...")
        trace, network = run_route(settings, network)
        record = {"name": name, "flags": flags, "objective": objective, "width": width, "final_loss": trace.best,
                  "rows": trace.rows}
        images.write_atomically(trace_path(out_dir, name), lambda f, r=record: f.write(json.dumps(r).encode()))
        say(f"  best {trace.best:.6g} after {trace.rows[-1][0]:.0f} CPU s, {trace.rows[-1][3]} evaluations")


def report(out_dir, names):
    """{name: result} from the saved traces: CPU seconds to the reference's final loss, and the ratio."""
    traces = {}
    for name in names:
        with open(trace_path(out_dir, name)) as f:
            traces[name] = json.load(f)
    ref = traces[REFERENCE[0]]
    target = ref["final_loss"]
    ref_time = _seconds_to(ref, target)
    results = {}
    for name, t in traces.items():
        seconds = _seconds_to(t, target)
        reached = next((row for row in t["rows"] if row[2] <= target), None)
        results[name] = {"flags": t["flags"], "seconds_to_target": seconds, "final_loss": t["final_loss"],
                         "ratio": None if seconds is None else seconds / ref_time,
                         "evaluations_to_target": None if reached is None else reached[3],
                         "cpu_seconds": t["rows"][-1][0], "evaluations": t["rows"][-1][3],
                         "within": {share: _seconds_to(t, target * (1 + share)) for share in WITHIN}}
    return results


def _seconds_to(trace, loss):
    """The first CPU second of a saved trace with its best full-size loss at or below `loss`."""
    return next((cpu for cpu, _, best, _ in trace["rows"] if best <= loss), None)


def markdown(results, width):
    lines = [f"| route ({width} px) | flags | CPU seconds to the target | x single-scale L-BFGS "
             "| evaluations to the target | final loss (CPU s, evaluations) |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        seconds = "never" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f}"
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        evals = "–" if r["evaluations_to_target"] is None else str(r["evaluations_to_target"])
        lines.append(f"| {name} | `{r['flags'] or '(none)'}` | {seconds} | {ratio} | {evals} "
                     f"| {r['final_loss']:.5g} ({r['cpu_seconds']:.0f}, {r['evaluations']}) |")
    return "\n".join(lines) + "\n\n" + _within_table(results)


def _within_table(results):
    """CPU seconds to within each share of the target, and the ratio to the reference's."""
    ref = results[REFERENCE[0]]["within"]
    lines = ["| within the target's | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    for share in WITHIN:
        cells = []
        for r in results.values():
            seconds = r["within"][share]
            ratio = "" if seconds is None or not ref[share] else f" ({seconds / ref[share]:.2f}x)"
            cells.append("never" if seconds is None else f"{seconds:.0f} s{ratio}")
        lines.append(f"| {share:.0%} | " + " | ".join(cells) + " |")
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
                   help="a route to time, NAME without commas (default: the default command, and Adam)")
    g.add_argument("--only", default=None, metavar="NAMES",
                   help="run only these routes (comma-separated names; the reference is "
                        f"'{REFERENCE[0]}'), e.g. one per process; then --report-only")
    g.add_argument("--report-only", action="store_true", help="no runs: the table from the saved traces")
    g.add_argument("--objective", default="", metavar="FLAGS",
                   help="objective flags added to every route and the reference (default: the default objective)")
    g.add_argument("--out-dir", default="time-to-quality", help="where the JSON and Markdown results go")


def run(args, content, style):
    os.makedirs(args.out_dir, exist_ok=True)
    routes = [REFERENCE, *(args.route or ROUTES)]
    if not args.report_only:
        only = None if args.only is None else {n.strip() for n in args.only.split(",")}
        run_routes(content, style, args.width, [r for r in routes if only is None or r[0] in only], args.out_dir,
                   args.objective)
    names = [name for name, _ in routes if os.path.exists(trace_path(args.out_dir, name))]
    if REFERENCE[0] not in names:
        print("time to quality: no reference trace yet; run it (--only 'single-scale L-BFGS')")
        return 0
    results = report(args.out_dir, names)
    table = markdown(results, args.width)
    with open(os.path.join(args.out_dir, "time_to_quality.json"), "w") as f:
        json.dump({"width": args.width, "objective": args.objective, "routes": results}, f, indent=1)
    with open(os.path.join(args.out_dir, "time_to_quality.md"), "w") as f:
        f.write(table)
    print(table)
    return 0
