"""The bfloat16 quality guard (docs/performance.md): the plain command at 512 px on three
pairs, once per precision, each saved image re-evaluated with the float32 objective.

    python examples/precision_guard.py --out-dir runs/guard            # runs what is missing, then measures
    python examples/precision_guard.py --out-dir runs/guard --measure-only

A run whose PNG exists is not redone. Prints a Markdown table (also OUT_DIR/guard.md) and
writes a side-by-side sheet (float32 left, bfloat16 right) to OUT_DIR/sheet.jpg. It needs a
CPU with native bfloat16 (see tf_runtime.native_bfloat16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PAIRS = ("starry_night", "shipwreck_of_the_minotaur", "the_scream")
PRECISIONS = ("float32", "bfloat16")
CONTENT = os.path.join(ROOT, "examples", "tubingen_neckarfront.jpg")


def run(out_dir, style, precision, width, seed):
    base = os.path.join(out_dir, f"{style}_{precision}")
    if not os.path.exists(base + ".png"):
        subprocess.run([sys.executable, os.path.join(ROOT, "neural_style.py"), "--content", CONTENT,
                        "--styles", os.path.join(ROOT, "examples", style + ".jpg"), "--output", base + ".png",
                        "--width", str(width), "--seed", str(seed), "--precision", precision,
                        "--log", base + ".jsonl", "--quiet"], check=True)
    return base


def measure(out_dir, width):
    from neural_style_tf.tf_runtime import configure_process

    configure_process()
    from neural_style_tf import images, objective
    from neural_style_tf.networks import loading
    from neural_style_tf.settings import LossOptions

    network = loading.load_net(None, None)  # float32
    content = images.resize_to_width(images.load_image(CONTENT), width)
    rows = []
    for style in PAIRS:
        painting = images.load_image(os.path.join(ROOT, "examples", style + ".jpg"))
        with objective.Objective(network, content, [painting], LossOptions(tv_weight=None)) as obj:
            row = {"pair": style}
            for precision in PRECISIONS:
                base = os.path.join(out_dir, f"{style}_{precision}")
                terms, _ = obj.evaluate(images.load_image(base + ".png"))
                with open(base + ".jsonl", encoding="utf-8") as f:
                    end = [json.loads(line) for line in f][-1]
                row[precision] = {"loss": terms["total"], "evaluations": end["evaluations"],
                                  "iterations": end["iterations"], "stop": end["stop_reason"],
                                  "seconds": end["seconds"]}
            rows.append(row)
    return rows


def table(rows):
    lines = ["| pair | float32 run: loss (float32) | bfloat16 run: loss re-evaluated in float32 | difference "
             "| evaluations (float32, bfloat16) | stop |", "|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["float32"], r["bfloat16"]
        lines.append(f"| {r['pair']} | {a['loss']:.2f} | {b['loss']:.2f} | {100 * (b['loss'] / a['loss'] - 1):+.2f}% "
                     f"| {a['evaluations']}, {b['evaluations']} | {a['stop']}, {b['stop']} |")
    return "\n".join(lines) + "\n"


def sheet(out_dir, path):
    from PIL import Image

    pictures = [[Image.open(os.path.join(out_dir, f"{s}_{p}.png")).convert("RGB") for p in PRECISIONS] for s in PAIRS]
    w, h = pictures[0][0].size
    gap = 8
    out = Image.new("RGB", (2 * w + gap, len(PAIRS) * h + (len(PAIRS) - 1) * gap), "white")
    for i, (a, b) in enumerate(pictures):
        out.paste(a, (0, i * (h + gap)))
        out.paste(b, (w + gap, i * (h + gap)))
    out.save(path, quality=88)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--measure-only", action="store_true")
    args = p.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.measure_only:
        for style in PAIRS:
            for precision in PRECISIONS:
                run(args.out_dir, style, precision, args.width, args.seed)
    text = table(measure(args.out_dir, args.width))
    print(text)
    with open(os.path.join(args.out_dir, "guard.md"), "w", encoding="utf-8") as f:
        f.write(text)
    sheet(args.out_dir, os.path.join(args.out_dir, "sheet.jpg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
