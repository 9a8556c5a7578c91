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

from .losses import content_layer_weights, style_layer_weights
from .objective import KEEP_TERM, Problem, graph_key, problem_terms, statistic_of
from .terms import TEMPORAL_TERM, ContentTerm, PixelTerm, StyleTerm
from .tf_runtime import import_tensorflow, session_config

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
        self.session = tf.compat.v1.Session(graph=self.graph, config=config or session_config())

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


def sums_to_statistic(statistic, sums, mass):
    """The statistic (a tuple of arrays or tensors) of a layer from its weighted sums."""
    return statistic.from_sums(sums[0], sums[1], mass)


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
                    channels = int(np.shape(targets[0][name][1])[-1]) if len(targets[0][name]) > 1 \
                        else int(np.shape(targets[0][name][0])[-1])
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
            self.unweighted = tf.add_n(per_style)
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config or session_config())

    def run(self, sums, feed):
        """(the weighted style loss, its unweighted value, {(group, layer): (dS1, dS2)})."""
        feed = dict(feed)
        for key, (s1, s2) in sums.items():
            feed[self.sums[key][0]], feed[self.sums[key][1]] = s1, s2
        loss, unweighted, d_sums = self.session.run((self.loss, self.unweighted, self.d_sums), feed)
        return float(loss), float(unweighted), d_sums

    def close(self) -> None:
        self.session.close()


# ---------------------------------------------------------------- the tiled objective


