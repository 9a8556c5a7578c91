"""The objective of a Problem evaluated tile by tile (tiling.py explains how, and why it is
exact): what print_size.py builds for a scale too large for memory. The same terms, loss
and gradient as objective.Objective, with memory bounded by one tile.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .losses import content_layer_weights, style_layer_weights
from .objective import KEEP_TERM, Problem, graph_key, problem_terms, statistic_of
from .targets import scaled_styles
from .terms import TEMPORAL_TERM, ContentTerm, PixelTerm, StyleTerm
from .tiling import (
    DEFAULT_CORE,
    StyleFinish,
    TileGraph,
    core_map,
    layer_box,
    layer_strides,
    layer_window,
    plan,
    quiet_deprecation,
)


class TiledObjective:
    """The Objective of a Problem evaluated tile by tile (see the module's docstring): the
    same terms, loss and gradient as objective.Objective, with memory bounded by the tile.

    `core`: the core's side in pixels. `tile_graph`: a TileGraph to use (and keep: a
    coarse-to-fine run's tiled scales share one); without one it is built here.
    """

    _held: tuple | None = None  # (partial run handle, tile, the placeholders fed): see _run_sums
    # Told the fraction of an evaluation done after each tile (progress.Reporter.tile): a
    # first-pass tile counts 1, a second-pass one 2 (its forward and backward passes).
    on_tile: Callable[[float], None] | None = None

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
            if held:
                self._tile_done(index + 1)
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
        from_sums = self._statistic.from_sums
        assert from_sums is not None  # every style_statistic has one
        return {n: self._statistic.prepare(tuple(np.asarray(t, np.float32) for t in from_sums(
            *sums[0, n], max(float(np.sum(masks[n], dtype=np.float64)), 1e-12)))) for n in layers}

    def _targets(self, network, content, styles, loss, statistic, region_masks):
        """objective.problem_terms's `compute_targets`, tile by tile."""
        scaled, regions = scaled_styles(content, styles, loss, region_masks)
        return scaled, self._content_features(content), [self._style_targets(s, r) for s, r in zip(scaled, regions)]

    # ------------------------------------------------------------ the problem

    def _use(self, problem: Problem) -> None:
        self._loss = problem.loss
        term_list, style_images = problem_terms(problem, self._scale, self._targets)
        self.problem, self.style_images = problem, style_images
        height, width = problem.content.shape[:2]
        graph = self.tile_graph
        self._shapes = {name: (h, w, c) for name, h, w, c in self.network.feature_shapes(height, width, graph.last)} \
            if graph.last else {}
        pixel_terms = {t.name: t for t in term_list if isinstance(t, PixelTerm)}
        self._shown = ("content", "style", "tv") + tuple(
            name for name, t in pixel_terms.items() if t.held.active) + ("total",)
        self._use_content(next(t for t in term_list if isinstance(t, ContentTerm)))
        self._use_style(problem, next(t for t in term_list if isinstance(t, StyleTerm)))
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

    def _use_content(self, term: ContentTerm) -> None:
        """Each content layer's target (times sqrt(mask)), sqrt(mask), and coefficient: the
        layer's weight over its element count (a mean) or 1/2 (the paper's half sum)."""
        inputs = term.inputs()
        self._content = {}
        for name in self.tile_graph.content_layers:
            h, w, c = self._shapes[name]
            coefficient = float(inputs[f"{name}/weight"]) * (1.0 / (h * w * c) if self._scale.content_mean else 0.5)
            root = inputs.get(f"{name}/root")
            self._content[name] = (inputs[f"{name}/target"], np.ones((1, h, w, 1), np.float32) if root is None else root,
                                   np.float32(coefficient))

    def _use_style(self, problem: Problem, term: StyleTerm) -> None:
        """The weight maps of each group at each style layer, their masses, and the finish graph."""
        graph, inputs = self.tile_graph, term.inputs()
        self._style_maps, self._mass = {}, {}
        for name in graph.style_layers:
            h, w, _ = self._shapes[name]
            self._style_maps[0, name] = np.ones((h, w), np.float32)
            self._mass[0, name] = float(h * w)
        for i, g in enumerate(self.groups_of_styles):
            for name in graph.style_layers if g else ():
                layer_mask = np.asarray(inputs[f"{i}/{name}/mask"], np.float32)
                self._style_maps[g, name] = layer_mask
                self._mass[g, name] = max(float(np.sum(layer_mask, dtype=np.float64)), 1e-12)
        used_groups = set(self.groups_of_styles)
        self._style_maps = {k: v for k, v in self._style_maps.items() if k[0] in used_groups}
        self._finish = None
        if not (graph.style_layers and problem.styles):
            return
        layer_weights = style_layer_weights(problem.loss.style_layers, float(problem.loss.style_layer_weight_exp or 0.0))
        finish = self._finish = StyleFinish(self._statistic, layer_weights, self.groups_of_styles, term.targets,
                                            self._config)
        self._finish_feed: dict = {finish.blend[i]: np.float32(inputs[f"{i}/blend"]) for i in range(len(self.groups_of_styles))}
        for (i, name), placeholders in finish.targets.items():
            for k, p in enumerate(placeholders):
                self._finish_feed[p] = inputs[f"{i}/{name}/{k}"]
        for key, p in finish.mass.items():
            self._finish_feed[p] = self._mass[key]

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
        style = 0.0
        d_sums: dict = {}
        self._held = None
        if self._finish is not None:
            sums = self._run_sums(image, self._style_maps, self.tiles)
            feed = dict(self._finish_feed)
            feed[self._finish.style_weight] = self._weights["style"]
            style, d_sums = self._finish.run(sums, feed)
        graph = self.tile_graph
        gradient = np.zeros(self.shape, np.float32)
        parts = OrderedDict((k, 0.0) for k in graph.parts)
        # The tile whose forward pass is held first, then the others.
        order = self.tiles if self._held is None else [self._held[1]] + self.tiles[:-1]
        first = len(self.tiles) if self._finish is not None else 0
        for done, tile in enumerate(order, 1):
            feed = self._share_feed(image, tile, d_sums)
            if self._held is not None and tile is self._held[1]:
                handle, _, fed = self._held
                self._held = None
                with quiet_deprecation():
                    values, grad = graph.session.partial_run(handle, (graph.parts, graph.gradient),
                                                             {k: v for k, v in feed.items() if k not in fed})
            else:
                values, grad = graph.session.run((graph.parts, graph.gradient), feed)
            self._tile_done(first + 2 * done)
            wy0, wy1, wx0, wx1 = tile.window
            gradient[:, wy0:wy1, wx0:wx1] += grad
            for k, v in values.items():
                parts[k] += float(v)
        terms = OrderedDict(content=float(self._weights["content"]) * parts["content"], style=style,
                            tv=float(self._weights["tv"]) * parts["tv"])
        terms.update((k, parts[k]) for k in self._pixel)
        terms["total"] = sum(terms.values())
        return OrderedDict((k, terms[k]) for k in self._shown), gradient

    def _tile_done(self, units):
        if self.on_tile is not None:
            total = len(self.tiles) * (3 if self._finish is not None else 2)
            self.on_tile(units / total)

    def close(self) -> None:
        if self._finish is not None:
            self._finish.close()
        if self._own_graph:
            self.tile_graph.close()

    def __enter__(self) -> TiledObjective:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
