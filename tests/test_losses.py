"""losses.py: the pure loss terms, layer weights and style statistics against NumPy (and
SciPy's sqrtm for W2), the loss scales, the pooled content mask.

The loss functions are pure TensorFlow functions, so most are evaluated eagerly.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy_reference import np_guided_gram, np_style_loss, np_temporal, random_image, smooth

from neural_style_tf import losses
from neural_style_tf.settings import STYLE_LAYERS, LossOptions
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()
# The loss scale of the default LossOptions (mean-cov and W2 do not depend on it).
CLASSIC = losses.LOSS_SCALES["classic"]


def value(tensor):
    return np.asarray(tensor, dtype=np.float64)


def np_gram_batch(features):
    """Classic normalisation: F^T F / (H W C), features (1, H, W, C)."""
    _, h, w, c = features.shape
    flat = features.reshape(-1, c).astype(np.float64)
    return flat.T @ flat / (h * w * c)


# ---------------------------------------------------------------- Gram matrix


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (1, 5, 7, 1), (1, 1, 1, 6)])
def test_gram_matrix_of_ones_is_one_over_channels(shape):
    gram = value(losses.gram_matrix(tf.ones(shape)))
    channels = shape[-1]
    assert gram.shape == (channels, channels)
    np.testing.assert_allclose(gram, np.full((channels, channels), 1.0 / channels), rtol=1e-6)


def test_gram_matrix_matches_numpy_and_is_symmetric():
    features = np.random.default_rng(0).normal(size=(1, 6, 5, 4)).astype(np.float32)
    gram = value(losses.gram_matrix(tf.constant(features)))
    np.testing.assert_allclose(gram, np_gram_batch(features), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-6)


def test_gram_matrix_of_orthogonal_channels_is_diagonal():
    # Channel 0 lives on the left half, channel 1 on the right half: they never overlap.
    features = np.zeros((1, 2, 4, 2), np.float32)
    features[0, :, :2, 0] = 3.0
    features[0, :, 2:, 1] = 1.0
    gram = value(losses.gram_matrix(tf.constant(features)))
    # sum over 4 pixels of 3^2 = 36, of 1^2 = 4; divided by H W C = 16.
    np.testing.assert_allclose(gram, [[36 / 16, 0.0], [0.0, 4 / 16]], rtol=1e-6)


# ---------------------------------------------------------------- total variation


def checkerboard(height, width, amplitude=1.0, channels=3):
    board = (np.indices((height, width)).sum(axis=0) % 2).astype(np.float32) * amplitude
    return np.repeat(board[None, :, :, None], channels, axis=3)


@pytest.mark.parametrize("amplitude", [1.0, 255.0])
def test_total_variation_of_a_checkerboard(amplitude):
    # Every vertical and every horizontal neighbour differs by the amplitude: each mean is a^2.
    tv = float(value(losses.total_variation(tf.constant(checkerboard(6, 7, amplitude)))))
    assert tv == pytest.approx(2.0 * amplitude**2, rel=1e-6)


def test_total_variation_of_a_constant_image_is_zero():
    assert float(value(losses.total_variation(tf.fill((1, 5, 5, 3), 117.0)))) == 0.0


def test_total_variation_of_stripes_counts_one_direction_only():
    # Vertical stripes: columns alternate, rows are constant -> only the horizontal term.
    stripes = np.zeros((1, 4, 6, 3), np.float32)
    stripes[:, :, 1::2, :] = 2.0
    assert float(value(losses.total_variation(tf.constant(stripes)))) == pytest.approx(4.0)
    assert float(value(losses.total_variation(tf.constant(stripes.transpose(0, 2, 1, 3))))) == pytest.approx(4.0)


def test_total_variation_matches_numpy():
    image = np.random.default_rng(1).uniform(0, 255, size=(1, 5, 8, 3)).astype(np.float32)
    x = image.astype(np.float64)
    expected = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    assert float(value(losses.total_variation(tf.constant(image)))) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- content and style losses


def test_content_loss_matches_numpy_and_is_zero_at_the_target():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(1, 4, 3, 5)).astype(np.float32)
    target = rng.normal(size=(1, 4, 3, 5)).astype(np.float32)
    expected = np.mean((features.astype(np.float64) - target) ** 2)
    assert float(value(losses.content_loss(tf.constant(features), tf.constant(target)))) == pytest.approx(expected, rel=1e-5)
    assert float(value(losses.content_loss(tf.constant(target), tf.constant(target)))) == 0.0


def test_style_loss_matches_numpy_from_features():
    rng = np.random.default_rng(3)
    features = rng.uniform(0, 2, size=(1, 6, 4, 3)).astype(np.float32)
    style_features = rng.uniform(0, 2, size=(1, 8, 8, 3)).astype(np.float32)  # another size: Grams still compare
    target = np_gram_batch(style_features)
    expected = np.mean((np_gram_batch(features) - target) ** 2)
    loss = losses.style_loss(losses.gram_matrix(tf.constant(features)), tf.constant(target, tf.float32))
    assert float(value(loss)) == pytest.approx(expected, rel=1e-4)


def test_style_loss_ignores_where_things_are():
    # A Gram matrix is blind to position: a shuffled copy of the style has zero style loss.
    rng = np.random.default_rng(4)
    features = rng.uniform(0, 2, size=(1, 4, 4, 3)).astype(np.float32)
    shuffled = rng.permutation(features.reshape(-1, 3)).reshape(features.shape)
    loss = losses.style_loss(losses.gram_matrix(tf.constant(shuffled)), losses.gram_matrix(tf.constant(features)))
    assert float(value(loss)) == pytest.approx(0.0, abs=1e-10)


def test_classic_loss_scale_is_registered_with_these_functions():
    scale = losses.LOSS_SCALES["classic"]
    assert (scale.gram, scale.content, scale.style, scale.tv) == (
        losses.gram_matrix, losses.content_loss, losses.style_loss, losses.total_variation)
    assert LossOptions().loss_scale in losses.LOSS_SCALES


# ---------------------------------------------------------------- layer and style weights


def test_content_layer_weights_default_blend_keeps_only_the_first_layer():
    # The classic default (blend 1): relu4_2 alone; relu5_2 has weight 0 and is not computed.
    assert dict(losses.content_layer_weights(("relu4_2", "relu5_2"))) == {"relu4_2": 1.0}


def test_content_layer_weights_blend_splits_between_the_two_layers():
    weights = losses.content_layer_weights(("relu4_2", "relu5_2"), 0.3)
    assert list(weights) == ["relu4_2", "relu5_2"]
    assert weights["relu4_2"] == pytest.approx(0.3)
    assert weights["relu5_2"] == pytest.approx(0.7)


def test_content_layer_weights_blend_zero_keeps_only_the_second_layer():
    assert dict(losses.content_layer_weights(("relu4_2", "relu5_2"), 0.0)) == {"relu5_2": 1.0}


def test_content_layer_weights_more_layers_share_the_rest():
    weights = losses.content_layer_weights(("relu3_1", "relu4_2", "relu5_2"), 0.4)
    assert list(weights.values()) == pytest.approx([0.4, 0.3, 0.3])
    assert sum(weights.values()) == pytest.approx(1.0)


def test_content_layer_weights_single_layer_gets_everything_whatever_the_blend():
    assert dict(losses.content_layer_weights(("relu3_1",), 0.25)) == {"relu3_1": 1.0}


def test_content_layer_weights_no_layer_means_no_content_term():
    assert dict(losses.content_layer_weights(())) == {}


def test_style_layer_weights_equal_by_default():
    weights = losses.style_layer_weights(STYLE_LAYERS)
    assert list(weights) == list(STYLE_LAYERS)
    assert list(weights.values()) == pytest.approx([0.2] * 5)


def test_style_layer_weights_grow_geometrically_and_sum_to_one():
    weights = losses.style_layer_weights(("a", "b", "c", "d"), 2.0)
    assert list(weights.values()) == pytest.approx([1 / 15, 2 / 15, 4 / 15, 8 / 15])
    ratios = np.array(list(weights.values()))[1:] / np.array(list(weights.values()))[:-1]
    assert ratios == pytest.approx([2.0, 2.0, 2.0])


def test_style_layer_weights_exp_below_one_favours_early_layers():
    weights = list(losses.style_layer_weights(("a", "b", "c"), 0.5).values())
    assert weights == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_blend_weights_equal_when_not_given():
    assert losses.blend_weights(3) == pytest.approx([1 / 3] * 3)


def test_blend_weights_are_normalized():
    assert losses.blend_weights(2, [1, 3]) == pytest.approx([0.25, 0.75])
    assert losses.blend_weights(2, [0.2, 0.2]) == pytest.approx([0.5, 0.5])
    assert losses.blend_weights(1, [7]) == pytest.approx([1.0])


# ---------------------------------------------------------------- the content mask, pooled to a layer


def test_pool_mask_follows_the_network_pooling():
    mask = np.zeros((5, 7), np.float32)
    mask[:, :3] = 1
    pooled = losses.pool_mask(mask, (3, 4))
    assert pooled.shape == (3, 4)
    np.testing.assert_allclose(pooled[:, 0], 1.0)
    np.testing.assert_allclose(pooled[:, 1], 0.5)
    np.testing.assert_allclose(pooled[:, 2:], 0.0)
    np.testing.assert_allclose(losses.pool_mask(mask, (2, 2)), [[0.75, 0.0], [0.75, 0.0]])


# ---------------------------------------------------------------- the size-independent loss scale ("normalized")


def test_normalized_equals_classic_at_the_reference_size(tiny_network):
    content = smooth(losses.REFERENCE_SIZE // 8, losses.REFERENCE_SIZE, 0.1)  # long side 512, cheap height
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.constant(content[None])
        a, b = sess.run([losses.total_variation(x), losses.total_variation_normalized(x)])
    assert a == pytest.approx(b, rel=1e-6)
    assert "classic" in losses.LOSS_SCALES and "normalized" in losses.LOSS_SCALES


# ---------------------------------------------------------------- the new style statistics: mean-cov and W2


def test_new_style_losses_match_numpy_on_tiny_features():
    """mean-cov and W2 on random (1, 5, 4, 3) features against from-scratch NumPy/SciPy."""
    rng = np.random.default_rng(3)
    feats, target = (np.maximum(rng.normal(1.0, 1.0, (1, 5, 4, 3)), 0).astype(np.float32) for _ in range(2))
    for kind, statistic in (("mean-cov", losses.style_statistic("mean-cov", CLASSIC)),
                            ("w2", losses.style_statistic("w2", CLASSIC))):
        target_stats = statistic.prepare(tuple(value(t) for t in statistic.compute(tf.constant(target))))
        got = value(statistic.loss(statistic.compute(tf.constant(feats)), tuple(tf.constant(t) for t in target_stats)))
        assert got == pytest.approx(np_style_loss(kind, feats[0], target[0]), rel=1e-3), kind
        # zero when the features are the target's
        same = value(statistic.loss(statistic.compute(tf.constant(target)), tuple(tf.constant(t) for t in target_stats)))
        assert abs(same) < 1e-3 * got, kind


def test_w2_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    feats, target = (rng.normal(0.5, 1.0, (1, 6, 5, 3)).astype(np.float64) for _ in range(2))
    statistic = losses.style_statistic("w2", CLASSIC)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        t_stats = statistic.prepare(sess.run(statistic.compute(tf.constant(target, tf.float32))))
        x = tf.compat.v1.placeholder(tf.float32, feats.shape)
        loss = statistic.loss(statistic.compute(x), tuple(tf.constant(t) for t in t_stats))
        grad = tf.gradients(loss, x)[0]
        g = sess.run(grad, {x: feats})
        h = 1e-2
        for index in [(0, 0, 0, 0), (0, 3, 2, 1), (0, 5, 4, 2)]:
            up, down = feats.copy(), feats.copy()
            up[index] += h
            down[index] -= h
            numeric = (sess.run(loss, {x: up}) - sess.run(loss, {x: down})) / (2 * h)
            assert g[index] == pytest.approx(numeric, rel=2e-2, abs=1e-4)


def test_w2_loss_has_no_rounding_noise_near_its_minimum():
    """Near the target the W2 distance is a small difference of large traces; computed in
    float32 it jumps by ~1e-6 of itself from one tiny step to the next, the size of
    L-BFGS's last steps. Along a short straight path the loss must be a smooth quadratic."""
    rng = np.random.default_rng(5)
    base = np.maximum(rng.normal(20.0, 40.0, (1, 16, 16, 64)), 0).astype(np.float32)
    direction = rng.normal(0.0, 1.0, base.shape).astype(np.float32)
    statistic = losses.style_statistic("w2", CLASSIC)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        t_stats = statistic.prepare(sess.run(statistic.compute(tf.constant(base))))
        x = tf.compat.v1.placeholder(tf.float32, base.shape)
        loss = statistic.loss(statistic.compute(x), tuple(tf.constant(t) for t in t_stats))
        steps = np.linspace(10.0, 10.1, 41)  # the loss ~0.16 here, a layer's share near the end
        values = np.array([sess.run(loss, {x: base + np.float32(t) * direction}) for t in steps], np.float64)
    fit = np.polyval(np.polyfit(steps, values, 2), steps)
    # measured: 1.2e-7 of the loss with the float64 formula, 5e-6 with float32 throughout
    assert np.sqrt(np.mean((values - fit) ** 2)) < 1e-6 * np.mean(values)


