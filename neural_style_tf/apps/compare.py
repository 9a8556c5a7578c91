"""L-BFGS against Adam on the same style-transfer objective: a fair, resumable experiment.

    python compare.py --content C --styles S --out-dir DIR [--width W] [--evaluations N]
                      [--time-budget SECONDS] [--seeds 0 1 2] [--adam-learning-rates 1 10 30]
                      [--lbfgs-corrections 5 20 100] [--init content|noise] [loss flags of neural_style.py]

Fairness: for each image pair ONE `objective.Objective` (one graph, one session) serves every
configuration, each seed gives every configuration the same starting image, and every
loss-and-gradient evaluation is recorded through the Evaluator's `on_evaluation` hook. An
Adam step costs one evaluation, an L-BFGS iteration one or more, so runs are compared per
evaluation and per second, never per "iteration".

The objective's flags and defaults are neural_style.py's (cli.add_objective_arguments), on
the same default network, the embedded ImageNet VGG-19, and resolved for it the same way
(settings.for_network: W2, replicate padding, style layers 0.5 per layer deeper, TV 1); the
start is the content, as neural_style.py's. Nothing here is tuned for another network.

Outputs in --out-dir: evaluations.csv, summary.json, summary.md, loss_vs_evaluations.png,
loss_vs_seconds.png, images.png, lbfgs_vs_best_adam.png (with both optimizers and at least
--target-from evaluations) and runs/<run>.png (+ runs/<run>.json, the marker that
makes a rerun skip the run).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace

from .. import checks, cli, images, lifecycle, memory
from ..errors import UsageError
from ..networks import normalization
from ..networks.loading import load_net
from ..objective import Objective, Problem, initial_image
from ..optimize import minimize
from ..settings import LossOptions, OptimizerOptions, for_network, jsonable
from ..tf_runtime import choose_precision, configure_process
from . import engine
from .compare_report import TARGET_FROM, run_path, write_json, write_outputs
from .metrics import GRAM_LAYERS, choose_gram_layers

WIDTH = 256
EVALUATIONS = 100
TIME_BUDGET = None
SEEDS = (0, 1, 2)
ADAM_LEARNING_RATES = (1.0, 10.0, 30.0)
LBFGS_CORRECTIONS = (5, 20, 100)
INIT = "content"
INIT_CHOICES = ("content", "noise")
# Runs stop at the evaluation or time budget, never at an iteration count: the budget
# is what makes L-BFGS and Adam comparable.
ITERATIONS_UNBOUNDED = 10**8


@dataclass(frozen=True)
class Experiment:
    """compare.py's settings, made once from the command line (nothing reads the Namespace)."""

    pairs: tuple  # ((content, (styles...)), ...)
    out_dir: str
    width: int
    init: str
    evaluations: int
    time_budget: float | None
    seeds: tuple
    adam_learning_rates: tuple
    lbfgs_corrections: tuple
    gram_layers: tuple | None
    quiet: bool
    target_from: int
    network: str | None
    input_range: str | None
    normalize_network: bool
    loss: LossOptions
    pool: object = None  # engine.PoolOptions: the runs on Ray workers; None: here, one after another
    precision: str = "auto"  # --precision, as neural_style.py's (tf_runtime.choose_precision)


