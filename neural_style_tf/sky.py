"""An automatic sky/not-sky mask from a photo, with classic image processing.

`sky_mask(rgb)` is what `--style-masks auto-sky` uses: 1 where the photo shows sky, 0
elsewhere, with a soft edge a few pixels wide so two styles blend with no seam. Pure
NumPy, SciPy and scikit-image; no learning, no download, no TensorFlow.

The method, on a copy at WORKING_SIDE px on its long side (so it is fast, and its
thresholds mean the same at any photo size):
  1. smooth, convert to CIE Lab, and measure local texture (colour gradient magnitude,
     averaged over a small window): sky is smooth, almost everything else is not;
  2. candidates: smooth pixels that are blue-ish or bright (a clear or overcast sky);
  3. keep only the candidate regions that touch the top border: the sky is above the
     ground, so a smooth blue lake or a reflection of the sky lower down does not count;
  4. drop small regions, fill the holes inside the sky (clouds, birds, a plane);
  5. snap the edge to the real colour edge (a marker watershed in a thin band), feather
     it with a small Gaussian, and resize the soft mask back to the photo's size.

Limits (tested on the example photos; see docs/spatial-control.md):
  - a photo with no sky, or whose sky does not reach the top edge (a framing branch or
    awning across the whole top), gets an empty or partial mask;
  - textured skies (dramatic clouds, sunset streaks) and cloud banks that reach the top
    are only partly found: edges and texture in the clouds read as "not sky";
  - haze or fog with no edge at the horizon (a misty sea, a hazy lake meeting the sky)
    can let the sky run into the water or fog below;
  - night skies (black, dark grey) are too dark to be candidates; a still-blue dusk is found;
  - a bright, smooth wall, snow field or water surface at the top edge is taken for sky
    when nothing separates it from the sky (or when there is no sky at all);
  - trees and thin branches against the sky go to "not sky" as a whole, gaps included;
  - the sky reflected in water is never sky (by design: it does not touch the top).
For anything else, paint a mask by hand and pass it to --style-masks.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import color, filters, morphology, segmentation, transform

# Long side of the working copy. 256 px keeps the whole mask under ~0.1 s, and the sky's
# outline needs no more detail than that: the feather below is wider than one working px.
WORKING_SIDE = 256
# A working copy narrower than this has too few pixels for the windows below.
_MIN_WORKING_SIDE = 16
# Gaussian smoothing (working px) before the gradients: removes JPEG noise and grain,
# which would otherwise make a clear sky look textured.
_SMOOTH_SIGMA = 1.0
# Window (Gaussian sigma, working px) over which the gradient is averaged into "texture".
_TEXTURE_SIGMA = 2.0
# Texture below this is smooth enough for sky. Measured on the example photos (Lab/100
# units, max over channels): clear and overcast skies 0.001-0.005 (90th percentile of a
# sky row), the Neckarfront's river 0.014 and more, facades, trees and rock 0.02-0.1.
_MAX_SKY_TEXTURE = 0.010
# Blue-ish: Lab b* below this (clear skies: -5 to -35 in the examples) and not dark.
_BLUE_B = -4.0
_BLUE_MIN_L = 35.0
# Deep blue at any lightness: a dusk sky (skimage's rocket photo: L* 13-36, b* -18 to
# -22). Ground this blue is rare and, being textured or cut off from the top, is dropped.
_DEEP_BLUE_B = -12.0
# Bright: overcast, white-grey or hazy sky of any hue (the Golden Gate's sky is L* 86).
_BRIGHT_L = 70.0
# Sky regions smaller than this fraction of the picture are gaps between branches or a
# smooth patch of roof touching the top edge, not the sky.
_MIN_SKY_FRACTION = 0.003
# Half-width (working px) of the band around the edge that the watershed may reassign:
# the smoothing and the texture window together pull the smooth area back from a strong
# edge by about 5 px (a 0.3 Sobel edge blurred with sigma 2 stays above 0.010 that far).
_EDGE_BAND = 6
# Feather (Gaussian sigma, working px): the 5-95 % blend is ~3 working px wide, 6-12 px
# at 512 px (more on slanted edges), so the seam between two styles is soft, yet the
# mask is exactly 0 or 1 a few px away from the edge.
_FEATHER_SIGMA = 1.0


def sky_mask(rgb):
    """The sky of `rgb` (float (H, W, 3), 0..255; channels after the third, such as
    alpha, are ignored): float32 (H, W) in 0..1, 1 = sky.

    The sky is the smooth, blue-ish or bright area connected to the top edge of the
    picture; see the module docstring for the method and its limits. An image with no
    such area gets an all-zero mask.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"sky_mask needs an (H, W, 3) RGB image, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    lab = _working_lab(rgb[..., :3])
    sky = _sky_region(lab)
    sky = _snap_edge(sky, lab)
    soft = filters.gaussian(sky.astype(np.float32), sigma=_FEATHER_SIGMA, mode="nearest")
    # order=1 (bilinear) and no anti-aliasing: the mask is already smooth, and a linear
    # resize keeps 0 and 1 exact far from the edge.
    full = transform.resize(soft, (height, width), order=1, mode="edge", anti_aliasing=False)
    return np.clip(full, 0.0, 1.0).astype(np.float32)


