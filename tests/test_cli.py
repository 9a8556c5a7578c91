"""cli.py: the shared flags, the one-line parser errors, which flags were given, and
arguments -> frozen Settings with the preset applied. The whole command line is tested
end to end in test_neural_style.py."""

from __future__ import annotations

import argparse

import pytest

import neural_style
from neural_style_tf import cli, settings
from neural_style_tf.settings import Settings

BASE = ["--content", "c.jpg", "--styles", "s.jpg", "--output", "o.jpg"]


def parse_settings(argv):
    parser = neural_style.build_parser()
    return cli.build_settings(parser, cli.parse_given(parser, argv))


def test_layer_list_splits_and_strips():
    assert cli.layer_list("relu1_1, relu2_1 ,relu3_1") == ("relu1_1", "relu2_1", "relu3_1")
    assert cli.layer_list(",") == () and cli.layer_list("relu4_2") == ("relu4_2",)


def test_parser_error_is_one_line_with_exit_2(capsys):
    parser = neural_style.build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(BASE + ["--width", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neural_style.py: error: ") and err.endswith("(see --help)\n")
    assert "--width" in err and "abc" in err


def test_fail_prints_one_line_and_returns_the_usage_status(capsys):
    assert cli.fail("tool.py", "no good") == 2
    assert capsys.readouterr().err == "tool.py: error: no good\n"


def test_formatter_shows_a_default_once_and_never_none_or_false():
    p = cli.Parser(prog="t", formatter_class=cli.Formatter)
    p.add_argument("--a", type=int, default=3, help="a number")
    p.add_argument("--b", default=None, help="a name")
    p.add_argument("--c", action="store_true", help="a switch")
    p.add_argument("--d", type=int, default=4, help="explained (default: four)")
    text = " ".join(p.format_help().split())
    assert "a number (default: 3)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "explained (default: four)" in text and "(default: 4)" not in text


def test_preserve_colors_flag_forms():
    parser = neural_style.build_parser()
    assert parser.parse_args(BASE).preserve_colors is None
    assert parser.parse_args(BASE + ["--preserve-colors"]).preserve_colors == "luminance"
    assert parser.parse_args(["--preserve-colors"] + BASE).preserve_colors == "luminance"
    assert parser.parse_args(BASE + ["--preserve-colors", "histogram"]).preserve_colors == "histogram"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(BASE + ["--preserve-colors", "chroma"])
    assert exc.value.code == 2


def test_the_groups_can_be_reused_by_another_command():
    """compare.py takes the objective's flags without the transfer's files."""
    p = cli.Parser(prog="other")
    cli.add_objective_arguments(p.add_argument_group("objective"))
    args = p.parse_args(["--style-weight", "7", "--content-layers", "relu3_1", "--preset", "gatys2016"])
    assert args.style_weight == 7.0 and args.content_layers == ("relu3_1",) and args.preset == "gatys2016"
    assert not hasattr(args, "content") and not hasattr(args, "iterations")


def test_the_given_flags_are_parsed_once_whatever_their_value():
    argv = BASE + ["--pooling", "max", "--iterations", "1000", "--eps", "1e-8"]
    given = cli.parse_given(neural_style.build_parser(), argv)
    # equal to the defaults, but typed: given (a preset must not override them), and typed by argparse
    assert given == {"pooling": "max", "iterations": 1000, "eps": 1e-8, "content": "c.jpg", "styles": ["s.jpg"],
                     "output": "o.jpg"}
    args, explicit = cli.parse_once(neural_style.build_parser, argv)
    assert explicit == set(given) and args.iterations == 1000 and args.style_weight == settings.STYLE_WEIGHT


def test_a_missing_required_flag_is_argparses_own_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_given(neural_style.build_parser(), ["--quiet"])
    assert exc.value.code == 2
    assert "the following arguments are required: --content, --styles, --output" in capsys.readouterr().err


def test_parse_settings_takes_every_flag_into_its_part():
    s = parse_settings(BASE + ["--styles", "a.jpg", "b.jpg", "--style-blend-weights", "1", "2", "--eps", "1e-6",
                               "--width", "20", "--scales", "2", "--content-layers", "relu4_2", "--seed", "4"])
    assert isinstance(s, Settings)
    assert s.run.styles == ("a.jpg", "b.jpg") and s.loss.style_blend_weights == (1.0, 2.0)  # tuples, not lists
    assert s.optimizer.epsilon == 1e-6 and s.optimizer.scales == 2 and s.run.width == 20 and s.run.seed == 4
    assert s.loss.content_layers == ("relu4_2",) and s.loss.style_layers == settings.STYLE_LAYERS
    assert s.loss.tv_weight is None  # resolved against the network later
    # no preset: the classic non-flag settings
    assert (s.loss.loss_scale, s.run.style_size, s.run.normalize_network) == ("classic", "width", False)


def test_parse_settings_applies_the_preset_and_keeps_explicit_flags():
    s = parse_settings(BASE + ["--preset", "gatys2016", "--pooling", "max"])
    assert s.loss.pooling == "max"  # explicit wins
    assert s.loss.loss_scale == "gatys2016" and s.loss.tv_weight == 0.0 and s.run.width == 512
    assert s.run.normalize_network and s.run.style_size == "content"


def test_parse_settings_ignores_a_commands_own_flags():
    args = argparse.Namespace(content="c.png", styles=["s.png"], output="o.png", out_dir="x", sizes=[1, 2])
    s = cli.parse_settings(args)
    assert s.run.content == "c.png" and s.run.styles == ("s.png",)


def test_a_preset_conflict_is_a_value_error_of_parse_settings_and_a_usage_error_of_build_settings():
    argv = BASE + ["--ratio", "1e-3", "--content-weight", "2"]
    with pytest.raises(cli.UsageError, match="--ratio.*--content-weight"):
        parse_settings(argv)
    with pytest.raises(ValueError, match="--ratio.*--content-weight"):
        cli.parse_settings(*cli.parse_once(neural_style.build_parser, argv))


# ---------------------------------------------------------------- the installed commands' names, extras, --web


@pytest.mark.parametrize("argv0, name", [("/venv/bin/neural-style", "neural-style"),
                                         ("/venv/bin/neural-style-batch", "neural-style-batch"),
                                         ("C:\\venv\\Scripts\\neural-style-video.exe", "neural-style-video"),
                                         ("neural_style.py", "neural_style.py"), ("/usr/bin/pytest", "neural_style.py"),
                                         ("", "neural_style.py")])
def test_an_installed_command_names_itself(monkeypatch, argv0, name):
    monkeypatch.setattr("sys.argv", [argv0.replace("\\", "/")] if argv0 else [])
    assert cli.command_name("neural_style.py") == name
    assert neural_style.build_parser().prog == name


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "ray" else object())
    with pytest.raises(cli.UsageError) as exc:
        cli.require_extra("batch")
    assert str(exc.value) == "Ray is not installed; install it with: pip install 'neural-style-tf[batch]'"
    cli.require_extra("video")  # cv2 and imageio_ffmpeg "found"


def test_the_extras_are_pyprojects():
    import os

    import tomllib

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert set(cli.EXTRAS) <= set(extras)


@pytest.mark.parametrize("text, ok", [("0", True), ("8000", True), ("65535", True), ("65536", False), ("-1", False),
                                      ("web", False)])
def test_web_port(text, ok):
    if ok:
        assert cli.port(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="invalid port"):
            cli.port(text)
