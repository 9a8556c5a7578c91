"""settings.py: the defaults (defined once), the frozen settings and how command-line
dests map onto them."""

from __future__ import annotations

import dataclasses
import json

import pytest

import neural_style
import stylize
from neural_style_tf import settings
from neural_style_tf.settings import FIELD_OF_DEST, LossOptions, OptimizerOptions, RunSettings, Settings


def make(**run):
    return Settings(run=RunSettings(content="c.png", styles=("s.png",), output="o.png", **run))


def test_defaults_are_the_classic_tools():
    options, loss = OptimizerOptions(), LossOptions()
    assert (options.learning_rate, options.beta1, options.beta2, options.epsilon) == (1e1, 0.9, 0.999, 1e-8)
    # 100 final-scale iterations instead of the classic 1000 (docs/performance.md, time to a finished look),
    # with SciPy's own history of 10 (docs/lbfgs-vs-adam.md, the history)
    assert (options.optimizer, options.iterations, options.lbfgs_corrections) == ("lbfgs", 100, 10)
    assert options.lbfgs_bounds == "fold"  # no SciPy bounds (docs/performance.md#the-soft-box-and-the-fold)
    assert (options.scales, options.start_size, options.max_evaluations, options.time_budget) == (None,) * 4
    # The TV weight is the network's own (None), as on the command line: see
    # test_objective.py's test_the_librarys_default_objective_is_the_plain_commands.
    # The style weight is the classic 500 x 1.2 (settings.STYLE_WEIGHT); --preset classic keeps 500.
    assert (loss.content_weight, loss.style_weight, loss.tv_weight) == (5.0, 600.0, None)
    # L-BFGS stops once the loss settles (optimize.SettledRule); the presets run every iteration.
    assert (options.min_improvement, settings.STOP_WINDOW) == (1.3, 10)
    # style-layer weights: the network's own (None), see FeatureNetwork.default_style_layer_weight_exp
    assert (loss.content_weight_blend, loss.style_layer_weight_exp, loss.pooling) == (1.0, None, "max")
    assert loss.content_layers == ("relu4_2", "relu5_2")
    assert loss.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert loss.loss_scale == "classic" and loss.loss_scale in stylize.LOSS_SCALES
    # The embedded network's TV weight is its own default (see FeatureNetwork.default_tv_weight).
    assert settings.TV_WEIGHT_EMBEDDED == 1.0 and settings.TV_WEIGHT == 100.0


def test_the_options_defaults_are_the_command_lines(files, tmp_path):
    """Every LossOptions and OptimizerOptions default is what the plain command (no flag but
    the files) parses: the library and the command line start from the same options."""
    command = neural_style.parse(["--content", str(files["content"]), "--styles", str(files["style"]),
                                  "--output", str(tmp_path / "o.png")])
    for part, defaults in (("loss", LossOptions()), ("optimizer", OptimizerOptions())):
        parsed = getattr(command, part)
        differ = [f.name for f in dataclasses.fields(defaults) if getattr(parsed, f.name) != getattr(defaults, f.name)]
        assert differ == [], part


def test_stylize_uses_the_settings_classes_and_defaults():
    """The defaults live once: stylize's names are the settings' objects, not copies."""
    assert stylize.LossOptions is LossOptions and stylize.OptimizerOptions is OptimizerOptions
    assert stylize.DEFAULT_LOSS == LossOptions() and stylize.DEFAULT_OPTIMIZER == OptimizerOptions()
    assert not hasattr(stylize, "with_options")  # dataclasses.replace does it


def test_settings_are_frozen():
    s = make()
    for part, name in ((s, "run"), (s.run, "width"), (s.loss, "style_weight"), (s.optimizer, "iterations")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, name, 1)


def test_every_dest_maps_to_exactly_one_field():
    fields = {(part, f.name) for part, cls in (("run", RunSettings), ("loss", LossOptions),
                                               ("optimizer", OptimizerOptions)) for f in dataclasses.fields(cls)}
    assert set(FIELD_OF_DEST.values()) == fields
    assert len(FIELD_OF_DEST) == len(fields)
    # --eps keeps the classic tool's name; its setting is epsilon.
    assert FIELD_OF_DEST["eps"] == ("optimizer", "epsilon") and "epsilon" not in FIELD_OF_DEST
    assert FIELD_OF_DEST["tv_weight"] == ("loss", "tv_weight")
    assert FIELD_OF_DEST["scales"] == ("optimizer", "scales") and FIELD_OF_DEST["seed"] == ("run", "seed")


