"""The loss terms as small pure functions, and the statistics they compare.

Each function takes tensors (or NumPy arrays, for the targets' constants) and returns
a tensor; none builds a graph of its own or keeps state. objective.py composes them
into one graph. TensorFlow is imported where a function builds ops, never at import.

    layer weights       content_layer_weights, style_layer_weights, blend_weights
    loss terms          content_loss, style_loss, total_variation (wrap: --tileable), temporal_loss
    loss scales         LossScale, LOSS_SCALES (--loss-scale): classic, normalized, the paper's two
    style statistics    StyleStatistic, style_statistic (--style-loss): Gram, mean-cov, W2
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .feature_statistics import feature_moments, gram_product, mask_mass, trace_sqrt, trace_sqrt_of_factor, w2_moments
from .networks.feature_network import halve_mask
from .settings import (
    CONTENT_SIZE_POWER,
    CONTENT_SIZE_REFERENCE,
    CONTENT_SIZE_SMALLEST,
    CONTENT_WEIGHT_BLEND,
    STYLE_LAYER_WEIGHT_EXP,
    STYLE_LOSSES,
)
from .tf_runtime import import_tensorflow

# A tf.Tensor: typed loosely, since TensorFlow is imported only where a graph is built.
Tensor = Any

# ---------------------------------------------------------------- weights of layers


def content_layer_weights(layers: Sequence[str], blend: float = CONTENT_WEIGHT_BLEND) -> OrderedDict[str, float]:
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


def style_layer_weights(layers: Sequence[str], exp: float = STYLE_LAYER_WEIGHT_EXP) -> OrderedDict[str, float]:
    """weight(layer n+1) = exp * weight(layer n), normalised to sum to 1 (classic tool)."""
    raw = [exp**i for i in range(len(layers))]
    total = sum(raw)
    return OrderedDict((name, w / total) for name, w in zip(layers, raw))


def blend_weights(count: int, weights: Sequence[float] | None = None) -> list[float]:
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


def gram_matrix(features: Tensor) -> Tensor:
    """G = F^T F / (H W C) for features of shape (1, H, W, C) (classic normalisation)."""
    tf = import_tensorflow()

    shape = tf.shape(features)
    channels = features.shape[-1]
    flat = tf.reshape(features, (-1, channels))
    size = tf.cast(shape[1] * shape[2] * shape[3], features.dtype)
    return gram_product(flat) / size


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference between features and their target."""
    tf = import_tensorflow()

    return tf.reduce_mean(tf.square(features - target))


