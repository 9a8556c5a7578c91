"""The objective: targets computed once, loss terms as small objects, one finalized graph.

Data flow, one direction:
    targets (in their own short-lived graph) -> term objects (TERMS: content, style, TV,
    and the pixel terms that are used) -> one graph: the weighted terms, their total and
    its gradient -> `Objective.evaluate(x)`, one session.run per evaluation.

Adding a term appends one object to the list `Objective.term_list` builds: each term
has a name and builds its (unweighted) tensor from the network's features and the image.
The optimisation variable is the image itself in RGB 0..255, shape (1, H, W, 3); the
network's preprocessing is part of the graph, so the optimizer's box is simply [0, 255].
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import images
from .losses import (
    LOSS_SCALES,
    LossScale,
    StyleStatistic,
    blend_weights,
    content_layer_weights,
    gram_matrix,
    masked_content,
    relative_content_weight,
    style_layer_weights,
    style_statistic,
    temporal_loss,
)
from .networks.feature_network import FeatureNetwork
from .settings import STYLE_SCALE, LossOptions, for_network
from .tf_runtime import import_tensorflow, session_config

# The defaults of Objective (frozen, so one instance serves every call).
DEFAULT_LOSS = LossOptions()
# The classic tool's noise initialisation: N(0, 1) * 0.256 around the mean pixel.
NOISE_SCALE = 0.256
LOSS_TERMS = ("content", "style", "tv", "total")
# An optional term, among an Objective's terms (before "total") only when it has one:
# video.py's temporal consistency (see Temporal).
TEMPORAL_TERM = "temporal"
# And the protected subject's (--content-mask): the photo held there (see Guidance).
KEEP_TERM = "keep"
# The terms whose weight is an input of the graph (fed, see term_weights), in this order.
FED_WEIGHTS = ("content", "style", "tv")

Tensor = Any



@dataclass(frozen=True)
class Temporal:
    """A term weight * temporal_loss(image, target, mask) that holds pixels to a target:
    video.py's temporal term (the previous result warped into this frame, the mask its
    reliability), and the protected subject's "keep" term (the photo, the mask
    --content-mask, see Guidance)."""

    target: np.ndarray  # (H, W, 3)
    mask: np.ndarray  # (H, W): how much each pixel is held to `target`, 0..1
    weight: float



def compute_targets(network, content, styles, content_layers, style_layers, pooling, gram=gram_matrix,
                    padding="zero", style_masks=None, config=None):
    """Content features and style statistics, computed once in their own graph.

    `content` is RGB (H, W, 3); `styles` a list of RGB images, already at their scale.
    `gram(features)` is the style statistic: a tensor or a tuple of tensors (see
    StyleStatistic). `style_masks`: None, or one (h, w) mask per style over that style
    image (or None for the whole image); a masked style's statistic is computed as
    `gram(features, weights)` with the mask brought to each layer (network.mask_weights).
    Returns ({layer: features}, [{layer: statistic}, ...]) as float32 NumPy arrays
    (tuples of them for a tuple statistic). `config`: the session's (default tf_runtime.session_config()).
    """
    tf = import_tensorflow()

    needed = tuple(content_layers) + tuple(style_layers)
    style_masks = list(style_masks or [None] * len(styles))
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        net = network.features(network.preprocess(image), network.deepest(needed), pooling, padding)
        grams = {name: gram(net[name]) for name in style_layers}
        weights = guided = {}
        if any(m is not None for m in style_masks):
            weights = {n: tf.compat.v1.placeholder(tf.float32, (None, None)) for n in style_layers}
            guided = {n: gram(net[n], weights[n]) for n in style_layers}
        graph.finalize()
        with tf.compat.v1.Session(graph=graph, config=config or session_config()) as sess:
            content_features = {}
            if content_layers:
                fetched = sess.run({n: net[n] for n in content_layers}, {image: content[None]})
                content_features = fetched
            style_grams = []
            for style, mask in zip(styles, style_masks):
                feed = {image: style[None]}
                if mask is not None:
                    feed.update(zip(weights.values(), network.mask_weights(mask, style_layers, pooling).values()))
                style_grams.append(sess.run(guided if mask is not None else grams, feed) if grams else {})
    return content_features, style_grams


@dataclass(frozen=True)
class Guidance:
    """Where each style applies (--style-masks, --style-region-masks): the spatial control
    of Gatys et al. 2017 (docs/spatial-control.md).

    `masks`: one (H, W) array 0..1 per style over the content (the output), or None for
    everywhere; style i's statistics are those of the output's features weighted by its
    mask, normalised by the mask's mass. `region_masks`: one array per style over that
    style image (any size: resized with it), or None for the whole painting; the target
    statistics are then the painting's region's. `keep`: a `Temporal` holding the photo
    over a protected subject (--content-mask), or None.
    """

    masks: tuple = ()
    region_masks: tuple = ()
    keep: Temporal | None = None

    def mask(self, i):
        return self.masks[i] if i < len(self.masks) else None

    def region_mask(self, i):
        return self.region_masks[i] if i < len(self.region_masks) else None

    def blend(self, weights):
        """The style terms' weights for the blend `weights` (summing to 1).

        A masked style's statistics are normalised by its mask's mass, so its pull on
        each pixel of its region is 1 / (the region's share of the picture) of an
        unmasked style's. Each style's weight is therefore multiplied by its share, and
        all by one factor K that keeps the per-pixel pull, averaged over the covered
        pixels, at the unmasked run's: the same --style-weight then means the same
        strength of style with masks or without (two complementary masks of equal blend
        weight each get their share; one mask alone gets its share).
        K = mean(min(1, sum_i m_i)) / mean(sum_i b_i m_i), with m_i = 1 for an unmasked
        style: the numerator is how much of the picture the masks cover.
        """
        if not any(m is not None for m in self.masks):
            return list(weights)  # exactly the unguided objective
        shape = next(np.shape(m) for m in self.masks if m is not None)
        masks = [np.ones(shape, np.float32) if self.mask(i) is None else np.asarray(self.mask(i), np.float32)
                 for i in range(len(weights))]
        pull = float(np.mean(sum(b * m for b, m in zip(weights, masks))))
        factor = float(np.mean(np.minimum(1.0, sum(masks)))) / max(pull, 1e-12)
        return [b * factor * float(np.mean(m)) for b, m in zip(weights, masks)]


NO_GUIDANCE = Guidance()


def targets(network, content, styles, loss, statistic, guidance=NO_GUIDANCE, config=None):
    """(the style images at their scale, content targets, each style's prepared target
    statistics): what an Objective compares with, computed once."""
    scaled = [prepare_style(style, content.shape[1], s)
              for style, s in zip(styles, loss.style_scales or [STYLE_SCALE] * len(styles))]
    # A region mask covers its painting: it is resized with it.
    regions = [None if guidance.region_mask(i) is None
               else images.resize(np.asarray(guidance.region_mask(i), np.float32), style.shape[:2]).clip(0, 1)
               for i, style in enumerate(scaled)]
    content_targets, style_targets = compute_targets(
        network, content, scaled, tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend)),
        tuple(loss.style_layers), loss.pooling, statistic.compute, loss.padding, regions, config)
    return scaled, content_targets, [{n: statistic.prepare(t) for n, t in ts.items()} for ts in style_targets]


def guided_style_term(statistic, net, layer_weights, blend, style_targets, layer_masks):
    """sum over styles i of blend_i sum over layers l of w_l loss(statistic of layer l,
    guided by style i's mask there, target of style i at l). A layer's unguided
    statistic, and one guided by the same mask, is built once however many styles use it."""
    tf = import_tensorflow()

    built = {}

    def stat(name, masks):
        key = (name, None if masks is None else id(masks))
        if key not in built:
            built[key] = statistic.compute(net[name], None if masks is None else tf.constant(masks[name]))
        return built[key]

    return tf.add_n([
        b * tf.add_n([w * statistic.loss(stat(n, masks), tuple(tf.constant(t) for t in targets[n]))
                      for n, w in layer_weights.items()])
        for b, targets, masks in zip(blend, style_targets, layer_masks)
    ])


# ---------------------------------------------------------------- the terms
# Each term is a small frozen object: `name`, and `build(net, image)` -> its unweighted
# scalar tensor from the network's features {layer: tensor} and the image (1, H, W, 3).
# The terms named in FED_WEIGHTS are multiplied by their fed weight; a pixel term
# carries its own weight.


@dataclass(frozen=True)
class ContentTerm:
    """sum over content layers l of w_l content(F_l, P_l), each optionally masked."""

    layer_weights: dict
    targets: dict
    loss: Any  # the loss scale's content(features, target)
    mask: np.ndarray | None = None
    relative: bool = False  # each layer divided by its target's size (losses.relative_content_weight)
    name: str = "content"

    def build(self, net: dict, image: Tensor) -> Tensor:
        tf = import_tensorflow()

        if not self.layer_weights:  # no content term at all (pure texture synthesis)
            return tf.constant(0.0)
        weights = {n: w * relative_content_weight(self.targets[n]) if self.relative else w
                   for n, w in self.layer_weights.items()}
        return tf.add_n([w * masked_content(self.loss, net[n], self.targets[n], self.mask)
                         for n, w in weights.items()])


@dataclass(frozen=True)
class StyleTerm:
    """sum over styles of blend_i sum over style layers of w_l loss(statistic, target): see
    guided_style_term."""

    statistic: StyleStatistic
    layer_weights: dict
    blend: list
    targets: list
    layer_masks: list
    name: str = "style"

    def build(self, net: dict, image: Tensor) -> Tensor:
        return guided_style_term(self.statistic, net, self.layer_weights, self.blend, self.targets, self.layer_masks)


@dataclass(frozen=True)
class TotalVariationTerm:
    """The loss scale's total variation of the image."""

    tv: Any
    name: str = "tv"

    def build(self, net: dict, image: Tensor) -> Tensor:
        return self.tv(image)


@dataclass(frozen=True)
class PixelTerm:
    """A `Temporal`'s weighted term (the video's temporal term, the protected subject's keep)."""

    temporal: Temporal
    name: str = TEMPORAL_TERM

    def build(self, net: dict, image: Tensor) -> Tensor:
        return temporal_terms(self.temporal, image, self.name)[self.name]


def term_weights(loss: LossOptions) -> OrderedDict:
    """The content, style and TV weights as scalar inputs of the graph, defaulting to `loss`'s
    (resolved for the network: settings.for_network).

    They are fed, not baked in as constants, so that Objective.reweight can change them in
    the built graph: a batch worker's weight sweep reuses one graph and its warmed-up session.
    """
    tf = import_tensorflow()

    values = (loss.content_weight, loss.style_weight, loss.tv_weight)
    return OrderedDict((name, tf.compat.v1.placeholder_with_default(np.float32(v), (), name=f"{name}_weight"))
                       for name, v in zip(FED_WEIGHTS, values))


def weight_feed(weights: dict, loss: LossOptions) -> dict:
    """{placeholder: value} of `loss`'s content, style and TV weights."""
    if loss.tv_weight is None:
        raise ValueError("the loss options' TV weight is unresolved: pass them through settings.for_network")
    values = (loss.content_weight, loss.style_weight, loss.tv_weight)
    return {weights[k]: np.float32(v) for k, v in zip(FED_WEIGHTS, values)}


# ---------------------------------------------------------------- the objective


class Objective:
    """Loss terms and gradient of one transfer problem, in one finalized graph.

    `evaluate(x)` runs a single session.run for every loss term and the gradient.
    """

    def __init__(self, network: FeatureNetwork, content: np.ndarray, styles: list, loss: LossOptions = DEFAULT_LOSS,
                 content_mask: np.ndarray | None = None, temporal: Temporal | None = None,
                 guidance: Guidance | None = None, loss_scale: LossScale | None = None, config: Any = None):
        """Optional: `content_mask` (H, W) >= 0, each pixel's content-loss weight relative to an
        unmasked run (1 everywhere = no mask); `temporal`, a `Temporal`; `guidance`, a
        `Guidance` (where each style applies); `loss_scale`, the LossScale to use instead of
        LOSS_SCALES[loss.loss_scale]; `config`, the session's tf.compat.v1.ConfigProto
        (default tf_runtime.session_config())."""
        tf = import_tensorflow()

        # The network's defaults for what the caller left open. transfer.prepare has
        # resolved them already (this is then the identity); a direct caller gets them here.
        loss = for_network(loss, network)
        content = np.asarray(content, np.float32)
        self.network = network
        self.loss_options = loss
        self.shape = (1,) + content.shape
        self.content = content
        for name in tuple(loss.content_layers) + tuple(loss.style_layers):
            if name not in network.layers:
                raise ValueError(f"layer {name!r} is not in {network.name}")
        assert loss.padding is not None and loss.style_layer_weight_exp is not None  # resolved by for_network
        scale = loss_scale or LOSS_SCALES[loss.loss_scale]
        term_list = self.term_list(styles, scale, content_mask, temporal, guidance or NO_GUIDANCE, config)

        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, self.shape, name="image")
            needed = tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend)) + tuple(loss.style_layers)
            net = network.features(network.preprocess(self.image), network.deepest(needed), loss.pooling, loss.padding)
            self.weights = term_weights(loss)
            # The terms with a fed weight first, then the pixel terms: the order in which
            # the ops are made is the order in which tf.gradients sums the image's gradient
            # contributions, so it fixes the result to the last bit.
            fed = [(term.name, term.build(net, self.image)) for term in term_list if term.name in self.weights]
            terms = OrderedDict((name, self.weights[name] * value) for name, value in fed)
            terms.update((term.name, term.build(net, self.image)) for term in term_list if term.name not in self.weights)
            terms["total"] = tf.add_n(list(terms.values()))
            self.terms = terms
            self.gradient = tf.gradients(terms["total"], self.image)[0]
            self._fetches = (dict(terms), self.gradient)
        # A finalized graph cannot grow: nothing is added, retraced or recompiled
        # between evaluations.
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config or session_config())
        self.reweight(loss)

    def term_list(self, styles: list, scale: LossScale, content_mask: np.ndarray | None, temporal: Temporal | None,
                  guidance: Guidance, config: Any) -> list:
        """The term objects, in the order their values are reported: content, style, TV,
        then the pixel terms that are used. Computes the targets (self.style_images too)."""
        loss, network = self.loss_options, self.network
        content_weights = content_layer_weights(loss.content_layers, loss.content_weight_blend)
        style_weights = style_layer_weights(loss.style_layers, float(loss.style_layer_weight_exp or 0.0))
        statistic = style_statistic(loss.style_loss, scale)
        self.style_images, content_targets, style_targets = targets(network, self.content, styles, loss, statistic,
                                                                    guidance, config)
        blend = guidance.blend(blend_weights(len(styles), loss.style_blend_weights))
        layer_masks = [None if guidance.mask(i) is None
                       else network.mask_weights(guidance.mask(i), tuple(style_weights), loss.pooling)
                       for i in range(len(styles))]
        terms = [ContentTerm(content_weights, content_targets, scale.content, content_mask, statistic.relative),
                 StyleTerm(statistic, style_weights, blend, style_targets, layer_masks),
                 TotalVariationTerm(scale.tv)]
        terms += [PixelTerm(t, name) for t, name in ((temporal, TEMPORAL_TERM), (guidance.keep, KEEP_TERM))
                  if t is not None]
        return terms

    def reweight(self, loss: LossOptions) -> None:
        """Use the content, style and TV weights of `loss` (resolved for the network, as
        transfer.prepare gives them) from now on. Only the weights: everything else that
        defines the graph (layers, targets, size) stays as built."""
        self._weight_feed = weight_feed(self.weights, loss)
        self.loss_options = loss

    def evaluate(self, x: np.ndarray) -> tuple[OrderedDict, np.ndarray]:
        """Loss terms (dict of floats) and gradient (float32, self.shape) at image `x`."""
        terms, grad = self.session.run(self._fetches, {self.image: np.reshape(x, self.shape), **self._weight_feed})
        return OrderedDict((k, float(terms[k])) for k in self.terms), grad

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Objective:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def temporal_terms(temporal, image, name=TEMPORAL_TERM):
    """{name: the weighted term} of a `Temporal` on the (1, H, W, 3) image tensor of an
    Objective, or {} without one: the term exists only where it is used."""
    tf = import_tensorflow()

    if temporal is None:
        return {}
    target, mask = np.asarray(temporal.target, np.float32), np.asarray(temporal.mask, np.float32)
    shape = tuple(image.shape[1:])
    if target.shape != shape or mask.shape != shape[:2]:
        raise ValueError(f"temporal target {target.shape} and mask {mask.shape} do not fit an image of {shape}")
    return {name: temporal.weight * temporal_loss(image, tf.constant(target[None]), tf.constant(mask[None]))}


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



def initial_image(content, network, initial=None, noiseblend=None, seed=None):
    """The starting image, with the classic tool's --initial / --initial-noiseblend meaning.

    No initial and no noiseblend: noise. No initial with noiseblend < 1: start from the
    content. Noise is N(0, 1) * 0.256 around the network's mean pixel, and the blend is
    (1 - noiseblend) * initial + noiseblend * noise.
    """
    rng = np.random.default_rng(seed)
    content = np.asarray(content, np.float32)
    if initial is None:
        if noiseblend is None:
            noiseblend = 1.0
        initial = content if noiseblend < 1.0 else None
    elif noiseblend is None:
        noiseblend = 0.0
    noise = network.mean_pixel + rng.standard_normal(content.shape).astype(np.float32) * NOISE_SCALE
    if initial is None:
        start = noise
    else:
        start = (1.0 - noiseblend) * np.asarray(initial, np.float32) + noiseblend * noise
    return np.clip(start, 0.0, 255.0).astype(np.float32)


# ---------------------------------------------------------------- evaluation
