"""Colour control (issue 7): histogram matching, luminance-only transfer, the CLI modes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neural_style_tf import color
from neural_style_tf import images
import neural_style

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example(name, width=64):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, name)), width)


@pytest.mark.parametrize("method", color.COLOR_MATCHES)
@pytest.mark.parametrize("style_name", ["starry_night.jpg", "the_scream.jpg"])
def test_histogram_match_gives_content_mean_and_covariance(method, style_name):
    content = example("tubingen_neckarfront.jpg")
    style = example(style_name)
    matched = color.match_color_statistics(style, content, method)
    mu_c, cov_c = color.color_statistics(content)
    mu_m, cov_m = color.color_statistics(matched)
    mu_s, cov_s = color.color_statistics(style)
    # Within 1% (relative to the content's statistics) ...
    assert np.abs(mu_m - mu_c).max() <= 0.01 * np.abs(mu_c).max()
    assert np.linalg.norm(cov_m - cov_c) <= 0.01 * np.linalg.norm(cov_c)
    # ... while the style started far from them, so the test can fail.
    assert np.linalg.norm(cov_s - cov_c) > 0.1 * np.linalg.norm(cov_c)


def test_sqrt_and_cholesky_are_different_maps():
    content = example("tubingen_neckarfront.jpg")
    style = example("starry_night.jpg")
    a = color.match_color_statistics(style, content, "sqrt")
    b = color.match_color_statistics(style, content, "cholesky")
    assert np.abs(a - b).mean() > 1.0


def test_histogram_with_color_source_matches_the_source():
    content = example("tubingen_neckarfront.jpg")
    source = example("monet_woman_with_a_parasol.jpg")
    style = example("starry_night.jpg")
    new_content, (new_style,), finish = color.prepare_colors(content, [style], "histogram", "sqrt", source)
    np.testing.assert_array_equal(new_content, content)
    mu_m, _ = color.color_statistics(new_style)
    mu_src, _ = color.color_statistics(source)
    mu_c, _ = color.color_statistics(content)
    # Clipping to 0..255 moves the mean a little (3.5 in red here), far less than the
    # distance to the content's colours (about 35).
    assert np.abs(mu_m - mu_src).max() < 5.0
    assert np.abs(mu_m - mu_c).max() > 25.0
    np.testing.assert_array_equal(finish(content), content)


def test_luminance_only_inputs():
    content = example("tubingen_neckarfront.jpg")
    style = example("starry_night.jpg")
    new_content, (new_style,), finish = color.prepare_colors(content, [style], "luminance-only")
    for img in (new_content, new_style):
        np.testing.assert_array_equal(img[..., 0], img[..., 1])
        np.testing.assert_array_equal(img[..., 0], img[..., 2])
    y_c, y_s = color.luminance(content), new_style[..., 0]
    assert abs(y_s.mean() - y_c.mean()) < 1.0
    assert abs(y_s.std() - y_c.std()) < 0.02 * y_c.std()
    # finish() keeps the content's chroma exactly (up to the float32 output)
    out = finish(new_content * 0.5 + 60)
    np.testing.assert_allclose(color.rgb_to_ycbcr(out)[..., 1:], color.rgb_to_ycbcr(content)[..., 1:], atol=0.6)


def test_fill_transparent():
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[:2] = [200, 100, 50]
    alpha = np.zeros((4, 4), np.float32)
    alpha[:2] = 1.0
    alpha[2, 0] = 0.5
    rgb[2, 0] = [10, 20, 30]
    out = color.fill_transparent(rgb, alpha)
    visible = rgb[alpha > 0].mean(axis=0)
    np.testing.assert_allclose(out[alpha == 0], np.broadcast_to(visible, out[alpha == 0].shape))
    np.testing.assert_array_equal(out[alpha > 0], rgb[alpha > 0])


def test_preserve_colors_flag_forms():
    parser = neural_style.build_parser()
    base = ["--content", "c.jpg", "--styles", "s.jpg", "--output", "o.jpg"]
    assert parser.parse_args(base).preserve_colors is None
    assert parser.parse_args(base + ["--preserve-colors"]).preserve_colors == "luminance"
    assert parser.parse_args(["--preserve-colors"] + base).preserve_colors == "luminance"
    assert parser.parse_args(base + ["--preserve-colors", "histogram"]).preserve_colors == "histogram"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(base + ["--preserve-colors", "chroma"])
    assert exc.value.code == 2


def test_color_source_with_luminance_is_a_usage_error(tmp_path, capsys):
    path = os.path.join(EXAMPLES, "starry_night.jpg")
    code = neural_style.main(["--content", path, "--styles", path, "--output", str(tmp_path / "o.png"),
                              "--preserve-colors", "luminance", "--color-source", path])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--color-source" in err[0] and "luminance" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_luminance_only_output_has_the_content_chroma(tmp_path, tiny_net_path):
    content_path = tmp_path / "content.png"
    images.save_image(str(content_path), example("tubingen_neckarfront.jpg", 48))
    out = tmp_path / "out.png"
    code = neural_style.main(["--content", str(content_path), "--styles", os.path.join(EXAMPLES, "starry_night.jpg"),
                              "--output", str(out), "--network", tiny_net_path, "--iterations", "5", "--seed", "1",
                              "--preserve-colors", "luminance-only", "--quiet"])
    assert code == 0
    content = images.load_image(str(content_path))
    result = images.load_image(str(out))
    assert not np.allclose(result, content, atol=2)  # the run changed the image
    chroma_out = color.rgb_to_ycbcr(result)[..., 1:]
    chroma_in = color.rgb_to_ycbcr(content)[..., 1:]
    # 8-bit rounding moves Cb/Cr by at most ~1; clipped pixels are excluded.
    unclipped = ((result > 0) & (result < 255)).all(axis=-1)
    assert unclipped.mean() > 0.5
    assert np.abs(chroma_out - chroma_in)[unclipped].max() <= 1.5