def build_parser():
    p = argparse.ArgumentParser(
        prog=cli.command_name("compare.py"),
        description="Compare L-BFGS and Adam on the same style-transfer objective, start and seeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io_group = p.add_argument_group("images")
    io_group.add_argument("--content", default=None, help="content image")
    io_group.add_argument("--styles", nargs="+", default=None, metavar="STYLE", help="one or more style images")
    io_group.add_argument("--pairs", default=None,
                          help="CSV file, one 'content,style[,style...]' per line, instead of --content/--styles")
    io_group.add_argument("--out-dir", required=True, help="directory for every output (created if missing)")
    io_group.add_argument("--width", type=int, default=WIDTH, help="width of the images optimised, in pixels")
    io_group.add_argument("--init", choices=INIT_CHOICES, default=INIT,
                          help="start from the content, or from the classic tool's noise (seeded)")
    cli.add_style_scales(io_group)

    grid = p.add_argument_group("the experiment")
    grid.add_argument("--evaluations", type=int, default=EVALUATIONS,
                      help="loss-and-gradient evaluations per run")
    grid.add_argument("--time-budget", type=float, default=TIME_BUDGET, metavar="SECONDS",
                      help="also stop each run after this many seconds")
    grid.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                      help="seeds (of the noise start; with --init content every seed starts from the content)")
    grid.add_argument("--adam-learning-rates", type=float, nargs="*", default=list(ADAM_LEARNING_RATES),
                      metavar="LR", help="one Adam configuration per learning rate (none: no Adam)")
    grid.add_argument("--lbfgs-corrections", type=int, nargs="*", default=list(LBFGS_CORRECTIONS),
                      metavar="M", help="one L-BFGS configuration per history size (none: no L-BFGS)")
    grid.add_argument("--gram-layers", type=cli.layer_list, default=None, metavar="L1,L2",
                      help="held-out layers for the Gram distance to the style (default "
                           + ",".join(GRAM_LAYERS) + " when the network has them and the objective does not "
                           "use them, else unused layers picked from the network)")
    grid.add_argument("--target-from", type=int, default=TARGET_FROM, metavar="N",
                      help="check L-BFGS's best loss against the best Adam learning rate's at every "
                           "evaluation count from N on (summary: 'L-BFGS against the best Adam')")
    grid.add_argument("--quiet", action="store_true", help="no line per run")

    cli.add_objective_arguments(p.add_argument_group("objective (as neural_style.py)"))
    engine.add_pool_arguments(p)
    return p


# ---------------------------------------------------------------- validation


def read_pairs(path):
    """[(content, [styles])] from a CSV file; blank lines and lines starting with # are skipped."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise UsageError(f"--pairs {path}: cannot read ({exc.strerror})") from exc
    pairs = []
    for number, row in enumerate(rows, start=1):
        fields = [x.strip() for x in row if x.strip()]
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise UsageError(f"--pairs {path}: line {number} has {len(fields)} field(s); expected content,style")
        base = os.path.dirname(os.path.abspath(path))
        # Relative paths are relative to the pairs file, so the file can travel with its images.
        resolved = [x if os.path.isabs(x) or os.path.exists(x) else os.path.join(base, x) for x in fields]
        pairs.append((resolved[0], resolved[1:]))
    if not pairs:
        raise UsageError(f"--pairs {path}: no pairs in the file")
    return pairs


def resolve_pairs(args):
    """[(content, [styles])] from --pairs or from --content with --styles."""
    if args.pairs is not None:
        if args.content is not None or args.styles is not None:
            raise UsageError("give either --pairs or --content with --styles, not both")
        return read_pairs(args.pairs)
    if args.content is None or args.styles is None:
        raise UsageError("--content and --styles are required (or --pairs FILE)")
    return [(args.content, list(args.styles))]


def read_experiment(argv=None):
    """argv -> a validated, frozen Experiment. Raises UsageError."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, given = cli.parse_once(build_parser, argv)
    pairs = resolve_pairs(args)
    try:
        settings = cli.parse_settings(args, given)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    experiment = Experiment(
        pairs=tuple((c, tuple(s)) for c, s in pairs), out_dir=args.out_dir, width=args.width, init=args.init,
        evaluations=args.evaluations, time_budget=args.time_budget, seeds=tuple(args.seeds),
        adam_learning_rates=tuple(args.adam_learning_rates), lbfgs_corrections=tuple(args.lbfgs_corrections),
        gram_layers=args.gram_layers, quiet=args.quiet, target_from=args.target_from, network=settings.run.network,
        input_range=settings.run.input_range, normalize_network=settings.run.normalize_network,
        loss=settings.loss, pool=engine.pool_options(args), precision=settings.run.precision)
    validate(experiment)
    engine.check_options(experiment.pool or engine.PoolOptions())
    return experiment


