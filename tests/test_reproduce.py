"""Reproducing the paper: network normalisation, the preset losses against NumPy, presets on
the command line, and a tiny reproduce.py run that resumes. Tiny network, 16-48 px images."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

import neural_style
import vgg
from neural_style_tf import cli, images, presets, reproduce, settings
from neural_style_tf.calibration import calibration_images, calibration_paths
from neural_style_tf.settings import effective_tv_weight

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def small(name, width=32):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, name)), width)


@pytest.fixture(scope="module")
def calibration():
    return [small(n) for n in ("tubingen_neckarfront.jpg", "starry_night.jpg", "the_scream.jpg")]


def features(network, rgb, layers, pooling):
    """{layer: (M, N) float64 features} of one image, from vgg.net_preloaded."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1,) + rgb.shape)
        net = vgg.net_preloaded(network, network.preprocess(image), pooling)
        with tf.compat.v1.Session(graph=graph) as sess:
            out = sess.run({n: net[n] for n in layers}, {image: rgb[None]})
    return {n: v.reshape(-1, v.shape[-1]).astype(np.float64) for n, v in out.items()}


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_normalised_mean_activations_are_one_and_features_only_rescaled(tiny_network, calibration, pooling):
    original = vgg.mean_activations(tiny_network, calibration, pooling)
    normalised = vgg.normalize(tiny_network, calibration, pooling)
    means = vgg.mean_activations(normalised, calibration, pooling)
    checked = 0
    for layer, mean in means.items():
        median = np.median(original[layer][original[layer] > 0])
        alive = original[layer] >= vgg.NORMALISE_FLOOR * median
        assert np.all(np.abs(mean[alive] - 1.0) < 1e-3), (layer, mean)
        # nearly dead filters keep their proportion to the layer's median filter
        np.testing.assert_allclose(mean[~alive], original[layer][~alive] / median, rtol=1e-3, atol=1e-7)
        checked += alive.sum()
    assert checked > 20
    # On an image that was not used for calibration, the deepest style layer's features
    # are the original's times a positive per-channel factor: 1 / (original mean).
    other = small("composition_vii.jpg", 40)
    deepest = vgg.deepest(tiny_network, presets.STYLE_LAYERS_PAPER + ("relu4_2",))
    assert deepest == "relu5_1"
    before = features(tiny_network, other, [deepest], pooling)[deepest]
    after = features(normalised, other, [deepest], pooling)[deepest]
    factor = vgg.normalising_factors(original[deepest])
    assert np.all(factor > 0) and not np.allclose(factor, 1.0)
    assert before.max() > 0
    np.testing.assert_allclose(after, before * factor, rtol=1e-4, atol=1e-5 * after.max())
    # the factor is estimated, not assumed: it matches the ratio of the features themselves
    active = before.mean(axis=0) > 0
    np.testing.assert_allclose(after.mean(axis=0)[active] / before.mean(axis=0)[active], factor[active], rtol=1e-3)


def test_nearly_dead_filters_get_the_median_factor():
    mean = np.array([2.0, 4.0, 1e-7, 0.0, 8.0, 4.0])  # median of the non-zero means: 4
    factor = vgg.normalising_factors(mean, floor=1e-2)
    np.testing.assert_allclose(factor, [0.5, 0.25, 0.25, 0.25, 0.125, 0.25])
    # without a floor, 1/mean for every live filter (the paper's rule); dead ones still finite
    np.testing.assert_allclose(vgg.normalising_factors(mean, floor=0.0), [0.5, 0.25, 1e7, 0.25, 0.125, 0.25])


def test_vgg_normalize_command_writes_a_network_that_loads(tiny_net_path, tmp_path, capsys):
    folder = tmp_path / "cal"
    folder.mkdir()
    for name in ("tubingen_neckarfront.jpg", "the_scream.jpg"):
        images.save_image(str(folder / name.replace(".jpg", ".png")), small(name, 24))
    out = tmp_path / "normalised.npz"
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out),
                     "--size", "24"]) == 0
    network = vgg.load_net(str(out))
    assert "normalised" in network.name
    cal = calibration_images(calibration_paths(str(folder)), 24)
    means = vgg.mean_activations(network, cal, "avg")
    assert abs(means["relu3_1"][means["relu3_1"] > 0] - 1).max() < 1e-3
    # an existing output is not replaced; a bad folder is one line and status 2
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err


