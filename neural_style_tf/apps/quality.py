"""The quality panel: fixed photo x painting pairs, rendered with named settings, each
result measured for the usual defects and shown beside the classic tool's reference.

    python examples/quality_panel.py --out-dir runs/quality --size 512 \
        --setting before="--preset classic --iterations 300" --setting after=""

Each setting is a string of neural_style.py flags. Every (setting, pair) is one run of
neural_style.py in its own process (so its time and memory are its own); a finished
output is kept and a rerun skips it. The numbers (metrics.json, metrics.md):

- style: the mean squared Gram distance to the painting on held-out layers (relu2_2,
  relu4_3: layers no objective here uses), as compare.py measures it (metrics.py);
- ssim: the SSIM of the luminance to the photo (how much of its layout is left);
- border: the edge strength in the outer BORDER px against that of the interior. Zero
  padding shows as bright dots along the frame, which lift this above 1;
- noise: the high-frequency amplitude of the result against the painting's at the same
  scale. A fine mesh from the optimiser's jitter lifts this above the painting's 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

from .. import images
from ..errors import EXIT_OK
from ..settings import LossOptions
from .metrics import choose_gram_layers, gram_distances, ssim_to_content

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # the checkout: HERE is neural_style_tf/apps
# (name, content, style, the classic tool's result for it or None): the Neckarfront with
# the four styles of the reference, and two other pairs.
PANEL = (
    ("starry", "tubingen_neckarfront.jpg", "starry_night.jpg", "jcjohnson_tubingen_starry.png"),
    ("shipwreck", "tubingen_neckarfront.jpg", "shipwreck_of_the_minotaur.jpg", "jcjohnson_tubingen_shipwreck.png"),
    ("scream", "tubingen_neckarfront.jpg", "the_scream.jpg", "jcjohnson_tubingen_scream.png"),
    ("composition", "tubingen_neckarfront.jpg", "composition_vii.jpg", "jcjohnson_tubingen_composition_vii.png"),
    ("bridge-monet", "pexels_golden_gate_bridge.jpg", "monet_woman_with_a_parasol.jpg", None),
    ("cat-starry", "skimage_chelsea.jpg", "starry_night.jpg", None),
)
# The setting name of the classic tool's reference results when they are measured too.
REFERENCE = "reference"
BORDER = 3
# The interior starts this far in, so that it never includes the border's neighbours.
INTERIOR = 8
NOISE_SIGMA = 1.0


# ---------------------------------------------------------------- the measures (pure NumPy)


def luminance(rgb):
    rgb = np.asarray(rgb, np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def edge_strength(rgb):
    """|horizontal| + |vertical| neighbour difference of the luminance, per pixel (H-1, W-1)."""
    y = luminance(rgb)
    return np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1, :]


def border_ratio(rgb, border=BORDER, interior=INTERIOR):
    """Mean edge strength of the outer `border` px over that of the interior (1: alike)."""
    edges = edge_strength(rgb)
    h, w = edges.shape
    ring = np.ones((h, w), bool)
    ring[border:h - border, border:w - border] = False
    inside = edges[interior:h - interior, interior:w - interior]
    return float(edges[ring].mean() / max(inside.mean(), 1e-9))


# The per-side edge measure: the outer rows or columns compared with this one, inward.
SIDE_REFERENCE = 5


def side_strips(rgb, outer=2, reference=SIDE_REFERENCE):
    """{side: score} of a light or dark strip along each side: the largest difference between
    the mean luminance of row or column 0 .. outer - 1 and that of row or column `reference`,
    over the interior's median step between neighbouring rows' and columns' means (about 1
    for a clean edge; a strip two pixels wide and 23 grey levels lighter scores 20 and more).

    Why per side and per row: border_ratio averages the outer 3 px of all four sides, and a
    two-pixel strip along one side (the plain 512 px Neckarfront's left and bottom: mean
    luminance 77, 65, 55, 54, 53 inward) vanishes in that average."""
    y = luminance(rgb)
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    inner_rows, inner_cols = rows[reference:-reference], cols[reference:-reference]
    step = float(np.median(np.abs(np.concatenate([np.diff(inner_rows), np.diff(inner_cols)]))))
    step = max(step, 1e-3)
    lines = {"top": rows, "bottom": rows[::-1], "left": cols, "right": cols[::-1]}
    return {side: max(abs(float(line[i] - line[reference])) for i in range(outer)) / step
            for side, line in lines.items()}


def high_frequency(rgb, sigma=NOISE_SIGMA):
    """RMS of the luminance minus its Gaussian blur: the amplitude of the finest detail."""
    from scipy.ndimage import gaussian_filter

    y = luminance(rgb)
    return float(np.sqrt(np.mean(np.square(y - gaussian_filter(y, sigma)))))


def noise_ratio(result, style_at_scale, sigma=NOISE_SIGMA):
    """high_frequency of the result over the painting's, at the scale the run saw it."""
    return high_frequency(result, sigma) / max(high_frequency(style_at_scale, sigma), 1e-9)


# The same picture at two sizes (issue 35): the larger output scaled down to the smaller.
# Layout: the luminances blurred by this fraction of the smaller width, then correlated.
LAYOUT_SIGMA = 1 / 32


