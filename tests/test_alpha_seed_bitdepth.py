"""Transparency, seeds and 16-bit output (issue 7)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from neural_style_tf import images
import neural_style
import stylize

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
STYLE = os.path.join(EXAMPLES, "starry_night.jpg")


def photo(width=40):
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, "skimage_chelsea.jpg")), width)


def rgba_file(path, width=40):
    rgb = photo(width)
    h, w = rgb.shape[:2]
    alpha = np.ones((h, w), np.float32)
    alpha[:, : w // 4] = 0.0  # fully transparent band
    alpha[:, w // 4: w // 2] = 0.5  # half transparent band
    alpha[0, -1] = 0.2
    rgb[alpha == 0] = 0.0  # garbage under alpha 0
    images.save_image(str(path), rgb, alpha)
    return np.asarray(Image.open(path))[..., 3]


def transfer(tmp_path, tiny_net_path, content, output, *extra):
    return neural_style.main(["--content", str(content), "--styles", STYLE, "--output", str(output),
                              "--network", tiny_net_path, "--iterations", "4", "--quiet", *extra])


# ---------------------------------------------------------------- transparency


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_rgba_in_rgba_out_alpha_unchanged(tmp_path, tiny_net_path, ext):
    content = tmp_path / "logo.png"
    alpha_in = rgba_file(content)
    out = tmp_path / f"out{ext}"
    assert transfer(tmp_path, tiny_net_path, content, out, "--seed", "1") == 0
    with Image.open(out) as img:
        assert img.mode == "RGBA"
        result = np.asarray(img)
    np.testing.assert_array_equal(result[..., 3], alpha_in)
    # the style was transferred to the RGB: the visible part changed
    visible = alpha_in == 255
    assert np.abs(result[..., :3][visible].astype(float) - photo()[visible]).mean() > 2


def test_pool_mask_follows_the_network_pooling():
    mask = np.zeros((5, 7), np.float32)
    mask[:, :3] = 1
    pooled = stylize.pool_mask(mask, (3, 4))
    assert pooled.shape == (3, 4)
    np.testing.assert_allclose(pooled[:, 0], 1.0)
    np.testing.assert_allclose(pooled[:, 1], 0.5)
    np.testing.assert_allclose(pooled[:, 2:], 0.0)
    np.testing.assert_allclose(stylize.pool_mask(mask, (2, 2)), [[0.75, 0.0], [0.75, 0.0]])


def test_content_mask_weights_the_content_loss(tiny_network):
    """The masked content term equals a NumPy weighted mean computed from the features."""
    content = photo(32)
    x = np.clip(content[::-1] * 0.7 + 30, 0, 255)
    mask = np.zeros(content.shape[:2], np.float32)
    mask[:, 12:] = 1.0
    loss = stylize.LossOptions(content_layers=("relu4_2",), content_weight=1.0, tv_weight=0.0)
    with stylize.Objective(tiny_network, content, [content], loss, content_mask=mask) as masked, \
            stylize.Objective(tiny_network, content, [content], loss) as plain:
        got = masked.evaluate(x)[0]["content"]
        unmasked = plain.evaluate(x)[0]["content"]
    target, _ = stylize.compute_targets(tiny_network, content, [], ("relu4_2",), (), "max")
    feats, _ = stylize.compute_targets(tiny_network, x, [], ("relu4_2",), (), "max")
    m = stylize.pool_mask(mask, target["relu4_2"].shape[1:3])[None, :, :, None]
    d2 = (feats["relu4_2"].astype(np.float64) - target["relu4_2"]) ** 2
    expected = (m * d2).mean() / m.mean()
    assert got == pytest.approx(expected, rel=1e-4)
    assert abs(got - unmasked) > 1e-3 * unmasked  # the mask made a difference


# ---------------------------------------------------------------- seeds


def test_seed_gives_byte_identical_outputs(tmp_path, tiny_net_path):
    content = tmp_path / "c.png"
    images.save_image(str(content), photo())
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c_other.png"
    # noise initialisation, so the seed matters
    assert transfer(tmp_path, tiny_net_path, content, a, "--seed", "42") == 0
    assert transfer(tmp_path, tiny_net_path, content, b, "--seed", "42") == 0
    assert transfer(tmp_path, tiny_net_path, content, c, "--seed", "43") == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_logged_seed_reproduces_the_run(tmp_path, tiny_net_path, capsys):
    content = tmp_path / "c.png"
    images.save_image(str(content), photo())
    first, again, log = tmp_path / "first.png", tmp_path / "again.png", tmp_path / "run.jsonl"
    assert transfer(tmp_path, tiny_net_path, content, first, "--log", str(log)) == 0
    start = json.loads(log.read_text().splitlines()[0])
    seed = start["seed"]
    assert f"seed: {seed}" in capsys.readouterr().err
    assert transfer(tmp_path, tiny_net_path, content, again, "--seed", str(seed)) == 0
    assert first.read_bytes() == again.read_bytes()


# ---------------------------------------------------------------- 16-bit output
# (the 16-bit file round trips themselves are in test_images.py)


def test_cli_writes_16_bit_png(tmp_path, tiny_net_path):
    import png

    content = tmp_path / "c.png"
    images.save_image(str(content), photo())
    out = tmp_path / "o.png"
    assert transfer(tmp_path, tiny_net_path, content, out, "--seed", "1", "--bit-depth", "16") == 0
    _, _, _, info = png.Reader(filename=str(out)).read()
    assert info["bitdepth"] == 16 and info["planes"] == 3
    eight = images.load_image(str(out))
    assert eight.shape == photo().shape  # Pillow still reads it (as 8 bits)


@pytest.mark.parametrize("name", ["o.jpg", "o.webp"])
def test_16_bit_needs_png_or_tiff(tmp_path, capsys, name):
    out = tmp_path / name
    code = neural_style.main(["--content", STYLE, "--styles", STYLE, "--output", str(out), "--bit-depth", "16"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bit-depth 16" in err[0] and name in err[0]
    assert not out.exists()
