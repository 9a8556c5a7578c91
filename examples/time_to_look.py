"""Time to a finished look: the quality panel's measures against wall time, from one long
run per pair with a checkpoint every few iterations (docs/performance.md, "Time to a
finished image").

    python neural_style.py --content C --styles S --output DIR/PAIR_150.png --width 512 --seed 0 \
        --iterations 150 --min-improvement 0 \
        --log DIR/PAIR.jsonl --checkpoint-output DIR/PAIR_{:03}.png --checkpoint-iterations 10
    python examples/time_to_look.py DIR [DIR ...] --out runs/time_to_look

L-BFGS's path does not depend on its iteration budget, so the checkpoint after N
iterations is the image that `--iterations N --min-improvement 0` writes (and the default
writes, if its stop ends the run at N). Each checkpoint is measured as the
panel measures a result (neural_style_tf/apps/quality.py: held-out style distance, SSIM
to the photo, border, noise); its wall time is the run's start-up plus the optimiser's
seconds at that iteration (from the --log; on a shared machine, read it as a guide and time
the chosen schedule with `benchmark.py --command`). Writes time_to_look.json, a Markdown
table of each measure relative to the run's last checkpoint, and a plot of each measure
against the iterations.
"""

import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neural_style_tf.apps import quality  # noqa: E402

MEASURES = ("style", "ssim", "border", "noise")


def checkpoints(folder):
    """{pair: [(iteration, path), ...]} of a checkpoint folder (PAIR_NNN.png)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*_[0-9][0-9][0-9].png"))):
        match = re.fullmatch(r"(.+)_(\d{3})\.png", os.path.basename(path))
        found.setdefault(match.group(1), []).append((int(match.group(2)), path))
    return found


def seconds_at(log_path):
    """{iteration: the optimiser's seconds at its end} from a --log file."""
    rows = [json.loads(line) for line in open(log_path, encoding="utf-8")]
    return {r["iteration"]: r["seconds"] for r in rows if "iteration" in r}


def measure_folder(folder, network, startup):
    records = []
    for pair, shots in checkpoints(folder).items():
        seconds = seconds_at(os.path.join(folder, pair + ".jsonl"))
        for iteration, path in shots:
            records.append({"setting": os.path.basename(os.path.normpath(folder)), "pair": pair, "path": path,
                            "iteration": iteration, "seconds": startup + seconds.get(iteration, float("nan"))})
    return quality.measure(records, folder, 512, network)


def table(records):
    """Markdown: per setting and pair, each measure at each iteration relative to the last."""
    lines = ["| run | pair | iterations | wall s | style (x last) | SSIM (- last) | border | noise |",
             "|---|---|---|---|---|---|---|---|"]
    for (setting, pair) in sorted({(r["setting"], r["pair"]) for r in records}):
        rows = sorted((r for r in records if (r["setting"], r["pair"]) == (setting, pair)),
                      key=lambda r: r["iteration"])
        last = rows[-1]
        for r in rows:
            lines.append(f"| {setting} | {pair} | {r['iteration']} | {r['seconds']:.0f} | "
                         f"{r['style'] / last['style']:.3f} | {r['ssim'] - last['ssim']:+.3f} | "
                         f"{r['border']:.2f} | {r['noise']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(records, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 3.6))
    for (setting, pair) in sorted({(r["setting"], r["pair"]) for r in records}):
        rows = sorted((r for r in records if (r["setting"], r["pair"]) == (setting, pair)),
                      key=lambda r: r["iteration"])
        for ax, name in zip(axes, MEASURES):
            ax.plot([r["iteration"] for r in rows], [r[name] for r in rows], marker=".",
                    label=f"{pair} ({setting})")
    titles = {"style": "held-out style distance (lower = closer)", "ssim": "SSIM to the photo",
              "border": "border (1 = clean)", "noise": "noise (1 = painting's)"}
    for ax, name in zip(axes, MEASURES):
        ax.set_title(titles[name], fontsize=9)
        ax.set_xlabel("L-BFGS iterations (about 1.2 s each at 512 px here)")
        if name == "style":
            ax.set_yscale("log")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time_to_look.png"), dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="checkpoint folders, one per setting (PAIR_NNN.png, PAIR.jsonl)")
    p.add_argument("--out", required=True)
    p.add_argument("--startup", type=float, default=10.0,
                   help="seconds before the first evaluation, added to the optimiser's clock (measured with "
                        "benchmark.py --command)")
    args = p.parse_args(argv)
    from neural_style_tf.networks.loading import load_net

    os.makedirs(args.out, exist_ok=True)
    network = load_net()
    records = [r for folder in args.folders for r in measure_folder(folder, network, args.startup)]
    with open(os.path.join(args.out, "time_to_look.json"), "w") as f:
        json.dump(records, f, indent=1)
    text = table(records)
    with open(os.path.join(args.out, "time_to_look.md"), "w") as f:
        f.write(text)
    plot(records, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
