"""The loss terms and layer weights of stylize.py, on tiny synthetic inputs, against NumPy.

The loss functions are pure TensorFlow functions, so they are evaluated eagerly here;
the graph that stylize.Objective builds from them is tested in test_stylize.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import stylize


def value(tensor):
    return np.asarray(tensor, dtype=np.float64)


def np_gram(features):
    """Classic normalisation: F^T F / (H W C), features (1, H, W, C)."""
    _, h, w, c = features.shape
    flat = features.reshape(-1, c).astype(np.float64)
    return flat.T @ flat / (h * w * c)


# ---------------------------------------------------------------- Gram matrix


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (1, 5, 7, 1), (1, 1, 1, 6)])
def test_gram_matrix_of_ones_is_one_over_channels(shape):
    gram = value(stylize.gram_matrix(tf.ones(shape)))
    channels = shape[-1]
    assert gram.shape == (channels, channels)
    np.testing.assert_allclose(gram, np.full((channels, channels), 1.0 / channels), rtol=1e-6)


def test_gram_matrix_matches_numpy_and_is_symmetric():
    features = np.random.default_rng(0).normal(size=(1, 6, 5, 4)).astype(np.float32)
    gram = value(stylize.gram_matrix(tf.constant(features)))
    np.testing.assert_allclose(gram, np_gram(features), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-6)


def test_gram_matrix_of_orthogonal_channels_is_diagonal():
    # Channel 0 lives on the left half, channel 1 on the right half: they never overlap.
    features = np.zeros((1, 2, 4, 2), np.float32)
    features[0, :, :2, 0] = 3.0
    features[0, :, 2:, 1] = 1.0
    gram = value(stylize.gram_matrix(tf.constant(features)))
    # sum over 4 pixels of 3^2 = 36, of 1^2 = 4; divided by H W C = 16.
    np.testing.assert_allclose(gram, [[36 / 16, 0.0], [0.0, 4 / 16]], rtol=1e-6)


# ---------------------------------------------------------------- total variation


def checkerboard(height, width, amplitude=1.0, channels=3):
    board = (np.indices((height, width)).sum(axis=0) % 2).astype(np.float32) * amplitude
    return np.repeat(board[None, :, :, None], channels, axis=3)


@pytest.mark.parametrize("amplitude", [1.0, 255.0])
def test_total_variation_of_a_checkerboard(amplitude):
    # Every vertical and every horizontal neighbour differs by the amplitude: each mean is a^2.
    tv = float(value(stylize.total_variation(tf.constant(checkerboard(6, 7, amplitude)))))
    assert tv == pytest.approx(2.0 * amplitude**2, rel=1e-6)


def test_total_variation_of_a_constant_image_is_zero():
    assert float(value(stylize.total_variation(tf.fill((1, 5, 5, 3), 117.0)))) == 0.0


def test_total_variation_of_stripes_counts_one_direction_only():
    # Vertical stripes: columns alternate, rows are constant -> only the horizontal term.
    stripes = np.zeros((1, 4, 6, 3), np.float32)
    stripes[:, :, 1::2, :] = 2.0
    assert float(value(stylize.total_variation(tf.constant(stripes)))) == pytest.approx(4.0)
    assert float(value(stylize.total_variation(tf.constant(stripes.transpose(0, 2, 1, 3))))) == pytest.approx(4.0)


def test_total_variation_matches_numpy():
    image = np.random.default_rng(1).uniform(0, 255, size=(1, 5, 8, 3)).astype(np.float32)
    x = image.astype(np.float64)
    expected = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    assert float(value(stylize.total_variation(tf.constant(image)))) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- content and style losses


def test_content_loss_matches_numpy_and_is_zero_at_the_target():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(1, 4, 3, 5)).astype(np.float32)
    target = rng.normal(size=(1, 4, 3, 5)).astype(np.float32)
    expected = np.mean((features.astype(np.float64) - target) ** 2)
    assert float(value(stylize.content_loss(tf.constant(features), tf.constant(target)))) == pytest.approx(expected, rel=1e-5)
    assert float(value(stylize.content_loss(tf.constant(target), tf.constant(target)))) == 0.0


def test_style_loss_matches_numpy_from_features():
    rng = np.random.default_rng(3)
    features = rng.uniform(0, 2, size=(1, 6, 4, 3)).astype(np.float32)
    style_features = rng.uniform(0, 2, size=(1, 8, 8, 3)).astype(np.float32)  # another size: Grams still compare
    target = np_gram(style_features)
    expected = np.mean((np_gram(features) - target) ** 2)
    loss = stylize.style_loss(stylize.gram_matrix(tf.constant(features)), tf.constant(target, tf.float32))
    assert float(value(loss)) == pytest.approx(expected, rel=1e-4)


def test_style_loss_ignores_where_things_are():
    # A Gram matrix is blind to position: a shuffled copy of the style has zero style loss.
    rng = np.random.default_rng(4)
    features = rng.uniform(0, 2, size=(1, 4, 4, 3)).astype(np.float32)
    shuffled = rng.permutation(features.reshape(-1, 3)).reshape(features.shape)
    loss = stylize.style_loss(stylize.gram_matrix(tf.constant(shuffled)), stylize.gram_matrix(tf.constant(features)))
    assert float(value(loss)) == pytest.approx(0.0, abs=1e-10)


def test_classic_loss_scale_is_registered_with_these_functions():
    scale = stylize.LOSS_SCALES["classic"]
    assert (scale.gram, scale.content, scale.style, scale.tv) == (
        stylize.gram_matrix, stylize.content_loss, stylize.style_loss, stylize.total_variation)
    assert stylize.LossOptions().loss_scale in stylize.LOSS_SCALES


# ---------------------------------------------------------------- layer and style weights


def test_content_layer_weights_default_blend_keeps_only_the_first_layer():
    # The classic default (blend 1): relu4_2 alone; relu5_2 has weight 0 and is not computed.
    assert dict(stylize.content_layer_weights(("relu4_2", "relu5_2"))) == {"relu4_2": 1.0}


def test_content_layer_weights_blend_splits_between_the_two_layers():
    weights = stylize.content_layer_weights(("relu4_2", "relu5_2"), 0.3)
    assert list(weights) == ["relu4_2", "relu5_2"]
    assert weights["relu4_2"] == pytest.approx(0.3)
    assert weights["relu5_2"] == pytest.approx(0.7)


def test_content_layer_weights_blend_zero_keeps_only_the_second_layer():
    assert dict(stylize.content_layer_weights(("relu4_2", "relu5_2"), 0.0)) == {"relu5_2": 1.0}


def test_content_layer_weights_more_layers_share_the_rest():
    weights = stylize.content_layer_weights(("relu3_1", "relu4_2", "relu5_2"), 0.4)
    assert list(weights.values()) == pytest.approx([0.4, 0.3, 0.3])
    assert sum(weights.values()) == pytest.approx(1.0)


def test_content_layer_weights_single_layer_gets_everything_whatever_the_blend():
    assert dict(stylize.content_layer_weights(("relu3_1",), 0.25)) == {"relu3_1": 1.0}


def test_content_layer_weights_no_layer_means_no_content_term():
    assert dict(stylize.content_layer_weights(())) == {}


def test_style_layer_weights_equal_by_default():
    weights = stylize.style_layer_weights(stylize.STYLE_LAYERS)
    assert list(weights) == list(stylize.STYLE_LAYERS)
    assert list(weights.values()) == pytest.approx([0.2] * 5)


def test_style_layer_weights_grow_geometrically_and_sum_to_one():
    weights = stylize.style_layer_weights(("a", "b", "c", "d"), 2.0)
    assert list(weights.values()) == pytest.approx([1 / 15, 2 / 15, 4 / 15, 8 / 15])
    ratios = np.array(list(weights.values()))[1:] / np.array(list(weights.values()))[:-1]
    assert ratios == pytest.approx([2.0, 2.0, 2.0])


def test_style_layer_weights_exp_below_one_favours_early_layers():
    weights = list(stylize.style_layer_weights(("a", "b", "c"), 0.5).values())
    assert weights == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_blend_weights_equal_when_not_given():
    assert stylize.blend_weights(3) == pytest.approx([1 / 3] * 3)


def test_blend_weights_are_normalised():
    assert stylize.blend_weights(2, [1, 3]) == pytest.approx([0.25, 0.75])
    assert stylize.blend_weights(2, [0.2, 0.2]) == pytest.approx([0.5, 0.5])
    assert stylize.blend_weights(1, [7]) == pytest.approx([1.0])
