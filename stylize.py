"""The classic entry point to the algorithm: Gatys et al. style transfer as one
tf.compat.v1 graph, optimised by SciPy's L-BFGS-B (through an `Evaluator`) or by Adam.

The algorithm lives in three modules of the package, each readable in one sitting:

    neural_style_tf/losses.py      the loss terms and statistics, the loss scales, W2
    neural_style_tf/objective.py   targets, guidance and `Objective` (the terms as small objects)
    neural_style_tf/optimize.py    `Evaluator`, L-BFGS, Adam, `minimize`, `Result`

This module re-exports what the classic tool's users and this project's scripts import
from `stylize`, so `stylize.Objective(...)` and `stylize.minimize(...)` keep working.
"""

from __future__ import annotations

from neural_style_tf.feature_statistics import W2_EIG_FLOOR, trace_sqrt  # noqa: F401
from neural_style_tf.losses import (  # noqa: F401 (re-exported)
    LOSS_SCALES,
    MEAN_COV_SCALE,
    REFERENCE_SIZE,
    W2_SCALE,
    LossScale,
    StyleStatistic,
    blend_weights,
    content_layer_weights,
    content_loss,
    content_loss_half_sum,
    feature_moments,
    gram_matrix,
    gram_per_position,
    guided_gram,
    mean_cov_target,
    pool_mask,
    sqrtm_psd,
    style_layer_weights,
    style_loss,
    style_loss_gatys2016,
    style_loss_gatys_pytorch,
    style_loss_mean_cov,
    style_loss_w2,
    style_statistic,
    target_spread,
    temporal_loss,
    total_variation,
    total_variation_normalized,
    w2_target,
)
from neural_style_tf.objective import (  # noqa: F401
    DEFAULT_LOSS,
    KEEP_TERM,
    LOSS_TERMS,
    NO_GUIDANCE,
    NOISE_SCALE,
    Guidance,
    Objective,
    initial_image,
    term_weights,
)
from neural_style_tf.optimize import (  # noqa: F401
    DEFAULT_OPTIMIZER,
    BudgetExhausted,
    Evaluator,
    IterateAverage,
    NonFiniteLoss,
    Progress,
    lbfgs_scale,
    minimize,
)
from neural_style_tf.optimize import OptimizationResult as Result  # noqa: F401 (the classic name)
from neural_style_tf.settings import (  # noqa: F401
    CONTENT_WEIGHT_BLEND,
    OPTIMIZERS,
    STYLE_LAYER_WEIGHT_EXP,
    STYLE_LOSSES,
    STYLE_SCALE,
    LossOptions,
    OptimizerOptions,
)
from neural_style_tf.targets import prepare_style, targets  # noqa: F401
from neural_style_tf.terms import TEMPORAL_TERM  # noqa: F401
from neural_style_tf.terms import PixelTarget as Temporal  # noqa: F401 (the classic name)
from neural_style_tf.tf_runtime import import_tensorflow, session_config  # noqa: F401
