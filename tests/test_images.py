"""images.py and color.py: every kind of file photos and paintings come as, path checks,
and atomic writes that never leave a half-written or clobbered output."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from neural_style_tf import color
from neural_style_tf import images


def assert_rgb_float(rgb, shape):
    assert rgb.shape == shape + (3,)
    assert rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 255.0


def four_colours(height=8, width=8):
    """Quadrants of four distinct, saturated colours (survive JPEG well)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    rgb[:h, :w] = (200, 40, 30)
    rgb[:h, w:] = (30, 180, 60)
    rgb[h:, :w] = (40, 60, 210)
    rgb[h:, w:] = (230, 220, 40)
    return rgb


# ---------------------------------------------------------------- modes


def test_rgb_png_loads_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    loaded = images.load_image(str(tmp_path / "a.png"))
    assert_rgb_float(loaded, (5, 7))
    np.testing.assert_array_equal(loaded, rgb)


def test_greyscale_loads_as_three_equal_channels(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey).save(tmp_path / "g.png")
    loaded, alpha = images.load_image(str(tmp_path / "g.png"), with_alpha=True)
    assert_rgb_float(loaded, (6, 8))
    for c in range(3):
        np.testing.assert_array_equal(loaded[..., c], grey)
    assert alpha is None


def test_bilevel_image_loads_as_black_and_white(tmp_path):
    bits = np.zeros((4, 4), bool)
    bits[:, 2:] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    loaded = images.load_image(str(tmp_path / "b.png"))
    assert_rgb_float(loaded, (4, 4))
    assert set(np.unique(loaded)) == {0.0, 255.0}
    assert (loaded[:, 2:] == 255).all() and (loaded[:, :2] == 0).all()