@pytest.mark.parametrize("masked", [False, True])
def test_w2_of_few_positions_equals_the_channels_x_channels_formula(masked):
    """A layer of fewer positions (2 x 3) than channels (8) gets w2_moments's factor, and its
    trace term from the 6 x 6 matrix: the same loss and gradient as from the 8 x 8 one."""
    rng = np.random.default_rng(6)
    feats, target = (np.maximum(rng.normal(0.5, 1.0, (1, 2, 3, 8)), 0) for _ in range(2))
    mask = rng.uniform(0.2, 1.0, (2, 3))
    statistic = losses.style_statistic("w2", CLASSIC)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        weights = tf.constant(mask) if masked else None
        t_stats = tuple(tf.constant(t) for t in statistic.prepare(sess.run(statistic.compute(tf.constant(target)))))
        x = tf.constant(feats)
        moments = statistic.compute(x, weights)
        assert len(moments) == 3 and moments[2].shape == (6, 8)
        small, large = statistic.loss(moments, t_stats), statistic.loss(moments[:2], t_stats)
        values = sess.run([small, large, tf.gradients(small, x)[0], tf.gradients(large, x)[0]])
    # equal but for the float32 targets' rounding (the large formula uses C_t^1/2, the small one C_t)
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    np.testing.assert_allclose(values[2], values[3], rtol=1e-5, atol=1e-9)
    if not masked:
        assert values[0] == pytest.approx(np_style_loss("w2", feats[0], target[0]), rel=1e-3)
    with tf.Graph().as_default():  # as many positions as channels or more: no factor
        assert len(statistic.compute(tf.constant(np.ones((1, 4, 2, 8))))) == 2


