"""NumPy references for the tests of the algorithm, and the small pictures they are fed.

    the network   reference_net: a VGG's layers from HWIO weights in float64 NumPy (run_net:
                  the graph's own, for comparison); relu_features for the presets' formulas
    the loss      reference_terms: every loss term from scratch with the classic formulas;
                  np_style_loss, np_temporal, np_guided_gram: one statistic or term each
    pictures      random_image, smooth, example_at, random_input

A plain module (not test_*), imported by the tests of vgg_network, vgg_files, embedded,
normalization, losses, objective, presets and coarse_to_fine.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.linalg
from numpy.lib.stride_tricks import sliding_window_view

from neural_style_tf import images, losses
from neural_style_tf.networks import vgg_network
from neural_style_tf.tf_runtime import import_tensorflow, initialize_weights, network_session

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


# ---------------------------------------------------------------- pictures


SIZE = 16


def random_image(seed, shape=(SIZE, SIZE, 3), low=0.0, high=255.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def smooth(height, width, phase):
    """A smooth picture defined in relative coordinates: the same picture at any size."""
    y, x = np.mgrid[:height, :width] / np.array([height, width])[:, None, None]
    return np.stack([128 + 100 * np.sin(2 * np.pi * (2 * x + phase)),
                     128 + 100 * np.cos(2 * np.pi * (1.5 * y + x)),
                     128 + 80 * np.sin(2 * np.pi * (x + y + phase))], -1).astype(np.float32)


def example_at(name, width=32):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, name)), width)


# Odd sizes on purpose: SAME pooling then pads one row/column at the bottom/right.
INPUT_SHAPE = (1, 9, 11, 3)


def random_input(seed=0, shape=INPUT_SHAPE):
    """A preprocessed (mean-subtracted) image: values around +-50, like real input."""
    return np.random.default_rng(seed).normal(0.0, 50.0, size=shape).astype(np.float32)


# ---------------------------------------------------------------- the network in NumPy


# np.pad's names for the convolutions' paddings (settings.PADDINGS).
NP_PAD_MODES = {"zero": "constant", "replicate": "edge", "reflect": "reflect", "wrap": "wrap"}


def np_conv_same(x, kernel, bias, padding="zero"):
    """TensorFlow's conv2d (cross-correlation), stride 1, SAME size, plus bias. x is [H, W, C]."""
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((top, kh - 1 - top), (left, kw - 1 - left), (0, 0)), mode=NP_PAD_MODES[padding])
    windows = sliding_window_view(padded, (kh, kw), axis=(0, 1))  # [H, W, C, kh, kw]
    return np.einsum("hwcij,ijco->hwo", windows, kernel.astype(np.float64)) + bias


def np_pool_same(x, pooling):
    """2x2 stride-2 pooling with TensorFlow's SAME padding: an odd size gets one padded
    row/column at the end, which max ignores and avg leaves out of the count."""
    h, w, c = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    padded = np.full((2 * oh, 2 * ow, c), np.nan)
    padded[:h, :w] = x
    blocks = padded.reshape(oh, 2, ow, 2, c)
    return np.nanmax(blocks, axis=(1, 3)) if pooling == "max" else np.nanmean(blocks, axis=(1, 3))


def reference_net(layers, weights, x, pooling="max", padding="zero"):
    """{layer: [H, W, C] float64} computed with NumPy from HWIO weights; x is [1, H, W, C].
    `padding` is every convolution's."""
    out, current = {}, x[0].astype(np.float64)
    for name in layers:
        kind = vgg_network.layer_kind(name)
        if kind == "conv":
            current = np_conv_same(current, *weights[name], padding)
        elif kind == "relu":
            current = np.maximum(current, 0.0)
        else:
            current = np_pool_same(current, pooling)
        out[name] = current
    return out


def run_net(network, x, pooling="max", last=None, padding="zero"):
    """Build the network's features in a fresh graph and evaluate every layer on `x`."""
    tf = import_tensorflow()
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        image = tf.compat.v1.placeholder(tf.float32, shape=x.shape)
        net = network.features(image, last, pooling, padding)
        initialize_weights(sess)
        values = sess.run(net, feed_dict={image: x})
    return {name: value[0] for name, value in values.items()}


def relative_error(actual, expected):
    scale = max(np.abs(expected).max(), 1e-12)
    return float(np.abs(actual - expected).max() / scale)


def relu_features(network, rgb, layers, pooling):
    """{layer: (M, N) float64 features} of one image, from vgg_network.net_preloaded."""
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1,) + rgb.shape)
        net = vgg_network.net_preloaded(network, network.preprocess(image), pooling)
        with network_session(graph) as sess:
            out = sess.run({n: net[n] for n in layers}, {image: rgb[None]})
    return {n: v.reshape(-1, v.shape[-1]).astype(np.float64) for n, v in out.items()}


