"""masks.py and the mask flags end to end: masks as users make them (grey, RGB, alpha, any
size), one refusal per bad mask before any network is loaded, the content term's weights,
and a masked run through both optimizers, coarse-to-fine, colour control, a Keras model,
the memory preflight and the batch's per-job files.

The guided statistics themselves are tested against NumPy in test_losses.py and test_objective.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from run_helpers import CONTENT_SIZE, run_main

import neural_style
import stylize
import vgg
from neural_style_tf import checks, masks, memory, objective, overscan, settings
from neural_style_tf.apps import jobs
from neural_style_tf.errors import EXIT_USAGE


def save(path, array, mode=None):
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)
    return str(path)


@pytest.fixture
def halves(tmp_path):
    """Two complementary masks over the content, drawn at another size (64x48) than the content's."""
    top = np.zeros((48, 64), np.uint8)
    top[:20] = 255
    return save(tmp_path / "top.png", top), save(tmp_path / "bottom.png", 255 - top)


@pytest.fixture
def subject(tmp_path):
    """A protected subject: a soft-edged square in the bottom half."""
    square = np.zeros((48, 64), np.uint8)
    square[30:44, 20:40] = 255
    square[29, 20:40] = square[44, 20:40] = 128
    return save(tmp_path / "subject.png", square)


def args(files, tiny_net_path, output, *extra, iterations=4):
    return ["--network", tiny_net_path, "--content", files["content"], "--styles", files["style"], files["style2"],
            "--output", output, "--iterations", iterations, "--quiet", "--seed", 1, *extra]


# ---------------------------------------------------------------- masks as users make them


