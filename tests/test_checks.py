"""checks.py: validation up front. The checks that need no network (validate), and those
that need it: layer names, the smallest usable size and the memory preflight. Every
refusal is one line naming the bad value; through the command line it is exit 2 with
nothing written. The full table of bad command lines is in test_neural_style.py."""

from __future__ import annotations

import dataclasses
import os

import pytest

import neural_style
from neural_style_tf import checks, memory
from neural_style_tf.errors import UsageError
from neural_style_tf.settings import LossOptions, RunSettings, Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "starry_night.jpg")
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")


def settings_for(tmp_path, **values):
    run = RunSettings(content=EXAMPLE, styles=(EXAMPLE,), output=str(tmp_path / "o.png"))
    return Settings(run=run).with_values(values)


# ---------------------------------------------------------------- without the network


def test_validate_accepts_the_defaults(tmp_path):
    checks.validate(settings_for(tmp_path))


@pytest.mark.parametrize("values, message", [
    ({"iterations": 0}, "--iterations must be a positive integer, not 0"),
    ({"eps": float("nan")}, "--eps must be a finite number, not nan"),
    ({"style_scales": (1.0, float("inf"))}, "--style-scales must be a finite number, not inf"),
    ({"beta2": 1.0}, "--beta2 must be in [0, 1), not 1.0"),
    ({"tv_weight": -1.0}, "--tv-weight must be a finite non-negative number, not -1.0"),
    ({"style_blend_weights": (0.0,)}, "--style-blend-weights must be non-negative with a positive sum, not [0.0]"),
    ({"style_layers": ()}, "--style-layers is empty"),
    ({"ratio": 0.0}, "--ratio must be a positive number, not 0.0"),
    ({"checkpoint_iterations": 5}, "--checkpoint-output and --checkpoint-iterations go together"),
    ({"scales": 2, "start_size": 64}, "--scales and --start-size both choose the coarse-to-fine sizes"),
    ({"iterate_average": 1.0}, "--iterate-average must be in [0, 1) (0: off), not 1.0"),
    ({"iterate_average": -0.5}, "--iterate-average must be in [0, 1) (0: off), not -0.5"),
    ({"style_loss": "w2", "loss_scale": "gatys2016"}, "--style-loss w2 replaces the Gram matrix that the gatys2016"),
    ({"preserve_colors": "luminance-only", "color_source": EXAMPLE}, "--color-source works with --preserve-colors "
                                                                    "histogram, not luminance-only"),
])
def test_validate_refuses_with_the_flag_named(tmp_path, values, message):
    with pytest.raises(UsageError) as err:
        checks.validate(settings_for(tmp_path, **values))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_validate_checks_the_files(tmp_path):
    with pytest.raises(UsageError, match="--content .*missing.png: no such file"):
        checks.validate(settings_for(tmp_path, content=str(tmp_path / "missing.png")))
    (tmp_path / "o.png").write_bytes(b"mine")
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        checks.validate(settings_for(tmp_path))
    checks.validate(settings_for(tmp_path, overwrite=True))
    assert (tmp_path / "o.png").read_bytes() == b"mine"  # checked, never written


def test_format_checkpoint_takes_both_placeholder_styles():
    assert checks.format_checkpoint("ck_{:03}.png", 7) == "ck_007.png"
    assert checks.format_checkpoint("ck_%04d.jpg", 7) == "ck_0007.jpg"


@pytest.mark.parametrize("extra,needle", [(["--scales", "2", "--start-size", "64"], "--scales and --start-size"),
                                          (["--scales", "0"], "--scales must be a positive integer, not 0"),
                                          (["--start-size", "-5"], "--start-size must be a positive integer, not -5")])