# ---------------------------------------------------------------- the temporal term (video.py)


def test_temporal_loss_matches_numpy_and_ignores_unreliable_pixels():
    x, target = random_image(30, (9, 11, 3)), random_image(31, (9, 11, 3))
    mask = (np.random.default_rng(32).uniform(size=(9, 11)) > 0.3).astype(np.float32)
    mask[0, 0] = 0.5  # soft weights count as weights
    got = value(losses.temporal_loss(tf.constant(x[None]), tf.constant(target[None]), tf.constant(mask[None])))
    assert got == pytest.approx(np_temporal(x, target, mask), rel=1e-5)
    changed = x.copy()
    changed[mask == 0] = 0  # whatever unreliable pixels hold does not count
    again = value(losses.temporal_loss(tf.constant(changed[None]), tf.constant(target[None]), tf.constant(mask[None])))
    assert again == pytest.approx(got, rel=1e-6)
    at_target = value(losses.temporal_loss(tf.constant(target[None]), tf.constant(target[None]), tf.constant(mask[None])))
    assert at_target == 0


# ---------------------------------------------------------------- guided statistics (spatial control)


def np_weighted_moments(features, weights):
    """(mean, covariance) of features [H, W, C] over positions weighted by weights [H, W]."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    w = weights.reshape(-1).astype(np.float64)
    mean = (w[:, None] * flat).sum(0) / w.sum()
    centred = flat - mean
    return mean, (w[:, None] * centred).T @ centred / w.sum()


def known_features_and_mask():
    rng = np.random.default_rng(4)
    features = rng.uniform(0, 3, (5, 6, 4)).astype(np.float32)
    weights = np.zeros((5, 6), np.float32)
    weights[:2] = 1.0  # a hard region
    weights[2] = 0.25  # and a soft edge
    return features, weights


@pytest.mark.parametrize("scale", sorted(losses.LOSS_SCALES))
def test_guided_gram_matches_numpy_for_every_loss_scale(scale):
    features, weights = known_features_and_mask()
    got = losses.guided_gram(losses.LOSS_SCALES[scale].gram, tf.constant(features[None]), weights).numpy()
    per_channel = losses.LOSS_SCALES[scale].gram is losses.gram_matrix
    np.testing.assert_allclose(got, np_guided_gram(features, weights, per_channel), rtol=1e-5)
    # Only the weighted positions count: the rows of weight 0 can be anything.
    changed = features.copy()
    changed[3:] = 100.0
    again = losses.guided_gram(losses.LOSS_SCALES[scale].gram, tf.constant(changed[None]), weights).numpy()
    np.testing.assert_allclose(again, got, rtol=1e-5)


def test_weighted_moments_match_numpy():
    features, weights = known_features_and_mask()
    mean, cov = (t.numpy() for t in losses.feature_moments(tf.constant(features[None]), weights))
    expected_mean, expected_cov = np_weighted_moments(features, weights)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-4, atol=1e-6)


def test_total_variation_gradient_equals_tensorflows_own():
    """Its gradient is written out (two pads instead of the slices' gradients): the same numbers."""
    x0 = np.random.default_rng(7).uniform(0, 255, (1, 7, 9, 3))
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.constant(x0)
        dy, dx = x[:, 1:] - x[:, :-1], x[:, :, 1:] - x[:, :, :-1]
        plain = tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))
        ours = losses.total_variation(x)
        got, expected = sess.run([tf.gradients(3.0 * ours, x)[0], tf.gradients(3.0 * plain, x)[0]])
        assert sess.run(ours) == sess.run(plain)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_content_size_factor_grows_below_512_px_and_is_held_beyond_the_measured_range():
    factor = losses.content_size_factor
    assert factor((384, 512)) == factor((512, 384)) == factor((768, 1024)) == 1.0  # by the long side
    assert factor((192, 256)) == pytest.approx(4.0) and factor((96, 128)) == pytest.approx(16.0)
    assert factor((144, 192), 1.0) == pytest.approx(512 / 192)
    assert factor((24, 32)) == factor((96, 128))  # held at its 128 px value below 128 px
    assert factor((24, 32), 0.0) == 1.0
