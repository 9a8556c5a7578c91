"""The two products every style statistic is made of, with their gradients written out:
F^T F (the Gram matrix's) and the mean and covariance of F (W2's and mean-cov's), for F
the (positions, channels) matrix of one layer's features.

Why written out: TensorFlow differentiates F^T F as two products, one per operand, and
adds them; and the centred covariance through the subtraction of the mean, its
broadcast and its reductions. Both are the same single product: d/dF of F^T F is
F (S + S^T) for the upstream S, and since the centred features sum to zero the mean's
own derivative drops out of the covariance's. Measured at 512 px, forward and backward of
one layer's style loss on 2 cores (Intel Xeon, alternately in one process): relu1_1
(196,608 x 64) Gram 116 -> 62 ms, W2 237 -> 120 ms; all five style layers Gram 319 ->
177 ms, W2 765 -> 477 ms. Both are exact rewrites: tests/test_feature_statistics.py
checks them against TensorFlow's own gradients.
"""

from __future__ import annotations

from typing import Any

from .tf_runtime import import_tensorflow

Tensor = Any


def gram_product(flat: Tensor) -> Tensor:
    """F^T F for `flat` (positions, channels)."""
    tf = import_tensorflow()

    @tf.custom_gradient
    def product(f):
        def grad(upstream):
            return tf.matmul(f, upstream + tf.transpose(upstream))

        return tf.matmul(f, f, transpose_a=True), grad

    return product(flat)


def mean_and_covariance(flat: Tensor) -> tuple[Tensor, Tensor]:
    """(mean (C,), covariance (C, C)) of `flat` (positions, channels) over its positions."""
    tf = import_tensorflow()

    @tf.custom_gradient
    def moments(f):
        positions = tf.cast(tf.shape(f)[0], f.dtype)
        mean = tf.reduce_mean(f, axis=0)
        centred = f - mean
        cov = tf.matmul(centred, centred, transpose_a=True) / positions

        def grad(d_mean, d_cov):
            # d/dF of the covariance is (F - mean) (S + S^T) / positions: the terms through
            # the mean are sums of the centred features, which are zero.
            out = tf.zeros_like(f) if d_cov is None else tf.matmul(centred, (d_cov + tf.transpose(d_cov)) / positions)
            return out if d_mean is None else out + d_mean / positions

        return (mean, cov), grad

    return moments(flat)
