"""The objective: loss terms as small objects, one finalized graph per output size.

Data flow, one direction:
    a `Problem` (the content, the styles, the masks, the pixel terms and the loss options
    resolved for the network) -> targets (targets.py, in their own graph) -> term objects
    (terms.py: content, style, TV, and the pixel terms that are used) -> one graph: the
    weighted terms, their total and its gradient -> `Objective.evaluate(x)`, one
    session.run per evaluation.

Adding a term appends one object to the list `Objective.term_list` makes: each term
has a name, `inputs()` (the arrays it compares with: targets, masks, weights that
depend on them) and `build(net, image, inputs)`, its (unweighted) tensor from the
network's features, the image and those inputs as tensors.
The optimisation variable is the image itself in RGB 0..255, shape (1, H, W, 3); the
network's preprocessing is part of the graph, so the optimizer's box is simply [0, 255].

The inputs are variables of the graph, assigned once per problem, not constants baked
into it: an Objective built for one size, network, layers and set of terms serves
another problem of the same `GraphKey` through `retarget` (video.py's frames, a batch
worker's jobs: coarse_to_fine.Objectives keeps them), as the three term weights are
fed (`reweight`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .losses import (
    LOSS_SCALES,
    LossScale,
    StyleStatistic,
    blend_weights,
    content_layer_weights,
    content_size_factor,
    style_layer_weights,
    style_statistic,
)
from .networks.feature_network import FeatureNetwork
from .settings import WRAP_PADDING, LossOptions, for_network
from .targets import TargetGraphs, digest, targets
from .terms import TEMPORAL_TERM, ContentTerm, InputVariables, PixelTarget, PixelTerm, StyleTerm, TotalVariationTerm
from .tf_runtime import import_tensorflow, network_session
from .tileable import wrapping

# The defaults of Objective (frozen, so one instance serves every call).
DEFAULT_LOSS = LossOptions()
# The classic tool's noise initialisation: N(0, 1) * 0.256 around the mean pixel.
NOISE_SCALE = 0.256
LOSS_TERMS = ("content", "style", "tv", "total")
# Optional terms, among an Objective's terms (before "total") only when it has them:
# video.py's temporal consistency (terms.TEMPORAL_TERM, see terms.PixelTarget), and
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
    statistics are then the painting's region's. `keep`: a `PixelTarget` holding the photo
    over a protected subject (--content-mask), or None.
    """

    masks: tuple = ()
    region_masks: tuple = ()
    keep: PixelTarget | None = None

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


# ---------------------------------------------------------------- the problem


@dataclass(frozen=True, eq=False)
class Problem:
    """One transfer problem on one network, as an Objective takes it: the content (H, W, 3)
    float32, the styles, the loss options resolved for the network, and optionally
    `content_mask` (H, W) >= 0, each pixel's content-loss weight relative to an unmasked
    run (1 everywhere = no mask), `temporal` (video.py's terms.PixelTarget) and `guidance`
    (where each style applies, the protected subject).

    Made by `create`, which resolves the loss options for the network once: everything
    downstream takes them as they are. Frozen; compared by identity (it holds arrays):
    `graph_key` and `inputs_digest` say what two problems share."""

    network: FeatureNetwork
    content: np.ndarray
    styles: tuple
    loss: LossOptions  # resolved: settings.for_network
    content_mask: np.ndarray | None = None
    temporal: PixelTarget | None = None
    guidance: Guidance = NO_GUIDANCE

    @classmethod
    def create(cls, network: FeatureNetwork, content: np.ndarray, styles: Sequence, loss: LossOptions = DEFAULT_LOSS,
               content_mask: np.ndarray | None = None, temporal: PixelTarget | None = None,
               guidance: Guidance | None = None) -> Problem:
        """The problem of these arguments (Objective's), with the settings `loss` leaves to
        the network (None) resolved (settings.for_network: the identity for options
        already resolved, as transfer.prepare gives them)."""
        return cls(network, np.asarray(content, np.float32), tuple(styles), for_network(loss, network), content_mask,
                   temporal, guidance or NO_GUIDANCE)

    def inputs_digest(self) -> tuple:
        """What, besides the three fed weights, makes the problem's inputs: the images' and
        masks' pixels and the loss options. Equal digests: equal targets (retarget skips them)."""
        guidance = self.guidance

        def pixel_term(t):
            return None if t is None else (digest(np.asarray(t.target)), digest(np.asarray(t.mask)), float(t.weight),
                                           t.active)

        return (digest(self.content), tuple(digest(np.asarray(s)) for s in self.styles),
                dataclasses.replace(self.loss, content_weight=0.0, style_weight=0.0, tv_weight=0.0),
                digest(self.content_mask), pixel_term(self.temporal), pixel_term(guidance.keep),
                tuple(digest(m) for m in guidance.masks), tuple(digest(m) for m in guidance.region_masks))