class TiledObjective:
    """The Objective of a Problem evaluated tile by tile (see the module's docstring): the
    same terms, loss and gradient as objective.Objective, with memory bounded by the tile.

    `core`: the core's side in pixels. `tile_graph`: a TileGraph to use (and keep: a
    coarse-to-fine run's tiled scales share one); without one it is built here.
    """

    def __init__(self, problem: Problem, core: int = DEFAULT_CORE, loss_scale=None, config=None, tile_graph=None):
        from .losses import LOSS_SCALES

        network, loss = problem.network, problem.loss
        self.network, self.shape = network, (1,) + problem.content.shape
        self.key = graph_key(problem, loss_scale)
        self._scale = loss_scale or LOSS_SCALES[loss.loss_scale]
        self._statistic = statistic_of(loss.style_loss, self._scale)
        self._config = config
        self.core = int(core)
        content_layers = tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend))
        style_layers = tuple(loss.style_layers)
        needed = content_layers + style_layers
        halo = network.tile_halo(network.deepest(needed)) if needed else (0, 0, 1)
        if halo is None:
            raise ValueError(f"{network.name} cannot be evaluated in tiles (its receptive fields are not known)")
        self.halo = halo
        self.strides = layer_strides(network, network.deepest(needed)) if needed else {}
        guidance = problem.guidance
        masked = [guidance.mask(i) is not None for i in range(len(problem.styles))]
        # Group 0: the unmasked styles' positions; then one per masked style.
        self.groups_of_styles = []
        count = 1
        for m in masked:
            self.groups_of_styles.append(count if m else 0)
            count += 1 if m else 0
        pixel_terms = tuple(name for t, name in ((problem.temporal, TEMPORAL_TERM), (guidance.keep, KEEP_TERM))
                            if t is not None)
        self._own_graph = tile_graph is None
        self.tile_graph = tile_graph or TileGraph(network, content_layers, style_layers, count, pixel_terms,
                                                  loss.pooling, loss.padding, config)
        graph = self.tile_graph
        if (graph.content_layers, graph.style_layers, graph.groups, graph.pixel_terms) != (
                content_layers, style_layers, count, pixel_terms):
            raise ValueError("this problem does not fit the tile graph given")
        self.tiles = plan(problem.content.shape[0], problem.content.shape[1], self.core, halo)
        self._use(problem)

    # ------------------------------------------------------------ targets, tile by tile

    def _run_sums(self, image, weight_maps, tiles=None):
        """{(group, layer): (sum w f, sum w f f^T)} (float64) over `image`'s tiles; weight_maps
        {(group, layer): full (h, w) weights of the positions}.

        With `tiles` (the objective's own), the last tile's forward pass is kept for the
        second pass (`_held`): a partial run, whose activations stay in the session
        until its gradient is fetched, so that tile's forward is not computed twice."""
        graph = self.tile_graph
        shapes = {name: (h, w) for name, h, w, _ in self.network.feature_shapes(image.shape[0], image.shape[1],
                                                                                 self.tile_graph.last)}
        totals: dict = {}
        fetch = {key: graph.sums[key] for key in weight_maps}
        held = tiles is not None
        tiles = tiles if held else plan(image.shape[0], image.shape[1], self.core, self.halo)
        for index, tile in enumerate(tiles):
            feed = {graph.image: self._crop(image, tile)}
            feed.update(self._weight_feed(tile, weight_maps, shapes))
            if held and index == len(tiles) - 1:
                with quiet_deprecation():
                    handle = graph.session.partial_run_setup(graph.flat_fetches(list(fetch.values())), graph.feeds())
                    values = graph.session.partial_run(handle, fetch, feed)
                self._held = (handle, tile, set(feed))
            else:
                values = graph.session.run(fetch, feed)
            for key, (s1, s2) in values.items():
                if key in totals:
                    totals[key][0] += s1
                    totals[key][1] += s2
                else:
                    totals[key] = [s1.astype(np.float64), s2.astype(np.float64)]
        return totals

    def _weight_feed(self, tile, weight_maps, shapes):
        feed = {}
        for (g, name), full in weight_maps.items():
            stride = self.strides[name]
            y0, y1, x0, x1 = layer_window(tile, stride, shapes[name])
            window = np.ascontiguousarray(full[y0:y1, x0:x1]) * core_map(tile, stride, (y1 - y0, x1 - x0))
            feed[self.tile_graph.weights[g, name]] = window
        return feed

    @staticmethod
    def _crop(image, tile):
        y0, y1, x0, x1 = tile.window
        return np.ascontiguousarray(image[y0:y1, x0:x1])[None]

    def _content_features(self, content):
        graph = self.tile_graph
        if not graph.content_layers:
            return {}
        shapes = {name: (h, w, c) for name, h, w, c in self.network.feature_shapes(content.shape[0], content.shape[1],
                                                                                    graph.last)}
        out = {name: np.zeros((1,) + shapes[name], np.float32) for name in graph.content_layers}
        for tile in self.tiles:
            values = graph.session.run(graph.features, {graph.image: self._crop(content, tile)})
            for name, value in values.items():
                stride = self.strides[name]
                wy0, _, wx0, _ = layer_window(tile, stride, shapes[name][:2])
                y0, y1, x0, x1 = layer_box(tile, stride)
                out[name][0, wy0 + y0:wy0 + y1, wx0 + x0:wx0 + x1] = value[0, y0:y1, x0:x1]
        return out

    def _style_targets(self, style, region):
        layers = self.tile_graph.style_layers
        if not layers:
            return {}
        shapes = {name: (h, w) for name, h, w, _ in self.network.feature_shapes(style.shape[0], style.shape[1],
                                                                                 self.tile_graph.last)}
        masks = (self.network.mask_weights(region, layers, self._loss.pooling) if region is not None
                 else {n: np.ones(shapes[n], np.float32) for n in layers})
        sums = self._run_sums(style, {(0, n): masks[n] for n in layers})
        return {n: self._statistic.prepare(tuple(np.asarray(t, np.float32) for t in sums_to_statistic(
            self._statistic, sums[0, n], max(float(np.sum(masks[n], dtype=np.float64)), 1e-12)))) for n in layers}

    def _targets(self, network, content, styles, loss, statistic, region_masks):
        """objective.problem_terms's `compute_targets`, tile by tile."""
        from . import images
        from .settings import STYLE_SCALE
        from .targets import prepare_style

        scaled = [prepare_style(style, content.shape[1], s)
                  for style, s in zip(styles, loss.style_scales or [STYLE_SCALE] * len(styles))]
        regions = [None if i >= len(region_masks) or region_masks[i] is None
                   else images.resize(np.asarray(region_masks[i], np.float32), style.shape[:2]).clip(0, 1)
                   for i, style in enumerate(scaled)]
        return scaled, self._content_features(content), [self._style_targets(s, r) for s, r in zip(scaled, regions)]

    # ------------------------------------------------------------ the problem

    def _use(self, problem: Problem) -> None:
        self._loss = problem.loss
        term_list, style_images = problem_terms(problem, self._scale, self._targets)
        self.problem, self.style_images = problem, style_images
        height, width = problem.content.shape[:2]
        graph = self.tile_graph
        shapes = {name: (h, w, c) for name, h, w, c in self.network.feature_shapes(height, width, graph.last)} \
            if graph.last else {}
        self._shapes = shapes
        content_term = next(t for t in term_list if isinstance(t, ContentTerm))
        style_term = next(t for t in term_list if isinstance(t, StyleTerm))
        pixel_terms = {t.name: t for t in term_list if isinstance(t, PixelTerm)}
        self._shown = ("content", "style", "tv") + tuple(
            name for name, t in pixel_terms.items() if t.held.active) + ("total",)
        # Content: each layer's target (times sqrt(mask)) and sqrt(mask), and its coefficient.
        inputs = content_term.inputs()
        self._content = {}
        for name in graph.content_layers:
            h, w, c = shapes[name]
            per_element = self._scale.content_mean
            coefficient = float(inputs[f"{name}/weight"]) * (1.0 / (h * w * c) if per_element else 0.5)
            root = inputs.get(f"{name}/root")
            self._content[name] = (inputs[f"{name}/target"], np.ones((1, h, w, 1), np.float32) if root is None else root,
                                   np.float32(coefficient))
        # Style: the weight maps of each group at each layer, their masses, the targets.
        style_inputs = style_term.inputs()
        self._style_maps, self._mass = {}, {}
        for name in graph.style_layers:
            h, w, _ = shapes[name]
            self._style_maps[0, name] = np.ones((h, w), np.float32)
            self._mass[0, name] = float(h * w)
        for i, g in enumerate(self.groups_of_styles):
            if g:
                for name in graph.style_layers:
                    layer_mask = np.asarray(style_inputs[f"{i}/{name}/mask"], np.float32)
                    self._style_maps[g, name] = layer_mask
                    self._mass[g, name] = max(float(np.sum(layer_mask, dtype=np.float64)), 1e-12)
        used_groups = sorted(set(self.groups_of_styles))
        self._style_maps = {k: v for k, v in self._style_maps.items() if k[0] in used_groups}
        self._finish = None
        if graph.style_layers and problem.styles:
            layer_weights = style_layer_weights(problem.loss.style_layers, float(problem.loss.style_layer_weight_exp))
            self._finish = StyleFinish(self._statistic, layer_weights, self.groups_of_styles, style_term.targets,
                                       self._config)
            finish = self._finish
            self._finish_feed = {finish.blend[i]: np.float32(style_inputs[f"{i}/blend"])
                                 for i in range(len(self.groups_of_styles))}
            for (i, name), placeholders in finish.targets.items():
                for k, p in enumerate(placeholders):
                    self._finish_feed[p] = style_inputs[f"{i}/{name}/{k}"]
            for key, p in finish.mass.items():
                self._finish_feed[p] = self._mass[key]
        # TV: 1 / (the count of neighbour differences), on the reference grid if the scale says so.
        factor = (max(height, width) / 512.0) ** 2 if self._scale.tv_reference_grid else 1.0
        self._tv = (np.float32(factor / max((height - 1) * width * 3, 1)),
                    np.float32(factor / max(height * (width - 1) * 3, 1)))
        self._pixel = {}
        for name, term in pixel_terms.items():
            values = term.inputs()
            mask = values["mask"][0]
            coefficient = float(values["weight"]) / max(float(np.sum(mask, dtype=np.float64)) * 3.0, 1e-6)
            self._pixel[name] = (values["target"][0], mask, np.float32(coefficient))
        self.reweight(problem.loss)

    def retarget(self, problem: Problem) -> None:
        """Make this objective `problem` (of the same terms; any size: the tile graph has none)."""
        if self._finish is not None:
            self._finish.close()
        self.shape = (1,) + problem.content.shape
        self.key = graph_key(problem, self.key.loss_scale)
        self.tiles = plan(problem.content.shape[0], problem.content.shape[1], self.core, self.halo)
        self._use(problem)

    def reweight(self, loss) -> None:
        self.loss_options = loss
        self._weights = {"content": np.float32(loss.content_weight), "style": np.float32(loss.style_weight),
                         "tv": np.float32(loss.tv_weight)}

    # ------------------------------------------------------------ evaluation

    def _share_feed(self, image, tile, d_sums):
        graph, feed = self.tile_graph, {}
        feed[graph.image] = self._crop(image, tile)
        for name, (target, root, coefficient) in self._content.items():
            stride = self.strides[name]
            y0, y1, x0, x1 = layer_window(tile, stride, self._shapes[name][:2])
            feed[graph.inputs["content", name, "target"]] = target[:, y0:y1, x0:x1]
            feed[graph.inputs["content", name, "root"]] = root[:, y0:y1, x0:x1]
            feed[graph.inputs["content", name, "core"]] = core_map(tile, stride, (y1 - y0, x1 - x0))
            feed[graph.inputs["content", name, "coefficient"]] = coefficient
        height, width = self.shape[1:3]
        wy0, wy1, wx0, wx1 = tile.window
        y0, y1, x0, x1 = tile.core
        h, w = wy1 - wy0, wx1 - wx0
        pairs_y = np.zeros((max(h - 1, 0), w), np.float32)
        pairs_y[y0 - wy0:min(y1, height - 1) - wy0, x0 - wx0:x1 - wx0] = 1.0
        pairs_x = np.zeros((h, max(w - 1, 0)), np.float32)
        pairs_x[y0 - wy0:y1 - wy0, x0 - wx0:min(x1, width - 1) - wx0] = 1.0
        feed[graph.inputs["tv", "y"]], feed[graph.inputs["tv", "x"]] = pairs_y, pairs_x
        feed[graph.inputs["tv", "y coefficient"]], feed[graph.inputs["tv", "x coefficient"]] = self._tv
        pixel_core = core_map(tile, 1, (h, w))
        for name, (target, mask, coefficient) in self._pixel.items():
            feed[graph.inputs[name, "target"]] = target[None, wy0:wy1, wx0:wx1]
            feed[graph.inputs[name, "mask"]] = (mask[wy0:wy1, wx0:wx1] * pixel_core)[None]
            feed[graph.inputs[name, "coefficient"]] = coefficient
        feed[graph.inputs["weight", "content"]] = self._weights["content"]
        feed[graph.inputs["weight", "tv"]] = self._weights["tv"]
        if graph.style_layers:
            feed.update(self._weight_feed(tile, self._style_maps, {n: s[:2] for n, s in self._shapes.items()}))
            for key, (d1, d2) in d_sums.items():
                p1, p2 = graph.d_sums[key]
                feed[p1], feed[p2] = d1.astype(np.float32), d2.astype(np.float32)
            for key in graph.d_sums:
                if key not in d_sums:  # a group no style of this problem uses
                    channels = self._shapes[key[1]][2]
                    feed[graph.d_sums[key][0]] = np.zeros(channels, np.float32)
                    feed[graph.d_sums[key][1]] = np.zeros((channels, channels), np.float32)
                    feed[graph.weights[key]] = np.zeros((1, 1), np.float32)
        return feed

    def evaluate(self, x: np.ndarray) -> tuple[OrderedDict, np.ndarray]:
        """Loss terms (dict of floats) and gradient (float32, self.shape) at image `x`."""
        image = np.asarray(x, np.float32).reshape(self.shape[1:])
        style = unweighted = 0.0
        d_sums: dict = {}
        self._held = None
        if self._finish is not None:
            sums = self._run_sums(image, self._style_maps, self.tiles)
            feed = dict(self._finish_feed)
            feed[self._finish.style_weight] = self._weights["style"]
            style, unweighted, d_sums = self._finish.run(sums, feed)
        graph = self.tile_graph
        gradient = np.zeros(self.shape, np.float32)
        parts = OrderedDict((k, 0.0) for k in graph.parts)
        # The tile whose forward pass is held first, then the others.
        order = self.tiles if self._held is None else [self._held[1]] + self.tiles[:-1]
        for tile in order:
            feed = self._share_feed(image, tile, d_sums)
            if self._held is not None and tile is self._held[1]:
                handle, _, fed = self._held
                self._held = None
                with quiet_deprecation():
                    values, grad = graph.session.partial_run(handle, (graph.parts, graph.gradient),
                                                             {k: v for k, v in feed.items() if k not in fed})
            else:
                values, grad = graph.session.run((graph.parts, graph.gradient), feed)
            wy0, wy1, wx0, wx1 = tile.window
            gradient[:, wy0:wy1, wx0:wx1] += grad
            for k, v in values.items():
                parts[k] += float(v)
        terms = OrderedDict(content=float(self._weights["content"]) * parts["content"], style=style,
                            tv=float(self._weights["tv"]) * parts["tv"])
        terms.update((k, parts[k]) for k in self._pixel)
        terms["total"] = sum(terms.values())
        return OrderedDict((k, terms[k]) for k in self._shown), gradient

    def close(self) -> None:
        if self._finish is not None:
            self._finish.close()
        if self._own_graph:
            self.tile_graph.close()

    def __enter__(self) -> TiledObjective:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
