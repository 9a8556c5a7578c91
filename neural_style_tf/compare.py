"""L-BFGS against Adam on the same style-transfer objective: a fair, resumable experiment.

    python compare.py --content C --styles S --out-dir DIR [--width W] [--evaluations N]
                      [--time-budget SECONDS] [--seeds 0 1 2] [--adam-learning-rates 1 10 30]
                      [--lbfgs-corrections 5 20 100] [--init content|noise] [loss flags of neural_style.py]

Fairness: for each image pair ONE `stylize.Objective` (one graph, one session) serves every
configuration, each seed gives every configuration the same starting image, and every
loss-and-gradient evaluation is recorded through the Evaluator's `on_evaluation` hook. An
Adam step costs one evaluation, an L-BFGS iteration one or more, so runs are compared per
evaluation and per second, never per "iteration".

Outputs in --out-dir: evaluations.csv, summary.json, summary.md, loss_vs_evaluations.png,
loss_vs_seconds.png, images.png, lbfgs_vs_best_adam.png (with both optimizers and at least
--target-from evaluations) and runs/<run>.png (+ runs/<run>.json, the marker that
makes a rerun skip the run).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

import stylize
import vgg

from . import checks, cli, color, engine, images, memory
from .errors import EXIT_INTERRUPTED, UsageError
from .networks import normalization
from .settings import STYLE_SCALE, LossOptions, OptimizerOptions, for_network, jsonable
from .tf_runtime import configure_process, import_tensorflow, session_config

WIDTH = 256
EVALUATIONS = 100
TIME_BUDGET = None
SEEDS = (0, 1, 2)
ADAM_LEARNING_RATES = (1.0, 10.0, 30.0)
LBFGS_CORRECTIONS = (5, 20, 100)
INIT = "content"
INIT_CHOICES = ("content", "noise")
# Style statistics on layers the objective does not see: a lower loss that does not
# lower these is the optimizer fitting the loss, not making a more stylish image.
GRAM_LAYERS = ("relu2_2", "relu4_3")
# The loss thresholds of "evaluations to reach": 110% and 101% of the best loss any
# configuration found on the same pair.
THRESHOLDS = (1.10, 1.01)
# Issue 13's target for L-BFGS's start: its best loss at or below the best Adam learning
# rate's at every evaluation count from this one on (the first few are the start's to lose).
TARGET_FROM = 15
# Runs stop at the evaluation or time budget, never at an iteration count: the budget
# is what makes L-BFGS and Adam comparable.
ITERATIONS_UNBOUNDED = 10**8
CSV_FIELDS = ("pair", "config", "optimizer", "setting", "seed", "evaluation", "seconds",
              "content", "style", "tv", "total")


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
    normalise_network: bool
    loss: LossOptions
    pool: object = None  # engine.PoolOptions: the runs on Ray workers; None: here, one after another


def build_parser():
    p = argparse.ArgumentParser(
        prog="compare.py",
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
    args = build_parser().parse_args(argv)
    pairs = resolve_pairs(args)
    try:
        settings = cli.parse_settings(args, cli.explicit_dests(build_parser, argv))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    experiment = Experiment(
        pairs=tuple((c, tuple(s)) for c, s in pairs), out_dir=args.out_dir, width=args.width, init=args.init,
        evaluations=args.evaluations, time_budget=args.time_budget, seeds=tuple(args.seeds),
        adam_learning_rates=tuple(args.adam_learning_rates), lbfgs_corrections=tuple(args.lbfgs_corrections),
        gram_layers=args.gram_layers, quiet=args.quiet, target_from=args.target_from, network=settings.run.network,
        input_range=settings.run.input_range, normalise_network=settings.run.normalise_network,
        loss=settings.loss, pool=engine.pool_options(args))
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


def choose_gram_layers(network, requested, objective_layers):
    """The held-out layers of the Gram distance (see GRAM_LAYERS)."""
    used = set(objective_layers)
    if requested is not None:
        for name in requested:
            if name not in network.layers:
                raise UsageError(f"--gram-layers: {network.layer_problem(name)}")
            if name in used:
                raise UsageError(f"--gram-layers: {name} is in the objective; choose layers the loss does not use")
        return tuple(requested)
    chosen = tuple(n for n in GRAM_LAYERS if n in network.layers and n not in used)
    if chosen:
        return chosen
    # Networks without relu2_2/relu4_3 (or objectives that use them): unused relu layers,
    # else unused pooling layers (a small VGG may use every relu), one shallow, one deep.
    # A Keras model's layers have names of its own: then any unused feature layer will do.
    for kind in ("relu", "pool", None):
        candidates = [n for n in network.layers if kind in (None, vgg.layer_kind(n)) and n not in used]
        if candidates:
            picks = {candidates[len(candidates) // 3], candidates[(2 * len(candidates)) // 3]}
            return tuple(n for n in candidates if n in picks)
    raise UsageError("--gram-layers: every layer of the network is in the objective; name held-out layers")


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


def run_path(out_dir, run_id, ext):
    return os.path.join(out_dir, "runs", f"{run_id}.{ext}")


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


def write_json(path, data):
    images.write_atomically(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode()))


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
    x0 = stylize.initial_image(content, network, None, noiseblend, seed)
    opts = OptimizerOptions(optimizer=optimizer, iterations=ITERATIONS_UNBOUNDED,
                            max_evaluations=exp.evaluations, time_budget=exp.time_budget, **changes)
    rows = []

    def record(index, seconds, terms):
        rows.append([index, seconds] + [terms[k] for k in ("content", "style", "tv", "total")])

    result = stylize.minimize(objective, x0, opts, on_evaluation=record)
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
    with worker.make_objective(network, p["content"], p["styles"], p["loss"]) as objective:
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
        tasks = [engine.Task(run[0], "neural_style_tf.compare:run_job",
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
            with stylize.Objective(network, content, styles, loss) as objective:
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


# ---------------------------------------------------------------- metrics


def best_so_far(rows):
    return np.minimum.accumulate(np.array([r[5] for r in rows], np.float64)) if rows else np.array([])


def pair_references(runs):
    """For one pair's runs: best loss found, and the equal-evaluation / equal-time points.

    E is the fewest evaluations any run stopped by its budget made; T the shortest such
    run's wall-clock time. Runs that ended by themselves (L-BFGS converged or gave up, a
    NaN) do not lower E or T: what they deliver is their best image, carried forward.
    """
    finite = [r[5] for run in runs for r in run["rows"] if math.isfinite(r[5])]
    best = min(finite) if finite else float("nan")
    budgeted = [run for run in runs if run["stop_reason"] in ("budget", "completed") and run["rows"]]
    pool = budgeted or [run for run in runs if run["rows"]]
    pick = min if budgeted else max
    e = pick(run["rows"][-1][0] for run in pool) if pool else 0
    t = pick(run["rows"][-1][1] for run in pool) if pool else 0.0
    return best, e, t


def run_metrics(run, best, e, t):
    """The per-run numbers of the summary (all recomputable from evaluations.csv)."""
    rows = run["rows"]
    totals = np.array([r[5] for r in rows], np.float64)
    seconds = np.array([r[1] for r in rows], np.float64)
    running = best_so_far(rows)
    out = {"run": run["run"], "seed": run["seed"], "evaluations": len(rows),
           "seconds": float(seconds[-1]) if len(rows) else 0.0,
           "final_loss": float(running[-1]) if len(rows) else None}
    out["loss_at_equal_evaluations"] = float(running[min(e, len(rows)) - 1]) if len(rows) and e > 0 else None
    by_t = totals[seconds <= t]
    out["loss_at_equal_seconds"] = float(np.min(by_t)) if by_t.size else None
    for threshold in THRESHOLDS:
        key = f"{round(threshold * 100)}"
        hits = np.nonzero(totals <= threshold * best)[0]
        out[f"evaluations_to_{key}"] = int(rows[hits[0]][0]) if hits.size else None
        out[f"seconds_to_{key}"] = float(seconds[hits[0]]) if hits.size else None
    return out


def _ranges(numbers):
    """[[first, last], ...] of the runs of consecutive integers in a sorted list."""
    out = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def lbfgs_against_adam(records, start=TARGET_FROM):
    """Per pair, seed and L-BFGS configuration: its best loss so far over the lowest best-so-far
    of the pair's Adam runs (same seed, any learning rate) at each evaluation count from `start`
    to the shortest Adam run's end. A ratio above 1 is L-BFGS behind the best Adam there.

    An L-BFGS run that ended early (converged) keeps its best: that is the image it delivers.
    """
    groups = {}
    for run in records:
        groups.setdefault((run["pair"], run["seed"]), []).append(run)
    out = []
    for (pair, _seed), runs in groups.items():
        adam = [r for r in runs if r["optimizer"] == "adam" and r["rows"]]
        n = min((len(r["rows"]) for r in adam), default=0)
        if n < start:
            continue
        curves = np.stack([best_so_far(r["rows"])[:n] for r in adam])
        envelope, winner = curves.min(axis=0), curves.argmin(axis=0)
        for run in runs:
            if run["optimizer"] != "lbfgs" or not run["rows"]:
                continue
            mine = best_so_far(run["rows"])[:n]
            mine = np.concatenate([mine, np.full(n - len(mine), mine[-1])])
            full = mine / envelope
            ratio = full[start - 1:]
            worst = int(np.argmax(ratio))
            above = [start + int(i) for i in np.nonzero(ratio > 1)[0]]
            out.append({"pair": pair, "seed": run["seed"], "config": run["config"], "label": run["label"],
                        "from": start, "to": n, "meets": not above, "worst_ratio": float(ratio[worst]),
                        "worst_evaluation": start + worst,
                        "best_adam_there": adam[int(winner[start - 1 + worst])]["label"],
                        "above": _ranges(above), "ratio_at_start": float(ratio[0]), "ratio_at_end": float(ratio[-1]),
                        "lbfgs_at_start": float(mine[start - 1]), "adam_at_start": float(envelope[start - 1]),
                        "lbfgs_at_end": float(mine[-1]), "adam_at_end": float(envelope[-1]),
                        "ratio": [float(r) for r in full]})  # at every count from 1, for the plot
    return out


def target_table(checks_):
    """The 'L-BFGS against the best Adam' table in Markdown."""
    lines = ["| pair | seed | L-BFGS | <= best Adam at every count | worst L-BFGS / best Adam (at evaluation; best Adam "
             "there) | counts above 1 | at the first count: L-BFGS / best Adam | at the last count |",
             "|---|---|---|---|---|---|---|---|"]
    for c in checks_:
        above = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in c["above"]) or "none"
        lines.append(f"| {c['pair']} | {c['seed']} | {c['label']} | {'yes' if c['meets'] else 'no'} "
                     f"({c['from']}-{c['to']}) | {c['worst_ratio']:.3f} ({c['worst_evaluation']}; "
                     f"{c['best_adam_there']}) | {above} | {c['lbfgs_at_start']:.4g} / {c['adam_at_start']:.4g} "
                     f"= {c['ratio_at_start']:.3f} | {c['lbfgs_at_end']:.4g} / {c['adam_at_end']:.4g} "
                     f"= {c['ratio_at_end']:.3f} |")
    return "\n".join(lines)


def _luminance(rgb):
    return color.rgb_to_ycbcr(rgb)[..., 0]


def ssim_to_content(content, image):
    """SSIM of the luminance (Y of YCbCr): structure kept from the photo, colours aside."""
    from skimage.metrics import structural_similarity

    side = min(content.shape[:2])
    win = min(7, side if side % 2 else side - 1)  # skimage's default window, shrunk for tiny images
    return float(structural_similarity(_luminance(content), _luminance(image), data_range=255.0, win_size=win))


def gram_distances(network, loss, styles, pictures, layers):
    """{layer: [distance of each picture]}: blend-weighted mean squared Gram difference to the styles.

    A separate small graph (vgg.net_preloaded up to the deepest held-out layer) with the
    objective's own Gram normalisation, so the numbers are on the loss's scale.
    """
    tf = import_tensorflow()
    gram = stylize.LOSS_SCALES[loss.loss_scale].gram
    blend = stylize.blend_weights(len(styles), loss.style_blend_weights)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        net = network.features(network.preprocess(image), network.deepest(layers), loss.pooling)
        grams = {n: gram(net[n]) for n in layers}
        graph.finalize()
        with tf.compat.v1.Session(graph=graph, config=session_config()) as sess:
            targets = [sess.run(grams, {image: s[None]}) for s in styles]
            out = {n: [] for n in layers}
            for picture in pictures:
                g = sess.run(grams, {image: np.asarray(picture, np.float32)[None]})
                for n in layers:
                    out[n].append(float(sum(b * np.mean((g[n].astype(np.float64) - t[n]) ** 2)
                                            for b, t in zip(blend, targets))))
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(exp, network, records, prepared, configs):
    """summary.json's content: per pair and configuration, and over all pairs."""
    by_pair = {}
    for run in records:
        by_pair.setdefault(run["pair"], []).append(run)
    pairs_out = {}
    per_run = {}
    gram_layers = None
    for pair_id, content, styles, loss, settings, _todo, _done in prepared:
        runs = by_pair[pair_id]
        best, e, t = pair_references(runs)
        layers = choose_gram_layers(network, exp.gram_layers, tuple(loss.content_layers) + tuple(loss.style_layers))
        gram_layers = gram_layers or layers
        scaled = [stylize.prepare_style(s, content.shape[1], sc)
                  for s, sc in zip(styles, loss.style_scales or [STYLE_SCALE] * len(styles))]
        # Metrics of the saved images, the ones the user gets (so a resumed run measures the same thing).
        finals = [images.load_image(run_path(exp.out_dir, run["run"], "png")) for run in runs]
        grams = gram_distances(network, loss, scaled, [content] + finals, layers)
        for i, run in enumerate(runs):
            m = run_metrics(run, best, e, t)
            m["ssim_to_content"] = ssim_to_content(content, finals[i])
            # Relative to the content photo's own distance: 1 = no nearer the style than the photo.
            m["gram_distance"] = {n: grams[n][i + 1] for n in layers}
            m["gram_distance_vs_content"] = {n: grams[n][i + 1] / grams[n][0] if grams[n][0] > 0 else None
                                             for n in layers}
            m["stop_reason"], m["message"] = run["stop_reason"], run["message"]
            m["relative_loss_at_equal_evaluations"] = _ratio(m["loss_at_equal_evaluations"], best)
            m["relative_loss_at_equal_seconds"] = _ratio(m["loss_at_equal_seconds"], best)
            per_run[run["run"]] = m
        pairs_out[pair_id] = {
            "content": os.path.relpath(settings["content"]), "styles": [os.path.relpath(p) for p in settings["styles"]],
            "size": list(content.shape[:2]), "best_loss": best, "equal_evaluations": e, "equal_seconds": t,
            "gram_layers": list(layers), "content_gram_distance": {n: grams[n][0] for n in layers},
            "configurations": {c[0]: aggregate([per_run[r["run"]] for r in runs if r["config"] == c[0]],
                                               [r for r in runs if r["config"] == c[0]], c)
                               for c in configs},
        }
    overall = {c[0]: aggregate([per_run[r["run"]] for r in records if r["config"] == c[0]],
                               [r for r in records if r["config"] == c[0]], c) for c in configs}
    return {"settings": {"width": exp.width, "init": exp.init, "evaluations": exp.evaluations,
                         "time_budget": exp.time_budget, "seeds": list(exp.seeds), "network": network.name,
                         "loss": prepared[0][4]["loss"], "thresholds": list(THRESHOLDS),
                         "gram_layers": list(gram_layers or ()), "target_from": exp.target_from},
            "pairs": pairs_out, "overall": overall, "runs": per_run,
            "lbfgs_vs_best_adam": lbfgs_against_adam(records, exp.target_from)}