@dataclass(frozen=True)
class GraphKey:
    """What fixes an Objective's graph: two problems of the same key share one graph
    (Objective.retarget). Not the images, the masks' values or the style images' sizes
    (a style's statistic is C x C whatever its size), nor the fed weights."""

    network: int  # id() of the network object
    shape: tuple  # the content's (H, W, 3): the output size
    styles: int  # how many styles
    # The loss options but the fed weights (the three term weights, the style blend) and
    # the style scales (only the targets see them).
    loss: LossOptions
    loss_scale: LossScale | None  # the Objective's own, or None for LOSS_SCALES[loss.loss_scale]
    content_mask: bool  # which terms there are, and which styles are masked
    temporal: bool
    style_masks: tuple
    keep: bool


def graph_key(problem: Problem, loss_scale: LossScale | None = None) -> GraphKey:
    """The GraphKey of an Objective of `problem` (and `loss_scale`, Objective's)."""
    structural = dataclasses.replace(problem.loss, content_weight=0.0, style_weight=0.0, tv_weight=0.0,
                                     style_blend_weights=None, style_scales=None)
    count, guidance = len(problem.styles), problem.guidance
    return GraphKey(id(problem.network), tuple(np.shape(problem.content)), count, structural, loss_scale,
                    problem.content_mask is not None, problem.temporal is not None,
                    tuple(guidance.mask(i) is not None for i in range(count)), guidance.keep is not None)


# ---------------------------------------------------------------- the objective


