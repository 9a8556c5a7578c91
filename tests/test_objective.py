"""objective.py: the objective graph against NumPy (and its gradient against finite
differences), the content mask, the size-independent loss scale, the temporal term,
guided styles (spatial control) and the initial image (one graph retargeted to other
problems: test_problem.py; the style images' size: test_targets.py).

Everything runs on the tiny network of conftest.py and 16-96 px images.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from numpy_reference import (
    EXAMPLES,
    SIZE,
    constant_bytes,
    np_guided_gram,
    np_temporal,
    random_image,
    reference_net,
    reference_terms,
    smooth,
)

from neural_style_tf import images, losses, optimize
from neural_style_tf.objective import (
    LOSS_TERMS,
    NOISE_SCALE,
    Guidance,
    Objective,
    initial_image,
)
from neural_style_tf.settings import RELATIVE_CONTENT_SCALE_VGG, LossOptions, OptimizerOptions, for_network
from neural_style_tf.targets import TargetGraph
from neural_style_tf.terms import TEMPORAL_TERM, PixelTarget
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()


# ---------------------------------------------------------------- the objective against NumPy


@pytest.mark.parametrize(("pooling", "padding", "style_loss"), [
    ("max", "zero", "gram"), ("avg", "zero", "gram"), ("max", "replicate", "gram"), ("avg", "reflect", "mean-cov"),
    ("max", None, "w2"), ("avg", "zero", "w2"),
])
def test_objective_terms_match_numpy_with_two_styles_and_every_weight(tiny_network, content, style, pooling, padding,
                                                                      style_loss):
    second_style = random_image(12, (12, 12, 3))
    loss = LossOptions(content_weight=3.0, content_weight_blend=0.6, style_weight=70.0, tv_weight=0.5,
                               style_layer_weight_exp=1.5, style_blend_weights=(1.0, 3.0), style_scales=(1.0, 0.5),
                               pooling=pooling, padding=padding, style_loss=style_loss)
    x = random_image(13)
    with Objective(tiny_network, content, [style, second_style], loss) as obj:
        # Styles are resized to scale x the content's width, as the classic tool does.
        assert [s.shape[1] for s in obj.style_images] == [SIZE, SIZE // 2]
        terms, grad = obj.evaluate(x)
        expected = reference_terms(tiny_network, x, content, obj.style_images, loss)
    assert list(terms) == list(LOSS_TERMS)
    for key in LOSS_TERMS:
        assert terms[key] == pytest.approx(expected[key], rel=2e-3), key
    assert min(terms[k] for k in ("content", "style", "tv")) > 0  # every term is actually exercised
    assert grad.shape == (1, SIZE, SIZE, 3) and grad.dtype == np.float32


def test_objective_total_is_the_sum_of_its_named_terms(objective):
    terms, _ = objective.evaluate(random_image(1))
    assert list(terms) == ["content", "style", "tv", "total"]
    assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-5)


def test_objective_at_the_content_has_no_content_loss(objective, content):
    terms, _ = objective.evaluate(content)
    assert terms["content"] == pytest.approx(0.0, abs=1e-6 * terms["total"])
    assert terms["style"] > 0


def test_objective_graph_is_finalized_and_evaluations_are_repeatable(objective):
    """Nothing is added, retraced or recompiled between evaluations: the graph refuses new
    ops, and the same image gives exactly the same terms and gradient later on."""
    assert objective.graph.finalized
    ops = len(objective.graph.get_operations())
    with objective.graph.as_default(), pytest.raises(RuntimeError, match="finalized"):
        tf.constant(1.0)
    x = random_image(3)
    first_terms, first_grad = objective.evaluate(x)
    for seed in range(2):
        objective.evaluate(random_image(seed))
    terms, grad = objective.evaluate(x)
    assert terms == first_terms
    np.testing.assert_array_equal(grad, first_grad)
    assert len(objective.graph.get_operations()) == ops


@pytest.mark.parametrize("style_loss", ["gram", "w2"])
def test_objective_holds_the_weights_once_and_computes_what_constants_did(tiny_network, content, style, style_loss):
    """The objective's GraphDef carries none of the network's weights (its session holds
    them, as variables); and its terms and gradient are those of the same graph with every
    variable frozen into a constant, which is how the weights were held before."""
    loss = LossOptions(style_loss=style_loss, padding="replicate")
    x = random_image(3)
    with Objective(tiny_network, content, [style], loss) as obj:
        graph_def = obj.graph.as_graph_def()
        weights = tiny_network.weight_bytes(tiny_network.deepest(tuple(loss.content_layers) + tuple(loss.style_layers)))
        # No constant of a kernel's shape, and fewer constant bytes in all than the weights
        # (the rest: the loss's scalars and the zeros that the targets' variables start from).
        kernels = {k.shape for k, _ in tiny_network.weights.values()}
        assert not kernels & {tf.make_ndarray(n.attr["value"].tensor).shape for n in graph_def.node if n.op == "Const"}
        assert constant_bytes(graph_def) < weights
        terms, grad = obj.evaluate(x)
        total, gradient = obj.terms["total"], obj.gradient
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            obj.session, graph_def, [total.op.name, gradient.op.name])
        feed = {obj.image.name: x[None], **{t.name: v for t, v in obj._weight_feed.items()}}
    assert constant_bytes(frozen) > weights  # the weights (and the targets) frozen in
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(frozen, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            frozen_total, frozen_grad = sess.run([total.name, gradient.name], feed)
    assert terms["total"] == pytest.approx(float(frozen_total), rel=1e-6)
    np.testing.assert_allclose(grad, frozen_grad, rtol=1e-5, atol=1e-6 * np.abs(frozen_grad).max())


def test_objective_rejects_an_unknown_layer(tiny_network, content, style):
    with pytest.raises(ValueError, match="relu9_9"):
        Objective(tiny_network, content, [style], LossOptions(style_layers=("relu1_1", "relu9_9")))


def test_objective_without_content_layers_has_no_content_term(tiny_network, content, style):
    loss = LossOptions(content_layers=())
    with Objective(tiny_network, content, [style], loss) as obj:
        terms, grad = obj.evaluate(random_image(2))
    assert terms["content"] == 0.0 and terms["style"] > 0 and np.abs(grad).max() > 0


# ---------------------------------------------------------------- gradient against finite differences


GRADIENT_CASES = {
    "content": dict(content_weight=1.0, style_weight=0.0, tv_weight=0.0, content_weight_blend=0.5),
    "style": dict(content_weight=0.0, style_weight=1.0, tv_weight=0.0, style_layer_weight_exp=1.3, style_loss="gram"),
    # W2 is differentiable only where the covariance has full rank: at 16 px the deep
    # layers have fewer positions than channels (relu4_1: 4 positions), and there tr sqrt
    # grows like sqrt(h), which no difference quotient follows. The shallow layers have
    # full rank here, as every layer has at real sizes.
    "style-w2": dict(content_weight=0.0, style_weight=1.0, tv_weight=0.0, style_layer_weight_exp=1.3, style_loss="w2",
                     style_layers=("relu1_1", "relu2_1", "relu3_1")),
    "style-mean-cov": dict(content_weight=0.0, style_weight=1.0, tv_weight=0.0, style_loss="mean-cov"),
    "tv": dict(content_weight=0.0, style_weight=0.0, tv_weight=1.0),
    # The classic TV weight (the Gram loss's default; W2's is 1000x smaller): a TV term
    # that weighs in the total, as it did when it was LossOptions' default.
    # The content term at 512 px's balance: at 16 px losses.content_size_factor (16) would make
    # it the whole total, whose kinks the difference quotient then crosses (the "content" case
    # checks the content gradient with the factor).
    "all": dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), tv_weight=100.0, content_size_power=0.0),
    "all-gram-zero-padding": dict(style_loss="gram", padding="zero"),
    "all-avg-pooling": dict(pooling="avg", style_loss="gram"),
}


# The W2 loss is a difference of traces (tr C + tr C_t - 2 tr sqrt(...)), which loses
# float32 digits to cancellation: its values are noisy at the 1e-5 level, so its
# difference quotient needs a longer step (measured: 0.03 is off by ~5%, 0.1-0.3 within
# 0.1%, on the same gradient).
# 0.1%, on the same gradient); 2% bounds what is left of that noise. Since every
# convolution is replicate-padded (issue 23) the 16 px maps' edges cross more kinks:
# along one direction 0.2 was off by 3.1%, 0.1 by 0.6%, 0.05 by 0.06%.
STEP = {"style-w2": 0.05, "all": 0.2}


TOLERANCE = {"style-w2": 2e-2, "all": 2e-2}


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_gradient_matches_central_differences(tiny_network, content, style, case):
    """check_grad along random directions: the graph's gradient g at x against
    (L(x + h d) - L(x - h d)) / 2h, d with unit-variance entries, h in pixel units.

    Two limits set h. The network is piecewise linear (ReLU, max pooling), so a large
    step crosses kinks and the difference stops being a derivative (h = 0.5 is already
    off by a few %). The loss is float32, so a tiny step drowns in rounding: its error
    is about 2^-24 |L| / h. h = 0.03 keeps both well under 1% here, and the rounding
    bound is part of the tolerance; a wrong factor or a wrong term would be off by far more.
    """
    loss = LossOptions(**GRADIENT_CASES[case])
    rng = np.random.default_rng(5)
    x = random_image(6, low=40.0, high=215.0).astype(np.float64)  # away from the box edges
    h = STEP.get(case, 0.03)
    with Objective(tiny_network, content, [style], loss) as obj:
        _, grad = obj.evaluate(x)
        grad = grad[0].astype(np.float64)
        for _ in range(3):
            d = rng.standard_normal(x.shape)
            plus, _ = obj.evaluate(x + h * d)
            minus, _ = obj.evaluate(x - h * d)
            numeric = (plus["total"] - minus["total"]) / (2 * h)
            analytic = float(np.sum(grad * d))
            rounding = 4 * 2.0**-24 * (abs(plus["total"]) + abs(minus["total"])) / (2 * h)
            assert rounding < 0.1 * abs(analytic), "the check would be meaningless at this step"
            assert abs(numeric - analytic) <= TOLERANCE.get(case, 1e-2) * abs(analytic) + rounding, (numeric, analytic,
                                                                                                   rounding)


# ---------------------------------------------------------------- initial image


def test_initial_image_default_is_noise_around_the_mean_pixel(tiny_network):
    content = np.zeros((64, 64, 3), np.float32)
    start = initial_image(content, tiny_network, seed=1)
    np.testing.assert_allclose(start.mean(axis=(0, 1)), tiny_network.mean_pixel, atol=0.05)
    assert start.std(axis=(0, 1)) == pytest.approx([NOISE_SCALE] * 3, rel=0.1)


def test_initial_image_noiseblend_without_initial_blends_the_content(tiny_network):
    content = random_image(60)
    start = initial_image(content, tiny_network, noiseblend=0.0, seed=1)
    np.testing.assert_array_equal(start, content)
    blend = initial_image(content, tiny_network, noiseblend=0.5, seed=1)
    noise = initial_image(content, tiny_network, seed=1)
    np.testing.assert_allclose(blend, np.clip(0.5 * content + 0.5 * noise, 0, 255), atol=1e-3)


def test_initial_image_given_uses_it_without_noise_by_default(tiny_network):
    content, initial = random_image(61), random_image(62)
    np.testing.assert_array_equal(initial_image(content, tiny_network, initial, seed=3), initial)


def test_initial_image_is_reproducible_with_a_seed_and_stays_in_range(tiny_network):
    content = np.zeros((8, 8, 3), np.float32)  # noise around 0 would go negative: it is clipped
    net = tiny_network
    a = initial_image(content, net, noiseblend=1.0, seed=9)
    b = initial_image(content, net, noiseblend=1.0, seed=9)
    c = initial_image(content, net, noiseblend=1.0, seed=10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255


# ---------------------------------------------------------------- the weights fed to the graph


def test_reweight_takes_resolved_options_and_equals_a_new_objective(tiny_network, content, style):
    x = random_image(15)
    first = for_network(LossOptions(style_weight=10.0), tiny_network)
    second = dataclasses.replace(first, content_weight=2.0, style_weight=1000.0, tv_weight=5.0)
    with Objective(tiny_network, content, [style], first) as obj:
        ops = len(obj.graph.get_operations())
        before, _ = obj.evaluate(x)
        obj.reweight(second)
        terms, grad = obj.evaluate(x)
        assert len(obj.graph.get_operations()) == ops and obj.loss_options == second
    with Objective(tiny_network, content, [style], second) as fresh:
        fresh_terms, fresh_grad = fresh.evaluate(x)
    assert terms == fresh_terms and np.array_equal(grad, fresh_grad)
    assert terms["style"] == pytest.approx(100 * before["style"], rel=1e-6)
    # options the network has not resolved (tv_weight None: the network's own) are refused
    with Objective(tiny_network, content, [style], first) as obj, pytest.raises(ValueError, match="for_network"):
        obj.reweight(LossOptions(tv_weight=None))


# ---------------------------------------------------------------- the content mask (transparent pixels)


def photo(width):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, "skimage_chelsea.jpg")), width)


def test_content_mask_weights_the_content_loss(tiny_network):
    """The masked content term equals a NumPy weighted mean computed from the features:
    each pixel's squared difference times its weight (1 = as without a mask)."""
    content = photo(32)
    x = np.clip(content[::-1] * 0.7 + 30, 0, 255)
    mask = np.zeros(content.shape[:2], np.float32)
    mask[:, 12:] = 1.0
    mask /= mask.mean()  # as masks.content_weight_map makes it for transparent pixels
    loss = LossOptions(content_layers=("relu4_2",), content_weight=1.0, tv_weight=0.0)
    with Objective(tiny_network, content, [content], loss, content_mask=mask) as masked, \
            Objective(tiny_network, content, [content], loss) as plain:
        got = masked.evaluate(x)[0]["content"]
        unmasked = plain.evaluate(x)[0]["content"]
    pad = tiny_network.default_padding
    graph = TargetGraph(tiny_network, ("relu4_2",), (), "max", padding=pad)
    target, feats = graph.content_features(content), graph.content_features(x)
    graph.close()
    m = losses.pool_mask(mask, target["relu4_2"].shape[1:3])[None, :, :, None]
    d2 = (feats["relu4_2"].astype(np.float64) - target["relu4_2"]) ** 2
    # the default W2 loss makes the content relative: times the VGG scale / mean square of the
    # target, and (512 / 128) ** 2 at this size (losses.content_size_factor: below 128 px its 128 px value)
    assert tiny_network.relative_content_scale == RELATIVE_CONTENT_SCALE_VGG == 6.4
    expected = ((m * d2).mean() * RELATIVE_CONTENT_SCALE_VGG * (512 / 128) ** 2
                / np.mean(target["relu4_2"].astype(np.float64) ** 2))
    assert got == pytest.approx(expected, rel=1e-4)
    assert abs(got - unmasked) > 1e-3 * unmasked  # the mask made a difference


