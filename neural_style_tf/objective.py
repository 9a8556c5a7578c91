"""The objective: loss terms as small objects, one finalized graph per output size.

Data flow, one direction:
    targets (targets.py, in their own graph) -> term objects (TERMS: content, style, TV,
    and the pixel terms that are used) -> one graph: the weighted terms, their total and
    its gradient -> `Objective.evaluate(x)`, one session.run per evaluation.

Adding a term appends one object to the list `Objective.term_list` builds: each term
has a name, `inputs()` (the arrays it compares with: targets, masks, weights that
depend on them) and `build(net, image, inputs)`, its (unweighted) tensor from the
network's features, the image and those inputs as tensors.
The optimisation variable is the image itself in RGB 0..255, shape (1, H, W, 3); the
network's preprocessing is part of the graph, so the optimizer's box is simply [0, 255].

The inputs are variables of the graph, assigned once per problem, not constants baked
into it: an Objective built for one size, network, layers and set of terms serves
another content, style, mask or temporal target through `retarget` (video.py's frames,
a batch worker's jobs: coarse_to_fine.Objectives keeps them), as the three term weights
are fed (`reweight`). What fixes the graph is `graph_key`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .losses import (
    LOSS_SCALES,
    LossScale,
    StyleStatistic,
    blend_weights,
    content_layer_weights,
    style_layer_weights,
    style_statistic,
    temporal_loss,
)
from .networks.feature_network import FeatureNetwork
from .settings import LossOptions, for_network
from .targets import (  # noqa: F401 (re-exported: the style images' size is asked of objective)
    TargetGraphs,
    compute_targets,
    digest,
    prepare_style,
    size_styles_to_content,
    style_shape,
    style_width,
    targets,
)
from .terms import (  # noqa: F401 (re-exported)
    TEMPORAL_TERM,
    ContentTerm,
    Inputs,
    PixelTerm,
    StyleTerm,
    Temporal,
    TotalVariationTerm,
    check_temporal,
)
from .tf_runtime import import_tensorflow, session_config

# The defaults of Objective (frozen, so one instance serves every call).
DEFAULT_LOSS = LossOptions()
# The classic tool's noise initialisation: N(0, 1) * 0.256 around the mean pixel.
NOISE_SCALE = 0.256
LOSS_TERMS = ("content", "style", "tv", "total")
# Optional terms, among an Objective's terms (before "total") only when it has them:
# video.py's temporal consistency (TEMPORAL_TERM, see Temporal), and
# the protected subject's (--content-mask): the photo held there (see Guidance).
KEEP_TERM = "keep"
# The terms whose weight is an input of the graph (fed, see term_weights), in this order.
FED_WEIGHTS = ("content", "style", "tv")

Tensor = Any


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


@functools.cache
def statistic_of(style_loss: str, scale: LossScale) -> StyleStatistic:
    """losses.style_statistic, one object per (style loss, loss scale): its functions are
    then the same from one problem to the next, and so is the target graph they key."""
    return style_statistic(style_loss, scale)


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


def graph_key(network: FeatureNetwork, content: np.ndarray, styles: list, loss: LossOptions = DEFAULT_LOSS,
              content_mask: np.ndarray | None = None, temporal: Temporal | None = None,
              guidance: Guidance | None = None, loss_scale: LossScale | None = None) -> tuple:
    """What fixes an Objective's graph, for Objective's arguments: two problems of the same
    key share one graph (Objective.retarget). The output size, the network, the number of
    styles, the loss options but the fed weights (the three term weights, the style
    blend) and the style scales (only the targets see them), which terms there are and
    which styles are masked. Not the images, the masks' values or the style images' sizes
    (a style's statistic is C x C whatever its size)."""
    loss = for_network(loss, network)
    structural = dataclasses.replace(loss, content_weight=0.0, style_weight=0.0, tv_weight=0.0,
                                     style_blend_weights=None, style_scales=None)
    guidance = guidance or NO_GUIDANCE
    return (id(network), tuple(np.shape(content)), len(styles), structural, loss_scale, content_mask is not None,
            temporal is not None, tuple(guidance.mask(i) is not None for i in range(len(styles))),
            guidance.keep is not None)


def problem_digest(content, styles, loss, content_mask=None, temporal=None, guidance=None) -> tuple:
    """What, besides the three fed weights, makes a problem's inputs: the images' and
    masks' pixels and the loss options. Equal digests: equal targets (retarget skips them)."""
    guidance = guidance or NO_GUIDANCE

    def pixel_term(t):
        return None if t is None else (digest(np.asarray(t.target)), digest(np.asarray(t.mask)), float(t.weight), t.active)

    return (digest(content), tuple(digest(np.asarray(s)) for s in styles),
            dataclasses.replace(loss, content_weight=0.0, style_weight=0.0, tv_weight=0.0),
            digest(content_mask), pixel_term(temporal), pixel_term(guidance.keep),
            tuple(digest(m) for m in guidance.masks), tuple(digest(m) for m in guidance.region_masks))


# ---------------------------------------------------------------- the objective


class Objective:
    """Loss terms and gradient of one transfer problem, in one finalized graph.

    `evaluate(x)` runs a single session.run for every loss term and the gradient;
    `retarget` makes it another problem of the same graph_key, `reweight` changes the weights.
    """

    def __init__(self, network: FeatureNetwork, content: np.ndarray, styles: list, loss: LossOptions = DEFAULT_LOSS,
                 content_mask: np.ndarray | None = None, temporal: Temporal | None = None,
                 guidance: Guidance | None = None, loss_scale: LossScale | None = None, config: Any = None,
                 graphs: TargetGraphs | None = None):
        """Optional: `content_mask` (H, W) >= 0, each pixel's content-loss weight relative to an
        unmasked run (1 everywhere = no mask); `temporal`, a `Temporal`; `guidance`, a
        `Guidance` (where each style applies); `loss_scale`, the LossScale to use instead of
        LOSS_SCALES[loss.loss_scale]; `config`, the session's tf.compat.v1.ConfigProto
        (default tf_runtime.session_config()); `graphs`, a targets.TargetGraphs that
        computes the targets and is kept by the caller (default: a target graph built
        for each problem and closed after it)."""
        tf = import_tensorflow()

        # The network's defaults for what the caller left open. transfer.prepare has
        # resolved them already (this is then the identity); a direct caller gets them here.
        loss = for_network(loss, network)
        content = np.asarray(content, np.float32)
        self.network, self.shape = network, (1,) + content.shape
        for name in tuple(loss.content_layers) + tuple(loss.style_layers):
            if name not in network.layers:
                raise ValueError(f"layer {name!r} is not in {network.name}")
        assert loss.padding is not None and loss.style_layer_weight_exp is not None  # resolved by for_network
        self.key = graph_key(network, content, styles, loss, content_mask, temporal, guidance, loss_scale)
        self._scale, self._config, self._graphs = loss_scale or LOSS_SCALES[loss.loss_scale], config, graphs
        term_list = self.term_list(content, styles, loss, content_mask, temporal, guidance or NO_GUIDANCE)
        self._structure = [term.structure() for term in term_list]
        self._problem = problem_digest(content, styles, loss, content_mask, temporal, guidance)

        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, self.shape, name="image")
            needed = tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend)) + tuple(loss.style_layers)
            net = network.features(network.preprocess(self.image), network.deepest(needed), loss.pooling, loss.padding)
            self.weights = term_weights(loss)
            self._inputs = Inputs()
            inputs = {term.name: self._inputs.create(term.name, term.inputs()) for term in term_list}
            # The terms with a fed weight first, then the pixel terms: the order in which
            # the ops are made is the order in which tf.gradients sums the image's gradient
            # contributions, so it fixes the result to the last bit.
            fed = [(term.name, term.build(net, self.image, inputs[term.name])) for term in term_list
                   if term.name in self.weights]
            terms = OrderedDict((name, self.weights[name] * value) for name, value in fed)
            terms.update((term.name, term.build(net, self.image, inputs[term.name])) for term in term_list
                         if term.name not in self.weights)
            terms["total"] = tf.add_n(list(terms.values()))
            self.terms = terms
            self.gradient = tf.gradients(terms["total"], self.image)[0]
            self._fetches = (dict(terms), self.gradient)
        # A finalized graph cannot grow: nothing is added, retraced or recompiled
        # between evaluations, nor when it is retargeted.
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=config or session_config())
        self._use(term_list, loss)

    def term_list(self, content: np.ndarray, styles: list, loss: LossOptions, content_mask: np.ndarray | None,
                  temporal: Temporal | None, guidance: Guidance) -> list:
        """The term objects of a problem, in the order their values are reported: content,
        style, TV, then the pixel terms that are used. Computes the targets (and sets
        self.content, self.style_images)."""
        network, scale = self.network, self._scale
        content_weights = content_layer_weights(loss.content_layers, loss.content_weight_blend)
        style_weights = style_layer_weights(loss.style_layers, float(loss.style_layer_weight_exp or 0.0))
        statistic = statistic_of(loss.style_loss, scale)
        self.content = content
        self.style_images, content_targets, style_targets = targets(
            network, content, styles, loss, statistic, guidance.region_masks, self._config, self._graphs)
        blend = guidance.blend(blend_weights(len(styles), loss.style_blend_weights))
        layer_masks = [None if guidance.mask(i) is None
                       else network.mask_weights(guidance.mask(i), tuple(style_weights), loss.pooling)
                       for i in range(len(styles))]
        terms = [ContentTerm(content_weights, content_targets, scale.content, content_mask, statistic.relative,
                             network.relative_content_scale),
                 StyleTerm(statistic, style_weights, blend, style_targets, layer_masks),
                 TotalVariationTerm(scale.tv)]
        terms += [PixelTerm(t, name, content.shape) for t, name in ((temporal, TEMPORAL_TERM), (guidance.keep, KEEP_TERM))
                  if t is not None]
        return terms

    def _use(self, term_list: list, loss: LossOptions) -> None:
        """Assign a problem's inputs and weights; the inactive pixel terms are not reported."""
        self._inputs.assign(self.session, term_list)
        self._shown = tuple(name for name in self.terms
                            if not any(isinstance(t, PixelTerm) and t.name == name and not t.temporal.active
                                       for t in term_list))
        self.reweight(loss)

    def retarget(self, content: np.ndarray, styles: list, content_mask: np.ndarray | None = None,
                 temporal: Temporal | None = None, guidance: Guidance | None = None,
                 loss: LossOptions | None = None) -> None:
        """Make this objective another problem of the same graph_key: a content, styles,
        masks and temporal target as Objective's arguments (and `loss`, whose weights,
        blend and style scales may differ), in the built graph and its warmed-up
        session. Computes the new targets and assigns them; builds nothing.

        A term the graph has and the problem leaves out holds nothing: no temporal or
        keep term is Temporal.off, no content mask or style mask is one of ones (the
        unmasked values, to rounding). A term the graph lacks is a ValueError."""
        loss = for_network(loss or self.loss_options, self.network)
        content = np.asarray(content, np.float32)
        shape = content.shape
        # What the graph has and the problem lacks: the neutral input (see above).
        _, _, _, _, _, masked_content, has_temporal, masked_styles, has_keep = self.key
        guidance = guidance or NO_GUIDANCE
        if content_mask is None and masked_content:
            content_mask = np.ones(shape[:2], np.float32)
        if temporal is None and has_temporal:
            temporal = Temporal.off(shape)
        masks = tuple(np.ones(shape[:2], np.float32) if guidance.mask(i) is None and masked else guidance.mask(i)
                      for i, masked in enumerate(masked_styles))
        keep = Temporal.off(shape) if guidance.keep is None and has_keep else guidance.keep
        guidance = dataclasses.replace(guidance, masks=masks if any(masked_styles) else guidance.masks, keep=keep)
        key = graph_key(self.network, content, styles, loss, content_mask, temporal, guidance, self.key[4])
        if key != self.key:
            raise ValueError("this problem does not fit the objective's graph (another size, network, layers, loss "
                             "or set of terms): build an Objective for it")
        problem = problem_digest(content, styles, loss, content_mask, temporal, guidance)
        if problem == self._problem:  # the same targets (a weight sweep): only the weights change
            self.reweight(loss)
            return
        term_list = self.term_list(content, styles, loss, content_mask, temporal, guidance)
        if [term.structure() for term in term_list] != self._structure:
            raise ValueError("this problem's terms do not fit the objective's graph: build an Objective for it")
        self._use(term_list, loss)
        self._problem = problem

    def reweight(self, loss: LossOptions) -> None:
        """Use the content, style and TV weights of `loss` (resolved for the network, as
        transfer.prepare gives them) from now on. Only the weights: everything else that
        defines the graph (layers, targets, size) stays as built (see retarget)."""
        self._weight_feed = weight_feed(self.weights, loss)
        self.loss_options = loss

    def evaluate(self, x: np.ndarray) -> tuple[OrderedDict, np.ndarray]:
        """Loss terms (dict of floats) and gradient (float32, self.shape) at image `x`."""
        terms, grad = self.session.run(self._fetches, {self.image: np.reshape(x, self.shape), **self._weight_feed})
        return OrderedDict((k, float(terms[k])) for k in self._shown), grad

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Objective:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def temporal_terms(temporal, image, name=TEMPORAL_TERM):
    """{name: the weighted term} of a `Temporal` on the (1, H, W, 3) image tensor, with
    its target and mask as constants, or {} without one (the Objective holds them in
    variables instead: PixelTerm)."""
    tf = import_tensorflow()

    if temporal is None:
        return {}
    target, mask = check_temporal(temporal, image.shape[1:])
    return {name: temporal.weight * temporal_loss(image, tf.constant(target[None]), tf.constant(mask[None]))}


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


