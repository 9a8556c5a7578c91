"""compare.py's outputs: the per-run and per-configuration numbers (all recomputable from
evaluations.csv), evaluations.csv itself, summary.json, summary.md's tables and the plots.

The runs themselves (planning, resuming, Ray) are in compare.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from .. import images
from ..settings import STYLE_SCALE
from ..targets import prepare_style
from .metrics import choose_gram_layers, gram_distances, ssim_to_content

# The loss thresholds of "evaluations to reach": 110% and 101% of the best loss any
# configuration found on the same pair.
THRESHOLDS = (1.10, 1.01)
# Issue 13's target for L-BFGS's start: its best loss at or below the best Adam learning
# rate's at every evaluation count from this one on (the first few are the start's to lose).
TARGET_FROM = 15
CSV_FIELDS = ("pair", "config", "optimizer", "setting", "seed", "evaluation", "seconds",
              "content", "style", "tv", "total")


def run_path(out_dir, run_id, ext):
    return os.path.join(out_dir, "runs", f"{run_id}.{ext}")


def write_json(path, data):
    images.write_atomically(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode()))


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
        scaled = [prepare_style(s, content.shape[1], sc)
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
