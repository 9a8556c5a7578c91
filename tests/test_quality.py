"""quality.py: the panel's defect measures on synthetic images, its sheets and its argument parsing."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from neural_style_tf import images
from neural_style_tf.apps import quality


def smooth(size=48, seed=0):
    """A smooth picture: a gradient with a soft bump, RGB 0..255."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = 80 + 100 * x + 40 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) * 8)
    return np.repeat(base[..., None], 3, axis=2).astype(np.float32)


def test_border_ratio_is_one_for_an_even_texture_and_high_for_border_dots():
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 255, (48, 48, 3)).astype(np.float32)
    assert quality.border_ratio(texture) == pytest.approx(1.0, abs=0.1)
    dotted = smooth()
    dotted[0, ::4] = dotted[-1, ::4] = dotted[::4, 0] = dotted[::4, -1] = 255.0  # bright dots along the frame
    assert quality.border_ratio(dotted) > 3 * quality.border_ratio(smooth())


def test_noise_ratio_sees_a_fine_mesh_that_the_painting_does_not_have():
    painting = smooth()
    rng = np.random.default_rng(1)
    meshed = painting + rng.normal(0, 8, painting.shape).astype(np.float32)
    assert quality.noise_ratio(painting, painting) == pytest.approx(1.0)
    assert quality.noise_ratio(meshed, painting) > 5
    # a blurred result has less fine detail than the painting
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(meshed, (2, 2, 0))
    assert quality.noise_ratio(blurred, meshed) < 0.5


def test_parse_setting_and_its_refusal():
    assert quality.parse_setting('after=--style-loss w2 --scales "3"') == ("after", ["--style-loss", "w2", "--scales", "3"])
    assert quality.parse_setting("plain=") == ("plain", [])
    with pytest.raises(argparse.ArgumentTypeError, match="give NAME=FLAGS"):
        quality.parse_setting("--scales 3")


def test_contact_sheet_places_every_tile(tmp_path):
    red, blue = np.zeros((20, 30, 3), np.float32), np.zeros((20, 20, 3), np.float32)
    red[..., 0] = 255
    blue[..., 2] = 255
    path = str(tmp_path / "sheet.png")
    quality.contact_sheet(path, [[red, None], [None, blue]], ["a", "b"], height=20, pad=2)
    sheet = images.load_image(path)
    # the first column holds the red tile in row one, the second the blue in row two
    assert sheet[18 + 10, 2 + 15].tolist() == [255, 0, 0]
    assert sheet[18 + 22 + 10, 2 + 30 + 2 + 10].tolist() == [0, 0, 255]


def test_every_panel_image_is_found():
    for _, content, style, _ in quality.PANEL:
        assert quality.image_path(content) and quality.image_path(style), (content, style)


def test_reference_records_and_done_records(tmp_path):
    refs = quality.reference_records(["starry", "cat-starry", "composition"])
    assert [r["pair"] for r in refs] == ["starry", "composition"]  # the cat has no reference
    assert all(r["setting"] == quality.REFERENCE and r["path"].endswith(".png") for r in refs)
    assert quality.done_record(str(tmp_path), "classic", "starry") is None
    (tmp_path / "classic").mkdir()
    images.save_image(str(tmp_path / "classic" / "starry.png"), smooth())
    record = quality.done_record(str(tmp_path), "classic", "starry")
    assert record["pair"] == "starry" and record["seconds"] is None  # no record: measured all the same


def test_summary_table_with_a_reference_row_has_no_seconds():
    rows = [{"setting": s, "pair": "starry", "style": 1.0, "ssim": 0.5, "border": 1.0, "noise": 0.6, "seconds": t}
            for s, t in ((quality.REFERENCE, None), ("classic", 1200.0))]
    table = quality.summary_table(rows, [quality.REFERENCE, "classic"])
    assert "| reference | 1 | 0.500 | 1.00 | 0.60 | – |" in table and "| classic | starry | 1 |" in table
    assert "| 1200 |" in table


def test_side_strips_finds_a_two_pixel_strip_on_one_side_that_border_ratio_misses():
    rng = np.random.default_rng(3)
    texture = rng.uniform(80, 120, (96, 128, 3))
    clean = quality.side_strips(texture)
    assert max(clean.values()) < 10
    striped = texture.copy()
    striped[:, :2] += 23.0  # the left strip of the plain 512 px run: 77 against 54
    scores = quality.side_strips(striped)
    assert scores["left"] > 2 * max(clean.values()) and scores["left"] > 10
    assert max(scores[s] for s in ("top", "bottom", "right")) < 10
    assert quality.border_ratio(striped) < 1.5  # the four-side average hardly sees it
