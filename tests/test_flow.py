"""flow.py: OpenCV's optical flow on synthetic clips with a known motion, warping, and
Ruder et al.'s reliability mask (disocclusions, motion boundaries, long-term weights)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neural_style_tf import flow

SIZE = (40, 48)  # height, width


def texture(shape, seed=0, blur=1.5):
    """A smooth random RGB texture 0..255: something a flow method can follow."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, shape + (3,))
    smooth = np.stack([ndimage.gaussian_filter(noise[..., c], blur) for c in range(3)], axis=-1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.float32)


def shifted_pair(dx, dy, margin=8):
    """Frames a and b of a camera panning by (dx, dy): the scene in b is a's moved by (-dx, -dy)."""
    scene = texture((SIZE[0] + 2 * margin, SIZE[1] + 2 * margin))
    a = scene[margin:margin + SIZE[0], margin:margin + SIZE[1]]
    b = scene[margin + dy:margin + dy + SIZE[0], margin + dx:margin + dx + SIZE[1]]
    return a, b


@pytest.mark.parametrize("method, tolerance", [("dis", 0.2), ("farneback", 0.35)])
def test_flow_recovers_a_known_shift_and_the_warp_reproduces_the_next_frame(method, tolerance):
    dx, dy = 3, 2
    a, b = shifted_pair(dx, dy)
    forward = flow.estimate_flow(a, b, method)  # a(p) = b(p - (dx, dy))
    backward = flow.estimate_flow(b, a, method)  # b(p) = a(p + (dx, dy))
    assert forward.shape == SIZE + (2,) and forward.dtype == np.float32
    inner = (slice(6, -6), slice(6, -6))
    assert np.median(backward[inner][..., 0]) == pytest.approx(dx, abs=tolerance)
    assert np.median(backward[inner][..., 1]) == pytest.approx(dy, abs=tolerance)
    assert np.median(forward[inner][..., 0]) == pytest.approx(-dx, abs=tolerance)
    mask = flow.reliability(forward, backward)
    assert mask.mean() > 0.6
    # Warping a by the backward flow gives b where the mask trusts it ...
    warped = flow.warp(a, backward)
    reliable = mask > 0
    assert np.abs(warped - b).mean(axis=-1)[reliable].mean() < 3.0
    # ... much better than not warping at all, and the new strip at the edge is left out:
    # b's last dx columns and dy rows were outside a.
    assert np.abs(a - b).mean(axis=-1)[reliable].mean() > 4 * np.abs(warped - b).mean(axis=-1)[reliable].mean()
    assert not reliable[:, -1].any() and not reliable[-1, :].any()


def test_warp_follows_the_documented_convention():
    image = np.zeros((5, 6, 3), np.float32)
    image[2, 4] = 255
    shift = np.zeros((5, 6, 2), np.float32)
    shift[..., 0] = 2  # sample two pixels to the right
    out = flow.warp(image, shift)
    assert out[2, 2, 0] == 255 and out[2, 4, 0] == 0
    assert flow.inside(shift)[:, :4].all() and not flow.inside(shift)[:, 4:].any()


def square_flows(left=14, top=12, side=12, step=4):
    """Exact flows of a square moving right by `step` over a still background: (forward, backward)."""
    forward = np.zeros(SIZE + (2,), np.float32)
    backward = np.zeros(SIZE + (2,), np.float32)
    forward[top:top + side, left:left + side, 0] = step  # a's square goes right
    backward[top:top + side, left + step:left + step + side, 0] = -step  # b's square came from the left
    return forward, backward


def test_reliability_marks_the_pixels_a_moving_square_uncovers():
    left, top, side, step = 14, 12, 12, 4
    forward, backward = square_flows(left, top, side, step)
    mask = flow.reliability(forward, backward)
    uncovered = mask[top:top + side, left:left + step]  # background in b, hidden by the square in a
    assert not uncovered.any()
    assert flow.disocclusions(forward, backward)[top:top + side, left:left + step].all()
    # The square itself and the background away from it are reliable.
    assert mask[top + 2:top + side - 2, left + step + 2:left + step + side - 2].all()
    assert mask[:top - 2].all() and mask[top + side + 2:].all()
    # The square's edges in the backward flow are motion boundaries.
    boundaries = flow.motion_boundaries(backward)
    assert boundaries[top + 3, left + step] and boundaries[top + 3, left + step + side - 1]
    assert not boundaries[:top - 2].any()


def test_reliability_from_estimated_flow_on_a_moving_textured_square():
    left, top, side, step = 14, 12, 14, 4
    background, square = texture(SIZE, seed=1), texture((side, side), seed=2, blur=1.0)
    a, b = background.copy(), background.copy()
    a[top:top + side, left:left + side] = square
    b[top:top + side, left + step:left + step + side] = square
    mask = flow.reliability(flow.estimate_flow(a, b), flow.estimate_flow(b, a))
    uncovered = mask[top + 2:top + side - 2, left:left + step]
    assert uncovered.mean() < 0.5  # most of what the square uncovered is found
    far = np.ones(SIZE, bool)
    far[top - 6:top + side + 6, left - 6:left + step + side + 6] = False
    assert mask[far].mean() > 0.9  # and the still background is trusted


def test_long_term_weights_hold_each_pixel_to_its_nearest_reliable_frame():
    near = np.array([[1, 0, 0, 1]], np.float32)
    mid = np.array([[1, 1, 0, 0]], np.float32)
    far = np.array([[1, 1, 1, 0]], np.float32)
    weights = flow.long_term_weights([near, mid, far])
    np.testing.assert_array_equal(weights[0], near)
    np.testing.assert_array_equal(weights[1], [[0, 1, 0, 0]])
    np.testing.assert_array_equal(weights[2], [[0, 0, 1, 0]])
    targets = [np.full((1, 4, 3), v, np.float32) for v in (10, 20, 30)]
    target, mask = flow.combine(targets, weights)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1]])
    np.testing.assert_array_equal(target[0, :, 0], [10, 20, 30, 10])


def test_combine_equals_the_sum_of_the_long_term_terms():
    rng = np.random.default_rng(3)
    masks = [(rng.uniform(size=(6, 7)) > 0.4).astype(np.float32) for _ in range(3)]
    weights = flow.long_term_weights(masks)
    targets = [rng.uniform(0, 255, (6, 7, 3)) for _ in range(3)]
    x = rng.uniform(0, 255, (6, 7, 3))
    target, mask = flow.combine(targets, weights)
    separate = sum((w[..., None] * (x - t) ** 2).sum() for t, w in zip(targets, weights))
    assert (mask[..., None] * (x - target) ** 2).sum() == pytest.approx(separate, rel=1e-5)


def test_flicker_is_the_mean_absolute_difference_over_the_mask():
    current = np.zeros((2, 2, 3))
    previous = np.array([[[3, 3, 3], [6, 0, 0]], [[90, 90, 90], [1, 1, 1]]], np.float64)
    mask = np.array([[1, 1], [0, 1]], np.float32)
    assert flow.flicker(current, previous, mask) == pytest.approx((3 + 2 + 1) / 3)
    assert flow.flicker(current, previous, np.zeros((2, 2))) is None


def test_an_unknown_method_is_refused():
    a = texture(SIZE)
    with pytest.raises(ValueError, match="flow method"):
        flow.estimate_flow(a, a, "horn-schunck")