def style_loss(gram: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared difference between a Gram matrix and its target."""
    tf = import_tensorflow()

    return tf.reduce_mean(tf.square(gram - target_gram))


def total_variation(image: Tensor, wrap: bool = False) -> Tensor:
    """Mean squared difference between vertical neighbours, plus the same horizontally.

    Its gradient is written out, 2 (d_(i-1) - d_i) / n along each axis (d the neighbour
    differences, zero beyond the edges, as two pads): TensorFlow's own goes through the
    slices' StridedSliceGrad, 27-33 ms of an evaluation at 512 px on 2 cores.

    `wrap` (--tileable): the picture is periodic, so the last row's neighbour is the first
    row (and the same for the columns): see tileable.total_variation_wrapped."""
    if wrap:
        from .tileable import total_variation_wrapped

        return total_variation_wrapped(image)
    tf = import_tensorflow()

    @tf.custom_gradient
    def tv(x):
        dy = x[:, 1:, :, :] - x[:, :-1, :, :]
        dx = x[:, :, 1:, :] - x[:, :, :-1, :]

        def grad(upstream):
            gy = (2.0 / tf.cast(tf.size(dy), x.dtype)) * dy
            gx = (2.0 / tf.cast(tf.size(dx), x.dtype)) * dx
            zero, one = [0, 0], [1, 0]
            return upstream * (tf.pad(gy, [zero, one, zero, zero]) - tf.pad(gy, [zero, one[::-1], zero, zero])
                               + tf.pad(gx, [zero, zero, one, zero]) - tf.pad(gx, [zero, zero, one[::-1], zero]))

        return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx)), grad

    return tv(image)


def temporal_loss(image: Tensor, target: Tensor, mask: Tensor) -> Tensor:
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
class LossScale:
    """One consistent normalisation of the loss terms.

    gram(features) -> G; content(features, target) -> scalar; style(G, target_G) ->
    scalar for one layer; tv(image, wrap=False) -> scalar (wrap: --tileable, tileable.wrapping).
    """

    gram: Callable[[Tensor], Tensor]
    content: Callable[[Tensor, Tensor], Tensor]
    style: Callable[[Tensor, Tensor], Tensor]
    tv: Callable[..., Tensor]
    description: str = ""
    # How each term is made of sums over positions, for the tiled evaluation (tiling.py):
    # the Gram matrix is sum f f^T / (positions x channels), or / positions only;
    gram_per_channel: bool = True
    # the content loss is sum (F - P)^2 / elements (a mean), or 1/2 sum (F - P)^2;
    content_mean: bool = True
    # TV is multiplied by (long side / REFERENCE_SIZE)^2 (total_variation_normalized).
    tv_reference_grid: bool = False


# The size at which "normalized" equals "classic" (long side, pixels), so that the
# classic default weights keep their meaning there.
REFERENCE_SIZE = 512


def total_variation_normalized(image: Tensor, wrap: bool = False) -> Tensor:
    """`total_variation` measured on the REFERENCE_SIZE grid: multiplied by (long side / 512)^2.

    Why: the content and style terms are already means (content per element, Gram per
    position and channel), and measured at initialisation they agree within ~15%
    between 256 and 1024 px. The TV term is the one that drifts: for a smooth picture
    a neighbour difference shrinks as 1/size, so its square falls by 4x each time the
    size doubles, and the same --tv-weight smooths less at a larger size. Scaling by
    (size/512)^2 makes it a size-independent measure of the picture (a finite-difference
    gradient in units of the 512 px grid); at 512 px it is exactly the classic term.
    `wrap`: as total_variation's (--tileable).
    """
    tf = import_tensorflow()

    shape = tf.shape(image)
    long_side = tf.cast(tf.maximum(shape[1], shape[2]), image.dtype)
    return total_variation(image, wrap) * tf.square(long_side / REFERENCE_SIZE)


# ---- the paper's losses (Gatys, Ecker & Bethge 2016) and the authors' later code
# F is the (M, N) matrix of one layer's features: M = H W positions, N channels.


def gram_per_position(features: Tensor) -> Tensor:
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
    return gram_product(flat) / positions


def content_loss_half_sum(features: Tensor, target: Tensor) -> Tensor:
    """The paper's content loss: 1/2 sum (F - P)^2."""
    tf = import_tensorflow()

    return 0.5 * tf.reduce_sum(tf.square(features - target))


def style_loss_gatys2016(gram_m: Tensor, target_gram_m: Tensor) -> Tensor:
    """The paper's E_l = sum((G - A)^2) / (4 N^2 M^2), from G/M and A/M (see gram_per_position)."""
    tf = import_tensorflow()

    channels = float(gram_m.shape[-1])
    return tf.reduce_sum(tf.square(gram_m - target_gram_m)) / (4.0 * channels**2)


def style_loss_gatys_pytorch(gram_m: Tensor, target_gram_m: Tensor) -> Tensor:
    """The authors' later PyTorch code: (1e3 / N^2) * MSE(G/M, A/M) for one layer.

    Their per-layer weight 1e3/N_l^2 lives here because it depends on the layer. They
    *sum* the layers while the Objective averages them (w_l = 1/L, exp 1), so their
    preset sets the style weight to L (see presets.py).
    """
    tf = import_tensorflow()

    channels = float(gram_m.shape[-1])
    return (1e3 / channels**2) * tf.reduce_mean(tf.square(gram_m - target_gram_m))


# Every loss scale, declared once: the name is --loss-scale's (settings.LOSS_SCALE_CHOICES).
LOSS_SCALES = {
    "classic": LossScale(gram_matrix, content_loss, style_loss, total_variation,
                         "the classic TensorFlow tool's: per-element means, Gram / (H W C)"),
    "normalized": LossScale(gram_matrix, content_loss, style_loss, total_variation_normalized,
                            f"classic, with TV measured on the {REFERENCE_SIZE} px grid: equal to classic at "
                            f"{REFERENCE_SIZE} px, independent of the size elsewhere", tv_reference_grid=True),
    "gatys2016": LossScale(
        gram_per_position, content_loss_half_sum, style_loss_gatys2016, total_variation,
        "Gatys et al. 2016: 1/2 sum (F-P)^2, sum (G-A)^2 / (4 N^2 M^2), TV as classic (the preset sets its weight 0)",
        gram_per_channel=False, content_mean=False),
    "gatys-pytorch": LossScale(
        gram_per_position, content_loss, style_loss_gatys_pytorch, total_variation,
        "the authors' PyTorch code: MSE(F, P), (1e3/N^2) MSE(G/M, A/M), TV as classic (weight 0 in the preset)",
        gram_per_channel=False),
}


# ---- style statistics beyond the Gram matrix (--style-loss; docs/quality.md)
# A style statistic is computed from one layer's features by `compute` (a tuple of
# tensors), turned once into the target's constants by `prepare` (NumPy), and compared
# by `loss`. The Gram matrix is the classic one; the two below separate the mean of the
# features from their covariance, which the Gram matrix mixes (G = C + mu mu^T): a Gram
# target can be met by shifting every feature's mean instead of reproducing the
# painting's correlations, one source of the washed-out, grey results.


def guided_gram(gram: Callable[[Tensor], Tensor], features: Tensor, weights: Tensor | None = None) -> Tensor:
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


def style_loss_mean_cov(moments: tuple[Tensor, Tensor], target: tuple) -> Tensor:
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


def target_spread(mean: np.ndarray, cov: np.ndarray) -> np.float32:
    """The painting's mean feature variance per channel, the unit of the new style losses.

    Floored at 1% of the mean squared activation: a map of one position (a deep layer of
    a tiny style image) has no variance at all, and its loss must stay finite.
    """
    channels = cov.shape[0]
    variance = float(np.trace(cov)) / channels
    mean_square = variance + float(np.sum(np.square(mean, dtype=np.float64))) / channels
    return np.float32(max(variance, 0.01 * mean_square, 1e-12))


def mean_cov_target(moments: tuple) -> tuple:
    """The constants of the mean-cov loss: (mean, covariance, the painting's spread)."""
    mean, cov = (np.asarray(m, np.float32) for m in moments)
    return mean, cov, target_spread(mean, cov)


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (NumPy, float64)."""
    values, vectors = np.linalg.eigh(np.asarray(matrix, np.float64))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def w2_target(moments: tuple) -> tuple:
    """The constants of the W2 loss for target moments: (mean, covariance, its square root,
    its trace, the painting's spread)."""
    mean, cov = (np.asarray(m, np.float64) for m in moments[:2])  # not w2_moments's factor
    cov = (cov + cov.T) / 2
    return (mean.astype(np.float32), cov.astype(np.float32), sqrtm_psd(cov).astype(np.float32),
            np.float32(np.trace(cov)), target_spread(mean, cov))


# Why these scales: each new loss is divided by the painting's mean feature variance per layer
# (target_spread; squared for mean-cov), so every layer counts relatively whatever its
# activations' size, then by a constant giving the style gradient the Gram loss's size at the
# same --style-weight (content start, Neckarfront x Starry Night, 256 px, docs/quality.md).
W2_SCALE = 10.0
MEAN_COV_SCALE = 30.0


def style_loss_w2(moments: tuple[Tensor, Tensor], target: tuple) -> Tensor:
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
    mean, cov = (tf.cast(m, tf.float64) for m in moments[:2])
    target_mean, target_cov, target_root, target_trace, spread = target
    channels = float(mean.shape[-1])
    if len(moments) > 2:  # w2_moments's factor: fewer positions than channels
        root_trace = trace_sqrt_of_factor(tf.cast(moments[2], tf.float64), tf.cast(target_cov, tf.float64))
    else:
        root_trace = trace_sqrt(cov, tf.cast(target_root, tf.float64))
    distance = (tf.reduce_sum(tf.square(mean - tf.cast(target_mean, tf.float64))) + tf.linalg.trace(cov)
                + tf.cast(target_trace, tf.float64) - 2.0 * root_trace)
    # distance times (scale / (C v)), not (scale distance) / (C v): the same numbers as
    # when the spread v was a constant of the graph, which Grappler folded into this one
    # factor; the Objective now holds v in a variable (terms.InputVariables), and this order keeps
    # its results bit-identical.
    factor = W2_SCALE * tf.math.reciprocal(channels * tf.cast(spread, tf.float64))
    return tf.cast(distance * factor, moments[1].dtype)


@dataclass(frozen=True)
class StyleStatistic:
    """compute(features, weights=None) -> tuple of tensors; prepare(tuple of arrays) -> tuple of target
    constants; loss(statistic, target constants) -> scalar tensor for one layer."""

    compute: Callable[..., tuple]
    prepare: Callable[[tuple], tuple]
    loss: Callable[[tuple, tuple], Tensor]
    description: str = ""
    # from_sums(sum w f, sum w f f^T, sum w) -> the statistic, as `compute` gives it: what
    # the tiled evaluation (tiling.py) makes of the sums it gathers tile by tile. NumPy
    # arrays or tensors alike.
    from_sums: Callable[..., tuple] | None = None
    # A relative loss is in units of the painting's own spread (target_spread): its size
    # does not depend on how large the network's activations are. With one, the content
    # term is made relative too (relative_content_weight), so that the balance of the two,
    # and so every default weight, means the same on any network.
    relative: bool = False


# Why: the content loss grows as the square of the network's activations (6,000x larger on
# ImageNet VGG-19 than on HED's VGG-16 at relu4_2: mean square 4.0e5 against 67, Neckarfront,
# 192 px), the relative style losses do not, so VGG-19's content term held the photo (its
# gradient 2,000x the W2 term's). Each content layer divided by its target's mean square is a
# relative error; the network's scale (settings.RELATIVE_CONTENT_SCALE, _VGG) sets what
# --content-weight 5 means on it.


def moments_from_sums(s1: Any, s2: Any, mass: Any) -> tuple:
    """(mean, covariance) from sum w f, sum w f f^T and sum w: feature_moments's, as
    sum w (f - mu)(f - mu)^T = sum w f f^T - mass mu mu^T (NumPy arrays or tensors)."""
    mean = s1 / mass
    return mean, s2 / mass - mean[:, None] * mean[None, :]


def relative_content_weight(target: np.ndarray, scale: float) -> float:
    """The factor of a content layer's loss with a relative style loss: the network's `scale`
    (FeatureNetwork.relative_content_scale) over the mean square of the layer's target features."""
    mean_square = float(np.mean(np.square(np.asarray(target, np.float64))))
    return scale / max(mean_square, 1e-12)


def content_size_factor(shape: Sequence[int], power: float = CONTENT_SIZE_POWER) -> float:
    """How much more the relative content term weighs for an image of `shape` (H, W, ...):
    (CONTENT_SIZE_REFERENCE / long side) ** power below the reference size, 1 from it up.

    Why: the defaults were balanced at 512 px, and the balance moves with the size. At 128 px a
    deep layer's cell is an eighth of the frame, where the photo's houses and the painting's
    strokes give alike features, so the content term barely resists; the painting's own forms
    (moon, cypress) replace the town (issue 35; docs/quality.md#one-look-at-every-size). Above
    512 px it stays 1 (coarse-to-fine starts there, and larger sizes kept the 512 px look), and
    below CONTENT_SIZE_SMALLEST px at its value there (not measured below)."""
    side = min(max(int(shape[0]), int(shape[1])), CONTENT_SIZE_REFERENCE)
    return float((CONTENT_SIZE_REFERENCE / max(side, CONTENT_SIZE_SMALLEST)) ** power)


def style_statistic(style_loss: str, scale: LossScale) -> StyleStatistic:
    """The StyleStatistic of --style-loss `style_loss`, with `scale`'s Gram matrix for 'gram'.

    Every `compute(features, weights=None)` takes an optional guidance mask at the
    layer's size (--style-masks): the statistic of the positions it weights."""
    name = style_loss
    if name == "gram":
        def gram_from_sums(s1, s2, mass):
            return (s2 / (mass * (float(s2.shape[-1]) if scale.gram_per_channel else 1.0)),)

        return StyleStatistic(lambda f, w=None: (guided_gram(scale.gram, f, w),), tuple,
                              lambda g, t: scale.style(g[0], t[0]), "Gram matrix, as the loss scale normalises it",
                              gram_from_sums)
    if name == "mean-cov":
        return StyleStatistic(feature_moments, mean_cov_target, style_loss_mean_cov,
                              "squared distance of means and covariances", moments_from_sums, relative=True)
    if name == "w2":
        return StyleStatistic(w2_moments, w2_target, style_loss_w2, "Wasserstein-2 between Gaussians",
                              moments_from_sums, relative=True)
    raise ValueError(f"style loss must be one of {STYLE_LOSSES}, not {name!r}")


# ---------------------------------------------------------------- targets


def pool_mask(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
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
