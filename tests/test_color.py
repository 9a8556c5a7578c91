"""color.py (issue 7): histogram matching, luminance-only transfer, the classic luminance swap,
and one run of the luminance-only mode. The flag forms are in test_cli.py, the
--color-source check in test_checks.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

import neural_style
from neural_style_tf import color, images

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


def test_luminance_transfer_takes_y_from_the_stylized_and_chroma_from_the_content():
    content = example("tubingen_neckarfront.jpg", 32)
    stylized = example("starry_night.jpg", 32)[: content.shape[0]]
    out = color.luminance_transfer(content, stylized)
    assert out.dtype == np.float32 and out.shape == content.shape
    ycc_out, ycc_content, ycc_stylized = (color.rgb_to_ycbcr(im) for im in (out, content, stylized))
    unclipped = ((out > 0) & (out < 255)).all(axis=-1)
    assert unclipped.mean() > 0.9
    np.testing.assert_allclose(ycc_out[..., 0][unclipped], ycc_stylized[..., 0][unclipped], atol=1e-3)
    np.testing.assert_allclose(ycc_out[..., 1:][unclipped], ycc_content[..., 1:][unclipped], atol=1e-3)
    assert np.abs(ycc_stylized[..., 1:] - ycc_content[..., 1:]).mean() > 5  # the chroma really changed


def test_ycbcr_round_trip():
    rgb = np.random.default_rng(0).uniform(0, 255, (4, 5, 3))
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-9)
    np.testing.assert_allclose(color.rgb_to_ycbcr(np.full((1, 1, 3), 255.0)), [[[255.0, 128.0, 128.0]]], atol=1e-3)


def test_prepare_colors_without_a_mode_and_with_the_classic_swap():
    content = example("tubingen_neckarfront.jpg", 32)
    style = example("starry_night.jpg", 32)
    for mode in (None, "luminance"):
        new_content, (new_style,), finish = color.prepare_colors(content, [style], mode)
        np.testing.assert_array_equal(new_content, content)
        np.testing.assert_array_equal(new_style, style)  # the inputs are untouched
    rgb = style[: content.shape[0]]
    np.testing.assert_array_equal(color.prepare_colors(content, [style], None)[2](rgb), rgb)
    np.testing.assert_array_equal(finish(rgb), color.luminance_transfer(content, rgb))


def test_unknown_mode_or_method_is_refused():
    rgb = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="chroma"):
        color.prepare_colors(rgb, [rgb], "chroma")
    with pytest.raises(ValueError, match="eigen"):
        color.match_color_statistics(rgb, rgb, "eigen")


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