def test_coarse_to_fine_flags_are_checked(tmp_path, capsys, extra, needle):
    out = tmp_path / "o.png"
    assert neural_style.main(["--content", EXAMPLE, "--styles", EXAMPLE, "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not out.exists()


def test_color_source_with_luminance_is_a_usage_error(tmp_path, capsys):
    code = neural_style.main(["--content", EXAMPLE, "--styles", EXAMPLE, "--output", str(tmp_path / "o.png"),
                              "--preserve-colors", "luminance", "--color-source", EXAMPLE])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--color-source" in err[0] and "luminance" in err[0]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("name", ["o.jpg", "o.webp"])
def test_16_bit_needs_png_or_tiff(tmp_path, capsys, name):
    out = tmp_path / name
    code = neural_style.main(["--content", EXAMPLE, "--styles", EXAMPLE, "--output", str(out), "--bit-depth", "16"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bit-depth 16" in err[0] and name in err[0]
    assert not out.exists()


# ---------------------------------------------------------------- with the network


def test_check_layers_names_the_flag_and_suggests(tiny_network):
    checks.check_layers(LossOptions(), tiny_network)
    with pytest.raises(UsageError) as err:
        checks.check_layers(LossOptions(content_layers=("relu4_3",)), tiny_network)
    message = str(err.value)
    assert message.startswith("--content-layers: unknown layer 'relu4_3'") and "did you mean relu4_" in message
    assert f"python vgg.py layers --network {tiny_network.path}" in message


def test_used_layers_leave_out_content_layers_of_weight_zero():
    assert checks.used_layers(LossOptions()) == LossOptions().style_layers + ("relu4_2",)  # blend 1: relu5_2 is 0
    assert checks.used_layers(LossOptions(content_weight_blend=0.5))[-2:] == ("relu4_2", "relu5_2")


def test_minimum_side_follows_the_poolings_before_the_deepest_layer(tiny_network):
    # relu1_1: no pooling before it, only the TV term's 2 px. relu2_1: one pooling (f = 2).
    # relu5_1: four poolings (f = 16): f / 2 + 1.
    assert checks.minimum_side(tiny_network, ("relu1_1",)) == 2
    assert checks.minimum_side(tiny_network, ("relu1_1", "relu2_1")) == 2
    assert checks.minimum_side(tiny_network, ("relu3_1",)) == 3
    assert checks.minimum_side(tiny_network, LAYERS) == 9
    assert checks.minimum_side(tiny_network, ("relu5_2",)) == 9


def test_check_size_refuses_below_the_minimum_only(tiny_network):
    loss = LossOptions()
    checks.check_size(tiny_network, loss, [(9, 200), (300, 9)])
    with pytest.raises(UsageError) as err:
        checks.check_size(tiny_network, loss, [(9, 200), (8, 200)], "the first coarse-to-fine scale")
    message = str(err.value)
    assert message.startswith("the first coarse-to-fine scale would be 200x8 px")
    assert "relu5_1" in message and "at least 9 px" in message and "--width" in message
    # shallow layers need less
    checks.check_size(tiny_network, LossOptions(style_layers=("relu1_1",), content_layers=()), [(2, 200)])


def test_largest_size_is_the_content_or_a_larger_style(tmp_path):
    s = settings_for(tmp_path, width=40)
    content, small_style, tall_style = (30, 60, 3), (10, 10, 3), (400, 100, 3)
    assert checks.largest_size(s, content, [small_style]) == ((20, 40), (40, 40))  # the style at the output width
    assert checks.largest_size(s, content, [tall_style]) == ((20, 40), (160, 40))
    paper = s.with_values({"style_size": "content"})
    assert checks.largest_size(paper, content, [tall_style]) == ((20, 40), (20, 40))
    scaled = s.with_values({"style_scales": (0.5,)})
    assert checks.largest_size(scaled, content, [tall_style]) == ((20, 40), (80, 20))


def test_check_memory_refuses_warns_or_passes(tiny_network, tmp_path, monkeypatch, capsys):
    s = settings_for(tmp_path)
    need = memory.estimate_peak_bytes(tiny_network, 24, 32, "lbfgs", 20, LAYERS)
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * need)
    checks.check_memory(s, tiny_network, (24, 32, 3), [(24, 32, 3)])
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need / 0.8))
    checks.check_memory(s, tiny_network, (24, 32, 3), [(24, 32, 3)])
    assert capsys.readouterr().err.startswith("warning: a 32x24 image needs about")
    monkeypatch.setattr(memory, "available_bytes", lambda: need // 2)
    with pytest.raises(UsageError, match="a 32x24 image needs about .*--lbfgs-corrections \\(now 10\\)"):
        checks.check_memory(s, tiny_network, (24, 32, 3), [(24, 32, 3)])
    adam = dataclasses.replace(s, optimizer=dataclasses.replace(s.optimizer, optimizer="adam"))
    with pytest.raises(UsageError) as err:
        checks.check_memory(adam, tiny_network, (24, 32, 3), [(24, 32, 3)])
    assert "--lbfgs-corrections" not in str(err.value)


def test_an_array_is_refused_by_its_shape_alone_counting_its_copies_and_the_optimizer(tmp_path, monkeypatch):
    """No network: the TensorFlow runtime, two float32 copies, and the content's optimizer
    arrays at the output size (so --width matters for the content, not for a style)."""
    s = settings_for(tmp_path)
    copies = 2 * 1000 * 2000 * 3 * memory.FLOAT32
    optimizer = sum(memory.optimizer_parts(1000, 2000, "lbfgs", 20).values())
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.TENSORFLOW_BASELINE_BYTES + copies + 2**23)
    checks.check_array_size(s, "styles[0]", (1000, 2000, 3), is_content=False)
    with pytest.raises(UsageError, match=r"^content: a 2000x1000 image needs about .* width=$"):
        checks.check_array_size(s, "content", (1000, 2000, 3), is_content=True)
    checks.check_array_size(s.with_values({"width": 64}), "content", (1000, 2000, 3), is_content=True)
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.TENSORFLOW_BASELINE_BYTES + copies + optimizer)
    checks.check_array_size(s, "content", (1000, 2000, 3), is_content=True)