def scaled_down(large, shape):
    """`large` (H, W, 3) resized to `shape` (h, w) by area averaging (Pillow's BOX), as a viewer shows it."""
    from PIL import Image

    img = Image.fromarray(np.clip(np.rint(large), 0, 255).astype(np.uint8))
    return np.asarray(img.resize((shape[1], shape[0]), Image.BOX), np.float64)


def layout_correlation(large, small, sigma=LAYOUT_SIGMA):
    """Pearson correlation of the low-passed luminances of `large` scaled down to `small` and of
    `small`: 1 when the two show the same layout of light and dark at the scale of the frame."""
    from scipy.ndimage import gaussian_filter

    blur = sigma * small.shape[1]
    a = gaussian_filter(luminance(scaled_down(large, small.shape[:2])), blur)
    b = gaussian_filter(luminance(small), blur)
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def detail_ratio(large, small, sigma=NOISE_SIGMA):
    """high_frequency of `large` scaled down to `small`'s size over that of `small`: 1 when the
    strokes have the same scale relative to the frame (finer strokes in `large` lift it above 1)."""
    return high_frequency(scaled_down(large, small.shape[:2]), sigma) / max(high_frequency(small, sigma), 1e-9)


# ---------------------------------------------------------------- the panel


def parse_setting(text):
    """'name=flags' -> (name, [flags])."""
    name, sep, flags = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--setting {text!r}: give NAME=FLAGS, e.g. after=\"--scales 3\"")
    return name.strip(), shlex.split(flags)


def image_path(name):
    """A panel image: from the project's examples/ (the classic results in examples/reference/)."""
    for folder in (os.path.join(ROOT, "examples"), os.path.join(ROOT, "examples", "reference")):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
        stem = os.path.splitext(path)[0]
        for ext in (".jpg", ".png"):
            if os.path.exists(stem + ext):
                return stem + ext
    return None


def run_one(out_dir, setting, flags, pair, size, say):
    """One neural_style.py run in a child process; returns its record (skipped if done)."""
    name, content, style, _ = pair
    folder = os.path.join(out_dir, setting)
    os.makedirs(folder, exist_ok=True)
    output, record_path = os.path.join(folder, f"{name}.png"), os.path.join(folder, f"{name}.json")
    if os.path.exists(output) and os.path.exists(record_path):
        with open(record_path) as f:
            return json.load(f)
    argv = [sys.executable, os.path.join(ROOT, "neural_style.py"), "--content", image_path(content),
            "--styles", image_path(style), "--output", output, "--width", str(size), "--quiet", "--overwrite",
            "--seed", "0", *flags]
    say(f"{setting} / {name}: {' '.join(shlex.quote(a) for a in argv[2:])}")
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    record = {"setting": setting, "pair": name, "flags": flags, "seconds": time.perf_counter() - t0,
              "exit": done.returncode, "last_line": (done.stderr.strip().splitlines() or [""])[-1]}
    if done.returncode != EXIT_OK:
        raise RuntimeError(f"{setting} / {name} failed: {done.stderr.strip()[-500:]}")
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return record


