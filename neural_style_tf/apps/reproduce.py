"""Reproduce the figures of Gatys, Ecker & Bethge (CVPR 2016) with the gatys2016 preset
(the terms normalised as the authors' code does: CONVENTIONS).

    python reproduce.py figure3 --out-dir repro               # the paper's size, 512 px
    python reproduce.py all --out-dir repro --size 128 --evaluations 50   # a quick preview

Each figure goes to OUT_DIR/FIGURE/: one PNG per panel, a labelled contact sheet laid
out like the paper's figure (sheet.png) and manifest.json (the settings, final loss
terms, evaluations and seconds of every panel). A panel whose image exists and whose
settings are unchanged is skipped, so an interrupted run resumes where it stopped.

This file only lists the panels and lays out the sheets: every panel is one
`objective.Objective` + `optimize.minimize`, and panels that share an objective (the
initialisation figure) share one Objective.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from .. import cli, images, memory, presets, targets
from ..errors import EXIT_INTERRUPTED, UsageError
from ..networks import normalization
from ..networks.loading import load_net
from ..objective import Objective, Problem, initial_image
from ..optimize import minimize
from ..settings import LBFGS_CORRECTIONS, LossOptions, OptimizerOptions
from ..tf_runtime import configure_process
from . import engine

FIGURES = ("figure3", "grid", "content-layer", "init")
# How the terms are normalised, by the name --convention takes: the loss scale (losses.py).
# Why "authors" by default: taken literally, the paper's formulas cannot give its figures at
# its ratios. Its content loss 1/2 sum (F - P)^2 is a sum over the M N elements of relu4_2
# (1.6 million at 512x384), while its style loss sum (G - A)^2 / (4 N^2 M^2) is normalised
# to a per-entry size: from noise at alpha/beta = 1e-3, with the normalised VGG-19, the style
# is 0.27% of the loss at 128 px and 0.02% at 384 px (tests/test_reproduce.py works it
# out on a tiny input; docs/reproducing-the-paper.md). The authors' released code divides the
# content by its element count (MSE) and weighs each style layer 1e3/N_l^2 MSE(G/M, A/M);
# with the paper's alpha/beta and w_l = 1/5 that puts the style at 97% of the starting loss
# and paints the figures. "literal" keeps the paper's formulas, for comparison.
CONVENTIONS = {"authors": "gatys-pytorch", "literal": "gatys2016"}
CONVENTION = "authors"
SIZE = 512  # the paper's "about 512 px": the output width
# The paper gives no iteration count; 500 evaluations is the authors' later code's budget.
EVALUATIONS = 500
NOISE_SEED = 0  # the noise start of every panel except the init figure's seeds

# The paper's photo and paintings: the copies shipped as package data
# (neural_style_tf/data/examples, equal to the checkout's examples/), so that the installed
# command needs no checkout; --examples DIR only overrides them.
# The checkout: this file is neural_style_tf/apps/reproduce.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "neural_style_tf", "data", "examples")
CONTENT = "tubingen_neckarfront.jpg"
PAINTINGS = {
    "turner": ("shipwreck_of_the_minotaur.jpg", "Turner, The Shipwreck of the Minotaur"),
    "van-gogh": ("starry_night.jpg", "van Gogh, The Starry Night"),
    "munch": ("the_scream.jpg", "Munch, The Scream"),
    # Picasso's Femme nue assise (1910) is still in copyright: Monet stands in for it.
    "monet": ("monet_woman_with_a_parasol.jpg", "Monet, Woman with a Parasol\n(in place of Picasso's Femme nue assise)"),
    "kandinsky": ("composition_vii.jpg", "Kandinsky, Composition VII"),
}
# Figure 3: the painting and alpha/beta of panels B-F.
FIGURE3 = (("B", "turner", 1e-3), ("C", "van-gogh", 8e-4), ("D", "munch", 5e-3),
           ("E", "monet", 5e-4), ("F", "kandinsky", 5e-4))
GRID_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)
GRID_DEPTHS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
# The issue does not name the painting of the content-layer and initialisation figures;
# The Starry Night is our choice.
SECOND_PAINTING = "van-gogh"
INIT_SEEDS = (1, 2, 3, 4)
NOTES = [
    "Picasso's Femme nue assise (figure 3 E) is in copyright; Monet's Woman with a Parasol replaces it.",
    "Features are taken after the ReLU: conv4_2 means relu4_2, as in the authors' code.",
]


def relu(conv):
    return conv.replace("conv", "relu")


def ratio_label(r):
    mantissa, exponent = f"{r:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if mantissa != "1" else f"1e{int(exponent)}"


def panels(figure):
    """The panels of one figure: dicts with id, painting, ratio, layers, init, seed, label, row, col."""
    base = {"content_layers": ("relu4_2",), "style_layers": presets.STYLE_LAYERS_PAPER,
            "init": "noise", "seed": NOISE_SEED}
    out = []
    if figure == "figure3":
        for i, (letter, painting, ratio) in enumerate(FIGURE3, start=1):
            out.append({**base, "id": f"{letter}_{painting}", "painting": painting, "ratio": ratio,
                        "label": f"{letter}  {PAINTINGS[painting][1]}\nα/β = {ratio_label(ratio)}",
                        "row": i // 3, "col": i % 3})
    elif figure == "grid":
        for row, depth in enumerate(GRID_DEPTHS):
            layers = tuple(presets.STYLE_LAYERS_PAPER[: row + 1])
            for col, ratio in enumerate(GRID_RATIOS):
                out.append({**base, "id": f"{depth}_r{ratio_label(ratio)}", "painting": "kandinsky", "ratio": ratio,
                            "style_layers": layers, "label": f"up to {depth}, α/β = {ratio_label(ratio)}",
                            "row": row, "col": col})
    elif figure == "content-layer":
        for col, layer in enumerate(("conv2_2", "conv4_2")):
            out.append({**base, "id": f"content_{layer}", "painting": SECOND_PAINTING, "ratio": 1e-3,
                        "content_layers": (relu(layer),), "label": f"content layer {layer}, α/β = 1e-3",
                        "row": 0, "col": col})
    elif figure == "init":
        starts = [("content", 0, "A  from the content"), ("style", 0, "B  from the painting")]
        starts += [("noise", seed, f"{chr(ord('C') + i)}  from noise, seed {seed}") for i, seed in enumerate(INIT_SEEDS)]
        for i, (init, seed, label) in enumerate(starts):
            out.append({**base, "id": f"init_{init}{seed if init == 'noise' else ''}", "painting": SECOND_PAINTING,
                        "ratio": 1e-3, "init": init, "seed": seed, "label": f"{label}\nα/β = 1e-3",
                        "row": i // 3, "col": i % 3})
    else:
        raise ValueError(f"unknown figure {figure!r}")
    return out


# ---------------------------------------------------------------- running the panels


def loss_options(panel):
    """The paper's objective (the gatys2016 preset: avg pooling, no TV, w_l = 1/L) with this
    panel's ratio and layers, its terms normalised as its "convention" says (CONVENTIONS)."""
    p = presets.PRESETS["gatys2016"]
    return LossOptions(
        content_weight=panel["ratio"], style_weight=1.0, tv_weight=p["tv_weight"],
        content_weight_blend=p["content_weight_blend"], style_layer_weight_exp=p["style_layer_weight_exp"],
        content_layers=tuple(panel["content_layers"]), style_layers=tuple(panel["style_layers"]),
        pooling=p["pooling"], loss_scale=CONVENTIONS[panel.get("convention", CONVENTION)],
        # The paper's Gram loss and zero padding: without them the tool's defaults (W2,
        # replicate padding) would apply, which is what this module once ran by mistake.
        style_loss=p["style_loss"], padding=p["padding"], style_scales=None,
    )