def test_normalised_network_is_cached(tiny_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cal"
    folder.mkdir()
    images.save_image(str(folder / "a.png"), small("starry_night.jpg", 24))
    first = presets.normalised_network(tiny_network, "avg", str(folder), size=24)
    assert os.path.isfile(first.path) and first.path != tiny_network.path
    second = presets.normalised_network(tiny_network, "avg", str(folder), size=24)
    assert second.path == first.path
    for name in tiny_network.weights:
        np.testing.assert_array_equal(first.weights[name][0], second.weights[name][0])
    # a different calibration setting is a different cache entry
    third = presets.normalised_network(tiny_network, "max", str(folder), size=24)
    assert third.path != first.path


# ---------------------------------------------------------------- the preset losses against NumPy


def preset_objective(preset, network, content, style, extra=()):
    """LossOptions exactly as neural_style.py builds them for `--preset NAME`."""
    import stylize

    argv = ["--content", "c.png", "--styles", "s.png", "--output", "o.png", "--preset", preset, *extra]
    settings = resolved(argv)
    loss = dataclasses.replace(settings.loss, tv_weight=effective_tv_weight(settings.loss, network))
    style = presets.resize_styles([style], content.shape, settings.run.style_size)[0]
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


# ---------------------------------------------------------------- presets on the command line


def resolved(argv):
    """The settings neural_style.py makes of `argv`, preset applied (before validation)."""
    args = neural_style.build_parser().parse_args(argv)
    return cli.parse_settings(args, cli.explicit_dests(neural_style.build_parser, argv))


class Flat:
    """Settings read by command-line dest, as the flags name them."""

    def __init__(self, settings):
        self.settings = settings

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
    assert args.loss_scale == "gatys2016" and args.style_size == "content" and args.normalise_network
    # an explicit flag equal to the parser's default still counts as explicit
    args = flat(BASE + ["--preset", "gatys-pytorch", "--pooling", "max", "--iterations", "1000"])
    assert args.iterations == 1000 and args.initial_noiseblend == 0.0 and args.style_weight == 5.0
    # --initial keeps its classic meaning (start from that image) under a preset
    args = flat(BASE + ["--preset", "gatys2016", "--initial", "i.png"])
    assert args.initial_noiseblend is None and args.pooling == "avg"
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


# ---------------------------------------------------------------- reproduce.py


def test_reproduce_grid_writes_sheet_and_manifest_and_resumes(tiny_net_path, tmp_path, capsys):
    argv = ["grid", "--out-dir", str(tmp_path / "repro"), "--size", "16", "--evaluations", "2",
            "--network", tiny_net_path]
    assert reproduce.main(argv) == 0
    folder = tmp_path / "repro" / "grid"
    sheet = images.load_image(str(folder / "sheet.png"))
    assert sheet.shape[0] > 200 and sheet.shape[1] > 200 and sheet.std() > 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["panels"]) == 20
    for entry in manifest["panels"].values():
        assert (folder / entry["file"]).is_file()
        assert 1 <= entry["evaluations"] <= 2 and entry["seconds"] >= 0
        assert set(entry["terms"]) == {"content", "style", "tv", "total"}
        assert entry["settings"]["size"] == [12, 16]
    one = manifest["panels"]["conv3_1_r1e-3"]
    assert one["settings"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1"] and one["settings"]["ratio"] == 1e-3
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("conv*.png")}
    capsys.readouterr()

    assert reproduce.main(argv) == 0  # the second run skips every finished panel
    err = capsys.readouterr().err
    assert err.count("skipped") == 20
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("conv*.png")} == mtimes

    # a panel missing from the manifest is redone
    del manifest["panels"]["conv1_1_r1e-5"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert reproduce.main(argv) == 0
    assert capsys.readouterr().err.count("skipped") == 19


    # --as-loaded keeps the network as it is: another network, so every panel is redone
    assert reproduce.main(argv + ["--as-loaded"]) == 0
    assert capsys.readouterr().err.count("skipped") == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "normalised" not in manifest["settings"]["network"]
    assert all("normalised" not in e["settings"]["network"] for e in manifest["panels"].values())


def test_reproduce_bad_input_is_one_line(tiny_net_path, tmp_path, capsys):
    assert reproduce.main(["grid", "--out-dir", str(tmp_path / "a" / "b"), "--network", tiny_net_path]) == 2
    assert reproduce.main(["content-layer", "--out-dir", str(tmp_path), "--network", tiny_net_path]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "relu2_2" in err and "Traceback" not in err