def test_a_mask_is_its_grey_level_or_its_alpha(tmp_path):
    grey = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (4, 1))
    np.testing.assert_allclose(masks.load_mask(save(tmp_path / "g.png", grey)), grey / 255.0, atol=1e-6)
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:, 4:] = (255, 255, 255)
    rgb[:, :4] = (255, 0, 0)  # red is a dark grey (0.299)
    np.testing.assert_allclose(masks.load_mask(save(tmp_path / "c.png", rgb))[0], [0.299] * 4 + [1.0] * 4, atol=2e-3)
    rgba = np.zeros((4, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but transparent on the left: the alpha decides
    rgba[:, 4:, 3] = 255
    np.testing.assert_allclose(masks.load_mask(save(tmp_path / "a.png", rgba, "RGBA"))[0], [0] * 4 + [1] * 4)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    opaque[:, :4, :3] = 0  # an opaque alpha says nothing: the grey level decides
    np.testing.assert_allclose(masks.load_mask(save(tmp_path / "o.png", opaque, "RGBA"))[0], [0] * 4 + [1] * 4)


def test_masks_are_resized_to_the_content_and_regions_kept_at_their_size(tmp_path, files, halves):
    region = save(tmp_path / "region.png", np.full((30, 10), 255, np.uint8))
    run = settings.RunSettings(content=files["content"], styles=(files["style"], files["style2"]), output="o.png",
                               style_masks=halves, style_region_masks=(region, region))
    content = np.zeros(CONTENT_SIZE + (3,), np.float32)
    prepared = masks.prepare(run, content)
    assert [m.shape for m in prepared.styles] == [CONTENT_SIZE] * 2
    assert prepared.styles[0][:8].min() > 0.9 and prepared.styles[0][12:].max() < 0.1
    np.testing.assert_allclose(prepared.styles[0] + prepared.styles[1], 1.0, atol=0.02)
    assert [r.shape for r in prepared.regions] == [(30, 10)] * 2
    guidance = prepared.guidance(np.zeros((12, 16, 3), np.float32), 2)
    assert [m.shape for m in guidance.masks] == [(12, 16)] * 2 and len(guidance.region_masks) == 2


def test_the_content_mask_takes_the_subject_out_of_the_styles_and_keeps_it():
    protect = np.zeros((4, 4), np.float32)
    protect[:2] = 1.0
    protect[2] = 0.5
    prepared = masks.Masks(styles=[np.ones((4, 4), np.float32)] * 2, protect=protect, protect_weight=3.0)
    for m in prepared.style_masks(2):
        np.testing.assert_allclose(m[:, 0], [0, 0, 0.5, 1])
    photo = np.full((4, 4, 3), 7.0, np.float32)
    keep = prepared.guidance(photo, 2).keep
    assert keep.weight == 3.0 and np.array_equal(keep.target, photo) and np.allclose(keep.mask, protect)
    # With no style masks, every style gets the rest of the picture.
    alone = masks.Masks(protect=protect, protect_weight=1.0).style_masks(3)
    assert len(alone) == 3 and all(np.allclose(m[:, 1], [0, 0, 0.5, 1]) for m in alone)


def test_the_keep_term_is_the_mean_squared_difference_over_the_subject(tiny_network):
    content = np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    subject = np.zeros((16, 16), np.float32)
    subject[4:10, 4:12] = 1.0
    keep = stylize.Temporal(content, subject, 2.5)
    x = content + 3.0
    x[4:10, 4:8] += 4.0  # half the subject is 7 grey levels off, the other half 3
    with stylize.Objective(tiny_network, content, [content], guidance=stylize.Guidance(keep=keep)) as obj:
        terms = obj.evaluate(x)[0]
    assert list(terms)[-2:] == ["keep", "total"]
    assert terms["keep"] == pytest.approx(2.5 * (7.0**2 + 3.0**2) / 2, rel=1e-5)


def test_transparent_pixels_have_no_content_weight_and_the_visible_ones_a_mean_of_one():
    alpha = np.zeros((4, 8), np.float32)
    alpha[:, 2:] = 1.0
    weights = masks.content_weights(alpha, (4, 8))
    np.testing.assert_allclose(weights[:, :2], 0)
    np.testing.assert_allclose(weights[:, 2:], 8 / 6)
    assert masks.content_weights(None, (4, 8)) is None


def test_blend_keeps_the_per_pixel_strength_of_the_style():
    top = np.zeros((4, 4), np.float32)
    top[:1] = 1.0  # a quarter of the picture
    assert stylize.Guidance().blend([0.25, 0.75]) == [0.25, 0.75]  # no masks: exactly the blend weights
    np.testing.assert_allclose(stylize.Guidance((top, 1 - top)).blend([0.5, 0.5]), [0.25, 0.75])
    np.testing.assert_allclose(stylize.Guidance((top,)).blend([1.0]), [0.25])
    np.testing.assert_allclose(stylize.Guidance((top, None)).blend([0.5, 0.5]), [0.25 * 0.5 / 0.625, 0.5 / 0.625])


# ---------------------------------------------------------------- one refusal per bad mask


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test if a network is loaded: every refusal comes before."""
    def refuse(*a, **k):
        raise AssertionError("a network was loaded before the masks were checked")

    monkeypatch.setattr(vgg, "load_net", refuse)


def refused(argv, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neural_style.py: error: ")
    return lines[0]


def test_an_all_black_style_mask_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    black = save(tmp_path / "black.png", np.zeros((10, 10), np.uint8))
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--style-masks", halves[0], black), capsys)
    assert f"--style-masks {black} is all black" in line


def test_a_wrong_count_of_style_masks_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--style-masks", halves[0]), capsys)
    assert "--style-masks has 1 mask(s) for 2 style image(s)" in line


def test_an_unreadable_mask_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--style-masks", halves[0], str(text)), capsys)
    assert "--style-masks" in line and "notes.png" in line
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--content-mask", str(tmp_path / "gone.png")), capsys)
    assert line.endswith(f"--content-mask {tmp_path / 'gone.png'}: no such file")


def test_a_wrong_count_of_region_masks_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--style-region-masks", *halves, halves[0]), capsys)
    assert "--style-region-masks has 3 mask(s) for 2 style image(s)" in line


def test_an_all_black_region_mask_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    black = save(tmp_path / "black.jpg", np.zeros((10, 10, 3), np.uint8))
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--style-region-masks", black, halves[0]), capsys)
    assert f"--style-region-masks {black} is all black" in line


def test_an_all_black_content_mask_is_refused(files, tiny_net_path, tmp_path, capsys, no_network):
    black = save(tmp_path / "black.png", np.zeros((10, 10), np.uint8))
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--content-mask", black), capsys)
    assert f"--content-mask {black} is all black" in line


def test_a_content_mask_that_leaves_nothing_to_stylise_is_refused(files, tiny_net_path, tmp_path, halves, capsys,
                                                                   no_network):
    white = save(tmp_path / "white.png", np.full((10, 10), 255, np.uint8))
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--content-mask", white), capsys)
    assert "covers the whole picture: nothing is left to stylise" in line
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--content-mask", halves[0],
                        "--style-masks", *halves), capsys)
    assert f"covers style 1's mask ({halves[0]})" in line


def test_a_negative_content_mask_weight_is_refused(files, tiny_net_path, tmp_path, halves, capsys, no_network):
    line = refused(args(files, tiny_net_path, tmp_path / "o.png", "--content-mask", halves[0],
                        "--content-mask-weight", "-1"), capsys)
    assert "--content-mask-weight must be non-negative" in line


# ---------------------------------------------------------------- masked runs, with everything else


@pytest.mark.parametrize("extra", [
    ("--optimizer", "lbfgs"),
    ("--optimizer", "adam", "--learning-rate", "5"),
    ("--scales", "2"),
    ("--preserve-colors", "luminance-only"),
    ("--preserve-colors", "histogram"),
])
def test_a_masked_run_works_with(files, tiny_net_path, tmp_path, halves, subject, capsys, extra):
    out, log = tmp_path / "out.png", tmp_path / "log.jsonl"
    code, _, err = run_main(args(files, tiny_net_path, out, "--style-masks", *halves, "--style-region-masks",
                                 halves[1], halves[0], "--content-mask", subject, "--content-mask-weight", "3",
                                 "--log", log, *extra), capsys)
    assert code == 0, err
    assert Image.open(out).size == CONTENT_SIZE[::-1]
    start = json.loads(log.read_text().splitlines()[0])
    assert start["masks"] == {"style_masks": list(halves), "style_region_masks": [halves[1], halves[0]],
                              "content_mask": subject, "content_mask_weight": 3.0}
    # The top is 20 of 48 rows; the subject (10% with its soft edge) is taken out of the bottom's style.
    assert "spatial control: style masks (files) covering 42%, 48%; style region masks; content mask covering 10%" \
        " (kept with weight 3)" in err
    rows = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    totals = [row["total"] for row in rows if "iteration" in row]
    assert totals and np.isfinite(totals).all() and totals[-1] < totals[0]


def test_masks_per_coarse_to_fine_scale_follow_its_size(files, tiny_net_path, tmp_path, halves, subject, capsys,
                                                        monkeypatch):
    seen = []
    real = objective.Objective.for_problem

    def spy(problem, **kwargs):
        content, guidance = problem.content, problem.guidance
        seen.append((content.shape[:2], [m.shape for m in guidance.masks], guidance.keep.mask.shape))
        assert np.array_equal(guidance.keep.target, content)  # the subject is held to this scale's photo
        return real(problem, **kwargs)

    monkeypatch.setattr(objective.Objective, "for_problem", spy)
    code, _, err = run_main(args(files, tiny_net_path, tmp_path / "o.png", "--style-masks", *halves,
                                 "--content-mask", subject, "--scales", "2"), capsys)
    assert code == 0, err
    # each scale's canvas: the picture and the overscan's margin (overscan.py)
    assert [s[0] for s in seen] == [overscan.canvas_size(size, settings.OVERSCAN_MIN) for size in [(12, 16), CONTENT_SIZE]]
    assert all(shapes == [size, size] and mask == size for size, shapes, mask in seen)


def test_the_memory_preflight_counts_the_guided_styles(tiny_network, files, halves):
    layers = settings.STYLE_LAYERS + settings.CONTENT_LAYERS
    plain = memory.estimate_parts(tiny_network, 512, 512, layers_needed=layers)
    guided = memory.estimate_parts(tiny_network, 512, 512, layers_needed=layers, guided_styles=2)
    assert "guidance" not in plain and guided["guidance"] > 0
    assert memory.estimate_peak_bytes(tiny_network, 512, 512, layers_needed=layers, guided_styles=2) > \
        memory.estimate_peak_bytes(tiny_network, 512, 512, layers_needed=layers)
    run = settings.RunSettings(content=files["content"], styles=(files["style"], files["style2"]), output="o.png")
    assert checks.guided_styles(run) == 0
    assert checks.guided_styles(settings.RunSettings(**{**run.__dict__, "style_masks": halves})) == 2


def test_a_keras_model_takes_masks(tmp_path, files, halves, capsys):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv")(image)
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="block2_conv")(x)
    path = str(tmp_path / "tiny.keras")
    keras.Model(image, x).save(path)
    out = tmp_path / "out.png"
    code, _, err = run_main(["--network", path, "--content", files["content"], "--styles", files["style"],
                             files["style2"], "--output", out, "--content-layers", "block2_conv",
                             "--style-layers", "block1_conv,block2_conv", "--iterations", 4, "--quiet",
                             "--style-masks", *halves], capsys)
    assert code == 0, err
    assert Image.open(out).size == CONTENT_SIZE[::-1]


# ---------------------------------------------------------------- the batch: masks are per-job files


def test_batch_jobs_carry_their_mask_files(tmp_path, files, halves, subject):
    from neural_style_tf import cli

    folder = tmp_path / "jobs"
    folder.mkdir()
    for name, path in (("top.png", halves[0]), ("bottom.png", halves[1]), ("subject.png", subject)):
        (folder / name).write_bytes(open(path, "rb").read())
    entry = {"content": files["content"], "styles": [files["style"], files["style2"]],
             "style-masks": ["top.png", "bottom.png"], "content-mask": "subject.png"}
    argv, _ = jobs.line_argv(entry, str(folder))
    assert argv[argv.index("--style-masks") + 1] == str(folder / "top.png")  # relative to the jobs file
    assert argv[argv.index("--content-mask") + 1] == str(folder / "subject.png")
    auto, _ = jobs.line_argv({**entry, "style-masks": "auto-sky"}, str(folder))
    assert auto[auto.index("--style-masks") + 1] == "auto-sky"  # a keyword, not a file
    made = cli.settings_from_argv(neural_style.build_parser, argv + ["--output", str(tmp_path / "o.png")])
    assert set(jobs.input_files(made)) >= {str(folder / n) for n in ("top.png", "bottom.png", "subject.png")}
    # A job's id follows its masks' contents.
    digest = jobs.Digests()
    before = jobs.job_id(made, digest)
    save(folder / "top.png", np.full((48, 64), 200, np.uint8))
    assert jobs.job_id(made, jobs.Digests()) != before


# ---------------------------------------------------------------- auto-sky through the command line


@pytest.fixture
def landscape(tmp_path):
    """A 64x48 photo: a smooth blue sky above a grainy green ground."""
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(0, 40, (48, 64, 1)) + (95, 110, 60), 0, 255)
    rgb[:20] = np.linspace([60, 110, 200], [150, 190, 235], 20)[:, None, :]
    return save(tmp_path / "landscape.png", rgb)


def test_auto_sky_paints_the_sky_with_the_first_style(files, tiny_net_path, tmp_path, landscape, capsys):
    out = tmp_path / "out.png"
    code, _, err = run_main(["--network", tiny_net_path, "--content", landscape, "--styles", files["style"],
                             files["style2"], "--style-masks", "auto-sky", "--output", out, "--iterations", 3,
                             "--quiet"], capsys)
    assert code == 0, err
    share = float(err.split("style masks (auto-sky) covering ")[1].split("%")[0])
    assert 35 <= share <= 48  # 20 of 48 rows are sky (42%), give or take the feathered edge


def test_auto_sky_with_more_than_two_styles_is_refused(files, tiny_net_path, tmp_path, landscape, capsys, no_network):
    line = refused(["--network", tiny_net_path, "--content", landscape, "--styles", files["style"], files["style2"],
                    files["style"], "--style-masks", "auto-sky", "--output", tmp_path / "o.png"], capsys)
    assert "auto-sky splits the photo in two (sky, the rest): give one or two styles, not 3" in line


def test_auto_sky_on_a_photo_without_sky_is_refused(files, tiny_net_path, tmp_path, capsys, no_network):
    grain = np.random.default_rng(1).integers(0, 256, (48, 64, 3))
    photo = save(tmp_path / "grain.png", grain)
    line = refused(["--network", tiny_net_path, "--content", photo, "--styles", files["style"],
                    "--style-masks", "auto-sky", "--output", tmp_path / "o.png"], capsys)
    assert "auto-sky found no sky in the photo" in line