def test_validate_takes_an_array_content_and_no_output(tmp_path):
    """The API's settings: no content file (an array stands for it), no output file."""
    s = Settings(run=RunSettings(content=None, styles=(None, EXAMPLE), output=None)).with_values(
        {"bit_depth": 16, "style_scales": (1.0, 0.5)})
    checks.validate(s)


# ---------------------------------------------------------------- the memory preflight on the command line


def test_cli_refuses_with_advice_and_exit_2(tiny_net_path, content_and_style, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--iterations", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert "32x24 image needs about" in err and "smaller --width" in err and "--lbfgs-corrections" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_warns_and_runs(tiny_net_path, tiny_network, content_and_style, tmp_path, monkeypatch, capsys):
    need = memory.estimate_peak_bytes(tiny_network, 24, 32, "lbfgs", 20, LAYERS)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need / 0.8))
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--iterations", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "warning: a 32x24 image needs about" in err
    assert out.exists()


@pytest.mark.parametrize("extra, largest", [(["--width", "1000000"], "1000000x750000"),
                                            (["--width", "32", "--style-scales", "40000"], "1280000x960000")])
def test_cli_refuses_an_absurd_size_before_resizing(tiny_net_path, content_and_style, tmp_path, capsys, extra, largest):
    # Resizing to these sizes would need terabytes and the OOM killer would end the run
    # without a word: the preflight must see the sizes before any image is resized.
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--quiet"] + extra)
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"a {largest} image needs about" in err and "Traceback" not in err
    assert ("style image" in err) == ("--style-scales" in extra)
    assert not out.exists()


def test_lbfgs_first_step_must_be_non_negative(capsys, tmp_path):
    with pytest.raises(UsageError, match="--lbfgs-first-step must be non-negative"):
        checks.check_numbers(Settings(run=RunSettings(content="c", styles=("s",), output="o.png"),
                                      optimizer=dataclasses.replace(Settings(run=None).optimizer,
                                                                    lbfgs_first_step=-1.0)))



@pytest.mark.parametrize("value, message", [(-1.0, "must be a percentage from 0"), (100.0, "must be a percentage from 0"),
                                            (float("nan"), "must be a finite number")])
def test_min_improvement_is_a_percentage_below_100(value, message):
    with pytest.raises(UsageError, match="--min-improvement " + message):
        checks.check_numbers(Settings(run=RunSettings(content="c", styles=("s",), output="o.png"),
                                      optimizer=dataclasses.replace(Settings(run=None).optimizer,
                                                                    min_improvement=value)))
