"""The classic entry point to the algorithm, kept as a compatibility facade.

`stylize.Objective(...)` and `stylize.minimize(...)` keep working for the classic tool's
users and for older scripts; each name below is imported from the module that defines
it (docs/README.md, "The package, module by module", says what each module holds).
Code inside the package imports those modules, never this file.
"""

from __future__ import annotations

# One block per home module, one name per line, so that a rename is a one-line edit here
# and in __all__.
from neural_style_tf.feature_statistics import (
    W2_EIG_FLOOR,
    feature_moments,
    trace_sqrt,
)
from neural_style_tf.losses import (
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
from neural_style_tf.objective import (
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
from neural_style_tf.optimize import (
    DEFAULT_OPTIMIZER,
    BudgetExhausted,
    Evaluator,
    IterateAverage,
    NonFiniteLoss,
    Progress,
    lbfgs_scale,
    minimize,
)
from neural_style_tf.optimize import OptimizationResult as Result  # the classic name
from neural_style_tf.settings import (
    CONTENT_WEIGHT_BLEND,
    OPTIMIZERS,
    STYLE_LAYER_WEIGHT_EXP,
    STYLE_LOSSES,
    STYLE_SCALE,
    LossOptions,
    OptimizerOptions,
)
from neural_style_tf.targets import (
    prepare_style,
    targets,
)
from neural_style_tf.terms import (
    TEMPORAL_TERM,
    PixelTarget,
)
from neural_style_tf.terms import PixelTarget as Temporal  # the classic name (video.py's term)
from neural_style_tf.tf_runtime import (
    import_tensorflow,
    session_config,
)

__all__ = [
    # feature_statistics
    "W2_EIG_FLOOR",
    "trace_sqrt",
    # losses
    "LOSS_SCALES",
    "MEAN_COV_SCALE",
    "REFERENCE_SIZE",
    "W2_SCALE",
    "LossScale",
    "StyleStatistic",
    "blend_weights",
    "content_layer_weights",
    "content_loss",
    "content_loss_half_sum",
    "feature_moments",
    "gram_matrix",
    "gram_per_position",
    "guided_gram",
    "mean_cov_target",
    "pool_mask",
    "sqrtm_psd",
    "style_layer_weights",
    "style_loss",
    "style_loss_gatys2016",
    "style_loss_gatys_pytorch",
    "style_loss_mean_cov",
    "style_loss_w2",
    "style_statistic",
    "target_spread",
    "temporal_loss",
    "total_variation",
    "total_variation_normalized",
    "w2_target",
    # objective
    "DEFAULT_LOSS",
    "KEEP_TERM",
    "LOSS_TERMS",
    "NO_GUIDANCE",
    "NOISE_SCALE",
    "Guidance",
    "Objective",
    "initial_image",
    "term_weights",
    # optimize
    "DEFAULT_OPTIMIZER",
    "BudgetExhausted",
    "Evaluator",
    "IterateAverage",
    "NonFiniteLoss",
    "Progress",
    "Result",
    "lbfgs_scale",
    "minimize",
    # settings
    "CONTENT_WEIGHT_BLEND",
    "OPTIMIZERS",
    "STYLE_LAYER_WEIGHT_EXP",
    "STYLE_LOSSES",
    "STYLE_SCALE",
    "LossOptions",
    "OptimizerOptions",
    # targets
    "prepare_style",
    "targets",
    # terms
    "TEMPORAL_TERM",
    "PixelTarget",
    "Temporal",
    # tf_runtime
    "import_tensorflow",
    "session_config",
]