def _ratio(value, best):
    return value / best if value is not None and best and math.isfinite(best) else None


def aggregate(metrics, runs, config):
    """One configuration over its runs: means, and 'to reach' only when every run reached."""
    config_id, label, optimizer, setting, _ = config
    out = {"label": label, "optimizer": optimizer, "setting": setting, "runs": len(metrics)}
    for key in ("loss_at_equal_evaluations", "loss_at_equal_seconds", "relative_loss_at_equal_evaluations",
                "relative_loss_at_equal_seconds", "ssim_to_content"):
        out[key] = _mean([m[key] for m in metrics])
    for threshold in THRESHOLDS:
        key = f"{round(threshold * 100)}"
        for what in ("evaluations", "seconds"):
            values = [m[f"{what}_to_{key}"] for m in metrics]
            out[f"{what}_to_{key}"] = _mean(values) if all(v is not None for v in values) else None
        out[f"reached_{key}"] = sum(m[f"evaluations_to_{key}"] is not None for m in metrics)
    evaluations = sum(m["evaluations"] for m in metrics)
    seconds = sum(m["seconds"] for m in metrics)
    out["evaluations_per_second"] = evaluations / seconds if seconds > 0 else None
    layers = list(metrics[0]["gram_distance_vs_content"]) if metrics else []
    out["gram_distance_vs_content"] = {n: _mean([m["gram_distance_vs_content"][n] for m in metrics]) for n in layers}
    out["failures"] = [{"run": r["run"], "stop_reason": r["stop_reason"], "message": r["message"]}
                       for r in runs if r["stop_reason"] not in ("budget", "completed")]
    return out


