"""Spatial control (docs/spatial-control.md): the masks of a transfer, as users make them.

    --style-masks M1 M2 ...         one mask per style, over the content: where it applies
    --style-masks auto-sky          the photo's sky for the first style, the rest for the second
    --style-region-masks R1 R2 ...  one mask per style, over that style image: where it is taken from
    --content-mask M                white: keep the photo there (--content-mask-weight)

A mask is any image file of any size: its alpha channel when it has a transparent
pixel, else its grey level; white = 1, black = 0, grey in between (soft edges blend).
It is resized to the image it covers. This module reads and checks the files (no
TensorFlow) and turns them into what objective.Objective takes: an objective.Guidance per
size and the content term's per-pixel weights.

How masks combine (the objective is objective.Guidance's):
- a pixel that no style mask covers gets no style: the content and TV terms keep it the
  photo (a mask that does not cover the picture leaves the rest unstylised);
- where masks overlap, the pixel counts in each style's statistics: the styles blend;
- the protected subject (--content-mask) is taken out of every style's mask (times
  1 - the content mask), and a "keep" term holds its pixels to the photo:
  --content-mask-weight x the mean, over the subject weighted by its mask, of the squared
  difference to the photo (terms.PixelTarget, as video.py holds frames with its temporal term).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import images, objective
from .errors import UsageError
from .settings import AUTO_SKY
from .terms import PixelTarget

# A style mask of which the content mask leaves less than this share is covered by it.
LEFT_SHARE = 0.02
# auto-sky is checked up front on the photo at this width (a fraction of a second).
SKY_CHECK_WIDTH = 256
# A mask whose brightest pixel is below this (of 1) is all black: it selects nothing.
BLACK = 0.5 / 255


def load_mask(path):
    """The mask in `path` as float32 (H, W) in 0..1: the alpha channel if the file has a
    transparent pixel (a cut-out made in an image editor), else the grey level."""
    rgb, alpha = images.load_image(path, with_alpha=True)
    if alpha is not None and float(np.min(alpha)) < 1.0:
        return np.asarray(alpha, np.float32).clip(0, 1)
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return (grey / 255.0).astype(np.float32).clip(0, 1)


def mask_problem(path):
    """None if `path` is a usable mask, else the reason (one line, without the flag)."""
    problem = images.check_readable_image(path)
    if problem:
        return problem
    try:
        mask = load_mask(path)
    except Exception as exc:  # a file Pillow opens but cannot decode
        return f"{path} cannot be read as an image ({exc})"
    if float(mask.max()) < BLACK:
        return f"{path} is all black: it selects no pixel (white = where it applies)"
    return None


def resized(mask, shape):
    """`mask` at (height, width) `shape`, still in 0..1."""
    return images.resize(np.asarray(mask, np.float32), tuple(shape[:2])).clip(0, 1).astype(np.float32)


@dataclass
class Masks:
    """A job's masks at the output size (regions at their style files' sizes); None: not given."""

    styles: list | None = None
    regions: list | None = None
    protect: np.ndarray | None = None
    protect_weight: float = 0.0

    @property
    def any(self):
        return self.styles is not None or self.regions is not None or self.protect is not None

    def style_masks(self, count):
        """One mask per style at the output size, the protected subject taken out; None: no style mask."""
        masks = self.styles
        if self.protect is not None:
            keep = 1.0 - self.protect
            masks = [keep if m is None else m * keep for m in (masks or [None] * count)]
        return masks

    def guidance(self, photo, count):
        """The objective.Guidance of an objective whose content is `photo` (its size decides
        the masks'; the protected subject is held to it)."""
        size = photo.shape[:2]
        masks = self.style_masks(count)
        keep = None
        if self.protect is not None:
            keep = PixelTarget(np.asarray(photo, np.float32), resized(self.protect, size), self.protect_weight)
        return objective.Guidance(tuple(resized(m, size) for m in masks) if masks is not None else (),
                                tuple(self.regions or ()), keep)


    def describe(self, run):
        """One line for the start of a run: which masks, and each style's share of the picture."""
        parts = []
        if self.styles is not None:
            source = AUTO_SKY if tuple(run.style_masks) == (AUTO_SKY,) else "files"
            shares = ", ".join(f"{100 * float(np.mean(m)):.0f}%" for m in self.style_masks(len(run.styles)))
            parts.append(f"style masks ({source}) covering {shares}")
        if self.regions is not None:
            parts.append("style region masks")
        if self.protect is not None:
            parts.append(f"content mask covering {100 * float(np.mean(self.protect)):.0f}% "
                         f"(kept with weight {self.protect_weight:g})")
        return "spatial control: " + "; ".join(parts)


def content_weights(alpha, size):
    """The content term's per-pixel weight at `size` (terms.ContentTerm), or None
    without an alpha plane: transparent pixels have no content, since what lies under them
    is arbitrary; the visible ones are scaled so that their mean weight is 1, and a picture
    with a transparent margin keeps the content weight of an opaque one. `alpha`: the
    content's alpha plane at the output size."""
    if alpha is None:
        return None
    # Visible = alpha > 0, decided at the output size and then resized (soft at a coarse scale).
    visible = resized((np.asarray(alpha) > 0).astype(np.float32), size)
    return (visible / max(float(visible.mean()), 1e-6)).astype(np.float32)


def check(run, content=None):
    """Every check of the mask flags (UsageError, one line), before any network is built:
    counts, readable files, no all-black mask, and something left to stylise. `content`:
    the photo as an array (RGB float 0..255) when it was given as one, else its file is
    read for auto-sky."""
    count = len(run.styles)
    auto = tuple(run.style_masks or ()) == (AUTO_SKY,)
    if run.style_masks is not None and not auto and len(run.style_masks) != count:
        raise UsageError(f"--style-masks has {len(run.style_masks)} mask(s) for {count} style image(s); "
                         f"give one per style (or '{AUTO_SKY}' with one or two styles)")
    if auto and count > 2:
        raise UsageError(f"--style-masks {AUTO_SKY} splits the photo in two (sky, the rest): give one or two "
                         f"styles, not {count}")
    if run.style_region_masks is not None and len(run.style_region_masks) != count:
        raise UsageError(f"--style-region-masks has {len(run.style_region_masks)} mask(s) for {count} style "
                         "image(s); give one per style, over that style image")
    if not run.content_mask_weight >= 0:
        raise UsageError(f"--content-mask-weight must be non-negative (0: the subject only loses the styles), "
                         f"not {run.content_mask_weight}")
    if auto:
        photo = images.load_image(run.content) if content is None else content
        sky_split(images.resize_to_width(photo, SKY_CHECK_WIDTH), count)
    for label, paths in (("--style-masks", () if auto else run.style_masks or ()),
                         ("--style-region-masks", run.style_region_masks or ()),
                         ("--content-mask", () if run.content_mask is None else (run.content_mask,))):
        for path in paths:
            problem = mask_problem(path)
            if problem:
                raise UsageError(f"{label} {problem}")
    if run.content_mask is not None:
        check_left_to_stylise(run, count)


def check_left_to_stylise(run, count, probe=64):
    """A protected subject that covers a style's whole region leaves it nothing to stylise
    (below LEFT_SHARE of it: the fringe that resizing leaves along an edge is not a region)."""
    protect = resized(load_mask(run.content_mask), (probe, probe))
    styles = None
    if run.style_masks is not None and tuple(run.style_masks) != (AUTO_SKY,):
        styles = [resized(load_mask(p), (probe, probe)) for p in run.style_masks]
    before = styles or [np.ones((probe, probe), np.float32)] * count
    for i, (mask, whole) in enumerate(zip(Masks(styles, None, protect).style_masks(count), before)):
        if float(mask.sum()) < LEFT_SHARE * float(whole.sum()):
            which = f"style {i + 1}'s mask ({run.style_masks[i]})" if styles else "the whole picture"
            raise UsageError(f"--content-mask {run.content_mask} covers {which}: nothing is left to stylise")


def prepare(run, content):
    """The job's Masks for `content` (RGB at the output size): files read and resized to
    the content (style regions stay at their file's size: they follow the style image's
    scaling), auto-sky computed from the photo."""
    size, count = content.shape[:2], len(run.styles)
    styles = None
    if run.style_masks is not None:
        if tuple(run.style_masks) == (AUTO_SKY,):
            styles = sky_split(content, count)
        else:
            styles = [resized(load_mask(p), size) for p in run.style_masks]
    regions = None if run.style_region_masks is None else [load_mask(p) for p in run.style_region_masks]
    protect = None if run.content_mask is None else resized(load_mask(run.content_mask), size)
    return Masks(styles, regions, protect, run.content_mask_weight)


def sky_split(content, count):
    """auto-sky: [sky] for one style, [sky, the rest] for two."""
    from .sky import sky_mask

    sky = sky_mask(content)
    if float(sky.max()) < BLACK:
        raise UsageError(f"--style-masks {AUTO_SKY} found no sky in the photo (it looks for a smooth, bright "
                         "region touching the top edge); draw the masks yourself")
    return [sky, 1.0 - sky][:count]
