"""What an Objective compares with: the content features and the style statistics,
computed in a graph of their own, and the sizes the style images are used at.

A `TargetGraphs` keeps the target graphs it built (one per network, layers, pooling,
padding and statistic: the image is a placeholder of any size, so every content and
style image goes through the same graph) with their sessions, and the style targets
it computed (by the style's pixels). Whoever stylises many pictures with the same
network (video.py's frames, a batch worker's jobs) keeps one: a frame after the first
then pays one forward pass for its content target, and nothing for the styles;
`targets` without one builds a TargetGraphs for the call and closes it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import images
from .losses import content_layer_weights, gram_matrix
from .settings import STYLE_SCALE
from .tf_runtime import import_tensorflow, network_session

# Target graphs a TargetGraphs keeps: a coarse-to-fine run's scales share one (the image
# is of any size), so two cover a job and the next one of other layers or statistic.
GRAPHS_KEPT = 2
# Prepared style targets kept (a few styles x their scales): small, C x C per layer.
STYLES_KEPT = 16


def digest(array: Any) -> str | None:
    """A short hash of an array's pixels and shape (None for None): what a cache compares."""
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return hashlib.sha1(array.tobytes() + str((array.shape, array.dtype.str)).encode()).hexdigest()


class TargetGraph:
    """One graph and session: the features at `content_layers` and the statistic `gram`
    at `style_layers` of an image of any size; with `masked`, also the statistics of a
    style's positions weighted by a mask at each layer (network.mask_weights)."""

    def __init__(self, network, content_layers, style_layers, pooling, gram=gram_matrix, padding="zero",
                 masked=False, config=None):
        tf = import_tensorflow()

        self.network, self.content_layers, self.style_layers = network, tuple(content_layers), tuple(style_layers)
        self.pooling = pooling
        needed = self.content_layers + self.style_layers
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
            net = network.features(network.preprocess(self.image), network.deepest(needed), pooling, padding)
            self.content = {n: net[n] for n in self.content_layers}
            self.grams = {name: gram(net[name]) for name in self.style_layers}
            self.weights, self.guided = {}, {}
            if masked:
                self.weights = {n: tf.compat.v1.placeholder(tf.float32, (None, None)) for n in self.style_layers}
                self.guided = {n: gram(net[n], self.weights[n]) for n in self.style_layers}
        self.graph.finalize()
        self.session = network_session(self.graph, config)

    def content_features(self, content: np.ndarray) -> dict:
        if not self.content_layers:
            return {}
        return self.session.run(self.content, {self.image: content[None]})

    def style_statistics(self, style: np.ndarray, mask: np.ndarray | None = None) -> dict:
        if not self.style_layers:
            return {}
        feed = {self.image: style[None]}
        if mask is None:
            return self.session.run(self.grams, feed)
        weights = self.network.mask_weights(mask, self.style_layers, self.pooling)
        feed.update(zip(self.weights.values(), weights.values()))
        return self.session.run(self.guided, feed)

    def close(self) -> None:
        self.session.close()


