"""The automatic sky mask (neural_style_tf/sky.py): synthetic scenes with known regions,
the shapes and range of the output, and the Neckarfront photo. NumPy/scikit-image only."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neural_style_tf import images
from neural_style_tf.sky import sky_mask

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _blue_sky(height, width):
    """A clear sky: light blue at the horizon to deeper blue at the top, no texture."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, horizon = np.array([60, 110, 200], np.float32), np.array([150, 190, 235], np.float32)
    return np.broadcast_to(top + t * (horizon - top), (height, width, 3)).copy()


def _texture(shape, base, rng, amplitude=45.0):
    """Grainy ground of colour `base`: per-pixel noise, the texture sky does not have."""
    noise = rng.normal(0.0, amplitude, shape[:2] + (1,)) + rng.normal(0.0, amplitude / 3, shape[:2] + (3,))
    return np.clip(np.asarray(base, np.float32) + noise, 0, 255).astype(np.float32)


def _disk(shape, centre, radius):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def _scene(height=120, width=160, seed=0):
    """Sky above row height/2 with a white cloud in it; textured ground below, with a
    smooth blue lake in it that is cut off from the sky by the ground. Returns the image
    and boolean masks of its parts."""
    rng = np.random.default_rng(seed)
    horizon = height // 2
    rgb = _texture((height, width), (95, 110, 60), rng)
    rgb[:horizon] = _blue_sky(horizon, width)
    cloud = _disk((height, width), (horizon // 2, width // 3), height // 8)
    rgb[cloud] = (245, 245, 245)
    lake = np.zeros((height, width), bool)
    lake[int(height * 0.75):int(height * 0.9), width // 4:width * 3 // 4] = True
    rgb[lake] = (70, 120, 205)
    sky = np.zeros((height, width), bool)
    sky[:horizon] = True
    return rgb, sky, cloud, lake


def _away_from_edges(region, margin=4):
    """`region` shrunk by `margin` px: the feathered edge itself is neither sky nor ground."""
    from scipy import ndimage

    return ndimage.binary_erosion(region, iterations=margin)


def test_synthetic_scene_sky_and_cloud_are_sky_ground_and_lake_are_not():
    rgb, sky, cloud, lake = _scene()
    mask = sky_mask(rgb)
    ground = ~sky & ~lake
    assert (mask[_away_from_edges(sky)] > 0.95).mean() > 0.95
    assert (mask[_away_from_edges(cloud, 1)] > 0.95).mean() > 0.95
    assert (mask[_away_from_edges(ground)] < 0.05).mean() > 0.95
    # The lake is as smooth and blue as the sky but does not touch the top edge.
    assert mask[lake].max() < 0.05


def test_the_edge_is_soft_but_narrow():
    rgb, sky, _, _ = _scene()
    mask = sky_mask(rgb)
    column = mask[:, 100]  # away from the cloud: sky down to row 60, then ground
    soft_rows = np.flatnonzero((column > 0.05) & (column < 0.95))
    assert 1 <= soft_rows.size <= 8  # a blend of a few px, not a hard step, not a haze
    assert abs(soft_rows.mean() - 60) <= 3  # and it sits on the horizon
    assert ((mask > 0.05) & (mask < 0.95)).mean() < 0.1


def test_no_sky_gives_an_empty_mask():
    # Sky-coloured (light blue) but textured everywhere: texture alone must reject it.
    rgb = _texture((90, 130), (140, 180, 230), np.random.default_rng(1))
    mask = sky_mask(rgb)
    assert mask.max() < 0.05


def test_a_sky_not_touching_the_top_is_not_sky():
    # A smooth blue band in the middle, textured ground above and below it.
    rng = np.random.default_rng(2)
    rgb = _texture((100, 100), (95, 110, 60), rng)
    rgb[30:70] = _blue_sky(40, 100)
    assert sky_mask(rgb).max() < 0.05


@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (1, 1), (3, 5), (2, 200), (1800, 2400)])
def test_output_is_float32_in_range_with_the_input_shape(shape):
    rgb, _, _, _ = _scene(*shape) if min(shape) >= 8 else (np.full(shape + (3,), 128.0, np.float32),) * 4
    mask = sky_mask(rgb)
    assert mask.shape == shape
    assert mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_the_same_scene_at_two_sizes_gives_the_same_split():
    small = sky_mask(_scene(120, 160)[0])
    large = sky_mask(_scene(480, 640)[0])
    assert abs(small.mean() - large.mean()) < 0.02


@pytest.mark.parametrize("shape", [(10, 10), (10, 10, 2)])
def test_not_an_rgb_image_is_refused(shape):
    with pytest.raises(ValueError, match="RGB"):
        sky_mask(np.zeros(shape, np.float32))


def test_the_neckarfront_sky_is_found_and_its_river_reflection_is_not():
    photo = images.resize_to_width(images.load_image(os.path.join(EXAMPLES, "tubingen_neckarfront.jpg")), 256)
    mask = sky_mask(photo)
    height, width = mask.shape
    # Clear blue sky above the roofs in the middle and right (the bare tree is on the left).
    top_centre = mask[: height // 4, int(width * 0.3):int(width * 0.9)]
    assert (top_centre > 0.9).mean() > 0.95
    # Buildings, wall and river; the river reflects the sky but is cut off from it.
    assert (mask[height // 2:] < 0.05).mean() > 0.99
    assert mask[int(height * 0.8):].max() < 0.05