def done_record(out_dir, setting, pair):
    """The record of a finished (setting, pair), or None (for --measure-only)."""
    folder = os.path.join(out_dir, setting)
    if not os.path.exists(os.path.join(folder, f"{pair}.png")):
        return None
    try:
        with open(os.path.join(folder, f"{pair}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"setting": setting, "pair": pair, "flags": None, "seconds": None, "exit": 0, "last_line": ""}


def reference_records(names):
    """Records of the classic tool's results (examples/reference/) for the pairs that have one."""
    return [{"setting": REFERENCE, "pair": name, "flags": None, "seconds": None, "path": image_path(ref)}
            for name, _, _, ref in PANEL if name in names and ref and image_path(ref)]


def measure(records, out_dir, size, network):
    """Adds style, ssim, border and noise to each record (one graph for all style distances).
    A record's image is its "path", else OUT_DIR/SETTING/PAIR.png."""
    loss = LossOptions(padding="zero")
    layers = choose_gram_layers(network, None, loss.style_layers + loss.content_layers)
    for rec in records:
        _, content, style, _ = next(p for p in PANEL if p[0] == rec["pair"])
        result = images.load_image(rec.get("path") or os.path.join(out_dir, rec["setting"], rec["pair"] + ".png"))
        photo = images.resize(images.load_image(image_path(content)), result.shape[:2])
        painting = images.resize_to_width(images.load_image(image_path(style)), result.shape[1])
        distances = gram_distances(network, loss, [painting], [result], layers)
        rec.update(style=float(np.mean([distances[n][0] for n in layers])), ssim=ssim_to_content(photo, result),
                   border=border_ratio(result), noise=noise_ratio(result, painting), size=size)
    return records


def _seconds(value):
    return "–" if value is None or not np.isfinite(value) else f"{value:.0f}"


def summary_table(records, settings):
    """Markdown: one row per setting, the panel means, then one row per (setting, pair)."""
    lines = ["| setting | style (held-out Gram, lower = closer) | SSIM to photo | border (1 = clean) "
             "| noise (1 = painting's) | seconds per image |", "|---|---|---|---|---|---|"]
    for name in settings:
        rows = [r for r in records if r["setting"] == name]
        if rows:
            mean = {k: float(np.mean([r[k] for r in rows])) for k in ("style", "ssim", "border", "noise")}
            seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
            lines.append(f"| {name} | {mean['style']:.4g} | {mean['ssim']:.3f} | {mean['border']:.2f} "
                         f"| {mean['noise']:.2f} | {_seconds(np.mean(seconds) if seconds else None)} |")
    lines += ["", "| setting | pair | style | SSIM | border | noise | seconds |", "|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['setting']} | {r['pair']} | {r['style']:.4g} | {r['ssim']:.3f} | {r['border']:.2f} "
                     f"| {r['noise']:.2f} | {_seconds(r.get('seconds'))} |")
    return "\n".join(lines) + "\n"


def _tile(rgb, height):
    from PIL import Image

    image = Image.fromarray(images.to_uint(rgb))
    return image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS)


def contact_sheet(path, rows, labels, height=192, pad=4):
    """A grid of images (rows of RGB arrays or None), column labels on top; PNG or JPEG by extension."""
    from PIL import Image, ImageDraw

    tiles = [[None if im is None else _tile(im, height) for im in row] for row in rows]
    widths = [max((row[c].width for row in tiles if row[c] is not None), default=height) for c in range(len(labels))]
    top = 18
    sheet = Image.new("RGB", (sum(widths) + pad * (len(widths) + 1), top + len(rows) * (height + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    x = pad
    for c, label in enumerate(labels):
        draw.text((x + 2, 3), label, fill="black")
        for r, row in enumerate(tiles):
            if row[c] is not None:
                sheet.paste(row[c], (x, top + r * (height + pad)))
        x += widths[c] + pad
    images.write_atomically(path, lambda f: sheet.save(f, format="JPEG" if path.endswith(".jpg") else "PNG",
                                                        **({"quality": 85} if path.endswith(".jpg") else {})))


def write_sheets(out_dir, settings, names, with_reference=True):
    """One sheet per setting (photo, painting, reference, ours) and one with every setting side by side."""
    def load(folder, name):
        path = os.path.join(out_dir, folder, name + ".png")
        return images.load_image(path) if os.path.exists(path) else None

    pairs = [p for p in PANEL if p[0] in names]
    refs = [images.load_image(image_path(p[3])) if p[3] and with_reference else None for p in pairs]
    for setting in settings:
        rows = [[images.load_image(image_path(p[1])), images.load_image(image_path(p[2])), ref, load(setting, p[0])]
                for p, ref in zip(pairs, refs)]
        for ext in (".png", ".jpg"):
            contact_sheet(os.path.join(out_dir, f"sheet_{setting}{ext}"), rows,
                          ["photo", "painting", "classic tool (VGG-19)", f"ours: {setting}"])
    rows = [[ref] + [load(s, p[0]) for s in settings] for p, ref in zip(pairs, refs)]
    for ext in (".png", ".jpg"):
        contact_sheet(os.path.join(out_dir, f"sheet_all{ext}"), rows, ["classic tool (VGG-19)", *settings], height=160)


def build_parser():
    p = argparse.ArgumentParser(description="Render the quality panel with named settings and measure each result.")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--size", type=int, default=512, help="output width (default 512, the reference's)")
    p.add_argument("--setting", action="append", type=parse_setting, required=True, metavar="NAME=FLAGS",
                   help="a name and neural_style.py flags; repeat for each setting")
    p.add_argument("--pairs", default=",".join(p[0] for p in PANEL),
                   help="comma-separated pair names (default: all six)")
    p.add_argument("--measure-only", action="store_true",
                   help="render nothing: measure and show the images already in OUT_DIR (an unfinished "
                        "run's checkpoint copied there, say)")
    p.add_argument("--measure-reference", action="store_true",
                   help=f"also measure the classic tool's results (examples/reference/), as setting {REFERENCE!r}")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.pairs.split(",") if n.strip()]
    unknown = sorted(set(names) - {p[0] for p in PANEL})
    if unknown:
        print(f"quality: error: unknown pair(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    os.makedirs(args.out_dir, exist_ok=True)
    if args.measure_only:
        records = [r for name, _ in args.setting for pair in PANEL if pair[0] in names
                   for r in [done_record(args.out_dir, name, pair[0])] if r is not None]
    else:
        records = [run_one(args.out_dir, name, flags, pair, args.size, print)
                   for name, flags in args.setting for pair in PANEL if pair[0] in names]
    settings = [name for name, _ in args.setting]
    if args.measure_reference:
        records = reference_records(names) + records
    from ..networks.loading import load_net

    records = measure(records, args.out_dir, args.size, load_net())
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(records, f, indent=1)
    table = summary_table(records, ([REFERENCE] if args.measure_reference else []) + settings)
    with open(os.path.join(args.out_dir, "metrics.md"), "w") as f:
        f.write(table)
    write_sheets(args.out_dir, settings, names)
    print(table)
    return EXIT_OK
