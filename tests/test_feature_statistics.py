"""feature_statistics.py: the written-out gradients of F^T F and of the mean and covariance
equal TensorFlow's own, on small random inputs (float64, so that only a wrong formula
could differ)."""

from __future__ import annotations

import numpy as np
import pytest

from neural_style_tf.feature_statistics import bfloat16_source, gram_product, mean_and_covariance
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()


def plain_moments(flat):
    mean = tf.reduce_mean(flat, axis=0)
    centred = flat - mean
    return mean, tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(flat)[0], flat.dtype)


def gradients_of(build, weights, flat):
    """The values of build(x) and the gradient of sum(weights_i * output_i) at `flat`."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        x = tf.constant(flat)
        outputs = build(x)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        loss = tf.add_n([tf.reduce_sum(tf.constant(w) * o) for w, o in zip(weights, outputs) if w is not None])
        return sess.run((outputs, tf.gradients(loss, x)[0]))


@pytest.fixture
def flat():
    return np.maximum(np.random.default_rng(0).normal(0.5, 1.0, (37, 6)), 0)


def test_gram_product_and_its_gradient_equal_tensorflows(flat):
    upstream = np.random.default_rng(1).normal(size=(6, 6))  # not symmetric: both halves count
    (value,), grad = gradients_of(gram_product, [upstream], flat)
    (expected,), expected_grad = gradients_of(lambda x: tf.matmul(x, x, transpose_a=True), [upstream], flat)
    np.testing.assert_allclose(value, flat.T @ flat, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(expected_grad, flat @ (upstream + upstream.T), rtol=1e-10)


@pytest.mark.parametrize("use", ["both", "mean only", "covariance only"])
def test_mean_and_covariance_and_their_gradient_equal_tensorflows(flat, use):
    rng = np.random.default_rng(2)
    d_mean, d_cov = rng.normal(size=6), rng.normal(size=(6, 6))
    weights = [None if use == "covariance only" else d_mean, None if use == "mean only" else d_cov]
    (mean, cov), grad = gradients_of(mean_and_covariance, weights, flat)
    _, expected_grad = gradients_of(plain_moments, weights, flat)
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(flat, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("use", ["both", "covariance only"])
def test_moments_of_a_bfloat16_layer_are_float32_and_their_gradient_reaches_it_in_bfloat16(flat, use):
    """A bfloat16 network's layer reaches the statistics as a float32 cast (through a
    reshape): the moments are those of the float32 values, and the gradient goes to the
    bfloat16 layer, within bfloat16's rounding of the float32 gradient."""
    rng = np.random.default_rng(3)
    d_mean, d_cov = rng.normal(size=6), rng.normal(size=(6, 6))
    weights = [None if use == "covariance only" else d_mean, d_cov]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        layer = tf.constant(flat.reshape(1, 37, 1, 6), tf.bfloat16)
        cast = tf.reshape(tf.cast(layer, tf.float32), (-1, 6))
        assert bfloat16_source(cast) is not None and bfloat16_source(cast).dtype == tf.bfloat16
        assert bfloat16_source(tf.constant(flat, tf.float32)) is None
        outputs = mean_and_covariance(cast)
        loss = tf.add_n([tf.reduce_sum(tf.constant(w, tf.float32) * o) for w, o in zip(weights, outputs) if w is not None])
        (mean, cov), grad, values = sess.run((outputs, tf.gradients(loss, layer)[0], tf.cast(layer, tf.float64)))
    assert grad.dtype == tf.bfloat16.as_numpy_dtype
    rounded = values.reshape(37, 6)  # the layer's values, as bfloat16 holds them
    np.testing.assert_allclose(mean, rounded.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(cov, np.cov(rounded, rowvar=False, bias=True), rtol=1e-5, atol=1e-6)
    _, expected = gradients_of(plain_moments, weights, rounded)
    grad = grad.astype(np.float64).reshape(37, 6)
    assert np.linalg.norm(grad - expected) / np.linalg.norm(expected) < 1e-2
