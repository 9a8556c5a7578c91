"""The products every style statistic is made of, with their gradients written out: F^T F
(the Gram matrix's) and the mean and covariance of F (W2's and mean-cov's), for F the
(positions, channels) matrix of one layer's features; and W2's tr((R C R)^1/2) (trace_sqrt, and
trace_sqrt_of_factor for a layer of fewer positions than channels). feature_moments and
w2_moments are the statistics losses.py's StyleStatistic computes from a layer (masked or not).

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

import numpy as np

from .tf_runtime import import_tensorflow

Tensor = Any

# Eigenvalues below this (relative to the largest) count as 0 in the W2 trace term: sqrt's
# derivative is infinite at 0, and a ReLU covariance's smallest eigenvalues are 0 to rounding.
W2_EIG_FLOOR = 1e-8


def gram_product(flat: Tensor) -> Tensor:
    """F^T F for `flat` (positions, channels)."""
    tf = import_tensorflow()

    @tf.custom_gradient
    def product(f):
        def grad(upstream):
            return tf.matmul(f, upstream + tf.transpose(upstream))

        return tf.matmul(f, f, transpose_a=True), grad

    return product(flat)


def feature_moments(features: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(mean (C,), covariance (C, C)) of features (1, H, W, C), over the H W positions.

    With `weights` (H, W) >= 0 (a guidance mask at this layer, see guided_gram), the
    weighted mean and covariance: sum w f / sum w and sum w (f - mean)(f - mean)^T / sum w.
    """
    tf = import_tensorflow()

    flat = tf.reshape(features, (-1, features.shape[-1]))
    if weights is None:
        return mean_and_covariance(flat)
    w = tf.reshape(tf.cast(weights, features.dtype), (-1, 1))
    mass = mask_mass(w)
    mean = tf.reduce_sum(flat * w, axis=0) / mass
    centred = flat - mean
    return mean, tf.matmul(centred * w, centred, transpose_a=True) / mass


def w2_moments(features: Tensor, weights: Tensor | None = None) -> tuple:
    """feature_moments, and for a layer of fewer positions than channels (known when the graph
    is built) a third tensor, the factor X (positions, channels) with X^T X the covariance:
    (f - mean) sqrt(w / sum w), or / sqrt(positions) unweighted. style_loss_w2 then takes the
    trace term from the small matrix (trace_sqrt_of_factor)."""
    tf = import_tensorflow()

    mean, cov = feature_moments(features, weights)
    positions = features.shape[1:-1].num_elements()
    if positions is None or positions >= int(features.shape[-1]):
        return mean, cov
    centred = tf.reshape(features, (-1, features.shape[-1])) - mean
    if weights is None:
        return mean, cov, centred / float(np.sqrt(positions))
    w = tf.reshape(tf.cast(weights, features.dtype), (-1, 1))
    return mean, cov, centred * tf.sqrt(w / mask_mass(w))


def mask_mass(weights: Tensor) -> Tensor:
    """sum(weights), kept above 0: a layer's statistic of an empty region is 0, not NaN."""
    tf = import_tensorflow()

    return tf.maximum(tf.reduce_sum(weights), 1e-12)


def bfloat16_source(flat: Tensor) -> Tensor | None:
    """The bfloat16 tensor that `flat` is a float32 cast of (through a reshape), as a
    bfloat16 network hands its layers on (FeatureNetwork.features); None otherwise."""
    tf = import_tensorflow()

    try:
        op = flat.op
    except AttributeError:  # an eager tensor has no op to trace back
        return None
    source = op.inputs[0] if op.type == "Reshape" else flat
    if source.op.type != "Cast" or source.op.inputs[0].dtype != tf.bfloat16:
        return None
    return tf.reshape(source.op.inputs[0], (-1, flat.shape[-1]))


def mean_and_covariance(flat: Tensor) -> tuple[Tensor, Tensor]:
    """(mean (C,), covariance (C, C)) of `flat` (positions, channels) over its positions.

    From a bfloat16 layer (bfloat16_source), see moments_of_bfloat16."""
    tf = import_tensorflow()

    low = bfloat16_source(flat)
    if low is not None:
        return moments_of_bfloat16(low)

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


def moments_of_bfloat16(features: Tensor) -> tuple[Tensor, Tensor]:
    """mean_and_covariance of a bfloat16 layer `features` (positions, channels): the same
    float32 mean and covariance, with the gradient computed in bfloat16 and returned to the
    bfloat16 layer.

    Why: the float32 gradient needs the float32 centred features, so each style layer held
    that copy from its forward pass to its gradient, beside the float32 cast and the
    float32 gradient: at 512x384, 48 MB each for relu1_1 (issue 33; docs/performance.md,
    Memory at 512 px). The gradient is cast to bfloat16 where it joins the network's
    backward pass, which is bfloat16 throughout; computing it in bfloat16 (the product
    accumulates in float32 in oneDNN) leaves it within 0.3% of the float32 one (the
    whole image's gradient at 512 px), and the loss is unchanged. The float32 copies now
    live only while the covariance is computed.
    """
    tf = import_tensorflow()

    @tf.custom_gradient
    def moments(b):
        positions = tf.cast(tf.shape(b)[0], tf.float32)
        mean = tf.reduce_mean(tf.cast(b, tf.float32), axis=0)
        centred = tf.cast(b, tf.float32) - mean
        cov = tf.matmul(centred, centred, transpose_a=True) / positions

        def grad(d_mean, d_cov):
            # As mean_and_covariance's, (F - mean) (S + S^T) / positions, in bfloat16.
            if d_cov is None:
                out = tf.zeros_like(b)
            else:
                symmetric = tf.cast((d_cov + tf.transpose(d_cov)) / positions, tf.bfloat16)
                out = tf.matmul(b - tf.cast(mean, tf.bfloat16), symmetric)
            return out if d_mean is None else out + tf.cast(d_mean / positions, tf.bfloat16)

        return (mean, cov), grad

    return moments(features)


