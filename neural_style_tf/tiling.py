"""Print size: the objective evaluated tile by tile, exactly, with memory that does not grow
with the image.

Why it can be exact: every loss term is either a sum over positions (content, TV, the
pixel terms) or a function of sums over positions (a style layer's Gram matrix is
sum f f^T, its mean and covariance sum f and sum f f^T, each over the positions,
weighted by a guidance mask, divided by its mass). So one evaluation is:

1. a forward pass over the tiles accumulates each style layer's sums (float64);
2. a small graph turns the sums into the style loss and its gradient in the sums
   (`StyleFinish`; for W2 its eigendecompositions);
3. a forward and backward pass over the tiles: each tile's gradient of its share of the
   content, TV and pixel terms, plus the style's, fed in as the features' gradient
   w (dS1 + F (dS2 + dS2^T)) (the chain rule through the sums), added into the image's.

A tile is a core (the pixels whose features, neighbour pairs and pixels it owns) and a
window around it (`Tile`): the window reaches past the core by the network's receptive
field (FeatureNetwork.tile_halo: 80 px before and 70 after for VGG-19's relu5_1), and
starts on a multiple of the network's total stride, so that the poolings see the same
2 x 2 blocks as over the whole image. Every feature over the core is then exactly the
whole image's (a window edge that is the image's edge is padded as the image is). The
loss and gradient equal the untiled Objective's to float rounding (tests/test_tiling.py),
so L-BFGS's line search works on them as on the untiled ones.

One `TileGraph` serves every tile, every evaluation and every size: the image is a
placeholder of any height and width. Its cost is the halos' extra pixels and the first
pass's extra forward (docs/print-size.md measures it).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .tf_runtime import import_tensorflow, network_session, session_config

# The core's side (pixels) when none is given: a 1024 x 1024 core with its halos holds
# about 2.5 GB of activations and gradients on VGG-19 to relu5_1 (docs/print-size.md).
DEFAULT_CORE = 1024


@dataclass(frozen=True)
class Tile:
    """One tile: `window` (y0, y1, x0, x1), the pixels its graph sees; `core`, those it owns."""

    window: tuple
    core: tuple


def axis_cores(length: int, core: int, stride: int) -> list[tuple[int, int]]:
    """[(start, end)] cutting 0..length into near-equal cores of at most about `core`,
    each starting on a multiple of `stride` (the last ends at `length`)."""
    count = max(1, math.ceil(length / max(core, stride)))
    size = max(stride, math.ceil(length / count / stride) * stride)
    starts = list(range(0, length, size))
    return [(s, min(length, s + size)) for s in starts]


def plan(height: int, width: int, core: int, halo: tuple) -> list[Tile]:
    """The tiles of a height x width image with cores of about `core` pixels a side and the
    network's `halo` (before, after, stride: FeatureNetwork.tile_halo)."""
    before, after, stride = halo
    tiles = []
    for y0, y1 in axis_cores(height, core, stride):
        for x0, x1 in axis_cores(width, core, stride):
            window = (max(0, y0 - before), min(height, y1 + after), max(0, x0 - before), min(width, x1 + after))
            tiles.append(Tile(window, (y0, y1, x0, x1)))
    return tiles