def panel_settings(panel, common):
    """Everything that determines a panel's image; a change forces it to be redone."""
    keys = ("painting", "ratio", "content_layers", "style_layers", "init", "seed")
    return {**common, **{k: (list(panel[k]) if isinstance(panel[k], tuple) else panel[k]) for k in keys},
            "style": PAINTINGS[panel["painting"]][0]}


def load_manifest(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get("panels"), dict) else None
    except (OSError, ValueError):
        return None


def write_json(path, data):
    images.write_atomically(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def start_image(panel, content, network, objective):
    """The panel's start: the content, the (resized) painting, or noise of the panel's seed."""
    if panel["init"] == "content":
        return initial_image(content, network, content, 0.0, panel["seed"])
    if panel["init"] == "style":
        return initial_image(content, network, objective.style_images[0], 0.0, panel["seed"])
    return initial_image(content, network, None, 1.0, panel["seed"])


def panel_record(panel, file, settings, result, build_seconds):
    """The manifest entry of a finished panel."""
    return {"file": file, "label": panel["label"], "settings": settings,
            "terms": result.terms, "evaluations": result.evaluations,
            "iterations": result.iterations, "seconds": round(result.elapsed, 2),
            "build_seconds": round(build_seconds, 2),
            "stop_reason": result.stop_reason, "message": result.message}


def solve(panel, objective, network, content, evaluations):
    """One panel on its objective: L-BFGS from the panel's start for `evaluations` evaluations."""
    x0 = start_image(panel, content, network, objective)
    opts = OptimizerOptions(optimizer="lbfgs", iterations=evaluations, max_evaluations=evaluations, min_improvement=0.0)
    return minimize(objective, x0, opts)


def run_serial(todo, network, content, styles, evaluations, finish):
    """The panels one after another in this process. Returns True if interrupted."""
    objective, objective_key = None, None
    try:
        for index, panel, settings in todo:
            loss = loss_options(panel)
            key = (panel["painting"], loss)
            t_build = time.perf_counter()
            if key != objective_key:  # panels sharing an objective (the init figure) share one graph
                if objective is not None:
                    objective.close()
                objective = Objective(network, content, [styles[panel["painting"]]], loss)
                objective_key = key
            build_seconds = time.perf_counter() - t_build  # 0 when the objective is shared
            result = solve(panel, objective, network, content, evaluations)
            if result.stop_reason == "interrupted":
                return True
            finish(index, panel, settings, result, build_seconds)
    finally:
        if objective is not None:
            objective.close()
    return False


def panel_job(worker, payload):
    """One panel on a batch worker (engine.py), which keeps the network and its last objective."""
    network = worker.shared_object(payload["network"])
    panel, content = payload["panel"], payload["content"]
    t_build = time.perf_counter()
    with worker.make_objective(Problem.create(network, content, [payload["style"]], loss_options(panel))) as objective:
        build_seconds = time.perf_counter() - t_build
        result = solve(panel, objective, network, content, payload["evaluations"])
    return {"status": "done" if result.image is not None else "failed", "error": result.message or None,
            "result": result, "build_seconds": build_seconds}


def run_on_ray(todo, network, content, styles, evaluations, pool, finish, say):
    """The panels as jobs on Ray workers (engine.py). Returns True if interrupted."""
    import ray

    need = max(memory.estimate_peak_bytes(network, *content.shape[:2], "lbfgs", LBFGS_CORRECTIONS,
                                          p["content_layers"] + tuple(p["style_layers"])) for _, p, _ in todo)
    started = engine.connect(pool.address)
    try:
        shared = ray.put(network)  # sent to each worker once, not with every panel
        by_id = {panel["id"]: (index, panel, settings) for index, panel, settings in todo}
        tasks = [engine.Task(panel["id"], "neural_style_tf.apps.reproduce:panel_job",
                             {"network": shared, "panel": panel, "content": content,
                              "style": styles[panel["painting"]], "evaluations": evaluations},
                             group=(panel["painting"], panel["content_layers"], tuple(panel["style_layers"])))
                 for _, panel, _ in todo]

        def on_result(task, record):
            index, panel, settings = by_id[task.id]
            if record["status"] == "done":
                finish(index, panel, settings, record["result"], record["build_seconds"])
            else:
                say(f"[{index}] {panel['id']}: failed ({record.get('error')})")

        engine.run_tasks(tasks, dataclasses.replace(pool, memory=need), on_result, say=say)
    except KeyboardInterrupt:
        return True
    finally:
        engine.shutdown(started)
    return False


def run_figure(figure, out_dir, network, content, styles, size, evaluations, say, pool=None, convention=CONVENTION):
    """Run (or resume) every panel of `figure`, then draw its sheet. Returns False if interrupted.
    `pool`: engine.PoolOptions to run the panels on Ray workers; None: here, one after another."""
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, "manifest.json")
    common = {"preset": "gatys2016", "convention": convention, "size": list(content.shape[:2]), "evaluations": evaluations,
              "network": network.name, "network_file": os.path.basename(network.path), "optimizer": "lbfgs"}
    manifest = load_manifest(manifest_path) or {}
    manifest.update({"figure": figure, "content": CONTENT, "settings": common, "notes": NOTES})
    done = manifest.setdefault("panels", {})
    count = len(panels(figure))
    todo = []
    for index, panel in enumerate(panels(figure), start=1):
        panel = {**panel, "convention": convention}
        settings = panel_settings(panel, common)
        previous = done.get(panel["id"])
        if previous and previous.get("settings") == settings and os.path.isfile(os.path.join(out_dir, previous["file"])):
            say(f"[{index}/{count}] {figure} {panel['id']}: done before, skipped")
        else:
            todo.append((index, panel, settings))

    def finish(index, panel, settings, result, build_seconds):
        if result.image is None:
            say(f"[{index}/{count}] {figure} {panel['id']}: no image ({result.message})")
            return
        file = f"{panel['id']}.png"
        images.save_image(os.path.join(out_dir, file), result.image)
        done[panel["id"]] = panel_record(panel, file, settings, result, build_seconds)
        write_json(manifest_path, manifest)
        say(f"[{index}/{count}] {figure} {panel['id']}: {result.evaluations} evaluations, "
            f"{result.elapsed:.1f} s, loss {result.terms['total']:.6g} "
            f"(content {result.terms['content']:.4g}, style {result.terms['style']:.4g})")

    try:
        if pool is None:
            interrupted = run_serial(todo, network, content, styles, evaluations, finish)
        else:
            interrupted = run_on_ray(todo, network, content, styles, evaluations, pool, finish, say)
    except KeyboardInterrupt:
        interrupted = True
    write_json(manifest_path, manifest)
    if interrupted:
        say(f"interrupted: finished panels are kept in {out_dir}; run the same command again to resume")
        return False
    write_sheet(figure, out_dir, manifest, content, styles)
    say(f"wrote {os.path.join(out_dir, 'sheet.png')} and {manifest_path}")
    return True