def trace_sqrt(cov: Tensor, root: Tensor) -> Tensor:
    """tr((R C R)^1/2) for symmetric PSD C (`cov`) and R (`root`, the target's C_t^1/2),
    both float64: the sum of the square roots of the eigenvalues of R C R.

    In float64: the small eigenvalues, whose roots change fastest, are lost in float32
    (tried: a float32 eigh with float64 Rayleigh quotients is as smooth on a full-rank
    covariance, but on the rank-deficient deep layers at 256 px L-BFGS's line search then
    failed after 61 of 100 iterations). LAPACK's eigh (NumPy's): 49 ms for 512 x 512
    against TensorFlow's 102 ms on 2 cores, measured alternately, equal to 1e-13.

    The gradient in C is written out, W diag(1/(2 sqrt(lambda))) W^T with W = R V (two
    products, not the chain rule's four), because TensorFlow's gradient of eigh divides by
    the differences of eigenvalues: a covariance of more channels than positions (relu5_1
    at 256 px: 512 channels, 192 positions) has many equal (zero) eigenvalues, and that
    gradient is NaN. Eigenvalues below W2_EIG_FLOOR of the largest count as 0 in both.
    """
    tf = import_tensorflow()

    @tf.custom_gradient
    def _trace_sqrt(c):
        product = tf.matmul(tf.matmul(root, c), root)
        vectors, result, half_inverse = _root_sum(product)

        def grad(upstream):
            w = tf.matmul(root, vectors)
            return upstream * tf.matmul(w * half_inverse, w, transpose_b=True)

        return result, grad

    return _trace_sqrt(cov)


def trace_sqrt_of_factor(factor: Tensor, target_cov: Tensor) -> Tensor:
    """trace_sqrt(C, R) for C = X^T X given by its factor X (`factor`, positions x channels, fewer
    positions than channels) and R^2 = C_t (`target_cov`), both float64.

    Why: R C R = (X R)^T (X R) has the same nonzero eigenvalues as the positions x positions
    X C_t X^T, so the trace needs the eigenvalues of that small matrix, not of the channels x
    channels one. A deep layer of a small image has fewer positions than channels (relu5_1 at
    128 px: 48 positions, 512 channels), and there LAPACK's 512 x 512 eigh (~40 ms) and the
    float64 products around it were a fixed cost of every evaluation, whatever the size
    (issue 35; docs/performance.md#each-evaluation-priced-by-its-pixels).

    The gradient in X is 2 G X C_t, G = U diag(1/(2 sqrt(lambda))) U^T of the small matrix: from
    d tr = tr(G dM) with dM = dX C_t X^T + X C_t dX^T. Eigenvalues below W2_EIG_FLOOR count as 0.
    """
    tf = import_tensorflow()

    @tf.custom_gradient
    def _trace_sqrt(x):
        weighted = tf.matmul(x, target_cov)  # X C_t
        vectors, result, half_inverse = _root_sum(tf.matmul(weighted, x, transpose_b=True))

        def grad(upstream):
            g = tf.matmul(vectors * half_inverse, vectors, transpose_b=True)
            return upstream * 2.0 * tf.matmul(g, weighted)

        return result, grad

    return _trace_sqrt(factor)


def _root_sum(product: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(eigenvectors, sum of the square roots of the eigenvalues, 1/(2 sqrt) of each) of the
    symmetric PSD float64 `product`; eigenvalues below W2_EIG_FLOOR of the largest count as 0."""
    tf = import_tensorflow()

    values, vectors = symmetric_eigh((product + tf.transpose(product)) / 2)  # symmetric, as eigh assumes
    kept = values > W2_EIG_FLOOR * tf.maximum(tf.reduce_max(values), 1e-30)
    roots = tf.sqrt(tf.where(kept, values, tf.ones_like(values)))
    result = tf.reduce_sum(tf.where(kept, roots, tf.zeros_like(roots)))
    return vectors, result, tf.where(kept, 0.5 / roots, tf.zeros_like(roots))


def symmetric_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric float64 matrix, by LAPACK."""
    tf = import_tensorflow()

    values, vectors = tf.numpy_function(lambda m: tuple(np.linalg.eigh(m)), [matrix], (tf.float64, tf.float64),
                                        stateful=False)
    values.set_shape(matrix.shape[:1])
    vectors.set_shape(matrix.shape)
    return values, vectors