def layer_strides(network, last: str) -> dict:
    """{layer: its total stride} up to `last`, from the network's own shapes."""
    probe = 1024
    return {name: probe // h for name, h, _, _ in network.feature_shapes(probe, probe, last)}


def layer_box(tile: Tile, stride: int) -> tuple:
    """The tile's core in its own feature map of a layer of `stride`: (y0, y1, x0, x1)."""
    wy0, _, wx0, _ = tile.window
    y0, y1, x0, x1 = tile.core
    return (y0 // stride - wy0 // stride, -(-y1 // stride) - wy0 // stride,
            x0 // stride - wx0 // stride, -(-x1 // stride) - wx0 // stride)


def layer_window(tile: Tile, stride: int, shape: tuple) -> tuple:
    """The tile's window in the whole image's feature map of a layer of `stride` and (h, w) `shape`."""
    wy0, wy1, wx0, wx1 = tile.window
    return wy0 // stride, min(shape[0], -(-wy1 // stride)), wx0 // stride, min(shape[1], -(-wx1 // stride))


def core_map(tile: Tile, stride: int, shape: tuple) -> np.ndarray:
    """1 over the tile's core, 0 elsewhere, in its feature map of a layer of `stride` and (h, w) `shape`."""
    out = np.zeros(shape, np.float32)
    y0, y1, x0, x1 = layer_box(tile, stride)
    out[y0:y1, x0:x1] = 1.0
    return out


def quiet_deprecation():
    """TensorFlow's partial runs print a deprecation notice (the TF1 session API's, as a
    whole): silenced, since this tool is built on that API on purpose."""
    from tensorflow.python.util import deprecation

    return deprecation.silence()


# ---------------------------------------------------------------- the tile graph


class TileGraph:
    """One graph for tiles of any size: the features of a window, each style layer's
    weighted sums over positions, the content, TV and pixel terms' shares, and the
    window's gradient. `groups`: how many weightings of the style layers (one per
    masked style, one for the unmasked ones)."""

    def __init__(self, network, content_layers, style_layers, groups, pixel_terms, pooling, padding, config=None):
        tf = import_tensorflow()

        self.network = network
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.groups, self.pixel_terms = int(groups), tuple(pixel_terms)
        needed = self.content_layers + self.style_layers
        self.last = network.deepest(needed) if needed else None
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="tile")
            net = network.features(network.preprocess(self.image), self.last, pooling, padding) if needed else {}
            self.features = {n: net[n] for n in self.content_layers}
            self._style_inputs(tf, net)
            self._shares(tf, net)
        self.graph.finalize()
        self.session = network_session(self.graph, config)

    def _style_inputs(self, tf, net):
        """The style layers' weighted sums (pass 1), and their gradient's placeholders (pass 2)."""
        self.weights, self.sums, self.d_sums, self.feature_grads = {}, {}, {}, []
        for name in self.style_layers:
            features = net[name]
            channels = int(features.shape[-1])
            flat = tf.reshape(features, (-1, channels))
            grad = 0.0
            for g in range(self.groups):
                w = self.weights[g, name] = tf.compat.v1.placeholder(tf.float32, (None, None))
                weighted = flat * tf.reshape(w, (-1, 1))
                self.sums[g, name] = (tf.reduce_sum(weighted, axis=0),
                                      tf.matmul(weighted, flat, transpose_a=True))
                d1 = tf.compat.v1.placeholder(tf.float32, (channels,))
                d2 = tf.compat.v1.placeholder(tf.float32, (channels, channels))
                self.d_sums[g, name] = (d1, d2)
                # d/df of w (f . d1 + f^T d2 f) = w (d1 + (d2 + d2^T) f)
                grad += tf.reshape(w, (-1, 1)) * (d1 + tf.matmul(flat, d2 + tf.transpose(d2)))
            self.feature_grads.append((features, tf.reshape(grad, tf.shape(features))))

    def _shares(self, tf, net):
        """The tile's share of the content, TV and pixel terms, and the window's gradient."""
        self.inputs: dict = {}

        def placeholder(key, shape, dtype=tf.float32):
            self.inputs[key] = tf.compat.v1.placeholder(dtype, shape)
            return self.inputs[key]

        content = tf.constant(0.0)
        for name in self.content_layers:
            channels = int(net[name].shape[-1])
            target = placeholder(("content", name, "target"), (1, None, None, channels))
            root = placeholder(("content", name, "root"), (1, None, None, 1))
            core = placeholder(("content", name, "core"), (None, None))
            coefficient = placeholder(("content", name, "coefficient"), ())
            squares = tf.reduce_sum(tf.square(net[name] * root - target), axis=-1)[0]
            content += coefficient * tf.reduce_sum(core * squares)
        x = self.image
        dy, dx = x[:, 1:] - x[:, :-1], x[:, :, 1:] - x[:, :, :-1]
        tv = (placeholder(("tv", "y coefficient"), ()) * tf.reduce_sum(placeholder(("tv", "y"), (None, None))
                                                                         * tf.reduce_sum(tf.square(dy), -1)[0])
              + placeholder(("tv", "x coefficient"), ()) * tf.reduce_sum(placeholder(("tv", "x"), (None, None))
                                                                           * tf.reduce_sum(tf.square(dx), -1)[0]))
        self.parts = OrderedDict(content=content, tv=tv)
        for term in self.pixel_terms:
            target = placeholder((term, "target"), (1, None, None, 3))
            mask = placeholder((term, "mask"), (1, None, None))
            self.parts[term] = placeholder((term, "coefficient"), ()) * tf.reduce_sum(
                mask * tf.reduce_sum(tf.square(x - target), -1))
        self.fed_weights = {"content": placeholder(("weight", "content"), ()), "tv": placeholder(("weight", "tv"), ())}
        total = tf.add_n([self.fed_weights.get(k, 1.0) * v for k, v in self.parts.items()])
        ys = [total] + [f for f, _ in self.feature_grads]
        grad_ys = [tf.ones_like(total)] + [g for _, g in self.feature_grads]
        self.gradient = tf.gradients(ys, self.image, grad_ys=grad_ys)[0]

    def feeds(self) -> list:
        """Every placeholder of the graph (a partial run is set up with them all)."""
        out = [self.image] + list(self.weights.values()) + list(self.inputs.values())
        return out + [p for pair in self.d_sums.values() for p in pair]

    def flat_fetches(self, sums: list) -> list:
        """The tensors a partial run may fetch: the sums given, the shares and the gradient."""
        return [t for pair in sums for t in pair] + list(self.parts.values()) + [self.gradient]

    def close(self) -> None:
        self.session.close()


class StyleFinish:
    """The style term from its sums: a small graph of the statistics, their loss, and the
    loss's gradient in the sums (what pass 2 feeds the tiles)."""

    def __init__(self, statistic, layer_weights, groups_of_styles, targets, config=None):
        tf = import_tensorflow()

        self.graph = tf.Graph()
        self.sums, self.mass, self.targets = {}, {}, {}
        with self.graph.as_default():
            self.style_weight = tf.compat.v1.placeholder(tf.float32, ())
            self.blend = [tf.compat.v1.placeholder(tf.float32, ()) for _ in groups_of_styles]
            groups = sorted(set(groups_of_styles))
            stats = {}
            for g in groups:
                for name in layer_weights:
                    channels = int(np.shape(targets[0][name][0])[-1])  # a mean (C,) or a Gram matrix (C, C)
                    s1 = tf.compat.v1.placeholder(tf.float64, (channels,))
                    s2 = tf.compat.v1.placeholder(tf.float64, (channels, channels))
                    mass = self.mass[g, name] = tf.compat.v1.placeholder(tf.float64, ())
                    self.sums[g, name] = (s1, s2)
                    stats[g, name] = tuple(tf.cast(t, tf.float32) for t in statistic.from_sums(s1, s2, mass))
            per_style = []
            for i, g in enumerate(groups_of_styles):
                layers = []
                for name, w in layer_weights.items():
                    target = tuple(tf.compat.v1.placeholder(tf.as_dtype(np.asarray(t).dtype), np.shape(t))
                                   for t in targets[i][name])
                    self.targets[i, name] = target
                    layers.append(w * statistic.loss(stats[g, name], target))
                per_style.append(self.blend[i] * tf.add_n(layers))
            self.loss = self.style_weight * tf.add_n(per_style)
            flat = [t for g in groups for name in layer_weights for t in self.sums[g, name]]
            grads = tf.gradients(self.loss, flat)
            self.d_sums = {}
            k = 0
            for g in groups:
                for name in layer_weights:
                    self.d_sums[g, name] = tuple(tf.zeros_like(t) if d is None else d
                                                 for t, d in zip(self.sums[g, name], grads[k:k + 2]))
                    k += 2
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config or session_config())

    def run(self, sums, feed):
        """(the weighted style loss, {(group, layer): (dS1, dS2)})."""
        feed = dict(feed)
        for key, (s1, s2) in sums.items():
            feed[self.sums[key][0]], feed[self.sums[key][1]] = s1, s2
        loss, d_sums = self.session.run((self.loss, self.d_sums), feed)
        return float(loss), d_sums

    def close(self) -> None:
        self.session.close()
