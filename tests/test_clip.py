"""apps/clip.py: a clip's frames in (a folder, in natural order, one size) and out (even sizes)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neural_style_tf.apps import clip
from neural_style_tf.errors import UsageError


def write_frames(folder, names, size=(12, 10)):
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        rgb = np.full((size[1], size[0], 3), 20 * i, np.uint8)
        Image.fromarray(rgb).save(folder / name)


def test_a_folder_is_read_in_natural_order_and_resized(tmp_path):
    write_frames(tmp_path / "in", ["frame_10.png", "frame_9.png", "frame_1.png"])
    source = clip.open_source(str(tmp_path / "in"))
    assert [p.rsplit("/", 1)[1] for p in source.files] == ["frame_1.png", "frame_9.png", "frame_10.png"]
    frames = list(clip.read_frames(source, width=6))
    assert [f.shape for f in frames] == [(5, 6, 3)] * 3
    # frame_10 was written with grey 0, frame_9 with 20, frame_1 with 40
    assert [round(float(f.mean())) for f in frames] == [40, 20, 0]


def test_frames_of_different_sizes_are_refused_in_one_line(tmp_path):
    write_frames(tmp_path / "in", ["a1.png"])
    write_frames(tmp_path / "in", ["a2.png"], size=(8, 8))
    with pytest.raises(UsageError, match="frames of different sizes"):
        clip.open_source(str(tmp_path / "in"))


def test_an_empty_folder_and_a_missing_path_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no frames"):
        clip.open_source(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="no such file"):
        clip.open_source(str(tmp_path / "missing.mp4"))


def test_even_pads_odd_sizes_by_repeating_the_edge():
    pixels = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = clip.even(pixels)
    assert padded.shape == (4, 6, 3)
    assert np.array_equal(padded[3], padded[2]) and np.array_equal(padded[:, 5], padded[:, 4])
    assert clip.even(padded).shape == (4, 6, 3)