# ---------------------------------------------------------------- size-independent loss terms ("normalized")


def terms_at_size(network, long_side, loss_scale, style_loss="gram", padding="zero"):
    height = long_side * 3 // 4
    content, style = smooth(height, long_side, 0.0), smooth(height, long_side, 0.3)
    loss = LossOptions(loss_scale=loss_scale, style_loss=style_loss, padding=padding)
    with Objective(network, content, [style], loss) as objective:
        return objective.evaluate(0.5 * content + 0.5 * style)[0]


def test_loss_terms_size_independent_at_initialisation(tiny_network):
    """The same picture pair at 48 and 96 px, evaluated at the same start (half content, half style).

    Tolerances: style within 5%; TV ("normalized") within 2%; content within 30%
    (on these tiny images the zero padding at the borders is a large share of each
    feature map; on the example photos at 256/512/1024 px it agreed within 15%).
    """
    small = terms_at_size(tiny_network, 48, "normalized")
    large = terms_at_size(tiny_network, 96, "normalized")
    assert abs(large["style"] / small["style"] - 1) < 0.05
    assert abs(large["tv"] / small["tv"] - 1) < 0.02
    assert abs(large["content"] / small["content"] - 1) < 0.30
    # W2 compares means and covariances, per position too: size-independent as well
    # (within 15% here: at 48 px the deep layers' statistics come from a few positions, and
    # with every convolution replicate-padded, more of them repeat the edge: 13.6%, 10% before).
    w2_small, w2_large = (terms_at_size(tiny_network, side, "normalized", "w2", None) for side in (48, 96))
    assert abs(w2_large["style"] / w2_small["style"] - 1) < 0.15
    # Under "classic" the TV of a smooth picture falls ~4x when the size doubles
    # (this is what "normalized" corrects); the other terms are the same functions.
    classic_small = terms_at_size(tiny_network, 48, "classic")
    classic_large = terms_at_size(tiny_network, 96, "classic")
    assert 3.0 < classic_small["tv"] / classic_large["tv"] < 5.0
    assert classic_small["style"] == pytest.approx(small["style"], rel=1e-5)