# ---------------------------------------------------------------- contact sheets


def _show(ax, rgb, title=None, fontsize=8):
    import numpy as np

    ax.imshow(np.clip(rgb, 0, 255).astype("uint8"))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _inset(ax, rgb):
    inset = ax.inset_axes([0.0, 0.0, 0.3, 0.3])
    _show(inset, rgb)
    for spine in inset.spines.values():
        spine.set_edgecolor("white")


def write_sheet(figure, out_dir, manifest, content, styles):
    """sheet.png: the panels laid out like the paper's figure, each labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    todo = panels(figure)
    rows = 1 + max(p["row"] for p in todo)
    cols = 1 + max(p["col"] for p in todo)
    aspect = content.shape[0] / content.shape[1]
    width = 3.0
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, (width * aspect + 0.55) * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if figure == "figure3":  # panel A: the photograph itself
        _show(axes[0, 0], content, "A  Neckarfront, Tübingen (photo)")
        axes[0, 0].axis("on")
    for p in todo:
        ax = axes[p["row"], p["col"]]
        entry = manifest["panels"].get(p["id"])
        path = os.path.join(out_dir, f"{p['id']}.png")
        if entry is None or not os.path.isfile(path):
            ax.text(0.5, 0.5, f"{p['id']}\nnot run", ha="center", va="center", fontsize=8)
            continue
        ax.axis("on")
        title = p["label"] if figure != "grid" else None
        _show(ax, images.load_image(path), title)
        if figure in ("figure3", "content-layer", "init") and p["init"] != "style":
            _inset(ax, styles[p["painting"]])
        if figure == "grid":
            if p["row"] == 0:
                ax.set_title(f"α/β = {ratio_label(p['ratio'])}", fontsize=10)
            if p["col"] == 0:
                ax.set_ylabel(f"up to {GRID_DEPTHS[p['row']]}", fontsize=10)
    s = manifest["settings"]
    caption = {
        "figure3": "Figure 3: Neckarfront with five paintings",
        "grid": "Style/content grid: Composition VII, style layers (rows) × α/β (columns)",
        "content-layer": "Content layer conv2_2 vs conv4_2",
        "init": "Initialisation: content, painting, four noise seeds",
    }[figure]
    fig.suptitle(f"{caption}\n{s['network']}\n{s['size'][1]}×{s['size'][0]} px, "
                 f"{s['evaluations']} L-BFGS evaluations, gatys2016 preset, {s.get('convention', 'literal')} "
                 f"normalisation of the terms", fontsize=10)
    fig.tight_layout()
    images.write_atomically(os.path.join(out_dir, "sheet.png"), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


# ---------------------------------------------------------------- command line


def build_parser():
    p = argparse.ArgumentParser(prog=cli.command_name("reproduce.py"), description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("figure", choices=FIGURES + ("all",), help="which figure (all: every one)")
    p.add_argument("--out-dir", required=True, help="output folder; each figure goes to OUT_DIR/FIGURE/")
    p.add_argument("--size", type=int, default=SIZE, help="output width in pixels (the paper: about 512)")
    p.add_argument("--evaluations", type=int, default=EVALUATIONS, help="L-BFGS evaluations per panel")
    p.add_argument("--network", default=None,
                   help="weights file (default: the embedded VGG-19, the paper's network); normalised automatically")
    p.add_argument("--as-loaded", action="store_true",
                   help="skip the paper's normalisation of the network (mean activation 1 per filter), "
                        "which the paper used; for comparison")
    p.add_argument("--convention", choices=tuple(CONVENTIONS), default=CONVENTION,
                   help="how the terms are normalised: the authors' code (MSE content, 1e3/N^2 style "
                        "layers), which gives the paper's figures at its ratios, or the paper's formulas literally")
    p.add_argument("--examples", default=EXAMPLES,
                   help="folder with the paper's photo and paintings (default: the copies shipped in the package)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    engine.add_pool_arguments(p)
    return p


def validate(args):
    """Every check that needs no network. Raises UsageError."""
    if args.size < 16:
        raise UsageError(f"--size must be at least 16 pixels, not {args.size}")
    if args.evaluations <= 0:
        raise UsageError(f"--evaluations must be a positive integer, not {args.evaluations}")
    problem = images.check_output_dir(args.out_dir)
    if problem:
        raise UsageError(f"--out-dir {problem}")
    needed = [CONTENT] + [file for file, _ in PAINTINGS.values()]
    missing = [f for f in needed if not os.path.isfile(os.path.join(args.examples, f))]
    if missing:
        raise UsageError(f"--examples {args.examples}: {', '.join(missing)} not found; point --examples at "
                         f"a folder holding them (the checkout's examples/), or leave it out")


def load(args, figures, say):
    """The (normalised) network, checked against every panel's layers, and the images."""
    network = load_net(args.network)
    for figure in figures:
        for panel in panels(figure):
            for name in panel["content_layers"] + tuple(panel["style_layers"]):
                if name not in network.layers:
                    raise UsageError(f"{figure} needs layer {name}, which {network.name} does not have")
    content = images.resize_to_width(images.load_image(os.path.join(args.examples, CONTENT)), args.size)
    raw = {key: images.load_image(os.path.join(args.examples, file)) for key, (file, _) in PAINTINGS.items()}
    say(network.announce())
    if not args.as_loaded:
        network = normalization.normalized_network(network, presets.PRESETS["gatys2016"]["pooling"], log=say)
    # The paper resizes the style image to the content image's size.
    styles = {key: targets.size_styles_to_content([rgb], content.shape, "content")[0] for key, rgb in raw.items()}
    return network, content, styles


def main(argv=None):
    args = build_parser().parse_args(argv)

    def say(text):
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    figures = FIGURES if args.figure == "all" else (args.figure,)
    try:
        validate(args)
        if engine.pool_options(args):
            cli.require_extra("batch")  # --workers/--address need Ray: one line, not an ImportError
        engine.check_options(engine.pool_options(args) or engine.PoolOptions())
        configure_process()
        network, content, styles = load(args, figures, say)
    except UsageError as exc:  # NetworkError and ImageError too
        return cli.fail(cli.command_name("reproduce.py"), exc)
    t0 = time.perf_counter()
    pool = engine.pool_options(args)
    for figure in figures:
        if not run_figure(figure, os.path.join(args.out_dir, figure), network, content, styles,
                          args.size, args.evaluations, say, pool, args.convention):
            return EXIT_INTERRUPTED
    say(f"done in {time.perf_counter() - t0:.0f} s")
    return 0
