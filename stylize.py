"""The algorithm: Gatys et al. style transfer as one tf.compat.v1 graph, optimised by
SciPy's L-BFGS-B (through an `Evaluator`) or by Adam, on the same objective.

Data flow, one direction:
    targets (computed once, in their own short-lived graph)
      -> loss terms (small pure functions) -> one finalized graph: loss terms + gradient
      -> Evaluator (loss and gradient of one x, cached on x) -> L-BFGS-B | Adam
      -> progress reported to the caller through a callback; nothing is printed here.

The optimisation variable is the image itself in RGB 0..255, shape (1, H, W, 3). The
network's preprocessing (mean, channel order) is part of the graph, so the box bounds
of L-BFGS-B are simply [0, 255] and no clipping is ever needed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from neural_style_tf import images
from neural_style_tf.feature_network import halve_mask
from neural_style_tf.settings import (
    CONTENT_WEIGHT_BLEND,
    OPTIMIZERS,
    STYLE_LAYER_WEIGHT_EXP,
    STYLE_LOSSES,
    STYLE_SCALE,
    LossOptions,
    OptimizerOptions,
    for_network,
)
from neural_style_tf.tf_runtime import import_tensorflow, session_config

# The defaults of Objective and minimize (frozen, so one instance serves every call).
DEFAULT_LOSS = LossOptions()
DEFAULT_OPTIMIZER = OptimizerOptions()
# The classic tool's noise initialisation: N(0, 1) * 0.256 around the mean pixel.
NOISE_SCALE = 0.256
LOSS_TERMS = ("content", "style", "tv", "total")
# An optional term, among an Objective's terms (before "total") only when it has one:
# video.py's temporal consistency (see Temporal).
TEMPORAL_TERM = "temporal"
# And the protected subject's (--content-mask): the photo held there (see Guidance).
KEEP_TERM = "keep"


# ---------------------------------------------------------------- weights of layers


def content_layer_weights(layers, blend=CONTENT_WEIGHT_BLEND):
    """Per-layer content weights, as the classic tool's --content-weight-blend.

    With the classic pair (relu4_2, relu5_2), relu4_2 gets `blend` and relu5_2 gets
    1 - blend. With more layers the rest share 1 - blend; a single layer gets 1.
    Layers of weight 0 are dropped, so they are never computed.
    """
    layers = tuple(layers)
    if not layers:  # no content term at all (pure texture synthesis)
        return OrderedDict()
    if len(layers) == 1:
        weights = {layers[0]: 1.0}
    else:
        rest = (1.0 - blend) / (len(layers) - 1)
        weights = {layers[0]: blend, **{name: rest for name in layers[1:]}}
    return OrderedDict((k, v) for k, v in weights.items() if v != 0)


def style_layer_weights(layers, exp=STYLE_LAYER_WEIGHT_EXP):
    """weight(layer n+1) = exp * weight(layer n), normalised to sum to 1 (classic tool)."""
    raw = [exp**i for i in range(len(layers))]
    total = sum(raw)
    return OrderedDict((name, w / total) for name, w in zip(layers, raw))


def blend_weights(count, weights=None):
    """Style blend weights normalised to sum to 1; equal when not given."""
    weights = [1.0] * count if weights is None else [float(w) for w in weights]
    total = sum(weights)
    return [w / total for w in weights]


# ---------------------------------------------------------------- pure loss functions
# Each takes tensors and returns a tensor. A *loss scale* is one consistent set of them
# (see LOSS_SCALES): how the Gram matrix and each term are normalised.
#
# "classic" is the classic TensorFlow tool's: per-element means, and Gram matrices
# divided by H*W*C. It differs from Gatys et al. (sums, 1/(4 N^2 M^2)); the means keep
# the default weights meaningful across image sizes.


def gram_matrix(features):
    """G = F^T F / (H W C) for features of shape (1, H, W, C) (classic normalisation)."""
    tf = import_tensorflow()

    shape = tf.shape(features)
    channels = features.shape[-1]
    flat = tf.reshape(features, (-1, channels))
    size = tf.cast(shape[1] * shape[2] * shape[3], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / size


def content_loss(features, target):
    """Mean squared difference between features and their target."""
    tf = import_tensorflow()

    return tf.reduce_mean(tf.square(features - target))


def style_loss(gram, target_gram):
    """Mean squared difference between a Gram matrix and its target."""
    tf = import_tensorflow()

    return tf.reduce_mean(tf.square(gram - target_gram))


def total_variation(image):
    """Mean squared difference between vertical neighbours, plus the same horizontally."""
    tf = import_tensorflow()

    dy = image[:, 1:, :, :] - image[:, :-1, :, :]
    dx = image[:, :, 1:, :] - image[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))


def temporal_loss(image, target, mask):
    """Mean over reliable pixels of the squared difference to `target` (Ruder et al. 2016).

    `image` and `target` (1, H, W, C), `mask` (1, H, W) of weights 0..1:
    sum(mask (image - target)^2) / (C sum(mask)). Ruder et al. divide by all H W C
    pixels instead; the mean over the reliable ones keeps --temporal-weight meaning the
    same whether a frame has much or little disocclusion.
    """
    tf = import_tensorflow()

    weights = tf.expand_dims(tf.cast(mask, image.dtype), -1)
    count = tf.maximum(tf.reduce_sum(weights) * float(image.shape[-1]), 1e-6)
    return tf.reduce_sum(weights * tf.square(image - target)) / count


@dataclass(frozen=True)
class Temporal:
    """A term weight * temporal_loss(image, target, mask) that holds pixels to a target:
    video.py's temporal term (the previous result warped into this frame, the mask its
    reliability), and the protected subject's "keep" term (the photo, the mask
    --content-mask, see Guidance)."""

    target: np.ndarray  # (H, W, 3)
    mask: np.ndarray  # (H, W): how much each pixel is held to `target`, 0..1
    weight: float


@dataclass(frozen=True)
class LossScale:
    """One consistent normalisation of the loss terms.

    gram(features) -> G; content(features, target) -> scalar; style(G, target_G) ->
    scalar for one layer; tv(image) -> scalar.
    """

    gram: object
    content: object
    style: object
    tv: object
    description: str = ""


# The size at which "normalized" equals "classic" (long side, pixels), so that the
# classic default weights keep their meaning there.
REFERENCE_SIZE = 512


def total_variation_normalized(image):
    """`total_variation` measured on the REFERENCE_SIZE grid: multiplied by (long side / 512)^2.

    Why: the content and style terms are already means (content per element, Gram per
    position and channel), and measured at initialisation they agree within ~15%
    between 256 and 1024 px. The TV term is the one that drifts: for a smooth picture
    a neighbour difference shrinks as 1/size, so its square falls by 4x each time the
    size doubles, and the same --tv-weight smooths less at a larger size. Scaling by
    (size/512)^2 makes it a size-independent measure of the picture (a finite-difference
    gradient in units of the 512 px grid); at 512 px it is exactly the classic term.
    """
    tf = import_tensorflow()

    shape = tf.shape(image)
    long_side = tf.cast(tf.maximum(shape[1], shape[2]), image.dtype)
    return total_variation(image) * tf.square(long_side / REFERENCE_SIZE)


LOSS_SCALES = {
    "classic": LossScale(gram_matrix, content_loss, style_loss, total_variation,
                         "the classic TensorFlow tool's: per-element means, Gram / (H W C)"),
    "normalized": LossScale(gram_matrix, content_loss, style_loss, total_variation_normalized,
                            f"classic, with TV measured on the {REFERENCE_SIZE} px grid: equal to classic at "
                            f"{REFERENCE_SIZE} px, independent of the size elsewhere"),
}


# ---- the paper's losses (Gatys, Ecker & Bethge 2016) and the authors' later code
# F is the (M, N) matrix of one layer's features: M = H W positions, N channels.


def gram_per_position(features):
    """G / M = F^T F / M for features of shape (1, H, W, C).

    The paper's Gram matrix is G = F^T F, unnormalised. Dividing both G and its target
    A by M (equal sizes: the preset resizes the style to the content's size) turns
    sum((G - A)^2) / (4 N^2 M^2) into sum((G/M - A/M)^2) / (4 N^2): the same number,
    computed without the huge intermediate values of an unnormalised Gram in float32,
    and without the style term needing M.
    """
    tf = import_tensorflow()

    shape = tf.shape(features)
    flat = tf.reshape(features, (-1, features.shape[-1]))
    positions = tf.cast(shape[1] * shape[2], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / positions


def content_loss_half_sum(features, target):
    """The paper's content loss: 1/2 sum (F - P)^2."""
    tf = import_tensorflow()

    return 0.5 * tf.reduce_sum(tf.square(features - target))


def style_loss_gatys2016(gram_m, target_gram_m):
    """The paper's E_l = sum((G - A)^2) / (4 N^2 M^2), from G/M and A/M (see gram_per_position)."""
    tf = import_tensorflow()

    channels = float(gram_m.shape[-1])
    return tf.reduce_sum(tf.square(gram_m - target_gram_m)) / (4.0 * channels**2)


def style_loss_gatys_pytorch(gram_m, target_gram_m):
    """The authors' later PyTorch code: (1e3 / N^2) * MSE(G/M, A/M) for one layer.

    Their per-layer weight 1e3/N_l^2 lives here because it depends on the layer. They
    *sum* the layers while the Objective averages them (w_l = 1/L, exp 1), so their
    preset sets the style weight to L (see presets.py).
    """
    tf = import_tensorflow()

    channels = float(gram_m.shape[-1])
    return (1e3 / channels**2) * tf.reduce_mean(tf.square(gram_m - target_gram_m))


LOSS_SCALES["gatys2016"] = LossScale(
    gram_per_position, content_loss_half_sum, style_loss_gatys2016, total_variation,
    "Gatys et al. 2016: 1/2 sum (F-P)^2, sum (G-A)^2 / (4 N^2 M^2), TV as classic (the preset sets its weight 0)")
LOSS_SCALES["gatys-pytorch"] = LossScale(
    gram_per_position, content_loss, style_loss_gatys_pytorch, total_variation,
    "the authors' PyTorch code: MSE(F, P), (1e3/N^2) MSE(G/M, A/M), TV as classic (weight 0 in the preset)")


# ---- style statistics beyond the Gram matrix (--style-loss; docs/quality.md)
# A style statistic is computed from one layer's features by `compute` (a tuple of
# tensors), turned once into the target's constants by `prepare` (NumPy), and compared
# by `loss`. The Gram matrix is the classic one; the two below separate the mean of the
# features from their covariance, which the Gram matrix mixes (G = C + mu mu^T): a Gram
# target can be met by shifting every feature's mean instead of reproducing the
# painting's correlations, one source of the washed-out, grey results.


def feature_moments(features, weights=None):
    """(mean (C,), covariance (C, C)) of features (1, H, W, C), over the H W positions.

    With `weights` (H, W) >= 0 (a guidance mask at this layer, see guided_gram), the
    weighted mean and covariance: sum w f / sum w and sum w (f - mean)(f - mean)^T / sum w.
    """
    tf = import_tensorflow()

    flat = tf.reshape(features, (-1, features.shape[-1]))
    if weights is None:
        mean = tf.reduce_mean(flat, axis=0)
        centred = flat - mean
        positions = tf.cast(tf.shape(flat)[0], features.dtype)
        return mean, tf.matmul(centred, centred, transpose_a=True) / positions
    w = tf.reshape(tf.cast(weights, features.dtype), (-1, 1))
    mass = mask_mass(w)
    mean = tf.reduce_sum(flat * w, axis=0) / mass
    centred = flat - mean
    return mean, tf.matmul(centred * w, centred, transpose_a=True) / mass


def mask_mass(weights):
    """sum(weights), kept above 0: a layer's statistic of an empty region is 0, not NaN."""
    tf = import_tensorflow()

    return tf.maximum(tf.reduce_sum(weights), 1e-12)


def guided_gram(gram, features, weights=None):
    """A loss scale's Gram matrix `gram(features)` of the positions weighted by `weights`
    (H, W) >= 0: the guided Gram matrix of Gatys et al. 2017 (Controlling Perceptual
    Factors), normalised by the mask's mass instead of the image size.

    Every loss scale's Gram matrix is sum over positions of f f^T divided by the number
    of positions H W (times constants), so the features are weighted by sqrt(w) and the
    result multiplied by H W / sum(w): sum w f f^T / sum(w) (times the same constants).
    The paper multiplies the features by the mask itself (weights w^2); for the binary
    masks it uses the two are equal, and w keeps soft edges a linear blend. An all-ones
    mask gives `gram(features)` exactly (sqrt(1) = 1, and H W / sum(1) = 1 in float32).
    """
    tf = import_tensorflow()

    if weights is None:
        return gram(features)
    w = tf.cast(weights, features.dtype)
    positions = tf.cast(tf.size(w), features.dtype)
    return gram(features * tf.sqrt(w)[None, :, :, None]) * (positions / mask_mass(w))


def style_loss_mean_cov(moments, target):
    """Squared distance of means plus that of covariances, each per channel (sum over the
    channels of the mean's, mean over rows of the covariance's summed squares).

    Divided by the channel count C like this, both parts keep the size of a per-channel
    squared statistic, whatever the layer's width; then by the painting's spread squared
    (see target_spread)."""
    tf = import_tensorflow()

    mean, cov = moments
    target_mean, target_cov, variance = target[0], target[1], target[-1]
    channels = float(mean.shape[-1])
    distance = tf.reduce_sum(tf.square(mean - target_mean)) + tf.reduce_sum(tf.square(cov - target_cov)) / channels
    return MEAN_COV_SCALE * distance / (channels * variance**2)


def target_spread(mean, cov):
    """The painting's mean feature variance per channel, the unit of the new style losses.

    Floored at 1% of the mean squared activation: a map of one position (a deep layer of
    a tiny style image) has no variance at all, and its loss must stay finite.
    """
    channels = cov.shape[0]
    variance = float(np.trace(cov)) / channels
    mean_square = variance + float(np.sum(np.square(mean, dtype=np.float64))) / channels
    return np.float32(max(variance, 0.01 * mean_square, 1e-12))


def mean_cov_target(moments):
    """The constants of the mean-cov loss: (mean, covariance, the painting's spread)."""
    mean, cov = (np.asarray(m, np.float32) for m in moments)
    return mean, cov, target_spread(mean, cov)


def sqrtm_psd(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix (NumPy, float64)."""
    values, vectors = np.linalg.eigh(np.asarray(matrix, np.float64))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def w2_target(moments):
    """The constants of the W2 loss for target moments: (mean, covariance, its square root,
    its trace, the painting's spread)."""
    mean, cov = (np.asarray(m, np.float64) for m in moments)
    cov = (cov + cov.T) / 2
    return (mean.astype(np.float32), cov.astype(np.float32), sqrtm_psd(cov).astype(np.float32),
            np.float32(np.trace(cov)), target_spread(mean, cov))


# Why these scales: each new loss is divided by the painting's own mean feature variance
# per layer (target_spread; squared for mean-cov, whose terms are squared statistics), so that every
# layer counts in relative terms whatever the size of its activations, and then by a
# constant that gives the style gradient the size of the Gram loss's at the same
# --style-weight: measured at the content start on the Neckarfront x Starry Night, 256 px,
# embedded network (docs/quality.md). The classic flags keep their meaning.
W2_SCALE = 10.0
MEAN_COV_SCALE = 30.0


# Eigenvalues below this (relative to the largest) count as 0 in the W2 trace term: the
# derivative of sqrt is infinite at 0, and the smallest eigenvalues of a covariance of
# ReLU features are 0 up to rounding.
W2_EIG_FLOOR = 1e-8


def trace_sqrt(matrix):
    """tr(M^1/2) of a symmetric PSD matrix: the sum of the square roots of its eigenvalues.

    Its gradient is written out, (1/2) V diag(1/sqrt(lambda)) V^T, because TensorFlow's
    gradient of eigh divides by the differences of eigenvalues: a covariance of more
    channels than positions (relu5_1 at 256 px: 512 channels, 192 positions) has many
    equal (zero) eigenvalues, and that gradient is NaN. Eigenvalues below W2_EIG_FLOOR
    of the largest count as 0 in both.
    """
    tf = import_tensorflow()

    @tf.custom_gradient
    def _trace_sqrt(m):
        # In float64: the small eigenvalues, whose roots change fastest, are lost in float32.
        values, vectors = tf.linalg.eigh(tf.cast(m, tf.float64))
        kept = values > W2_EIG_FLOOR * tf.maximum(tf.reduce_max(values), 1e-30)
        roots = tf.sqrt(tf.where(kept, values, tf.ones_like(values)))
        result = tf.cast(tf.reduce_sum(tf.where(kept, roots, tf.zeros_like(roots))), m.dtype)

        def grad(upstream):
            half_inverse = tf.where(kept, 0.5 / roots, tf.zeros_like(roots))
            return upstream * tf.cast(tf.matmul(vectors * half_inverse, vectors, transpose_b=True), m.dtype)

        return result, grad

    return _trace_sqrt(matrix)


def style_loss_w2(moments, target):
    """Squared Wasserstein-2 distance between the Gaussians of the features and of the
    target, per channel and in units of the painting's spread v (target_spread):

        (|mu - mu_t|^2 + tr C + tr C_t - 2 tr (C_t^1/2 C C_t^1/2)^1/2) / (C_count v)

    The trace of the matrix square root is the sum of the square roots of the
    eigenvalues of the symmetric C_t^1/2 C C_t^1/2 (see trace_sqrt).
    """
    tf = import_tensorflow()

    # In float64: near the optimum the distance is a small difference of large traces
    # (tr C + tr C_t - 2 tr(...)^1/2), and in float32 its rounding is a noise of about 1e-6
    # of the total loss, the size of L-BFGS's last steps: SciPy's line search and
    # convergence test then stop it early (docs/lbfgs-vs-adam.md). The statistics stay
    # float32; only this formula (a few 512x512 products per layer) is float64.
    mean, cov = (tf.cast(m, tf.float64) for m in moments)
    target_mean, target_cov, target_root, target_trace, spread = target
    channels = float(mean.shape[-1])
    root = tf.cast(target_root, tf.float64)
    product = tf.matmul(tf.matmul(root, cov), root)
    root_trace = trace_sqrt((product + tf.transpose(product)) / 2)  # symmetric to rounding, as eigh assumes
    distance = (tf.reduce_sum(tf.square(mean - tf.cast(target_mean, tf.float64))) + tf.linalg.trace(cov)
                + tf.cast(target_trace, tf.float64) - 2.0 * root_trace)
    return tf.cast(W2_SCALE * distance / (channels * tf.cast(spread, tf.float64)), moments[1].dtype)


@dataclass(frozen=True)
class StyleStatistic:
    """compute(features, weights=None) -> tuple of tensors; prepare(tuple of arrays) -> tuple of target
    constants; loss(statistic, target constants) -> scalar tensor for one layer."""

    compute: object
    prepare: object
    loss: object
    description: str = ""


def style_statistic(loss_options):
    """The StyleStatistic of a run: --style-loss, with the loss scale's Gram matrix for 'gram'.

    Every `compute(features, weights=None)` takes an optional guidance mask at the
    layer's size (--style-masks): the statistic of the positions it weights."""
    name = loss_options.style_loss
    if name == "gram":
        scale = LOSS_SCALES[loss_options.loss_scale]
        return StyleStatistic(lambda f, w=None: (guided_gram(scale.gram, f, w),), tuple,
                              lambda g, t: scale.style(g[0], t[0]), "Gram matrix, as the loss scale normalises it")
    if name == "mean-cov":
        return StyleStatistic(feature_moments, mean_cov_target, style_loss_mean_cov,
                              "squared distance of means and covariances")
    if name == "w2":
        return StyleStatistic(feature_moments, w2_target, style_loss_w2, "Wasserstein-2 between Gaussians")
    raise ValueError(f"style loss must be one of {STYLE_LOSSES}, not {name!r}")


# ---------------------------------------------------------------- targets


def compute_targets(network, content, styles, content_layers, style_layers, pooling, gram=gram_matrix,
                    padding="zero", style_masks=None):
    """Content features and style statistics, computed once in their own graph.

    `content` is RGB (H, W, 3); `styles` a list of RGB images, already at their scale.
    `gram(features)` is the style statistic: a tensor or a tuple of tensors (see
    StyleStatistic). `style_masks`: None, or one (h, w) mask per style over that style
    image (or None for the whole image); a masked style's statistic is computed as
    `gram(features, weights)` with the mask brought to each layer (network.mask_weights).
    Returns ({layer: features}, [{layer: statistic}, ...]) as float32 NumPy arrays
    (tuples of them for a tuple statistic).
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
        with tf.compat.v1.Session(graph=graph, config=session_config()) as sess:
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


# ---------------------------------------------------------------- the objective


def term_weights(loss, network):
    """The content, style and TV weights as scalar inputs of the graph, defaulting to `loss`'s.

    They are fed, not baked in as constants, so that Objective.reweight can change them in
    the built graph: a batch worker's weight sweep reuses one graph and its warmed-up session.
    """
    tf = import_tensorflow()

    values = (loss.content_weight, loss.style_weight, for_network(loss, network).tv_weight)
    return OrderedDict((name, tf.compat.v1.placeholder_with_default(np.float32(v), (), name=f"{name}_weight"))
                       for name, v in zip(("content", "style", "tv"), values))


def targets(network, content, styles, loss, statistic, guidance=NO_GUIDANCE):
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
        tuple(loss.style_layers), loss.pooling, statistic.compute, loss.padding, regions)
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


class Objective:
    """Loss terms and gradient of one transfer problem, in one finalized graph.

    `evaluate(x)` runs a single session.run for every loss term and the gradient.
    """

    def __init__(self, network, content, styles, loss=DEFAULT_LOSS, content_mask=None, temporal=None,
                 guidance=None):
        """Optional: `content_mask` (H, W) >= 0, each pixel's content-loss weight relative to an
        unmasked run (1 everywhere = no mask); `temporal`, a `Temporal`; `guidance`, a
        `Guidance` (where each style applies)."""
        tf = import_tensorflow()

        loss = for_network(loss, network)  # the network's defaults for what the caller left open
        guidance = guidance or NO_GUIDANCE
        content = np.asarray(content, np.float32)
        self.network = network
        self.loss_options = loss
        self.shape = (1,) + content.shape
        self.content = content
        for name in tuple(loss.content_layers) + tuple(loss.style_layers):
            if name not in network.layers:
                raise ValueError(f"layer {name!r} is not in {network.name}")

        content_weights = content_layer_weights(loss.content_layers, loss.content_weight_blend)
        style_weights = style_layer_weights(loss.style_layers, loss.style_layer_weight_exp)
        statistic = style_statistic(loss)
        self.style_images, content_targets, style_targets = targets(network, content, styles, loss, statistic,
                                                                    guidance)
        blend = guidance.blend(blend_weights(len(styles), loss.style_blend_weights))
        layer_masks = [None if guidance.mask(i) is None else network.mask_weights(guidance.mask(i), tuple(style_weights),
                                                                                  loss.pooling)
                       for i in range(len(styles))]
        scale = LOSS_SCALES[loss.loss_scale]

        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.compat.v1.placeholder(tf.float32, self.shape, name="image")
            needed = tuple(content_weights) + tuple(style_weights)
            net = network.features(network.preprocess(self.image), network.deepest(needed), loss.pooling, loss.padding)

            content_term = tf.add_n(
                [w * masked_content(scale.content, net[n], content_targets[n], content_mask) for n, w in content_weights.items()]
            ) if content_weights else tf.constant(0.0)
            style_term = guided_style_term(statistic, net, style_weights, blend, style_targets, layer_masks)
            self.weights = term_weights(loss, network)
            unweighted = {"content": content_term, "style": style_term, "tv": scale.tv(self.image)}
            terms = OrderedDict((name, self.weights[name] * term) for name, term in unweighted.items())
            terms.update(temporal_terms(temporal, self.image))
            terms.update(temporal_terms(guidance.keep, self.image, KEEP_TERM))
            terms["total"] = tf.add_n(list(terms.values()))
            self.terms = terms
            self.gradient = tf.gradients(terms["total"], self.image)[0]
            self._fetches = (dict(terms), self.gradient)
        # A finalized graph cannot grow: nothing is added, retraced or recompiled
        # between evaluations.
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config())
        self.reweight(loss)

    def reweight(self, loss):
        """Use the content, style and TV weights of `loss` from now on. Only the weights:
        everything else that defines the graph (layers, targets, size) stays as built."""
        loss = for_network(loss, self.network)  # as __init__ resolves it
        self.loss_options = loss
        values = (loss.content_weight, loss.style_weight, loss.tv_weight)
        self._weight_feed = {self.weights[k]: np.float32(v) for k, v in zip(("content", "style", "tv"), values)}

    def evaluate(self, x):
        """Loss terms (dict of floats) and gradient (float32, self.shape) at image `x`."""
        terms, grad = self.session.run(self._fetches, {self.image: np.reshape(x, self.shape), **self._weight_feed})
        return OrderedDict((k, float(terms[k])) for k in self.terms), grad

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
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


def pool_mask(mask, shape):
    """Average-pool a (H, W) mask by 2x2 blocks until it is (h, w) = shape[:2].

    The network's pooling layers halve with 'SAME' padding (out = ceil(in / 2)), so the
    mask is edge-padded to an even size and block-averaged the same way, which keeps
    it aligned with the feature map of each layer.
    """
    mask = np.asarray(mask, np.float32)
    while mask.shape[0] > shape[0] or mask.shape[1] > shape[1]:
        mask = halve_mask(mask)
    if mask.shape != tuple(shape[:2]):
        raise ValueError(f"mask of shape {mask.shape} does not pool to {tuple(shape[:2])}")
    return mask


def masked_content(content_fn, features, target, mask=None):
    """`content_fn` on features and target both weighted by sqrt(mask).

    Weighting both by sqrt(m) weights each squared difference by m, whatever the loss
    scale's normalisation: m is each pixel's content weight relative to an unmasked run
    (pooled to the layer, see pool_mask). The caller normalises it (masks.content_weights:
    transparent pixels 0, the rest scaled so that their mean stays 1). Without a mask this is exactly `content_fn(features, target)`.
    """
    tf = import_tensorflow()

    if mask is None:
        return content_fn(features, tf.constant(target))
    m = pool_mask(mask, target.shape[1:3])
    root = np.sqrt(m)[None, :, :, None].astype(np.float32)
    return content_fn(features * tf.constant(root), tf.constant(target * root))


def prepare_style(style, content_width, style_scale=STYLE_SCALE):
    """Resize a style image so its width is `style_scale` times the content's (classic tool)."""
    return images.resize_to_width(np.asarray(style, np.float32), max(1, int(round(style_scale * content_width))))


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


class BudgetExhausted(Exception):
    """Raised inside the optimizer when the evaluation or time budget is used up."""


class NonFiniteLoss(Exception):
    """Raised inside the optimizer when the loss or gradient stops being finite."""


class Evaluator:
    """Loss and gradient for SciPy, computed together and cached on x.

    `loss(x)` and `grads(x)` both look at the cache first: called with the x of the
    last evaluation they return its values, with any other x they evaluate again. No
    call order is assumed. It also remembers the lowest-loss image ever evaluated,
    counts evaluations, enforces budgets, and reports each evaluation to `on_evaluation`.
    """

    def __init__(self, objective, max_evaluations=None, time_budget=None, on_evaluation=None):
        self.objective = objective
        self.max_evaluations = max_evaluations
        self.time_budget = time_budget
        self.on_evaluation = on_evaluation
        self.evaluations = 0
        self.session_seconds = 0.0
        self.start = time.perf_counter()
        self.best_loss = math.inf
        self.best_x = None
        self.best_terms = None
        self._x = None
        self._terms = None
        self._grad = None

    def _ensure(self, x):
        # The cache key is x as the graph sees it, in float32: two float64 x that round to
        # the same float32 image have exactly the same loss and gradient. This makes the
        # float32 cast the only copy of x (it is also the cached and the best image).
        x = np.array(x, dtype=np.float32)
        if self._x is not None and x.shape == self._x.shape and np.array_equal(x, self._x):
            return
        if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
            raise BudgetExhausted(f"evaluation budget of {self.max_evaluations} reached")
        if self.time_budget is not None and self.elapsed() >= self.time_budget:
            raise BudgetExhausted(f"time budget of {self.time_budget:g} s reached")
        t0 = time.perf_counter()
        terms, grad = self.objective.evaluate(x)
        self.session_seconds += time.perf_counter() - t0
        self.evaluations += 1
        self._x = x
        self._terms = terms
        # SciPy's L-BFGS-B works in float64: this is the one conversion at its boundary.
        self._grad = grad.ravel().astype(np.float64)
        total = terms["total"]
        if not (math.isfinite(total) and np.isfinite(grad).all()):
            raise NonFiniteLoss(f"loss became {total} at evaluation {self.evaluations}")
        if total < self.best_loss:
            self.best_loss = total
            self.best_x = self._x
            self.best_terms = terms
        if self.on_evaluation is not None:
            self.on_evaluation(self.evaluations, self.elapsed(), terms)

    def elapsed(self):
        return time.perf_counter() - self.start

    def loss(self, x):
        self._ensure(x)
        return self._terms["total"]

    def grads(self, x):
        self._ensure(x)
        return self._grad

    def terms(self, x):
        """All loss terms at x (evaluating only if x is not the cached one)."""
        self._ensure(x)
        return self._terms

    def best_image(self):
        shape = self.objective.shape[1:]
        return None if self.best_x is None else np.asarray(self.best_x, np.float32).reshape(shape)


# ---------------------------------------------------------------- optimisation


@dataclass
class Progress:
    """What the optimizer reports after each iteration (an L-BFGS iteration or an Adam step).

    `evaluations` counts loss-and-gradient evaluations so far, which for L-BFGS is at
    least `iteration` (its line search may evaluate several times per iteration).
    """

    iteration: int
    iterations: int
    evaluations: int
    elapsed: float
    terms: dict
    best_loss: float
    evaluator: Evaluator = field(repr=False)

    def best_image(self):
        return self.evaluator.best_image()


@dataclass
class Result:
    image: np.ndarray | None  # the lowest-loss image evaluated, RGB float32 (H, W, 3)
    terms: dict | None  # its loss terms
    iterations: int
    evaluations: int
    elapsed: float
    stop_reason: str  # "completed", "budget", "converged", "interrupted", "nonfinite", "stopped"
    message: str = ""

    @property
    def ok(self):
        return self.stop_reason not in ("nonfinite", "interrupted")


def lbfgs_scale(gradient, first_step):
    """The s of x = s * y that makes L-BFGS-B's first step move x by `first_step` grey levels RMS.

    With every variable boxed, SciPy's L-BFGS-B takes as its first trial step the
    gradient itself (unit Hessian, step length 1). The style loss's gradient is tiny per
    pixel (about 1e-2 to 1e-4 here), so the first step barely moves the image and the
    line search spends 15-20 evaluations growing it. In y = x / s the gradient is s g,
    the step s g in y is s^2 g in x: s = sqrt(first_step / RMS(g)) makes it first_step
    grey levels RMS. A uniform scale changes nothing after that first step (L-BFGS
    rescales its Hessian estimate from the first pair of steps on), so only the wasted
    start is removed. This deviates from the classic tools, which give SciPy the pixels
    as they are (first_step 0 does too).
    """
    rms = float(np.sqrt(np.mean(np.square(gradient, dtype=np.float64))))
    return math.sqrt(first_step / rms) if first_step > 0 and rms > 0 else 1.0


def _lbfgs(evaluator, x0, opts, report):
    from scipy.optimize import fmin_l_bfgs_b

    n = x0.size
    x = x0.ravel().astype(np.float64)
    # The gradient at x0 is evaluated here, once: SciPy's first call finds it cached.
    s = lbfgs_scale(evaluator.grads(x), opts.lbfgs_first_step) if opts.lbfgs_first_step > 0 else 1.0
    # One L-BFGS-B run for the whole job: restarting it would throw away its history.
    # Box bounds keep every pixel in 0..255 without any clipping. The Evaluator sees x = s y
    # (its cache and best image are in pixels); the gradient in y is s times the gradient in x.
    _, _, info = fmin_l_bfgs_b(
        lambda y: evaluator.loss(y * s),
        x / s,
        fprime=lambda y: evaluator.grads(y * s) * s,
        bounds=[(0.0, 255.0 / s)] * n,
        m=opts.lbfgs_corrections,
        maxiter=opts.iterations,
        maxfun=max(15000, 2 * opts.iterations + 10),
        callback=lambda yk: report(evaluator.terms(yk * s), yk * s),
    )
    return info


def _adam(evaluator, x0, opts, report):
    """Adam on the same Evaluator, with TensorFlow's update rule (as the classic tool).

    Unlike the classic tool, pixels are projected back into 0..255 after each step, so
    that both optimizers search the same box; the lowest-loss image is kept.
    """
    x = x0.ravel().astype(np.float64)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = opts.beta1, opts.beta2
    for t in range(1, opts.iterations + 1):
        terms = evaluator.terms(x)
        g = evaluator.grads(x)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step = opts.learning_rate * math.sqrt(1 - b2**t) / (1 - b1**t)
        x -= step * m / (np.sqrt(v) + opts.epsilon)
        np.clip(x, 0.0, 255.0, out=x)
        report(terms, x)


class IterateAverage:
    """A bias-corrected exponential moving average of the iterates (as Adam's moments).

    Why: Adam's iterates keep jittering around the minimum by about the learning rate,
    which shows as a fine noise mesh; their average does not (crowsonkb's tool returns
    it). The bias correction makes the average of the first few iterates their mean
    rather than a fraction of it.
    """

    def __init__(self, decay):
        self.decay = float(decay)
        self.value = None
        self.weight = 0.0

    def update(self, x):
        x = np.asarray(x, np.float64).ravel()
        if self.value is None:
            self.value = np.zeros_like(x)
        self.value *= self.decay
        self.value += (1.0 - self.decay) * x
        self.weight = self.weight * self.decay + (1.0 - self.decay)

    def get(self):
        return None if self.value is None else (self.value / self.weight).astype(np.float32)


def _averaged(result, average, objective):
    """`result` with the averaged iterate as its image and that image's own loss terms
    (one more evaluation, outside any budget: the result's loss is always measured)."""
    x = average.get()
    if x is None:
        return result
    terms, _ = objective.evaluate(x)
    return dataclasses.replace(result, image=x.reshape(objective.shape[1:]), terms=terms)


def minimize(objective, x0, opts=DEFAULT_OPTIMIZER, callback=None, on_evaluation=None):
    """Minimise `objective` from image `x0`; return the lowest-loss image as a `Result`.

    `callback(progress)` is called after every iteration; `on_evaluation(index,
    seconds, terms)` after every evaluation. Ctrl-C (KeyboardInterrupt) stops the run
    and returns the best image so far with stop_reason "interrupted".
    """
    if opts.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {opts.optimizer!r}")
    evaluator = Evaluator(objective, opts.max_evaluations, opts.time_budget, on_evaluation)
    average = IterateAverage(opts.iterate_average) if opts.iterate_average > 0 else None
    iteration = 0

    def report(terms, x):
        nonlocal iteration
        iteration += 1
        if average is not None:
            average.update(x)
        if callback is not None:
            callback(Progress(iteration, opts.iterations, evaluator.evaluations, evaluator.elapsed(),
                              terms, evaluator.best_loss, evaluator))

    stop, message = "completed", ""
    try:
        if opts.optimizer == "lbfgs":
            info = _lbfgs(evaluator, np.asarray(x0, np.float32), opts, report)
            if iteration < opts.iterations:
                text = info.get("task", "")
                message = text.decode() if isinstance(text, bytes) else str(text)
                stop = "converged" if info.get("warnflag", 0) == 0 else "stopped"
        else:
            _adam(evaluator, np.asarray(x0, np.float32), opts, report)
    except BudgetExhausted as exc:
        stop, message = "budget", str(exc)
    except NonFiniteLoss as exc:
        stop, message = "nonfinite", str(exc)
    except KeyboardInterrupt:
        stop, message = "interrupted", "interrupted"
    result = Result(
        image=evaluator.best_image(),
        terms=evaluator.best_terms,
        iterations=iteration,
        evaluations=evaluator.evaluations,
        elapsed=evaluator.elapsed(),
        stop_reason=stop,
        message=message,
    )
    # With averaging the result is the average, not the lowest-loss iterate: its loss is a
    # little higher, but it is the image without the iterates' jitter.
    return _averaged(result, average, objective) if average is not None and stop != "nonfinite" else result
