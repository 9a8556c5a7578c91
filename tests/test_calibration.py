"""calibration.py: the calibration images shipped inside the package, and calibration
folders given by the user."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from neural_style_tf import images
from neural_style_tf.errors import NetworkError
from neural_style_tf.networks import calibration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def test_every_example_image_ships_as_an_8_bit_png_of_256_px():
    paths = calibration.shipped_paths()
    assert len(paths) == len(calibration.EXAMPLE_IMAGES) == 9
    assert calibration.calibration_paths() == paths  # the default, in a fixed order
    for path in paths:
        assert os.path.dirname(path) == calibration.DATA_DIR
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB", path
            assert max(img.size) == calibration.CALIBRATION_SIZE == 256, path
    assert os.path.isfile(os.path.join(calibration.DATA_DIR, "PROVENANCE.md"))


@pytest.mark.parametrize("name", calibration.EXAMPLE_IMAGES)
def test_shipped_copy_is_the_example_resized_to_256_px(name):
    """An 8-bit copy: within half a level (0.5/255) of the example resized as calibration.remake
    does, once that is clipped to the range an 8-bit file can hold."""
    original = images.load_image(os.path.join(EXAMPLES, name))
    expected = np.clip(images.scale(original, calibration.CALIBRATION_SIZE / max(original.shape[:2])), 0, 255)
    shipped = images.load_image(os.path.join(calibration.DATA_DIR, os.path.splitext(name)[0] + ".png"))
    assert shipped.shape == expected.shape
    assert np.abs(shipped - expected).max() <= 0.5 + 1e-4


def test_calibration_images_are_resized_to_the_long_side():
    paths = calibration.calibration_paths()[:3]
    for path, rgb in zip(paths, calibration.calibration_images(paths, 64)):
        assert max(rgb.shape[:2]) == 64 and rgb.shape[2] == 3 and rgb.dtype == np.float32
        full = images.load_image(path)
        assert rgb.shape[:2] == images.scale(full, 64 / max(full.shape[:2])).shape[:2]
        # the same picture, smaller: its mean colour within a level or two
        np.testing.assert_allclose(rgb.mean(axis=(0, 1)), full.mean(axis=(0, 1)), atol=2.0)


def test_a_folder_gives_its_images_sorted(tmp_path):
    for name in ("b.png", "a.jpg", "c.PNG"):
        images.save_image(str(tmp_path / name), np.full((8, 6, 3), 100.0))
    (tmp_path / "notes.txt").write_text("not an image")
    images.save_image(str(tmp_path / ".hidden.png"), np.full((8, 6, 3), 100.0))
    found = [os.path.basename(p) for p in calibration.calibration_paths(str(tmp_path))]
    assert found == ["a.jpg", "b.png", "c.PNG"]


def test_missing_or_empty_folders_are_network_errors(tmp_path, monkeypatch):
    with pytest.raises(NetworkError, match="nope is not a directory"):
        calibration.calibration_paths(str(tmp_path / "nope"))
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(NetworkError, match="no image files"):
        calibration.calibration_paths(str(tmp_path))
    monkeypatch.setattr(calibration, "DATA_DIR", str(tmp_path))  # an install without its data
    with pytest.raises(NetworkError, match="none found in .*reinstall the package or pass --images"):
        calibration.calibration_paths()