def validate(exp):
    """Every check that needs no network. Raises UsageError."""
    for label, value in (("--width", exp.width), ("--evaluations", exp.evaluations),
                         ("--target-from", exp.target_from)):
        if value <= 0:
            raise UsageError(f"{label} must be a positive integer, not {value}")
    if exp.time_budget is not None and not (exp.time_budget > 0 and math.isfinite(exp.time_budget)):
        raise UsageError(f"--time-budget must be a positive number of seconds, not {exp.time_budget}")
    for seed in exp.seeds:
        if seed < 0:
            raise UsageError(f"--seeds must be non-negative integers, not {seed}")
    for lr in exp.adam_learning_rates:
        if not (lr > 0 and math.isfinite(lr)):
            raise UsageError(f"--adam-learning-rates must be positive, not {lr:g}")
    for m in exp.lbfgs_corrections:
        if m <= 0:
            raise UsageError(f"--lbfgs-corrections must be positive integers, not {m}")
    if not exp.adam_learning_rates and not exp.lbfgs_corrections:
        raise UsageError("nothing to compare: give at least one --adam-learning-rates or --lbfgs-corrections value")
    checks.check_weights(exp.loss)
    for content, styles in exp.pairs:
        checks.check_per_style(styles, exp.loss)
        for label, path in [("--content", content)] + [("--styles", s) for s in styles]:
            problem = images.check_readable_image(path)
            if problem:
                raise UsageError(f"{label} {problem}")
    problem = images.check_output_dir(exp.out_dir)
    if problem:
        raise UsageError(f"--out-dir {problem}")


# ---------------------------------------------------------------- the grid


def configurations(exp):
    """[(config id, label, optimizer, setting, OptimizerOptions changes)] in a fixed order."""
    configs = []
    for lr in dict.fromkeys(exp.adam_learning_rates):
        configs.append((f"adam-lr{lr:g}", f"Adam lr={lr:g}", "adam", lr, {"learning_rate": lr}))
    for m in dict.fromkeys(exp.lbfgs_corrections):
        configs.append((f"lbfgs-m{m}", f"L-BFGS m={m}", "lbfgs", m, {"lbfgs_corrections": m}))
    return configs


def pair_ids(pairs):
    """Short, unique, file-name-safe names for the image pairs."""
    ids = []
    for content, styles in pairs:
        stem = "+".join(os.path.splitext(os.path.basename(p))[0] for p in [content] + list(styles))
        stem = "".join(c if c.isalnum() or c in "+-_" else "_" for c in stem)
        name, n = stem, 2
        while name in ids:
            name, n = f"{stem}-{n}", n + 1
        ids.append(name)
    return ids


def shared_settings(exp, network, loss, content, styles):
    """What must be equal for two runs to be comparable (checked when resuming)."""
    return {"content": os.path.abspath(content), "styles": [os.path.abspath(s) for s in styles],
            "width": exp.width, "init": exp.init, "network": network.name,
            "evaluations": exp.evaluations, "time_budget": exp.time_budget,
            "loss": jsonable(vars(loss))}


def read_marker(out_dir, run_id):
    """The finished run's record, or None when it must (re)run."""
    path = run_path(out_dir, run_id, "json")
    if not (os.path.isfile(path) and os.path.isfile(run_path(out_dir, run_id, "png"))):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # an unreadable marker: run again rather than trust it


