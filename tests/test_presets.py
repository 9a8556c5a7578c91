"""presets.py: the paper's and the authors' later settings as data applied to frozen
Settings (explicit flags win), their losses against the papers' formulas in NumPy.
Tiny network, 16-48 px images. The normalised network and its cache are tested in
test_normalization.py.

Most of these were in test_reproduce.py; they test presets.py, not reproduce.py.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from numpy_reference import reference_terms
from numpy_reference import relu_features as features

import neural_style
import stylize
from neural_style_tf import cli, images, presets, settings
from neural_style_tf.settings import RunSettings, Settings, effective_tv_weight
from neural_style_tf.targets import size_styles_to_content

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def small(name, width=32):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, name)), width)


def base_settings(**run):
    return Settings(run=RunSettings(content="c.png", styles=("s.png",), output="o.png", **run))


# ---------------------------------------------------------------- apply_preset on Settings


def test_apply_preset_returns_new_settings_and_leaves_the_input_alone():
    base = base_settings()
    paper = presets.apply_preset(base, set(), "gatys2016")
    assert isinstance(paper, Settings) and paper is not base
    assert base.loss.pooling == "max" and base.loss.loss_scale == "classic"  # frozen input unchanged
    assert (paper.loss.pooling, paper.loss.loss_scale, paper.loss.tv_weight) == ("avg", "gatys2016", 0.0)
    assert paper.loss.content_layers == ("relu4_2",) and paper.loss.style_layers == presets.STYLE_LAYERS_PAPER
    assert (paper.run.width, paper.run.style_size, paper.run.normalize_network) == (512, "content", True)
    assert paper.run.initial_noiseblend == 1.0 and paper.optimizer.optimizer == "lbfgs"
    # no preset, no ratio: the classic settings, values unchanged
    assert presets.apply_preset(base, set()) == base


def test_apply_preset_resolves_the_style_weight_to_the_number_of_style_layers():
    pytorch = presets.apply_preset(base_settings(), set(), "gatys-pytorch")
    assert pytorch.loss.style_weight == 5.0 and pytorch.optimizer.iterations == 500
    three = base_settings().with_values({"style_layers": ("relu1_1", "relu2_1", "relu3_1")})
    assert presets.apply_preset(three, {"style_layers"}, "gatys-pytorch").loss.style_weight == 3.0


def test_apply_preset_ratio_and_unknown_preset():
    ratio = presets.apply_preset(base_settings(), set(), None, 1e-2)
    assert ratio.loss.content_weight == 1e-2 and ratio.loss.style_weight == 1.0
    with_preset = presets.apply_preset(base_settings(), set(), "gatys-pytorch", 1e-2)
    assert with_preset.loss.content_weight == 1e-2 and with_preset.loss.style_weight == 5.0  # the preset's beta
    with pytest.raises(ValueError, match="--ratio 0.01 and --content-weight"):
        presets.apply_preset(base_settings(), {"content_weight"}, None, 1e-2)
    with pytest.raises(ValueError, match="unknown preset 'gatys1999'"):
        presets.apply_preset(base_settings(), set(), "gatys1999")


def test_every_preset_key_is_a_setting():
    for name, values in presets.PRESETS.items():
        for key in values:
            assert key == "description" or key in settings.FIELD_OF_DEST, (name, key)


# ---------------------------------------------------------------- the preset losses against NumPy


def preset_objective(preset, network, content, style, extra=()):
    """LossOptions exactly as neural_style.py builds them for `--preset NAME`."""
    argv = ["--content", "c.png", "--styles", "s.png", "--output", "o.png", "--preset", preset, *extra]
    chosen = resolved(argv)
    loss = dataclasses.replace(chosen.loss, tv_weight=effective_tv_weight(chosen.loss, network))
    style = size_styles_to_content([style], content.shape, chosen.run.style_size)[0]
    return stylize.Objective(network, content, [style], loss), loss, style


def gram(f):
    return f.T @ f


def test_gatys2016_loss_matches_the_paper_formulas(tiny_network):
    rng = np.random.default_rng(3)
    content = small("tubingen_neckarfront.jpg", 24)
    style_raw = small("starry_night.jpg", 30)
    x = rng.uniform(0, 255, content.shape).astype(np.float32)
    objective, loss, style = preset_objective("gatys2016", tiny_network, content, style_raw, ["--ratio", "1e-3"])
    with objective:
        terms, _ = objective.evaluate(x)
    assert style.shape == content.shape  # the paper resizes the style to the content's size
    assert loss.pooling == "avg" and loss.tv_weight == 0 and loss.content_layers == ("relu4_2",)
    layers = list(presets.STYLE_LAYERS_PAPER) + ["relu4_2"]
    fx, fp, fa = (features(tiny_network, im, layers, "avg") for im in (x, content, style))
    content_loss = 0.5 * np.sum((fx["relu4_2"] - fp["relu4_2"]) ** 2)
    style_loss = 0.0
    for layer in presets.STYLE_LAYERS_PAPER:
        m, n = fx[layer].shape
        e = np.sum((gram(fx[layer]) - gram(fa[layer])) ** 2) / (4.0 * n**2 * m**2)
        style_loss += e / 5.0  # w_l = 1/5
    alpha, beta = 1e-3, 1.0
    assert terms["content"] == pytest.approx(alpha * content_loss, rel=1e-4)
    assert terms["style"] == pytest.approx(beta * style_loss, rel=1e-4)
    assert terms["tv"] == 0
    assert terms["total"] == pytest.approx(alpha * content_loss + beta * style_loss, rel=1e-4)


def test_gatys_pytorch_loss_matches_the_authors_code(tiny_network):
    rng = np.random.default_rng(4)
    content = small("tubingen_neckarfront.jpg", 24)
    style = small("the_scream.jpg", 24)
    x = rng.uniform(0, 255, content.shape).astype(np.float32)
    objective, loss, style_used = preset_objective("gatys-pytorch", tiny_network, content, style)
    with objective:
        terms, _ = objective.evaluate(x)
    assert loss.pooling == "max" and loss.content_weight == 1.0
    layers = list(presets.STYLE_LAYERS_PAPER) + ["relu4_2"]
    fx, fp, fa = (features(tiny_network, im, layers, "max") for im in (x, content, style_used))
    content_loss = np.mean((fx["relu4_2"] - fp["relu4_2"]) ** 2)  # nn.MSELoss
    style_loss = 0.0
    for layer in presets.STYLE_LAYERS_PAPER:  # summed, weight 1e3 / N^2, MSE of Gram / M
        m_x, n = fx[layer].shape
        m_a = fa[layer].shape[0]
        style_loss += 1e3 / n**2 * np.mean((gram(fx[layer]) / m_x - gram(fa[layer]) / m_a) ** 2)
    assert terms["content"] == pytest.approx(content_loss, rel=1e-4)
    assert terms["style"] == pytest.approx(style_loss, rel=1e-4)
    assert terms["total"] == pytest.approx(content_loss + style_loss, rel=1e-4)


# Every preset but the classic tool's is a paper's: each needs its formulas below.
PAPER_PRESETS = tuple(name for name in presets.PRESETS if name != "classic")


def paper_terms(preset, network, x, content, style, ratio):
    """(alpha L_content, beta L_style) of a paper preset at image x, by its formulas in NumPy.

    gatys2016 (the paper): L_c = 1/2 sum (F - P)^2, E_l = sum (G - A)^2 / (4 N_l^2 M_l^2)
    with G = F^T F, L_s = sum_l w_l E_l, w_l = 1/5, beta = 1, alpha = ratio.
    gatys-pytorch (the authors' code): L_c = MSE(F, P), E_l = (1e3 / N_l^2) MSE(G / M_l, A / M_l),
    summed over the layers (w_l = 1/5 times beta = 5), alpha = ratio.
    """
    p = presets.PRESETS[preset]
    style_layers = list(p["style_layers"])
    fx, fp, fa = (features(network, im, style_layers + ["relu4_2"], p["pooling"]) for im in (x, content, style))
    f, target = fx["relu4_2"], fp["relu4_2"]
    styles = []
    for layer in style_layers:
        m, n = fx[layer].shape
        g, a = gram(fx[layer]), gram(fa[layer])
        if p["loss_scale"] == "gatys2016":
            styles.append(np.sum((g - a) ** 2) / (4.0 * n**2 * m**2) / len(style_layers))
        elif p["loss_scale"] == "gatys-pytorch":
            styles.append(1e3 / n**2 * np.mean((g / m - a / fa[layer].shape[0]) ** 2))
        else:
            raise AssertionError(f"preset {preset}: write its formulas into paper_terms")
    if p["loss_scale"] == "gatys2016":
        return ratio * 0.5 * np.sum((f - target) ** 2), 1.0 * np.sum(styles)
    return ratio * np.mean((f - target) ** 2), np.sum(styles)


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_paper_preset_terms_and_the_style_share_from_noise(preset, tiny_network):
    """At alpha/beta = 1e-3, from the noise start, each paper preset's terms are its formulas
    (a NumPy transcription), and so is the style term's share of the starting loss."""
    content = small("tubingen_neckarfront.jpg", 32)
    objective, loss, _ = preset_objective(preset, tiny_network, content, small("starry_night.jpg", 40),
                                          ["--ratio", "1e-3"])
    x = stylize.initial_image(content, tiny_network, None, 1.0, 0)  # the noise start, seed 0
    with objective:
        terms, _ = objective.evaluate(x)
        style = objective.style_images[0]  # at the preset's scale: the content's size, or its width
    want_content, want_style = paper_terms(preset, tiny_network, x, content, style, 1e-3)
    assert loss.content_weight == 1e-3 and terms["tv"] == 0
    assert terms["content"] == pytest.approx(want_content, rel=1e-4)
    assert terms["style"] == pytest.approx(want_style, rel=1e-4)
    total = want_content + want_style
    assert terms["style"] / terms["total"] == pytest.approx(want_style / total, rel=1e-4)
    # and the content's share, which float32 keeps when the style's is within 1e-7 of 1
    assert terms["content"] / terms["total"] == pytest.approx(want_content / total, rel=1e-4)


# ---------------------------------------------------------------- presets on the command line


def resolved(argv):
    """The settings neural_style.py makes of `argv`, preset applied (before validation)."""
    parser = neural_style.build_parser()
    return cli.build_settings(parser, cli.parse_given(parser, argv))


class Flat:
    """Settings read by command-line dest, as the flags name them."""

    def __init__(self, chosen):
        self.settings = chosen

    def __getattr__(self, dest):
        return self.settings.value(dest)


BASE = ["--content", "c.png", "--styles", "s.png", "--output", "o.png"]


def flat(argv):
    return Flat(resolved(argv))


def test_explicit_flags_override_the_preset():
    args = flat(BASE + ["--preset", "gatys2016", "--pooling", "max", "--style-layers", "relu1_1,relu2_1",
                            "--width", "300", "--tv-weight", "2"])
    assert args.pooling == "max" and args.style_layers == ("relu1_1", "relu2_1")
    assert args.width == 300 and args.tv_weight == 2
    # the rest comes from the preset
    assert args.content_layers == ("relu4_2",) and args.initial_noiseblend == 1.0
    assert args.loss_scale == "gatys2016" and args.style_size == "content" and args.normalize_network
    # an explicit flag equal to the parser's default still counts as explicit
    args = flat(BASE + ["--preset", "gatys-pytorch", "--pooling", "max", "--iterations", "1000"])
    assert args.iterations == 1000 and args.initial_noiseblend == 0.0 and args.style_weight == 5.0
    # --initial keeps its classic meaning (start from that image) under a preset
    args = flat(BASE + ["--preset", "gatys2016", "--initial", "i.png"])
    assert args.initial_noiseblend == 0.0 and args.pooling == "avg"
    # without a preset nothing changes but the ratio
    args = flat(BASE + ["--ratio", "1e-2"])
    assert args.content_weight == 1e-2 and args.style_weight == 1.0 and args.loss_scale == "classic"
    assert args.pooling == "max" and args.content_layers == settings.CONTENT_LAYERS
    # --loss-scale is a flag too: given, it wins over the preset's; not given, no preset keeps it classic
    args = flat(BASE + ["--preset", "gatys2016", "--loss-scale", "normalized"])
    assert args.loss_scale == "normalized" and args.pooling == "avg"
    assert flat(BASE + ["--loss-scale", "normalized"]).loss_scale == "normalized"
    assert flat(BASE + ["--loss-scale", "gatys2016"]).loss_scale == "gatys2016"


def test_ratio_and_content_weight_conflict(capsys):
    assert neural_style.main(BASE + ["--ratio", "1e-3", "--content-weight", "2"]) == 2
    err = capsys.readouterr().err
    assert "--ratio" in err and "--content-weight" in err and "Traceback" not in err


def test_preset_run_logs_its_final_settings(tiny_net_path, tmp_path):
    content = tmp_path / "c.png"
    style = tmp_path / "s.png"
    images.save_image(str(content), small("tubingen_neckarfront.jpg", 24))
    images.save_image(str(style), small("composition_vii.jpg", 40))
    log = tmp_path / "run.jsonl"
    out = tmp_path / "o.png"
    status = neural_style.main(["--content", str(content), "--styles", str(style), "--output", str(out),
                                "--network", tiny_net_path, "--preset", "gatys2016", "--ratio", "5e-4",
                                "--width", "20", "--iterations", "2", "--log", str(log), "--quiet", "--seed", "1"])
    assert status == 0 and out.is_file()
    start = json.loads(log.read_text().splitlines()[0])
    assert start["preset"] == "gatys2016" and start["ratio"] == 5e-4
    assert start["loss"]["loss_scale"] == "gatys2016" and start["loss"]["pooling"] == "avg"
    assert start["loss"]["content_weight"] == 5e-4 and start["loss"]["tv_weight"] == 0
    assert start["size"] == [15, 20] and start["style_size"] == "content"
    assert "normalised" in start["network"]


# ---------------------------------------------------------------- --preset classic


# The classic TensorFlow tool's settings (anishathalye/neural-style), written out here
# independently of presets.py: what --preset classic must give back.
CLASSIC_LOSS = dict(content_weight=5.0, content_weight_blend=1.0, style_weight=500.0, style_layer_weight_exp=1.0,
                    content_layers=("relu4_2", "relu5_2"), pooling="max", loss_scale="classic", padding="zero",
                    style_loss="gram", style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
CLASSIC_OPTIMIZER = dict(optimizer="lbfgs", iterations=1000, lbfgs_corrections=10, lbfgs_first_step=0.0,
                         iterate_average=0.0, scales=1, learning_rate=10.0, min_improvement=0.0)


def classic_settings(*flags):
    parser = neural_style.build_parser()
    argv = ["--content", "c.png", "--styles", "s.png", "--output", "o.png", "--preset", "classic", *flags]
    return cli.build_settings(parser, cli.parse_given(parser, argv))


def test_classic_preset_restores_every_classic_setting():
    s = classic_settings()
    for key, value in CLASSIC_LOSS.items():
        assert getattr(s.loss, key) == value, key
    for key, value in CLASSIC_OPTIMIZER.items():
        assert getattr(s.optimizer, key) == value, key
    assert s.run.initial_noiseblend == 1.0 and s.run.style_size == "width" and not s.run.normalize_network
    assert s.loss.tv_weight is None  # the network's own classic weight (1e2 for VGG-19)
    # flags given explicitly still win, and --initial keeps the classic meaning (no noise)
    assert classic_settings("--padding", "reflect").loss.padding == "reflect"
    assert classic_settings("--initial", "i.png").run.initial_noiseblend == 0.0


def test_classic_preset_objective_is_the_classic_formula_exactly(tiny_network):
    """The Objective of --preset classic against the classic formulas in NumPy (zero
    padding, Gram / (H W C), per-element means), on an image the default settings
    would score differently."""
    s = classic_settings("--tv-weight", "0.5")
    loss = dataclasses.replace(s.loss, tv_weight=effective_tv_weight(s.loss, tiny_network))
    content, style, x = small("tubingen_neckarfront.jpg", 24), small("starry_night.jpg", 24), small("the_scream.jpg", 24)
    x = images.resize(x, content.shape[:2])
    with stylize.Objective(tiny_network, content, [style], loss) as obj:
        terms, _ = obj.evaluate(x)
    expected = reference_terms(tiny_network, x, content, [style], loss)
    for key in stylize.LOSS_TERMS:
        assert terms[key] == pytest.approx(expected[key], rel=1e-3), key
    with stylize.Objective(tiny_network, content, [style], dataclasses.replace(loss, padding=None)) as obj:
        default_padding, _ = obj.evaluate(x)
    assert default_padding["style"] != pytest.approx(terms["style"], rel=1e-3)  # the preset changed something



@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_every_preset_runs_every_iteration(preset):
    """The presets reproduce fixed budgets: no --min-improvement stop."""
    assert presets.PRESETS[preset]["min_improvement"] == 0.0
