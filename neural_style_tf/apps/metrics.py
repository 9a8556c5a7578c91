"""Image measures shared by compare.py and the quality panel: SSIM to the content photo and
the Gram distance to the style on held-out layers (layers the objective does not use).

They measure saved images after a run, never inside the optimisation.
"""

from __future__ import annotations

import numpy as np

from .. import color
from ..errors import UsageError
from ..losses import LOSS_SCALES, blend_weights
from ..networks.vgg_network import layer_kind
from ..tf_runtime import import_tensorflow, network_session

# Style statistics on layers the objective does not see: a lower loss that does not
# lower these is the optimizer fitting the loss, not making a more stylish image.
GRAM_LAYERS = ("relu2_2", "relu4_3")


def _luminance(rgb):
    return color.rgb_to_ycbcr(rgb)[..., 0]


def ssim_to_content(content, image):
    """SSIM of the luminance (Y of YCbCr): structure kept from the photo, colours aside."""
    from skimage.metrics import structural_similarity

    side = min(content.shape[:2])
    win = min(7, side if side % 2 else side - 1)  # skimage's default window, shrunk for tiny images
    return float(structural_similarity(_luminance(content), _luminance(image), data_range=255.0, win_size=win))


def gram_distances(network, loss, styles, pictures, layers):
    """{layer: [distance of each picture]}: blend-weighted mean squared Gram difference to the styles.

    A separate small graph (vgg_network.net_preloaded up to the deepest held-out layer) with the
    objective's own Gram normalisation, so the numbers are on the loss's scale.
    """
    tf = import_tensorflow()
    gram = LOSS_SCALES[loss.loss_scale].gram
    blend = blend_weights(len(styles), loss.style_blend_weights)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        net = network.features(network.preprocess(image), network.deepest(layers), loss.pooling)
        grams = {n: gram(net[n]) for n in layers}
        graph.finalize()
        with network_session(graph) as sess:
            targets = [sess.run(grams, {image: s[None]}) for s in styles]
            out = {n: [] for n in layers}
            for picture in pictures:
                g = sess.run(grams, {image: np.asarray(picture, np.float32)[None]})
                for n in layers:
                    out[n].append(float(sum(b * np.mean((g[n].astype(np.float64) - t[n]) ** 2)
                                            for b, t in zip(blend, targets))))
    return out


def choose_gram_layers(network, requested, objective_layers):
    """The held-out layers of the Gram distance (see GRAM_LAYERS)."""
    used = set(objective_layers)
    if requested is not None:
        for name in requested:
            if name not in network.layers:
                raise UsageError(f"--gram-layers: {network.layer_problem(name)}")
            if name in used:
                raise UsageError(f"--gram-layers: {name} is in the objective; choose layers the loss does not use")
        return tuple(requested)
    chosen = tuple(n for n in GRAM_LAYERS if n in network.layers and n not in used)
    if chosen:
        return chosen
    # Networks without relu2_2/relu4_3 (or objectives that use them): unused relu layers,
    # else unused pooling layers (a small VGG may use every relu), one shallow, one deep.
    # A Keras model's layers have names of its own: then any unused feature layer will do.
    for kind in ("relu", "pool", None):
        candidates = [n for n in network.layers if kind in (None, layer_kind(n)) and n not in used]
        if candidates:
            picks = {candidates[len(candidates) // 3], candidates[(2 * len(candidates)) // 3]}
            return tuple(n for n in candidates if n in picks)
    raise UsageError("--gram-layers: every layer of the network is in the objective; name held-out layers")