def plan_pair(exp, network, pair_id, content_path, style_paths, configs):
    """One pair's images and objective, its runs still to do and the finished ones' markers."""
    content = images.resize_to_width(images.load_image(content_path), exp.width)
    styles = [images.load_image(p) for p in style_paths]
    loss = for_network(exp.loss, network)
    settings = shared_settings(exp, network, loss, content_path, style_paths)
    todo, done = [], {}
    for seed in exp.seeds:
        for config in configs:
            run_id = f"{pair_id}__{config[0]}__seed{seed}"
            marker = read_marker(exp.out_dir, run_id)
            if marker is None:
                todo.append((run_id, config, seed))
                continue
            if marker.get("settings") != settings:
                diff = sorted(k for k in set(settings) | set(marker.get("settings", {}))
                              if settings.get(k) != marker.get("settings", {}).get(k))
                raise UsageError(f"--out-dir {exp.out_dir} holds run {run_id} made with other settings "
                                 f"({', '.join(diff)} differ); use a new --out-dir or the same settings")
            done[run_id] = marker
    return pair_id, content, styles, loss, settings, todo, done


def run_one(exp, objective, network, content, run, pair_id, settings):
    """One configuration and seed on the pair's objective: (its marker, its image) for save_run."""
    run_id, (config_id, label, optimizer, setting, changes), seed = run
    noiseblend = 0.0 if exp.init == "content" else 1.0
    x0 = initial_image(content, network, None, noiseblend, seed)
    # Every run spends its whole budget (no --min-improvement stop): the comparison is at equal cost.
    opts = OptimizerOptions(optimizer=optimizer, iterations=ITERATIONS_UNBOUNDED,
                            max_evaluations=exp.evaluations, time_budget=exp.time_budget,
                            **{"min_improvement": 0.0, **changes})
    rows = []

    def record(index, seconds, terms):
        rows.append([index, seconds] + [terms[k] for k in ("content", "style", "tv", "total")])

    result = minimize(objective, x0, opts, on_evaluation=record)
    if result.stop_reason == "interrupted":
        raise KeyboardInterrupt
    marker = {"run": run_id, "pair": pair_id, "config": config_id, "label": label,
              "optimizer": optimizer, "setting": setting, "seed": seed, "settings": settings,
              "stop_reason": result.stop_reason, "message": result.message,
              "evaluations": result.evaluations, "iterations": result.iterations,
              "seconds": result.elapsed, "best_terms": result.terms, "rows": rows}
    # Not even one finite evaluation: keep the start.
    return marker, (x0 if result.image is None else result.image)


def save_run(exp, marker, image):
    """A finished run's image, then its marker, written last and atomically: its presence
    means the run is complete."""
    images.save_image(run_path(exp.out_dir, marker["run"], "png"), image)
    write_json(run_path(exp.out_dir, marker["run"], "json"), marker)


def warm_up(objective, content):
    """The first session.run pays TensorFlow's one-off start-up costs; spend them here so that
    they are not charged to whichever configuration runs first."""
    objective.evaluate(content)
    import scipy.optimize  # noqa: F401  (likewise: its import would be charged to the first L-BFGS run)


def run_job(worker, payload):
    """One run on a batch worker (engine.py): the pair's objective is built once per worker."""
    p = payload
    network = worker.shared_object(p["network"])
    built = worker.counts["built"]
    with worker.make_objective(Problem.create(network, p["content"], p["styles"], p["loss"])) as objective:
        if worker.counts["built"] > built:
            warm_up(objective, p["content"])
        marker, image = run_one(p["exp"], objective, network, p["content"], p["run"], p["pair_id"], p["settings"])
    return {"status": "done", "marker": marker, "image": image}