class Objective:
    """Loss terms and gradient of one transfer problem, in one finalized graph.

    `evaluate(x)` runs a single session.run for every loss term and the gradient;
    `retarget` makes it another problem of the same graph_key, `reweight` changes the weights.
    `problem` is the problem it holds, `style_images` its styles at their scale.
    """

    def __init__(self, network: FeatureNetwork, content: np.ndarray, styles: list, loss: LossOptions = DEFAULT_LOSS,
                 content_mask: np.ndarray | None = None, temporal: PixelTarget | None = None,
                 guidance: Guidance | None = None, loss_scale: LossScale | None = None, config: Any = None,
                 graphs: TargetGraphs | None = None):
        """The classic entry: the Objective of Problem.create(network, content, styles, loss,
        content_mask, temporal, guidance) (see Problem and for_problem)."""
        self._build(Problem.create(network, content, styles, loss, content_mask, temporal, guidance), loss_scale, config,
                    graphs)

    @classmethod
    def for_problem(cls, problem: Problem, loss_scale: LossScale | None = None, config: Any = None,
                    graphs: TargetGraphs | None = None) -> Objective:
        """The Objective of `problem`. Optional: `loss_scale`, the LossScale to use instead
        of LOSS_SCALES[loss.loss_scale]; `config`, the session's tf.compat.v1.ConfigProto
        (default tf_runtime.session_config()); `graphs`, a targets.TargetGraphs that
        computes the targets and is kept by the caller (default: a target graph built
        for each problem and closed after it)."""
        objective = cls.__new__(cls)
        objective._build(problem, loss_scale, config, graphs)
        return objective

    def _build(self, problem: Problem, loss_scale: LossScale | None, config: Any, graphs: TargetGraphs | None) -> None:
        tf = import_tensorflow()

        network, loss = problem.network, problem.loss
        self.network, self.shape = network, (1,) + problem.content.shape
        for name in tuple(loss.content_layers) + tuple(loss.style_layers):
            if name not in network.layers:
                raise ValueError(f"layer {name!r} is not in {network.name}")
        assert loss.padding is not None and loss.style_layer_weight_exp is not None  # resolved: Problem.create
        self.key = graph_key(problem, loss_scale)
        scale = loss_scale or LOSS_SCALES[loss.loss_scale]
        # --tileable: the image's TV wraps round and its convolutions wrap (WRAP_PADDING);
        # the targets (targets.py) keep loss.padding, since the photo and the paintings are
        # not periodic: wrapped, the photo's own left-right mismatch would become an edge in
        # the content target that the image would be pulled to paint along its border.
        self._scale = wrapping(scale) if loss.tileable else scale
        self._config, self._graphs = config, graphs
        padding = WRAP_PADDING if loss.tileable else loss.padding
        term_list, style_images = self.term_list(problem)
        self._structure = [term.structure() for term in term_list]

        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, self.shape, name="image")
            needed = tuple(content_layer_weights(loss.content_layers, loss.content_weight_blend)) + tuple(loss.style_layers)
            net = network.features(network.preprocess(self.image), network.deepest(needed), loss.pooling, padding)
            self.weights = term_weights(loss)
            self._inputs = InputVariables()
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
        self.session = network_session(self.graph, config)
        self._use(problem, term_list, style_images)

    def term_list(self, problem: Problem) -> tuple[list, list]:
        """(the term objects of `problem`, in the order their values are reported: content,
        style, TV, then the pixel terms that are used; its style images at their scale).
        Computes the targets; changes nothing of the objective."""
        def compute_targets(network, content, styles, loss, statistic, region_masks):
            return targets(network, content, styles, loss, statistic, region_masks, self._config, self._graphs)

        return problem_terms(problem, self._scale, compute_targets)

    def _use(self, problem: Problem, term_list: list, style_images: list) -> None:
        """Assign a problem's inputs and weights; the inactive pixel terms are not reported."""
        self._inputs.assign(self.session, term_list)
        self._shown = tuple(name for name in self.terms
                            if not any(isinstance(t, PixelTerm) and t.name == name and not t.held.active
                                       for t in term_list))
        self.problem, self.style_images, self._digest = problem, style_images, problem.inputs_digest()
        self.reweight(problem.loss)

    def _with_neutral_terms(self, problem: Problem) -> Problem:
        """`problem` with what the graph has and the problem leaves out made neutral: no
        temporal or keep term is PixelTarget.off, no content mask or style mask is one of
        ones (the unmasked values, to rounding)."""
        key, shape, guidance = self.key, problem.content.shape, problem.guidance
        content_mask, temporal = problem.content_mask, problem.temporal
        if content_mask is None and key.content_mask:
            content_mask = np.ones(shape[:2], np.float32)
        if temporal is None and key.temporal:
            temporal = PixelTarget.off(shape)
        masks = tuple(np.ones(shape[:2], np.float32) if guidance.mask(i) is None and masked else guidance.mask(i)
                      for i, masked in enumerate(key.style_masks))
        keep = PixelTarget.off(shape) if guidance.keep is None and key.keep else guidance.keep
        guidance = dataclasses.replace(guidance, masks=masks if any(key.style_masks) else guidance.masks, keep=keep)
        return dataclasses.replace(problem, content_mask=content_mask, temporal=temporal, guidance=guidance)

    def retarget(self, problem: Problem) -> None:
        """Make this objective `problem`, which must be of its graph_key (its loss's weights,
        blend and style scales may differ), in the built graph and its warmed-up session.
        Computes the new targets and assigns them; builds nothing. A term the graph has
        and the problem leaves out holds nothing (_with_neutral_terms); a term the graph
        lacks is a ValueError."""
        problem = self._with_neutral_terms(problem)
        if graph_key(problem, self.key.loss_scale) != self.key:
            raise ValueError("this problem does not fit the objective's graph (another size, network, layers, loss "
                             "or set of terms): build an Objective for it")
        if problem.inputs_digest() == self._digest:  # the same targets (a weight sweep): only the weights change
            self.problem = problem
            self.reweight(problem.loss)
            return
        term_list, style_images = self.term_list(problem)
        if [term.structure() for term in term_list] != self._structure:
            raise ValueError("this problem's terms do not fit the objective's graph: build an Objective for it")
        self._use(problem, term_list, style_images)

    def reweight(self, loss: LossOptions) -> None:
        """Use the content, style and TV weights of `loss` (resolved for the network, as
        a Problem holds them) from now on. Only the weights: everything else that
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


def problem_terms(problem: Problem, scale: LossScale, compute_targets) -> tuple[list, list]:
    """(the term objects of `problem` under loss `scale`, in the order their values are
    reported: content, style, TV, then the pixel terms that are used; its style images at
    their scale). `compute_targets(network, content, styles, loss, statistic, region_masks)`
    gives (style images, content targets, style targets) as targets.targets does: the
    Objective's own target graph, or tiling.py's tiles."""
    network, loss, guidance = problem.network, problem.loss, problem.guidance
    count = len(problem.styles)
    content_weights = content_layer_weights(loss.content_layers, loss.content_weight_blend)
    style_weights = style_layer_weights(loss.style_layers, float(loss.style_layer_weight_exp or 0.0))
    statistic = statistic_of(loss.style_loss, scale)
    style_images, content_targets, style_targets = compute_targets(
        network, problem.content, problem.styles, loss, statistic, guidance.region_masks)
    blend = guidance.blend(blend_weights(count, loss.style_blend_weights))
    layer_masks = [None if guidance.mask(i) is None
                   else network.mask_weights(guidance.mask(i), tuple(style_weights), loss.pooling)
                   for i in range(count)]
    relative_scale = network.relative_content_scale * content_size_factor(problem.content.shape,
                                                                          loss.content_size_power)
    terms = [ContentTerm(content_weights, content_targets, scale.content, problem.content_mask, statistic.relative,
                         relative_scale),
             StyleTerm(statistic, style_weights, blend, style_targets, layer_masks),
             TotalVariationTerm(scale.tv)]
    terms += [PixelTerm(t, name, problem.content.shape)
              for t, name in ((problem.temporal, TEMPORAL_TERM), (guidance.keep, KEEP_TERM)) if t is not None]
    return terms, style_images


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