# ---------------------------------------------------------------- the temporal term (video.py)


def test_objective_with_a_temporal_term_adds_it_before_the_total(tiny_network, content, style):
    target = random_image(33)
    mask = (np.random.default_rng(34).uniform(size=(SIZE, SIZE)) > 0.5).astype(np.float32)
    x = random_image(35)
    temporal = PixelTarget(target, mask, 2.5)
    with Objective(tiny_network, content, [style], temporal=temporal) as obj:
        terms, grad = obj.evaluate(x)
    with Objective(tiny_network, content, [style]) as plain:
        plain_terms, plain_grad = plain.evaluate(x)
    assert list(terms) == ["content", "style", "tv", TEMPORAL_TERM, "total"]
    assert terms["temporal"] == pytest.approx(2.5 * np_temporal(x, target, mask), rel=1e-4)
    for key in ("content", "style", "tv"):
        assert terms[key] == pytest.approx(plain_terms[key], rel=1e-6)
    assert terms["total"] == pytest.approx(plain_terms["total"] + terms["temporal"], rel=1e-5)
    assert not np.allclose(grad, plain_grad)
    # Alone, its gradient is d/dx of w sum(c (x - t)^2) / (3 sum c) = 2 w c (x - t) / (3 sum c).
    alone = LossOptions(content_weight=0.0, style_weight=0.0, tv_weight=0.0)
    with Objective(tiny_network, content, [style], alone, temporal=temporal) as obj:
        terms, grad = obj.evaluate(x)
    assert terms["total"] == pytest.approx(terms["temporal"], rel=1e-6)
    expected = 2 * 2.5 * mask[..., None] * (x - target) / (3 * mask.sum())
    np.testing.assert_allclose(grad[0], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_objective_refuses_a_temporal_target_of_another_size(tiny_network, content, style):
    temporal = PixelTarget(random_image(36, (SIZE, SIZE + 1, 3)), np.ones((SIZE, SIZE + 1)), 1.0)
    with pytest.raises(ValueError, match="temporal target"):
        Objective(tiny_network, content, [style], temporal=temporal)


# ---------------------------------------------------------------- spatial control (guided statistics)


@pytest.mark.parametrize("style_loss", ["gram", "mean-cov", "w2"])
def test_all_ones_masks_give_the_unmasked_objective(tiny_network, content, style, style_loss):
    second = random_image(12, (12, 20, 3))
    loss = LossOptions(style_loss=style_loss, style_blend_weights=(1.0, 2.0))
    ones = Guidance((np.ones(content.shape[:2], np.float32),) * 2,
                            (np.ones(style.shape[:2], np.float32), np.ones((30, 50), np.float32)))
    x = random_image(13)
    with Objective(tiny_network, content, [style, second], loss) as plain, \
            Objective(tiny_network, content, [style, second], loss, guidance=ones) as guided:
        (t0, g0), (t1, g1) = plain.evaluate(x), guided.evaluate(x)
    for key in t0:
        assert t1[key] == pytest.approx(t0[key], rel=1e-6), key
    np.testing.assert_allclose(g1, g0, rtol=0, atol=1e-6 * np.abs(g0).max())


def test_guided_objective_matches_numpy(tiny_network, content):
    """Two styles, each with a mask over the content and a region over its painting: the
    style term equals the NumPy guided Gram losses with the documented blend weights."""
    first, second = random_image(20, (16, 16, 3)), random_image(21, (16, 16, 3), high=120.0)
    top = np.zeros(content.shape[:2], np.float32)
    top[:6] = 1.0
    top[6] = 0.5
    region = np.zeros((16, 16), np.float32)
    region[:, 4:] = 1.0
    guidance = Guidance((top, 1.0 - top), (region, None))
    layers = ("relu1_1", "relu2_1", "relu3_1")
    loss = LossOptions(style_loss="gram", style_layers=layers, style_layer_weight_exp=1.0, padding="zero",
                               content_weight=0.0, tv_weight=0.0, style_weight=1.0)
    x = random_image(13)
    with Objective(tiny_network, content, [first, second], loss, guidance=guidance) as obj:
        got = obj.evaluate(x)[0]["style"]

    def net(image):
        return reference_net(tiny_network.layers, tiny_network.weights, tiny_network.preprocess(image[None]), "max")

    feats, style_feats = net(x), [net(first), net(second)]
    out_masks = [tiny_network.mask_weights(m, layers) for m in (top, 1.0 - top)]
    style_masks = [tiny_network.mask_weights(region, layers), {n: np.ones(f.shape[:2]) for n, f in style_feats[1].items()}]
    shares = np.array([top.mean(), (1 - top).mean()])
    blend = 0.5 * shares / np.mean(0.5 * top + 0.5 * (1 - top))  # K = mean(min(1, sum m)) / mean(sum b m) = 1 / 0.5
    expected = sum(b * sum(np.mean((np_guided_gram(feats[n], om[n]) - np_guided_gram(sf[n], sm[n])) ** 2)
                           for n in layers) / len(layers)
                   for b, om, sf, sm in zip(blend, out_masks, style_feats, style_masks))
    assert got == pytest.approx(expected, rel=1e-3)


def test_two_regions_each_move_towards_their_own_style(tiny_network):
    """A two-region run on a tiny image: the top takes the first painting's statistics and
    the bottom the second's, measured on the output as compare.py measures style: the
    Gram distance at a held-out layer (relu2_1, between the style layers; the deep
    held-out relu4_1 of this random 8-channel network measures mostly feature energy).

    Zero padding, not the default: with every convolution replicate-padded (issue 23) this
    random network's 3 x 3 deep maps are mostly edge, and the bottom region ends farther
    from the dots on relu2_1 than the photo was (503,951 against 316,545; zero: 9,958).
    Not checked on VGG-19, whose default it is; the test here is of the regions."""
    from neural_style_tf.apps import metrics

    size = 48
    yy, xx = np.mgrid[:size, :size] / size
    content = np.stack([120 + 40 * xx, 120 + 30 * yy, 110 + 20 * xx * yy], -1).astype(np.float32)
    stripes = np.zeros((size, size, 3), np.float32)
    stripes[:, ::4] = (240, 40, 30)  # red stripes on black
    dots = np.full((size, size, 3), (30, 60, 200), np.float32)
    dots[::5, ::5] = (250, 250, 120)  # yellow dots on blue
    top = np.zeros((size, size), np.float32)
    top[: size // 2] = 1.0
    layers = ("relu1_1", "relu3_1", "relu5_1")
    loss = LossOptions(style_layers=layers, content_weight=1.0, style_weight=1e3, tv_weight=0.0,
                               style_loss="w2", padding="zero")
    with Objective(tiny_network, content, [stripes, dots], loss,
                           guidance=Guidance((top, 1.0 - top))) as obj:
        out = optimize.minimize(obj, content, OptimizerOptions(iterations=40)).image
    held_out = metrics.choose_gram_layers(tiny_network, ("relu2_1",), layers + loss.content_layers)
    half = size // 2
    pictures = {"top": out[:half], "bottom": out[half:], "photo top": content[:half], "photo bottom": content[half:]}
    dist = {(r, name): metrics.gram_distances(tiny_network, loss, [style[:half]], [img], held_out)["relu2_1"][0]
            for r, img in pictures.items() for name, style in (("stripes", stripes), ("dots", dots))}
    assert dist["top", "stripes"] < 0.2 * dist["top", "dots"]
    assert dist["bottom", "dots"] < 0.2 * dist["bottom", "stripes"]
    # Each region moved towards its own style from the photo it started from.
    assert dist["top", "stripes"] < 0.2 * dist["photo top", "stripes"]
    assert dist["bottom", "dots"] < 0.2 * dist["photo bottom", "dots"]


def test_what_no_mask_covers_stays_the_photo(tiny_network):
    """Masks need not cover the picture: where no style applies, the content and TV terms
    keep the photo (docs/spatial-control.md)."""
    size = 32
    yy, xx = np.mgrid[:size, :size] / size
    content = np.stack([120 + 40 * xx, 120 + 30 * yy, 110 + 20 * xx * yy], -1).astype(np.float32)
    stripes = np.zeros((size, size, 3), np.float32)
    stripes[:, ::4] = (240, 40, 30)
    top = np.zeros((size, size), np.float32)
    top[: size // 2] = 1.0
    loss = LossOptions(style_layers=("relu1_1", "relu2_1"), style_weight=1e3, tv_weight=0.0)
    with Objective(tiny_network, content, [stripes], loss, guidance=Guidance((top,))) as obj:
        out = optimize.minimize(obj, content, OptimizerOptions(iterations=20)).image
    change = np.abs(out - content).mean(axis=(1, 2))
    # Measured: 51 grey levels in the top, 12 in the bottom (the deep content layers hold
    # the photo loosely, and the styled top's receptive fields reach into the bottom).
    assert change[: size // 2 - 4].mean() > 3 * change[size // 2 + 4:].mean()