def working_shape(shape):
    """(height, width) of the working copy: long side WORKING_SIDE, aspect kept."""
    height, width = shape[:2]
    factor = WORKING_SIDE / max(height, width)
    return (max(_MIN_WORKING_SIDE, round(height * factor)), max(_MIN_WORKING_SIDE, round(width * factor)))


def _working_lab(rgb):
    """The smoothed working copy in CIE Lab (L* 0..100), which separates brightness
    from blueness (b*) the way the thresholds above are stated."""
    small = transform.resize(np.clip(rgb, 0, 255) / 255.0, working_shape(rgb.shape),
                             order=1, mode="edge", anti_aliasing=True)
    small = filters.gaussian(small, sigma=_SMOOTH_SIGMA, channel_axis=-1, mode="nearest")
    return color.rgb2lab(small)


def _gradient(lab):
    """Colour gradient magnitude: the largest Sobel response over L*, a*, b* (/100), so
    a hue edge of equal brightness (red roof on blue sky) counts as much as a light one."""
    return np.max([filters.sobel(lab[..., c] / 100.0) for c in range(3)], axis=0)


def _sky_region(lab):
    """Boolean working-size mask: smooth sky-coloured regions touching the top edge,
    holes filled."""
    texture = filters.gaussian(_gradient(lab), sigma=_TEXTURE_SIGMA, mode="nearest")
    lightness, blueness = lab[..., 0], lab[..., 2]
    sky_coloured = (((blueness < _BLUE_B) & (lightness > _BLUE_MIN_L)) | (blueness < _DEEP_BLUE_B)
                    | (lightness > _BRIGHT_L))
    candidates = (texture < _MAX_SKY_TEXTURE) & sky_coloured
    # 4-connectivity: a diagonal one-pixel gap between two roofs must not join the sky to
    # a smooth courtyard behind them.
    labels = ndimage.label(candidates)[0]
    sizes = np.bincount(labels.ravel())
    top = np.unique(labels[0])
    keep = top[(top > 0) & (sizes[top] >= _MIN_SKY_FRACTION * labels.size)]
    sky = np.isin(labels, keep)
    # Everything the sky surrounds on all sides is in the sky (clouds, birds, a plane,
    # the moon): nothing on the ground can be enclosed by sky alone.
    return ndimage.binary_fill_holes(sky)


def _snap_edge(sky, lab):
    """Move the sky's outline onto the nearest colour edge.

    The texture window makes every smooth region stop a few px short of an edge; a
    marker watershed on the (unwindowed) gradient lets the pixels in a band of
    _EDGE_BAND px either side go to whichever side the edge says. Far from the outline
    nothing changes, so a textured area (trees) cannot be flooded.
    """
    if not sky.any():
        return sky
    disk = morphology.disk(_EDGE_BAND)
    markers = np.zeros(sky.shape, np.int32)
    # border_value=1: the picture's border is not an edge of the sky.
    markers[ndimage.binary_erosion(sky, disk, border_value=1)] = 1
    markers[~ndimage.binary_dilation(sky, disk)] = 2
    if not (markers == 1).any():
        return sky  # a sky thinner than the band: keep it as found
    return segmentation.watershed(_gradient(lab), markers) == 1