# ---------------------------------------------------------------- the loss terms in NumPy


def np_gram(features):
    h, w, c = features.shape
    flat = features.reshape(-1, c)
    return flat.T @ flat / (h * w * c)


def np_moments(features):
    """(mean, covariance) over the positions of features [H, W, C], float64."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), np.cov(flat, rowvar=False, bias=True)


def np_style_loss(kind, features, target_features):
    """One layer's style loss, from scratch: Gram MSE, mean-cov, or W2 with SciPy's sqrtm.

    The new losses are divided by the painting's mean feature variance v (squared for
    mean-cov) and multiplied by their calibration constant, as stylize documents."""
    if kind == "gram":
        return np.mean((np_gram(features) - np_gram(target_features)) ** 2)
    (mean, cov), (t_mean, t_cov) = np_moments(features), np_moments(target_features)
    channels = mean.size
    variance = max(np.trace(t_cov) / channels, 0.01 * (np.trace(t_cov) + np.sum(t_mean**2)) / channels, 1e-12)
    if kind == "mean-cov":
        distance = np.sum((mean - t_mean) ** 2) + np.sum((cov - t_cov) ** 2) / channels
        return losses.MEAN_COV_SCALE * distance / (channels * variance**2)
    root = scipy.linalg.sqrtm(t_cov)
    cross = np.real(np.trace(scipy.linalg.sqrtm(root @ cov @ root)))
    distance = np.sum((mean - t_mean) ** 2) + np.trace(cov) + np.trace(t_cov) - 2 * cross
    return losses.W2_SCALE * distance / (channels * variance)


def reference_terms(network, x, content, styles, loss):
    """Every loss term computed from scratch in float64 NumPy, with the classic formulas."""
    padding = loss.padding or network.default_padding

    def net(image):
        return reference_net(network.layers, network.weights, network.preprocess(image[None].astype(np.float64)),
                             loss.pooling, padding)

    feats, content_feats = net(x), net(content)
    style_feats = [net(s) for s in styles]
    cw = losses.content_layer_weights(loss.content_layers, loss.content_weight_blend)
    exp = network.default_style_layer_weight_exp if loss.style_layer_weight_exp is None else loss.style_layer_weight_exp
    sw = losses.style_layer_weights(loss.style_layers, exp)
    blend = losses.blend_weights(len(styles), loss.style_blend_weights)
    # With a relative style loss (W2, mean-cov) each content layer is relative too: times
    # the network's relative content scale over the mean square of its target
    # (losses.relative_content_weight).
    # Below 512 px (the long side) that scale grows as (512 / long side) ** --content-size-power,
    # held at its 128 px value below 128 px (losses.content_size_factor).
    relative = loss.style_loss in ("w2", "mean-cov")
    side = min(max(max(content.shape[:2]), 128), 512)
    size_factor = (512.0 / side) ** loss.content_size_power
    content_term = sum(w * np.mean((feats[n] - content_feats[n]) ** 2)
                       * (network.relative_content_scale * size_factor / np.mean(content_feats[n] ** 2)
                          if relative else 1.0)
                       for n, w in cw.items())
    style_term = sum(
        b * sum(w * np_style_loss(loss.style_loss, feats[n], sf[n]) for n, w in sw.items())
        for b, sf in zip(blend, style_feats)
    )
    img = x.astype(np.float64)
    tv = np.mean((img[1:] - img[:-1]) ** 2) + np.mean((img[:, 1:] - img[:, :-1]) ** 2)
    terms = {"content": loss.content_weight * content_term, "style": loss.style_weight * style_term,
             "tv": loss.tv_weight * tv}
    terms["total"] = sum(terms.values())
    return terms


def np_temporal(x, target, mask):
    """Ruder et al.'s temporal loss as a mean over reliable pixels: sum(c (x - w)^2) / (C sum(c))."""
    c = mask.astype(np.float64)[..., None]
    return float((c * (x.astype(np.float64) - target) ** 2).sum() / (x.shape[-1] * c.sum()))


def np_guided_gram(features, weights, per_channel=True):
    """sum_p w_p f_p f_p^T / sum_p w_p, divided by C as the classic Gram matrix is."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    w = weights.reshape(-1).astype(np.float64)
    gram = (w[:, None] * flat).T @ flat / w.sum()
    return gram / flat.shape[1] if per_channel else gram


def constant_bytes(graph_def):
    """Bytes of the values of every Const node in `graph_def`: what a graph carries of its
    own, as opposed to what its sessions hold (variables)."""
    tf = import_tensorflow()
    return sum(tf.make_ndarray(node.attr["value"].tensor).nbytes for node in graph_def.node if node.op == "Const")