def test_with_values_puts_each_value_in_its_part_and_leaves_the_original_alone():
    base = make(width=64)
    changed = base.with_values({"eps": 1e-6, "style_weight": 7.0, "width": 32, "scales": 3, "style_size": "content"})
    assert (changed.optimizer.epsilon, changed.loss.style_weight, changed.run.width) == (1e-6, 7.0, 32)
    assert changed.optimizer.scales == 3 and changed.run.style_size == "content"
    assert changed.run.content == "c.png" and changed.loss.content_weight == settings.CONTENT_WEIGHT
    assert base.run.width == 64 and base.optimizer.epsilon == settings.EPSILON  # frozen: a copy was made
    assert changed.value("eps") == 1e-6 and changed.value("width") == 32 and changed.value("pooling") == "max"
    with pytest.raises(KeyError):
        base.with_values({"no_such_flag": 1})


def test_as_dict_is_json_ready():
    s = make(seed=3).with_values({"style_blend_weights": (1.0, 2.0), "content_layers": ("relu4_2",)})
    d = s.as_dict()
    assert set(d) == {"run", "loss", "optimizer"}
    assert d["loss"]["style_blend_weights"] == [1.0, 2.0] and d["loss"]["content_layers"] == ["relu4_2"]
    assert d["run"]["styles"] == ["s.png"] and d["run"]["seed"] == 3 and d["optimizer"]["epsilon"] == 1e-8
    assert json.loads(json.dumps(d)) == d


class FakeNetwork:
    default_tv_weight = 0.25
    relative_tv_weight = 0.125


def test_effective_tv_weight_is_the_given_one_else_the_networks():
    # Unset: the network's own, for the Gram loss and for a relative style loss (the default W2,
    # mean-cov) each.
    assert settings.effective_tv_weight(LossOptions(tv_weight=None, style_loss="gram"), FakeNetwork()) == 0.25
    for style_loss in settings.RELATIVE_STYLE_LOSSES:
        assert settings.effective_tv_weight(LossOptions(tv_weight=None, style_loss=style_loss),
                                            FakeNetwork()) == 0.125
    assert settings.effective_tv_weight(LossOptions(tv_weight=3.0), FakeNetwork()) == 3.0
    assert settings.effective_tv_weight(LossOptions(tv_weight=0.0), FakeNetwork()) == 0.0  # 0 is a value, not "unset"


# Text fields that name no file, each with why: set by a preset only, from a fixed set.
_NAMED_VALUES_WITHOUT_A_FLAG = {"style_size": "a preset's 'width' or 'content', never a path"}


def test_every_field_that_is_a_path_is_marked():
    """A RunSettings field holding text (or a tuple of it) is a path unless its flag takes
    fixed choices: each such field must be marked an input file or presentation, so that
    a batch job's id, a video's fingerprint and a worker's copies of the inputs follow it."""
    import neural_style

    flags = {a.dest: a for a in neural_style.build_parser()._actions}
    inputs, presentation = set(settings.input_file_fields()), set(settings.presentation_fields())
    assert not inputs & presentation
    unmarked = []
    for f in dataclasses.fields(RunSettings):
        if not any(t in str(f.type) for t in ("str", "tuple")) or f.name in inputs | presentation:
            continue
        if f.name in _NAMED_VALUES_WITHOUT_A_FLAG:
            assert f.name not in flags
        elif flags[f.name].choices is None:
            unmarked.append(f.name)
    assert not unmarked, f"path-like settings neither input files nor presentation: {unmarked}"
    assert inputs == {"content", "styles", "initial", "color_source", "network", "style_masks",
                      "style_region_masks", "content_mask"}
    assert {"output", "log", "checkpoint_output"} <= presentation and "seed" not in presentation
    # "files" fields hold tuples, "file" fields one path.
    assert all("tuple" in str(RunSettings.__dataclass_fields__[n].type) for n in settings.input_file_fields("files"))
    assert not any("tuple" in str(RunSettings.__dataclass_fields__[n].type) for n in settings.input_file_fields("file"))
