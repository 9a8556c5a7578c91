"""neural_style.py's command line: parse(), console_main, every classic flag with its
default, --help, and the pyproject entry point. (Runs end to end: tests/test_neural_style.py.)"""

from __future__ import annotations

import os
import re
import sys

import pytest

import neural_style
from neural_style_tf import cli, settings
from neural_style_tf.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- parse()


def test_parse_gives_frozen_validated_settings(files):
    argv = ["--content", files["content"], "--styles", files["style"], files["style2"], "--output", "o.png",
            "--width", "20", "--style-blend-weights", "1", "3", "--content-layers", "relu4_2", "--eps", "1e-6",
            "--scales", "2"]
    parsed = neural_style.parse(argv)
    assert isinstance(parsed, settings.Settings)
    assert parsed.run.content == files["content"] and parsed.run.styles == (files["style"], files["style2"])
    assert parsed.run.width == 20 and parsed.loss.style_blend_weights == (1.0, 3.0)
    assert parsed.loss.content_layers == ("relu4_2",) and parsed.optimizer.epsilon == 1e-6
    assert parsed.optimizer.scales == 2
    assert parsed.loss.loss_scale == "classic" and parsed.run.style_size == "width"  # no preset
    with pytest.raises(AttributeError):  # frozen
        parsed.run.width = 30
    # validate() ran: a bad value is a UsageError, not a Settings
    with pytest.raises(UsageError, match="--width must be a positive integer, not 0"):
        neural_style.parse(argv + ["--width", "0"])
    # a preset conflict (a ValueError in presets) becomes a UsageError too
    with pytest.raises(UsageError, match="--ratio"):
        neural_style.parse(argv + ["--ratio", "1e-3", "--content-weight", "2"])


def test_console_main_exits_with_mains_status(monkeypatch, capsys):
    """console_main ends the process with os._exit (lifecycle.exit_process, no interpreter
    teardown): here os._exit raises instead, so that pytest's process lives on."""
    def exit_now(code):
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    monkeypatch.setattr(sys, "argv", ["neural-style", "--content", "c.png"])
    with pytest.raises(SystemExit) as exc:
        neural_style.console_main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "required" in err


# ---------------------------------------------------------------- flags, defaults, --help, entry point

# The classic tool's flags and defaults (anishathalye/neural-style), which must mean the same here.
CLASSIC_DEFAULTS = {
    "content_weight": 5e0, "content_weight_blend": 1.0, "style_weight": 5e2, "style_layer_weight_exp": 1.0,
    "learning_rate": 1e1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08, "iterations": 1000, "pooling": "max",
    "style_scales": None, "style_blend_weights": None, "initial": None,
    "print_iterations": None, "checkpoint_output": None, "checkpoint_iterations": None, "width": None,
    "overwrite": False, "progress_write": False, "progress_plot": False,
}


def test_every_classic_flag_exists_with_its_default():
    """The classic flags exist and keep their classic defaults, but for the start image:
    the content by default, the classic tool's noise with --initial-noiseblend 1 or
    --preset classic (which also restores the settings beyond the classic flags)."""
    argv = ["--content", "c.png", "--styles", "s.png", "--output", "o.png"]
    args = neural_style.build_parser().parse_args(argv)
    for dest, default in CLASSIC_DEFAULTS.items():
        # Changed on purpose (docs/quality.md, the defaults now): the network's own style-layer
        # weights, at most 100 iterations at the final scale instead of 1000 at one scale, and
        # the style weight 600 that goes with L-BFGS's stop when the loss settles.
        if dest not in ("style_layer_weight_exp", "iterations", "style_weight"):
            assert getattr(args, dest) == default, dest
    assert args.initial_noiseblend == 0.0 and args.style_layer_weight_exp is None and args.iterations == 100
    assert args.style_weight == 600.0 and args.min_improvement == 1.3
    classic = cli.parse_settings(neural_style.build_parser().parse_args(argv + ["--preset", "classic"]), {"preset"})
    for dest, default in CLASSIC_DEFAULTS.items():
        assert classic.value(dest) == (tuple(default) if isinstance(default, list) else default), dest
    assert classic.run.initial_noiseblend == 1.0
    assert args.optimizer == "lbfgs" and args.lbfgs_corrections == settings.LBFGS_CORRECTIONS
    # The classic boolean --preserve-colors now takes an optional mode: off by default,
    # and the bare flag still means the classic luminance transfer.
    assert not args.preserve_colors
    bare = neural_style.build_parser().parse_args(["--content", "c", "--styles", "s", "--output", "o.png",
                                                  "--preserve-colors"])
    assert bare.preserve_colors == "luminance"
    assert args.tv_weight is None  # 1e2 (classic) or the embedded network's own, chosen after loading


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exc:
        neural_style.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for flag in ("--content", "--styles", "--output", "--iterations", "--print-iterations", "--checkpoint-output",
                 "--checkpoint-iterations", "--progress-write", "--progress-plot", "--width", "--style-scales",
                 "--network", "--content-weight-blend", "--content-weight", "--style-weight",
                 "--style-layer-weight-exp", "--style-blend-weights", "--tv-weight", "--learning-rate", "--beta1",
                 "--beta2", "--eps", "--initial", "--initial-noiseblend", "--preserve-colors", "--pooling",
                 "--overwrite", "--optimizer", "--lbfgs-corrections", "--seed", "--content-layers",
                 "--style-layers", "--log"):
        assert flag + " " in text, flag
    for shown in ("(default: 100)", "(default: 5.0)", "(default: 1.0)", "(default: 600.0)", "(default: 10.0)", "(default: 1.3)",
                  "(default: 0.9)", "(default: 0.999)", "(default: 1e-08)", "(default: max)", "(default: lbfgs)",
                  "(default: 10)", "cov style losses 0.1 with ImageNet VGG weights", "relu4_2,relu5_2", "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
                  "default: the content's"):
        assert shown in text, shown
    assert "(default: None)" not in text and "(default: False)" not in text


def read_pyproject(path):
    """The two keys this test needs: the `neural-style` script and the py-modules list.

    tomllib is in the standard library from Python 3.11; on 3.10 the two keys are read
    with a regular expression (they are plain one-line TOML values).
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = None
    if tomllib is not None:
        with open(path, "rb") as f:
            project = tomllib.load(f)
        return project["project"]["scripts"]["neural-style"], project["tool"]["setuptools"].get("py-modules", [])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    script = re.search(r'^"?neural-style"?\s*=\s*"([^"]+)"', text, re.M)
    modules = re.search(r"^py-modules\s*=\s*\[([^\]]*)\]", text, re.M)
    assert script, "no neural-style script in pyproject.toml"
    return script.group(1), re.findall(r'"([^"]+)"', modules.group(1)) if modules else []


def test_read_pyproject_without_tomllib_reads_the_same_keys(monkeypatch):
    """The Python 3.10 route gives what tomllib gives."""
    path = os.path.join(ROOT, "pyproject.toml")
    expected = read_pyproject(path)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ModuleNotFoundError
    assert read_pyproject(path) == expected


def test_pyproject_declares_the_neural_style_command():
    import importlib

    target, modules = read_pyproject(os.path.join(ROOT, "pyproject.toml"))
    module, function = target.split(":")
    assert target == "neural_style:console_main"
    assert callable(getattr(importlib.import_module(module), function))
    # The commands and the algorithm stay top-level modules; everything else is in the package.
    assert {"neural_style", "stylize", "vgg"} <= set(modules)
    assert all(os.path.exists(os.path.join(ROOT, m + ".py")) for m in modules), modules