# ---------------------------------------------------------------- outputs


def write_csv(path, records):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for run in records:
        for index, seconds, content, style, tv, total in run["rows"]:
            writer.writerow([run["pair"], run["config"], run["optimizer"], run["setting"], run["seed"], index,
                             repr(float(seconds)), repr(content), repr(style), repr(tv), repr(total)])
    images.write_atomically(path, lambda f: f.write(buffer.getvalue().encode()))


def _fmt(value, spec=".4g", none="–"):
    return none if value is None else format(value, spec)


def table(configurations_stats, gram_layers, absolute=True, e=None, t=None):
    """The summary table in Markdown, one row per configuration."""
    head = ["configuration"]
    if absolute:
        head += [f"loss @ {e} evals", f"loss @ {t:.3g} s"]
    head += ["× best @ evals", "× best @ s"]
    for threshold in THRESHOLDS:
        pct = round(threshold * 100)
        head += [f"evals to {pct}%", f"s to {pct}%"]
    head += ["evals/s", "failures", "SSIM to content"]
    head += [f"style dist {n} (content=1)" for n in gram_layers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in configurations_stats.values():
        row = [s["label"]]
        if absolute:
            row += [_fmt(s["loss_at_equal_evaluations"]), _fmt(s["loss_at_equal_seconds"])]
        row += [_fmt(s["relative_loss_at_equal_evaluations"], ".3f"), _fmt(s["relative_loss_at_equal_seconds"], ".3f")]
        for threshold in THRESHOLDS:
            key = f"{round(threshold * 100)}"
            reached = f" ({s[f'reached_{key}']}/{s['runs']})" if s[f"reached_{key}"] < s["runs"] else ""
            row += [_fmt(s[f"evaluations_to_{key}"], ".1f") + reached, _fmt(s[f"seconds_to_{key}"], ".1f") + reached]
        row += [_fmt(s["evaluations_per_second"], ".2f")]
        failures = s["failures"]
        row += ["none" if not failures else "; ".join(f"{f['stop_reason']}: {f['message']}" for f in failures)]
        row += [_fmt(s["ssim_to_content"], ".3f")]
        row += [_fmt(s["gram_distance_vs_content"].get(n), ".3f") for n in gram_layers]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def summary_markdown(summary):
    st = summary["settings"]
    parts = [f"Settings: width {st['width']} px, init {st['init']}, {st['evaluations']} evaluations"
             + (f" or {st['time_budget']:g} s" if st["time_budget"] else "")
             + f" per run, seeds {' '.join(map(str, st['seeds']))}, network {st['network']}; loss weights content "
             f"{st['loss']['content_weight']:g}, style {st['loss']['style_weight']:g}, tv {st['loss']['tv_weight']:g}."]
    parts.append("Losses are the best so far, averaged over seeds; '× best' is relative to the best loss any "
                 "configuration found; 'to N%' counts evaluations and seconds until a run first reached N% of it "
                 "(mean over seeds; '(k/n)' when only k of n runs did). Style distances are Gram distances on "
                 "layers the objective does not use, relative to the content photo's (1 = no nearer the style).")
    for pair_id, p in summary["pairs"].items():
        parts.append(f"### {pair_id} ({p['size'][1]}x{p['size'][0]})\n\nBest loss found: {p['best_loss']:.6g}. "
                     f"Equal evaluations: {p['equal_evaluations']}; equal time: {p['equal_seconds']:.3g} s.\n\n"
                     + table(p["configurations"], p["gram_layers"], True, p["equal_evaluations"], p["equal_seconds"]))
    if len(summary["pairs"]) > 1:
        parts.append("### All pairs (relative losses averaged over pairs and seeds)\n\n"
                     + table(summary["overall"], st["gram_layers"], absolute=False))
    if summary["lbfgs_vs_best_adam"]:
        parts.append(f"### L-BFGS against the best Adam, from evaluation {st['target_from']}\n\n"
                     "Best loss so far of each L-BFGS run over the lowest best-so-far of the pair's Adam runs "
                     "(any learning rate, same seed) at each evaluation count; above 1 is L-BFGS behind.\n\n"
                     + target_table(summary["lbfgs_vs_best_adam"]))
    return "\n\n".join(parts) + "\n"


def _colours(configs):
    import matplotlib

    adam = [c for c in configs if c[2] == "adam"]
    lbfgs = [c for c in configs if c[2] == "lbfgs"]
    colours = {}
    for group, cmap in ((adam, "Oranges"), (lbfgs, "Blues")):
        for i, c in enumerate(group):
            colours[c[0]] = matplotlib.colormaps[cmap](0.45 + 0.5 * (i + 1) / (len(group) + 1))
    return colours


def _save_figure(fig, path):
    import matplotlib.pyplot as plt

    images.write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def plot_losses(path, records, configs, pair_order, by="evaluations"):
    """Best loss so far (log scale) per configuration: the median over seeds, and a min..max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = _colours(configs)
    fig, axes = plt.subplots(1, len(pair_order), figsize=(7 * len(pair_order), 4.6), squeeze=False)
    for ax, pair_id in zip(axes[0], pair_order):
        for config_id, label, *_ in configs:
            runs = [r for r in records if r["pair"] == pair_id and r["config"] == config_id and r["rows"]]
            if not runs:
                continue
            curves = [best_so_far(r["rows"]) for r in runs]
            if by == "evaluations":
                n = min(len(c) for c in curves)
                x = np.arange(1, n + 1)
                stack = np.stack([c[:n] for c in curves])
            else:
                # A common time grid; each run counts only between its first and last evaluation.
                start = min(r["rows"][0][1] for r in runs)
                end = max(r["rows"][-1][1] for r in runs)
                x = np.linspace(start, end, 300)
                stack = np.full((len(runs), x.size), np.nan)
                for i, (c, r) in enumerate(zip(curves, runs)):
                    times = np.array([row[1] for row in r["rows"]])
                    idx = np.searchsorted(times, x, side="right") - 1
                    inside = (idx >= 0) & (x <= times[-1])
                    stack[i, inside] = c[idx[inside]]
                keep = np.isfinite(stack).any(axis=0)
                x, stack = x[keep], stack[:, keep]
            ax.plot(x, np.nanmedian(stack, axis=0), color=colours[config_id], label=label, lw=1.8)
            if len(runs) > 1:
                ax.fill_between(x, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), color=colours[config_id],
                                alpha=0.25, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("loss-and-gradient evaluations" if by == "evaluations" else "wall-clock seconds")
        ax.set_ylabel("best total loss so far (log)")
        ax.set_title(pair_id, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_target(path, checks_, pair_order, start):
    """L-BFGS's best loss over the best Adam's at each evaluation count (log scale), per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pair_order), figsize=(7 * len(pair_order), 4.2), squeeze=False)
    for ax, pair_id in zip(axes[0], pair_order):
        for c in (c for c in checks_ if c["pair"] == pair_id):
            ax.plot(np.arange(1, len(c["ratio"]) + 1), c["ratio"], lw=1.8, label=f"{c['label']}, seed {c['seed']}")
        ax.axhline(1.0, color="black", lw=1)
        ax.axvspan(0.5, start - 0.5, color="grey", alpha=0.15, lw=0, label=f"before evaluation {start}")
        ax.set_yscale("log")
        ax.set_xlabel("loss-and-gradient evaluations")
        ax.set_ylabel("L-BFGS best loss / best Adam's (log)")
        ax.set_title(pair_id, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_images(path, exp, summary, prepared, configs):
    """Content, style and each configuration's final image (first seed), with losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = exp.seeds[0]
    cols = 2 + len(configs)
    fig, axes = plt.subplots(len(prepared), cols, figsize=(2.3 * cols, 2.2 * len(prepared) + 0.4), squeeze=False)
    for row, (pair_id, content, styles, *_rest) in zip(axes, prepared):
        panels = [(content, "content"), (styles[0], "style")]
        for config_id, label, *_ in configs:
            run_id = f"{pair_id}__{config_id}__seed{seed}"
            m = summary["runs"][run_id]
            panels.append((images.load_image(run_path(exp.out_dir, run_id, "png")),
                           f"{label}\nloss {_fmt(m['final_loss'], '.4g')}"))
        for ax, (picture, title) in zip(row, panels):
            ax.imshow(np.clip(picture, 0, 255).astype(np.uint8))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"final images, seed {seed}, {exp.evaluations} evaluations", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def write_outputs(exp, network, records, prepared, configs):
    summary = summarise(exp, network, records, prepared, configs)
    out = exp.out_dir
    write_csv(os.path.join(out, "evaluations.csv"), records)
    write_json(os.path.join(out, "summary.json"), summary)
    markdown = summary_markdown(summary)
    images.write_atomically(os.path.join(out, "summary.md"), lambda f: f.write(markdown.encode()))
    order = [p[0] for p in prepared]
    plot_losses(os.path.join(out, "loss_vs_evaluations.png"), records, configs, order, "evaluations")
    plot_losses(os.path.join(out, "loss_vs_seconds.png"), records, configs, order, "seconds")
    plot_images(os.path.join(out, "images.png"), exp, summary, prepared, configs)
    if summary["lbfgs_vs_best_adam"]:
        plot_target(os.path.join(out, "lbfgs_vs_best_adam.png"), summary["lbfgs_vs_best_adam"], order, exp.target_from)
    return summary, markdown


# ---------------------------------------------------------------- command


def load_network(exp, say):
    """The network, checked against the objective's layers (normalised for the paper's preset)."""
    network = vgg.load_net(exp.network, exp.input_range)
    checks.check_layers(exp.loss, network)
    choose_gram_layers(network, exp.gram_layers, tuple(exp.loss.content_layers) + tuple(exp.loss.style_layers))
    say(network.announce())
    if exp.normalise_network:
        try:
            network = normalization.normalised_network(network, exp.loss.pooling, log=say)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return network


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
    prog = "compare.py"
    try:
        exp = read_experiment(argv)

        def say(text):
            if not exp.quiet:
                print(text, file=sys.stderr)

        configure_process()
        return run(exp, say)
    except UsageError as exc:  # NetworkError and ImageError too
        return cli.fail(prog, exc)
    except KeyboardInterrupt:
        # The interrupted run has no marker; finished runs keep theirs.
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
