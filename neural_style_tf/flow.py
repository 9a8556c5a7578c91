"""Optical flow between video frames, warping, and where a warped frame can be trusted.

Pure NumPy and OpenCV (opencv-python-headless), no TensorFlow. Conventions, for two
frames a and b of the same size, images (H, W, 3) float 0..255:

- `estimate_flow(a, b)` is the flow from a to b: a(p) ~ b(p + flow(p)), in pixels,
  (H, W, 2) with (dx, dy) per pixel p = (x, y) of a;
- `warp(image, flow)` samples image at p + flow(p): warp(b, estimate_flow(a, b)) ~ a.
  So a result made for frame i-1 is carried into frame i by the *backward* flow
  estimate_flow(frame_i, frame_{i-1});
- `reliability(forward, backward)` marks which pixels of b such a warp got right,
  following Ruder, Dosovitskiy & Brox, *Artistic style transfer for videos* (2016).
"""

from __future__ import annotations

import numpy as np

# DIS (Kroeger et al. 2016) is the default: on the pan-and-zoom clip of docs/video.md it
# was both the more accurate and the faster of the two (examples/video_clip.py measures
# it against the clip's exact flow).
METHODS = ("dis", "farneback")
METHOD = "dis"

# Ruder et al., section 3.2: disocclusion where the forward flow, warped into the second
# frame, is not about the opposite of the backward flow, and motion boundaries where the
# backward flow changes fast. The constants are the paper's (flow in pixels).
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002


def _cv2():
    import cv2  # imported here: importing the package must stay cheap

    return cv2


def grey(rgb):
    """RGB float 0..255 (H, W, 3) -> uint8 luminance, what the flow methods read."""
    rgb = np.asarray(rgb, np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def estimate_flow(a, b, method=METHOD):
    """The flow from frame a to frame b, (H, W, 2) float32: a(p) ~ b(p + flow(p))."""
    cv2 = _cv2()
    ga, gb = grey(a), grey(b)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(ga, gb, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, pyr_scale=0.5, levels=4, winsize=15, iterations=5,
                                            poly_n=5, poly_sigma=1.1, flags=0)
    else:
        raise ValueError(f"flow method must be one of {METHODS}, not {method!r}")
    return np.asarray(flow, np.float32)


def sample_points(flow):
    """(x, y) maps of p + flow(p), float32, for cv2.remap."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image, flow):
    """image sampled at p + flow(p) (bicubic; outside the frame, the nearest edge pixel).

    Bicubic, not bilinear: a result is warped again every frame, and bilinear sampling
    at half-pixel shifts averages neighbours, blurring the style's strokes a little more
    each time (and the temporal term then holds the frame to that blur). Measured on
    the first 8 frames of docs/video.md's clip, the input's own flicker (what warping
    leaves) is 3.38 grey levels bilinear, 2.74 bicubic. Bicubic can overshoot 0..255
    slightly; the optimizer's start is clipped (coarse_to_fine.run).
    """
    cv2 = _cv2()
    map_x, map_y = sample_points(flow)
    image = np.asarray(image, np.float32)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def inside(flow):
    """True where p + flow(p) lies inside the frame.

    An addition to the paper: a pixel that enters the picture at its edge (a pan) has
    no source, and the edge pixel that `warp` puts there is made up; the forward-backward
    check does not always catch it, because the flow there is smooth and consistent.
    """
    height, width = flow.shape[:2]
    map_x, map_y = sample_points(flow)
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)


def disocclusions(forward, backward):
    """True where b's pixels were hidden (or outside) in a: |w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5.

    w^ is the backward flow (b to a) and w~(p) = w(p + w^(p)) the forward flow (a to b)
    warped into b: where a pixel of b was visible in a, following one and then the other
    comes back to the start.
    """
    warped_forward = warp(forward, backward)
    round_trip = np.sum(np.square(warped_forward + backward), axis=-1)
    lengths = np.sum(np.square(warped_forward), axis=-1) + np.sum(np.square(backward), axis=-1)
    return round_trip > CONSISTENCY_RELATIVE * lengths + CONSISTENCY_ABSOLUTE


def motion_boundaries(backward):
    """True where the backward flow changes fast: |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002."""
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    change = du_x**2 + du_y**2 + dv_x**2 + dv_y**2
    return change > BOUNDARY_RELATIVE * np.sum(np.square(backward), axis=-1) + BOUNDARY_ABSOLUTE


def reliability(forward, backward):
    """(H, W) float32 weights for b's pixels: 1 where a warped from a can be trusted, else 0.

    `forward` = estimate_flow(a, b), `backward` = estimate_flow(b, a). Zero at
    disocclusions, motion boundaries and pixels whose source lies outside a.
    """
    bad = disocclusions(forward, backward) | motion_boundaries(backward) | ~inside(backward)
    return (~bad).astype(np.float32)


def long_term_weights(masks):
    """Ruder et al.'s long-term weights: c_j = max(c_j - sum_{k < j} c_k, 0).

    `masks` are the reliability of frames i - j into frame i, nearest frame first. Each
    pixel is then held to the nearest earlier frame where it is reliable, and to no
    other, so the weights of a pixel add up to at most 1.
    """
    weights, covered = [], None
    for mask in masks:
        mask = np.asarray(mask, np.float32)
        weight = mask if covered is None else np.maximum(mask - covered, 0.0)
        covered = weight if covered is None else covered + weight
        weights.append(weight)
    return weights


def combine(targets, weights):
    """One (target, mask) from targets of several frames and their long-term weights.

    Because the long-term weights of a pixel add up to at most 1 (one frame each, for
    0/1 masks), sum_j c_j (x - w_j)^2 = c (x - w)^2 with c = sum_j c_j and w the
    c-weighted mean of the w_j: one temporal term serves short and long term alike.
    """
    mask = np.sum(weights, axis=0).astype(np.float32)
    weighted = np.sum([w[..., None] * np.asarray(t, np.float32) for t, w in zip(targets, weights)], axis=0)
    target = np.where(mask[..., None] > 0, weighted / np.maximum(mask, 1e-6)[..., None], 0.0)
    return target.astype(np.float32), mask


def flicker(current, previous_warped, mask):
    """Mean absolute difference (grey levels, over channels) where `mask` > 0, weighted by
    it; None where no pixel is reliable (nothing to compare)."""
    weights = np.asarray(mask, np.float64)
    total = weights.sum()
    if total <= 0:
        return None
    diff = np.abs(np.asarray(current, np.float64) - np.asarray(previous_warped, np.float64)).mean(axis=-1)
    return float((weights * diff).sum() / total)
