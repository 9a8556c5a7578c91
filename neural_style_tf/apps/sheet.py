"""A sweep's contact sheet: the first swept flag as rows, the others as columns, each panel
with its final loss (or why it has none)."""

from __future__ import annotations

import io

import numpy as np

from .. import images


def axis_values(points, index):
    """The distinct values of parameter `index` (or of all after it, joined) in first-seen order."""
    seen = {}
    for params in points:
        key = params[index] if index == 0 else ", ".join(f"{k}={v}" for k, v in params[1:])
        seen.setdefault(key, None)
    return list(seen)


def layout(points):
    """points: [((flag, value), ...)] -> (row labels, column labels, {point: (row, col)})."""
    rows = axis_values(points, 0)
    cols = axis_values(points, 1) if len(points[0]) > 1 else [""]
    where = {}
    for params in points:
        col = ", ".join(f"{k}={v}" for k, v in params[1:])
        where[params] = (rows.index(params[0]), cols.index(col))
    return rows, cols, where


def write_sheet(path, entries, title=""):
    """entries: [(params, image path or None, loss or None, error or None)]. Writes a PNG atomically;
    returns the labels drawn: (row labels, column labels, panel captions by params)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols, where = layout([e[0] for e in entries])
    pictures = {e[0]: (images.load_image(e[1]) if e[1] else None) for e in entries}
    shapes = [p.shape for p in pictures.values() if p is not None]
    aspect = shapes[0][0] / shapes[0][1] if shapes else 0.75
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(2.4 * len(cols) + 0.6, (2.4 * aspect + 0.45) * len(rows) + 0.6))
    captions = {}
    for params, _, loss, error in entries:
        r, c = where[params]
        ax = axes[r, c]
        ax.set_xticks([])
        ax.set_yticks([])
        picture = pictures[params]
        if picture is not None:
            ax.imshow(np.clip(picture, 0, 255).astype(np.uint8))
            captions[params] = f"loss {loss:.4g}" if loss is not None else ""
            ax.set_xlabel(captions[params], fontsize=8)
        else:
            captions[params] = "failed" + (f"\n{error[:40]}" if error else "")
            ax.text(0.5, 0.5, captions[params], ha="center", va="center", fontsize=7)
        if r == 0 and cols != [""]:
            ax.set_title(cols[c], fontsize=9)
        if c == 0:
            ax.set_ylabel(row_label(params), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    images.write_atomically(path, lambda f: f.write(buffer.getvalue()))
    return [row_label((r,)) for r in rows], cols, captions


def row_label(params):
    return f"{params[0][0]}={params[0][1]}"