class TargetGraphs:
    """The target graphs built so far (the GRAPHS_KEPT last used) and the prepared style
    targets computed (the STYLES_KEPT last): see the module's docstring."""

    def __init__(self, config=None, kept: int = GRAPHS_KEPT):
        self.config, self.kept = config, kept
        self.graphs: OrderedDict = OrderedDict()
        self.styles: OrderedDict = OrderedDict()
        self.built = 0  # graphs built: what the tests count

    def graph(self, network, content_layers, style_layers, pooling, gram, padding, masked) -> TargetGraph:
        # The key holds the objects themselves (not their ids), so none is reused for another.
        key = (network, tuple(content_layers), tuple(style_layers), pooling, gram, padding, bool(masked))
        if key in self.graphs:
            self.graphs.move_to_end(key)
            return self.graphs[key]
        while len(self.graphs) >= self.kept:
            self.graphs.popitem(last=False)[1].close()
        self.graphs[key] = TargetGraph(network, content_layers, style_layers, pooling, gram, padding, masked,
                                       self.config)
        self.built += 1
        return self.graphs[key]

    def remembered(self, key, compute):
        """The value of `compute()` kept under `key` (the STYLES_KEPT last)."""
        if key in self.styles:
            self.styles.move_to_end(key)
            return self.styles[key]
        value = compute()
        while len(self.styles) >= STYLES_KEPT:
            self.styles.popitem(last=False)
        self.styles[key] = value
        return value

    def close(self) -> None:
        while self.graphs:
            self.graphs.popitem()[1].close()
        self.styles.clear()

    def __enter__(self) -> TargetGraphs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def targets(network, content, styles, loss, statistic, region_masks=(), config=None, graphs=None):
    """(the style images at their scale, content targets, each style's prepared target
    statistics): what an Objective compares with.

    `region_masks`: one mask per style over that style image, or None (Guidance.region_mask).
    `graphs`: a TargetGraphs to use and keep (its graphs, and the style targets it
    computed before); without one, a graph is built for this call and closed after it.
    """
    if graphs is None:
        with TargetGraphs(config) as own:
            return targets(network, content, styles, loss, statistic, region_masks, config, own)
    scaled, regions = scaled_styles(content, styles, loss, region_masks)
    layers = (tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend)), tuple(loss.style_layers))
    # The target graph of the plain command's one-off run: with the mask placeholders
    # only if some style has a region mask, as that graph was before graphs were kept.
    graph = graphs.graph(network, *layers, loss.pooling, statistic.compute, loss.padding,
                         any(r is not None for r in regions))
    style_targets = [
        graphs.remembered((network, layers[1], loss.pooling, loss.padding, statistic, digest(style), digest(region)),
                          lambda style=style, region=region: {n: statistic.prepare(t) for n, t in
                                                              graph.style_statistics(style, region).items()})
        for style, region in zip(scaled, regions)]
    return scaled, graph.content_features(content), style_targets


def scaled_styles(content, styles, loss, region_masks=()):
    """(the style images at their scale for `content`, each one's region mask at that size or
    None): what the style targets are computed from, here and tile by tile (tiled_objective.py)."""
    scaled = [prepare_style(style, content.shape[1], s)
              for style, s in zip(styles, loss.style_scales or [STYLE_SCALE] * len(styles))]
    # A region mask covers its painting: it is resized with it.
    regions = [None if i >= len(region_masks) or region_masks[i] is None
               else images.resize(np.asarray(region_masks[i], np.float32), style.shape[:2]).clip(0, 1)
               for i, style in enumerate(scaled)]
    return scaled, regions


# ---------------------------------------------------------------- the style images' size
# One owner for the size a style image is used at: the checks (memory, minimum size)
# ask style_shape, the transfer sizes the images with size_styles_to_content and
# prepare_style, all from the same rules.


def style_width(content_width: int, style_scale: float = STYLE_SCALE) -> int:
    """The width of a style image: `style_scale` times the content's (classic tool)."""
    return max(1, int(round(style_scale * content_width)))


def style_shape(style_shape: Sequence[int], content_shape: Sequence[int], style_scale: float = STYLE_SCALE,
                style_size: str = "width") -> tuple[int, int]:
    """(H, W) at which a style image of shape `style_shape` is used with a content of
    `content_shape`: with style_size 'content' (the paper) the content's, else its own
    aspect at `style_width`."""
    size = tuple(content_shape[:2]) if style_size == "content" else style_shape
    return images.size_at_width(size, style_width(content_shape[1], style_scale))


def size_styles_to_content(styles: list, content_shape: Sequence[int], style_size: str) -> list:
    """With style_size 'content' (the paper), every style image gets the content's (H, W)."""
    if style_size != "content":
        return styles
    return [images.resize(s, content_shape[:2]) for s in styles]


def prepare_style(style: np.ndarray, content_width: int, style_scale: float = STYLE_SCALE) -> np.ndarray:
    """Resize a style image so its width is `style_scale` times the content's (classic tool)."""
    return images.resize_to_width(np.asarray(style, np.float32), style_width(content_width, style_scale))
