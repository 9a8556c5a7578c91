"""Overscan: each scale is optimised on a canvas a few pixels larger than the picture, and the
picture is cut from its middle.

Why: the network has nothing beyond the frame, and its padding (replicate, reflect or zero)
makes the outermost rows and columns a special place for the style statistics. With the W2
loss the optimum keeps a strip two pixels wide along some sides, lighter or darker than the
image beside it: the plain 512 px Neckarfront x The Starry Night scored 22 and 20 on its
bottom and left on the per-side measure (apps.quality.side_strips), the classic reference at
most about 10. It is not a lag of the optimiser (300 iterations at 128 px keep it) nor the
content term (without one it stays), and another padding only moves it. On a canvas with a
free margin the picture's edge is inside the image the network sees: at 128 px a margin of 4
px took the strips from 11-16 to 1-5 (docs/quality.md#clean-edges-overscan).

The margin's pixels are free variables of the optimiser, held by the content term to the
photo's edge pixels repeated outward; every per-pixel input of the problem is padded with it
(the content, its masks, video's temporal target, whose margin holds nothing). --tileable has
no edge, so no margin.

Why repeated, not mirrored: a photo mirrored across its edge is symmetric about that line,
and the optimiser painted a stroke along the mirror line, a three-row dark band inside the
picture (The Scream at 256 px: 15.6 on its top; with the edge repeated, 6). Larger mirrored
margins kept it (8 and 16 px: 14.4 and 14.8).
"""

from __future__ import annotations

import dataclasses
from typing import overload

import numpy as np

from .objective import Guidance, Problem
from .settings import OVERSCAN_FRACTION, OVERSCAN_MIN
from .terms import PixelTarget


def margin(loss, size) -> int:
    """The margin in pixels of a scale of (height, width) `size` in a run with
    settings.LossOptions `loss`: its --overscan, else OVERSCAN_FRACTION of the long side and at
    least OVERSCAN_MIN px; 0 for a tileable picture (it has no edge).

    Why a share of the frame: what is left of the strip is a slope as wide as a fixed share of
    the picture (the bridge x Monet's top: 5-6 rows at 512 px, 12 at 1024), and so is the
    margin it needs: 4 px left 10.1 at 512 px and 13.3 at 1024 px, 8 and 16 px left 7 and 6.
    Every size then sees the same canvas, scaled (the same look at every size, issue 35)."""
    if loss.tileable:
        return 0
    if loss.overscan is not None:
        return max(0, int(loss.overscan))
    return max(OVERSCAN_MIN, round(max(size) * OVERSCAN_FRACTION))


def canvas_size(size, margin: int) -> tuple:
    """(height, width) of the canvas of a picture of (height, width) `size`."""
    return int(size[0]) + 2 * margin, int(size[1]) + 2 * margin


@overload
def pad(image: np.ndarray, margin: int, mode: str = ...) -> np.ndarray: ...
@overload
def pad(image: None, margin: int, mode: str = ...) -> None: ...
def pad(image, margin, mode="edge"):
    """`image` (H, W) or (H, W, C) with `margin` px more on each side: "edge" repeats its edge
    pixels outward (the module's docstring says why not a mirror); "zero" is 0."""
    if image is None or margin <= 0:
        return image
    image = np.asarray(image)
    widths = [(margin, margin)] * 2 + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths) if mode == "zero" else np.pad(image, widths, mode="edge")


@overload
def crop(image: np.ndarray, margin: int) -> np.ndarray: ...
@overload
def crop(image: None, margin: int) -> None: ...
def crop(image, margin):
    """The picture in the middle of a canvas `image` (H, W, ...): `pad`'s inverse."""
    if image is None or margin <= 0:
        return image
    return image[margin:-margin, margin:-margin]


def _pixel_target(target: PixelTarget | None, margin: int) -> PixelTarget | None:
    """A PixelTarget on the canvas: its target continued by its edge, its mask 0 in the margin
    (held nowhere there)."""
    if target is None:
        return None
    return dataclasses.replace(target, target=pad(target.target, margin), mask=pad(target.mask, margin, "zero"))


def canvas_problem(problem: Problem, margin: int) -> Problem:
    """`problem` on a canvas `margin` px larger on each side: the content and masks continued
    by their edges (see the module's docstring), pixel targets held nowhere in the margin."""
    if margin <= 0:
        return problem
    guidance = problem.guidance
    padded_guidance = Guidance(tuple(pad(m, margin) for m in guidance.masks), guidance.region_masks,
                               _pixel_target(guidance.keep, margin))
    return dataclasses.replace(problem, content=pad(problem.content, margin),
                               content_mask=pad(problem.content_mask, margin),
                               temporal=_pixel_target(problem.temporal, margin), guidance=padded_guidance)


class CroppedEvaluator:
    """An optimize.Evaluator seen through the canvas: its best image is the picture (cropped)."""

    def __init__(self, evaluator, margin: int):
        self._evaluator, self._margin = evaluator, margin

    def best_image(self):
        return crop(self._evaluator.best_image(), self._margin)

    def __getattr__(self, name):
        return getattr(self._evaluator, name)