def run_on_ray(exp, network, prepared, done_by_pair, say):
    """Every run still to do, as jobs on Ray workers (engine.py); a pair's runs share a graph."""
    import ray

    layers = tuple(exp.loss.content_layers) + tuple(exp.loss.style_layers)
    need = max(memory.estimate_peak_bytes(network, *p[1].shape[:2], "lbfgs", max(exp.lbfgs_corrections or (1,)),
                                          layers) for p in prepared)
    pool = replace(exp.pool, memory=need)
    started = engine.connect(pool.address)
    try:
        shared = ray.put(network)
        tasks = [engine.Task(run[0], "neural_style_tf.apps.compare:run_job",
                             {"exp": exp, "network": shared, "content": content, "styles": styles, "loss": loss,
                              "run": run, "pair_id": pair_id, "settings": settings}, group=pair_id)
                 for pair_id, content, styles, loss, settings, todo, _ in prepared for run in todo]

        def on_result(task, record):
            if record["status"] != "done":
                raise UsageError(f"run {task.id} failed: {record.get('error')}")
            marker = record["marker"]
            save_run(exp, marker, record["image"])
            done_by_pair[marker["pair"]][marker["run"]] = marker
            say(f"run {marker['run']}: {marker['evaluations']} evaluations, {marker['seconds']:.1f} s "
                f"({marker['stop_reason']}) on {record.get('host')}")

        engine.run_tasks(tasks, pool, on_result, say=say)
    finally:
        engine.shutdown(started)


def run_grid(exp, network, pairs, say):
    """Run every (pair, configuration, seed) not finished yet; return every run's record."""
    configs = configurations(exp)
    os.makedirs(os.path.join(exp.out_dir, "runs"), exist_ok=True)
    prepared = [plan_pair(exp, network, pair_id, c, s, configs) for pair_id, (c, s) in zip(pair_ids(pairs), pairs)]
    total = sum(len(p[5]) for p in prepared)
    count = 0
    records = []
    if exp.pool is not None and total:
        run_on_ray(exp, network, prepared, {p[0]: p[6] for p in prepared}, say)
    for pair_id, content, styles, loss, settings, todo, done in prepared:
        if todo and exp.pool is None:
            # One objective for every configuration and seed of this pair: the same graph,
            # the same targets, the same session.
            with Objective(network, content, styles, loss) as objective:
                warm_up(objective, content)
                for run in todo:
                    count += 1
                    marker, image = run_one(exp, objective, network, content, run, pair_id, settings)
                    save_run(exp, marker, image)
                    done[run[0]] = marker
                    best = (marker["best_terms"] or {}).get("total", float("nan"))
                    say(f"run {count}/{total}: {marker['label']}, seed {run[2]}: {marker['evaluations']} "
                        f"evaluations, {marker['seconds']:.1f} s, best loss {best:.6g} ({marker['stop_reason']})")
        for seed in exp.seeds:
            for config in configs:
                records.append(done[f"{pair_id}__{config[0]}__seed{seed}"])
    return records, prepared, configs


# ---------------------------------------------------------------- command


def load_network(exp, say):
    """The network, checked against the objective's layers (normalised for the paper's preset)."""
    network = load_net(exp.network, exp.input_range)
    checks.check_layers(exp.loss, network)
    choose_gram_layers(network, exp.gram_layers, tuple(exp.loss.content_layers) + tuple(exp.loss.style_layers))
    checks.check_precision(exp.precision, network)
    say(network.announce())
    if exp.normalize_network:
        try:
            network = normalization.normalized_network(network, exp.loss.pooling, log=say)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return network.with_precision(choose_precision(exp.precision, network.precisions))


def run(exp, say):
    t0 = time.perf_counter()
    network = load_network(exp, say)
    os.makedirs(exp.out_dir, exist_ok=True)
    records, prepared, configs = run_grid(exp, network, [(c, list(s)) for c, s in exp.pairs], say)
    summary, markdown = write_outputs(exp, network, records, prepared, configs)
    print(markdown)
    say(f"wrote {exp.out_dir} in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None):
    def command():
        exp = read_experiment(argv)
        if exp.pool is not None:  # --workers or --address: Ray, pip install 'neural-style-tf[batch]'
            cli.require_extra("batch")

        def say(text):
            if not exp.quiet:
                print(text, file=sys.stderr)

        configure_process()
        return run(exp, say)

    # The interrupted run has no marker; finished runs keep theirs.
    return lifecycle.run_command(cli.command_name("compare.py"), command, "interrupted; rerun the same command to resume")