def test_rgba_keeps_its_alpha_beside_the_rgb(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, alpha = images.load_image(str(tmp_path / "a.png"), with_alpha=True)
    assert_rgb_float(rgb, (5, 6))
    np.testing.assert_array_equal(rgb, rgba[..., :3])  # not premultiplied, not composited
    assert alpha.shape == (5, 6)
    np.testing.assert_allclose(alpha, rgba[..., 3] / 255.0, atol=1e-7)
    # Without with_alpha, the same RGB and nothing else.
    np.testing.assert_array_equal(images.load_image(str(tmp_path / "a.png")), rgba[..., :3])


def test_greyscale_with_alpha(tmp_path):
    la = np.dstack([np.full((3, 3), 90, np.uint8), np.full((3, 3), 51, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    rgb, alpha = images.load_image(str(tmp_path / "la.png"), with_alpha=True)
    assert_rgb_float(rgb, (3, 3))
    assert (rgb == 90).all()
    np.testing.assert_allclose(alpha, 0.2)


def test_palette_image_loads_its_palette_colours(tmp_path):
    rgb = four_colours()
    img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    loaded, alpha = images.load_image(str(tmp_path / "p.png"), with_alpha=True)
    assert_rgb_float(loaded, (8, 8))
    np.testing.assert_array_equal(loaded, rgb)
    assert alpha is None


def test_palette_image_with_a_transparent_index_has_alpha(tmp_path):
    img = Image.fromarray(four_colours()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    transparent = img.getpixel((0, 0))
    img.save(tmp_path / "pt.png", transparency=transparent)
    rgb, alpha = images.load_image(str(tmp_path / "pt.png"), with_alpha=True)
    assert_rgb_float(rgb, (8, 8))
    assert alpha[0, 0] == 0.0 and alpha[7, 7] == 1.0


def test_16_bit_greyscale_png_is_scaled_to_0_255(tmp_path):
    grey = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    loaded = images.load_image(str(tmp_path / "g16.png"))
    assert_rgb_float(loaded, (8, 8))
    np.testing.assert_allclose(loaded[..., 0], grey / 257.0, rtol=1e-6, atol=1e-4)
    assert loaded.max() == pytest.approx(255.0)


def write_png_rgb16(path, rgb16):
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def test_16_bit_rgb_png_loads_in_0_255(tmp_path):
    rgb16 = np.random.default_rng(2).integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    write_png_rgb16(tmp_path / "rgb16.png", rgb16)
    loaded = images.load_image(str(tmp_path / "rgb16.png"))
    assert_rgb_float(loaded, (4, 5))
    np.testing.assert_allclose(loaded, rgb16 / 257.0, atol=1.0)  # at least the 8 high bits


def test_cmyk_jpeg_loads_as_rgb(tmp_path):
    rgb = four_colours(16, 16)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    loaded = images.load_image(str(tmp_path / "cmyk.jpg"))
    assert_rgb_float(loaded, (16, 16))
    # Not inverted, not channel-swapped: each quadrant's colour comes back (JPEG-close).
    for y, x in ((2, 2), (2, 13), (13, 2), (13, 13)):
        np.testing.assert_allclose(loaded[y, x], rgb[y, x], atol=12)


@pytest.mark.parametrize("orientation, shape, red_corner", [
    (1, (8, 16), (0, 0)),  # as stored
    (3, (8, 16), (7, 15)),  # rotated 180
    (6, (16, 8), (0, 7)),  # rotate 90 clockwise to display: top-left goes top-right
    (8, (16, 8), (15, 0)),  # rotate 90 counter-clockwise: top-left goes bottom-left
])
def test_exif_orientation_is_applied(tmp_path, orientation, shape, red_corner):
    stored = np.full((8, 16, 3), 255, np.uint8)  # white, 16 wide and 8 high as stored
    stored[:3, :3] = (255, 0, 0)  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    loaded = images.load_image(str(tmp_path / "r.jpg"))
    assert_rgb_float(loaded, shape)
    y, x = red_corner
    assert loaded[y, x, 0] > 200 and loaded[y, x, 1] < 60, loaded[y, x]
    assert loaded[shape[0] // 2, shape[1] // 2].min() > 200  # the middle stays white


# ---------------------------------------------------------------- unreadable files


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.png")
    with pytest.raises(images.ImageError, match="nope.png: no such file"):
        images.load_image(path)
    assert images.check_readable_image(path) == f"{path}: no such file"


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    with pytest.raises(images.ImageError, match="notes.png: not a readable image"):
        images.load_image(str(path))
    assert "notes.png: not a readable image" in images.check_readable_image(str(path))


def test_directory_is_not_an_image(tmp_path):
    assert "is a directory" in images.check_readable_image(str(tmp_path))
    with pytest.raises(images.ImageError, match="directory"):
        images.load_image(str(tmp_path))


def test_truncated_png_is_caught_by_the_check(tmp_path):
    Image.fromarray(four_colours(32, 32)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    assert "half.png: not a readable image" in images.check_readable_image(str(tmp_path / "half.png"))
    with pytest.raises(images.ImageError, match="half.png"):
        images.load_image(str(tmp_path / "half.png"))


def test_readable_image_passes_the_check(tmp_path):
    Image.fromarray(four_colours()).save(tmp_path / "ok.jpg")
    assert images.check_readable_image(str(tmp_path / "ok.jpg")) is None


# ---------------------------------------------------------------- output paths


def test_output_path_checks(tmp_path):
    existing = tmp_path / "out.png"
    existing.write_bytes(b"precious")
    assert images.check_output_path(str(tmp_path / "new.png")) is None
    assert "unknown image extension .xyz" in images.check_output_path(str(tmp_path / "out.xyz"))
    assert "unknown image extension (none)" in images.check_output_path(str(tmp_path / "out"))
    assert "does not exist" in images.check_output_path(str(tmp_path / "missing" / "out.png"))
    assert "already exists; pass --overwrite" in images.check_output_path(str(existing))
    assert images.check_output_path(str(existing), overwrite=True) is None
    (tmp_path / "dir.png").mkdir()
    assert "is a directory" in images.check_output_path(str(tmp_path / "dir.png"), overwrite=True)
    assert existing.read_bytes() == b"precious"  # checking never writes


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".tif", ".webp", ".bmp"])
def test_common_extensions_are_writable_formats(ext):
    assert images.output_format("out" + ext) is not None


# ---------------------------------------------------------------- writing


def test_png_round_trip_rounds_and_clips(tmp_path):
    rgb = np.array([[[-20.0, 0.4, 0.6], [254.5, 255.0, 300.0]]], np.float32)
    images.save_image(str(tmp_path / "o.png"), rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), [[[0, 0, 1], [254, 255, 255]]])


def test_alpha_is_written_to_png_and_dropped_for_jpeg(tmp_path):
    rgb = np.full((4, 4, 3), 100.0, np.float32)
    alpha = np.linspace(0, 1, 16).reshape(4, 4)
    images.save_image(str(tmp_path / "o.png"), rgb, alpha)
    png = Image.open(tmp_path / "o.png")
    assert png.mode == "RGBA"
    np.testing.assert_allclose(np.asarray(png)[..., 3] / 255.0, alpha, atol=0.5 / 255)
    images.save_image(str(tmp_path / "o.jpg"), rgb, alpha)
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"


def leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    images.save_image(str(tmp_path / "o.png"), np.zeros((3, 3, 3)))
    images.save_image(str(tmp_path / "o.png"), np.full((3, 3, 3), 9.0))  # replaces
    assert os.listdir(tmp_path) == ["o.png"]
    assert np.asarray(Image.open(tmp_path / "o.png"))[0, 0, 0] == 9


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_the_existing_file_and_leaves_nothing(tmp_path, monkeypatch, error):
    path = tmp_path / "o.png"
    images.save_image(str(path), np.full((8, 8, 3), 50.0))
    before = path.read_bytes()
    real_save = Image.Image.save

    def save_half_then_fail(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the bytes really go to the temporary file ...
        fp.seek(fp.tell() // 2)
        fp.truncate()
        raise error  # ... then the "disk fills up" (or Ctrl-C) half-way

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(type(error)):
        images.save_image(str(path), np.full((8, 8, 3), 200.0))
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["o.png"]) == []


def test_failed_write_of_a_new_file_creates_nothing(tmp_path):
    def fail(f):
        f.write(b"partial")
        raise OSError("boom")

    with pytest.raises(OSError):
        images.write_atomically(str(tmp_path / "new.png"), fail)
    assert os.listdir(tmp_path) == []


def test_write_atomically_writes_the_bytes(tmp_path):
    images.write_atomically(str(tmp_path / "t.txt"), lambda f: f.write(b"hello"))
    assert (tmp_path / "t.txt").read_bytes() == b"hello"
    assert os.listdir(tmp_path) == ["t.txt"]


def test_unknown_extension_cannot_be_saved(tmp_path):
    with pytest.raises(images.ImageError, match="unknown image extension"):
        images.save_image(str(tmp_path / "o.xyz"), np.zeros((2, 2, 3)))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- resizing


def test_resize_to_width_keeps_the_aspect_ratio_rounding_down():
    rgb = np.random.default_rng(3).uniform(0, 255, (30, 40, 3)).astype(np.float32)
    out = images.resize_to_width(rgb, 17)
    assert out.shape == (12, 17, 3) and out.dtype == np.float32  # 30 * 17 / 40 = 12.75
    assert images.resize_to_width(rgb, 80).shape == (60, 80, 3)


def test_resize_keeps_a_constant_image_constant_and_handles_planes():
    rgb = np.full((9, 13, 3), 77.0, np.float32)
    np.testing.assert_allclose(images.resize(rgb, (4, 5)), 77.0, atol=1e-3)
    np.testing.assert_allclose(images.resize(rgb, (20, 30)), 77.0, atol=1e-3)
    alpha = np.full((9, 13), 0.5, np.float32)
    assert images.resize(alpha, (4, 5)).shape == (4, 5)


# ---------------------------------------------------------------- colour


def test_ycbcr_matches_pillow_and_round_trips():
    rgb = np.random.default_rng(4).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr"), np.float64)
    np.testing.assert_allclose(color.rgb_to_ycbcr(rgb), pillow, atol=1.0)
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-9)


def test_luminance_transfer_takes_luminance_from_one_and_chroma_from_the_other():
    rng = np.random.default_rng(5)
    content = rng.uniform(60, 190, (5, 5, 3))
    stylized = rng.uniform(60, 190, (5, 5, 3))
    out = color.luminance_transfer(content, stylized)
    assert out.dtype == np.float32 and out.shape == (5, 5, 3)
    ycc = color.rgb_to_ycbcr(out)
    np.testing.assert_allclose(ycc[..., 0], color.rgb_to_ycbcr(stylized)[..., 0], atol=1e-3)
    np.testing.assert_allclose(ycc[..., 1:], color.rgb_to_ycbcr(content)[..., 1:], atol=1e-3)
