"""--tileable: an output that repeats without a seam (wallpapers, game textures, fabric).

What makes it tile is in the objective: every convolution of the optimised image wraps
round (vgg_network._conv, settings.WRAP_PADDING) and so does its TV term
(total_variation_wrapped, below), so that the losses see the picture as a torus with no
edge anywhere. Here are the wrapping TV and the things around it:

    the TV      total_variation_wrapped, wrapping (a loss scale whose TV wraps round)
    sizes       network_stride, tileable_size, tileable_stages: every size a multiple of the
                network's total stride
    the photo   border_weights, periodic_start: the content term let go along the borders,
                and a start image whose opposite edges meet
    the measure seam_ratio, tile: how visible the seam is in a 2x2 tiling (tests, docs/tileable.md)

Why the sizes: a 2x2 pooling with SAME padding on an odd-sized map pads its end, so the
last row of the pooled map covers one row of the picture where every other covers two,
and the map's rows no longer line up with the picture's when it is shifted round: the
pooled maps of a shifted picture are not the shifted maps. On a multiple of 2^p (p the
poolings before the deepest layer used: 16 for VGG to relu5_1) every pooling halves an
even size and the network commutes with any shift by a multiple of 2^p (tests/test_tileable.py
shows it), and each layer's statistics are those of a torus. Rounding to the nearest
multiple (and resizing the photo to it: at most 8 px on a side, 3% at 256 px) was chosen
over padding or cropping, which would change the picture, and over exact alternatives such
as wrapping the poolings' padding too, which would still leave a layer's positions covering
unequal areas.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from .tf_runtime import import_tensorflow


def network_stride(network, layers) -> int:
    """2^p, p the poolings of `network` up to the deepest of `layers` (16 for VGG to relu5_1),
    read from the shapes the network itself reports."""
    probe = 1024
    _, height, width, _ = network.feature_shapes(probe, probe, network.deepest(layers))[-1]
    return max(1, probe // max(1, min(height, width)))


def tileable_size(size, stride):
    """(height, width) `size` with each side rounded to the nearest multiple of `stride`
    (at least one stride)."""
    return tuple(max(stride, int(round(side / stride)) * stride) for side in size[:2])


def tileable_stages(stages, stride):
    """coarse_to_fine Stages with every size rounded (tileable_size): each scale is
    optimised as a torus, not only the last."""
    return [replace(stage, size=tileable_size(stage.size, stride)) for stage in stages]


def total_variation_wrapped(image):
    """`losses.total_variation` of a periodic picture: the difference between the last and the
    first row (and column) counts as every other, so a seam where the tile repeats costs
    what an edge inside it costs, and the term has no edge to leave alone. Each axis has
    as many differences as positions (n = H W C), so the mean is over n.

    Its gradient is written out as losses.total_variation's, 2 (d_(i-1) - d_i) / n, where d_(i-1)
    is d rolled by one (the first position's predecessor is the last difference): a roll
    where the open version pads, and no slices to differentiate."""
    tf = import_tensorflow()

    @tf.custom_gradient
    def tv(x):
        dy = tf.roll(x, -1, axis=1) - x  # x[i+1] - x[i], x[H] being x[0]
        dx = tf.roll(x, -1, axis=2) - x

        def grad(upstream):
            scale = 2.0 / tf.cast(tf.size(x), x.dtype)
            return upstream * scale * (tf.roll(dy, 1, axis=1) - dy + tf.roll(dx, 1, axis=2) - dx)

        return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx)), grad

    return tv(image)


def wrapping(scale):
    """`scale` with its TV term wrapping round (--tileable): the same content and style
    functions, and `scale.tv(image, wrap=True)`. One object per loss scale (cached), so
    that an Objective's terms compare equal from one retarget to the next."""
    if scale not in _WRAPPING:
        _WRAPPING[scale] = replace(scale, tv=functools.partial(scale.tv, wrap=True),
                                               description=scale.description + "; TV wrapping round (--tileable)")
    return _WRAPPING[scale]


_WRAPPING: dict = {}


# The share of each side, at each end, over which the content term fades out (border_weights).
BAND = 0.125


def border_weights(size, band=BAND):
    """(H, W) weights of the content term: 1 inside, falling smoothly to 0 at every edge
    over `band` of the side.

    Why: the photo is not periodic (Tubingen's trees on the left, the river on the
    right), and a content term held at the borders keeps that mismatch as a seam: with it
    the 2x2 tiling of Neckarfront x Starry Night scored 2.3 (seam_ratio) against 8.4 for
    the photo. Let go there, the style and the wrapping TV paint the band across the seam,
    and the photo keeps its place in the middle of the tile."""
    def ramp(n):
        width = max(1.0, band * n)
        distance = np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5  # to the nearer end, in pixels
        t = np.clip(distance / width, 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)  # smoothstep: no kink for the pooled masks to carry

    height, width = int(size[0]), int(size[1])
    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def periodic_start(image, band=BAND):
    """The start image made periodic: `image` inside, and along the borders a cross-fade to
    `image` rolled by half its size, whose rows and columns at the edges are neighbours in
    the photo (the old texture artists' offset-and-blend). Why: L-BFGS moves a start
    image's strong edges little in 100 iterations, and the photo's seam is one; this start
    has none."""
    x = np.asarray(image, np.float32)
    weights = border_weights(x.shape[:2], band)[..., None]
    rolled = np.roll(x, (x.shape[0] // 2, x.shape[1] // 2), axis=(0, 1))
    return (weights * x + (1.0 - weights) * rolled).astype(np.float32)


def tile(image, rows=2, columns=2):
    """`image` (H, W, ...) repeated rows x columns times, as a wallpaper lays it."""
    image = np.asarray(image)
    return np.tile(image, (rows, columns) + (1,) * (image.ndim - 2))


def seam_ratio(image) -> float:
    """How visible the seam of `image` is where it repeats: the mean absolute difference
    between neighbours across the seam lines of its 2x2 tiling (the last row against the
    first, the last column against the first), over the same mean between neighbours
    inside the image (every other row, every other column), all channels.

    About 1 for a seamless tile, since the seam is then an edge like any inside; a picture
    whose opposite sides do not match scores well above 1 (Tubingen's photo at 256 px: 8.4).
    """
    x = np.asarray(image, np.float64)
    across = np.concatenate([np.abs(x[0] - x[-1]).ravel(), np.abs(x[:, 0] - x[:, -1]).ravel()])
    inside = np.concatenate([np.abs(np.diff(x, axis=0)).ravel(), np.abs(np.diff(x, axis=1)).ravel()])
    return float(across.mean() / max(inside.mean(), 1e-12))
