"""images.py, the reading half: every kind of file photos and paintings come as, and
the path checks. (Writing, 16-bit files and resizing: tests/test_images_writing.py.)"""


from __future__ import annotations

import os
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from neural_style_tf import errors, images


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


# What each EXIF orientation asks a viewer to do with the stored pixels (Pillow's names).
TRANSPOSE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def stored_image(mode):
    """A small 6x10 image of `mode` with every pixel different, so any flip shows."""
    rng = np.random.default_rng(7)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (6, 10)).astype(np.uint16))
    rgba = rng.integers(0, 256, (6, 10, 4), dtype=np.uint8)
    rgba[..., 3] = np.maximum(rgba[..., 3], 1)  # no fully transparent pixel for WebP to simplify
    img = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        return img.convert("RGB").quantize(colors=16)
    return img.convert(mode)


def upright_expected(img, orientation):
    """(rgb, alpha) as load_image must return them: Pillow turns the stored image upright."""
    method = TRANSPOSE_FOR_ORIENTATION[orientation]
    upright = img if method is None else img.transpose(method)
    if upright.mode == "I;16":
        grey = np.asarray(upright, np.float32) * np.float32(255.0 / 65535.0)
        return np.repeat(grey[..., None], 3, axis=2), None
    if upright.mode in ("RGBA", "LA"):
        rgba = np.asarray(upright.convert("RGBA"), np.float32)
        return rgba[..., :3], rgba[..., 3] / 255.0
    return np.asarray(upright.convert("RGB"), np.float32), None


@pytest.mark.parametrize("mode, fmt, options", [
    ("RGB", "PNG", {}),
    ("RGBA", "PNG", {}),
    ("L", "PNG", {}),  # one band read as three: imageio's own rotate=True flips the channels for 2, 4, 5, 7
    ("P", "PNG", {}),  # palette: the same trap
    ("I;16", "PNG", {}),
    ("RGB", "TIFF", {}),
    ("RGBA", "TIFF", {}),  # Pillow 13 opened by path: 5..8 come back sideways; by file object: upright
    ("L", "TIFF", {}),
    ("I;16", "TIFF", {}),
    ("RGBA", "WEBP", {"lossless": True, "exact": True}),
])
def test_every_exif_orientation_comes_upright(tmp_path, mode, fmt, options):
    img = stored_image(mode)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.{fmt.lower()}"
        img.save(path, format=fmt, exif=exif.tobytes(), **options)
        rgb, alpha = images.load_image(str(path), with_alpha=True)
        want_rgb, want_alpha = upright_expected(img, orientation)
        assert rgb.shape == want_rgb.shape, (orientation, rgb.shape)
        assert rgb.dtype == np.float32 and rgb.flags.c_contiguous
        np.testing.assert_allclose(rgb, want_rgb, rtol=1e-6, err_msg=f"orientation {orientation}")
        if want_alpha is None:
            assert alpha is None
        else:
            np.testing.assert_array_equal(alpha, want_alpha)


@pytest.mark.parametrize("orientation, shape, bright_corner", [
    (2, (8, 16), (0, 15)),  # mirrored left-right
    (4, (8, 16), (7, 0)),  # mirrored top-bottom
    (5, (16, 8), (0, 0)),  # transposed
    (7, (16, 8), (15, 7)),  # transverse
])
def test_exif_mirroring_of_a_greyscale_jpeg(tmp_path, orientation, shape, bright_corner):
    stored = np.zeros((8, 16), np.uint8)
    stored[:3, :3] = 255  # white in the stored top-left corner of a black picture
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "g.jpg", exif=exif.tobytes(), quality=95)
    loaded = images.load_image(str(tmp_path / "g.jpg"))
    assert_rgb_float(loaded, shape)
    y, x = bright_corner
    assert (loaded[y, x] > 200).all(), loaded[y, x]
    assert (loaded[..., 0] == loaded[..., 1]).all() and (loaded[..., 1] == loaded[..., 2]).all()
    assert (loaded > 128).sum() == 9 * 3  # the white square, nothing flipped into the channels


def test_palette_png_with_per_entry_alpha(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:, :3] = (200, 30, 40, 255)
    rgba[:, 3:] = (20, 90, 220, 128)  # half transparent blue
    rgba[0, 0] = (0, 0, 0, 0)
    Image.fromarray(rgba, "RGBA").quantize(colors=4).save(tmp_path / "q.png")
    with Image.open(tmp_path / "q.png") as img:
        assert img.mode == "P" and isinstance(img.info["transparency"], bytes)  # a tRNS table
    rgb, alpha = images.load_image(str(tmp_path / "q.png"), with_alpha=True)
    assert_rgb_float(rgb, (4, 6))
    np.testing.assert_array_equal(alpha * 255.0, rgba[..., 3])
    np.testing.assert_array_equal(rgb[1:, :], rgba[1:, :, :3])


def test_animations_load_their_first_frame(tmp_path):
    first, second = four_colours(), four_colours()[::-1]
    Image.fromarray(first).save(tmp_path / "a.png", save_all=True, append_images=[Image.fromarray(second)])
    np.testing.assert_array_equal(images.load_image(str(tmp_path / "a.png")), first)  # not a stack of frames
    frames = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=4) for f in (first, second)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], transparency=frames[0].getpixel((0, 0)))
    rgb, alpha = images.load_image(str(tmp_path / "a.gif"), with_alpha=True)
    assert_rgb_float(rgb, (8, 8))
    np.testing.assert_array_equal(rgb[4:, :], first[4:, :])
    assert alpha[0, 0] == 0.0 and alpha[7, 7] == 1.0


def test_16_bit_greyscale_tiff_is_scaled_to_0_255(tmp_path):
    grey = np.linspace(0, 65535, 60).reshape(6, 10).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.tif")
    loaded = images.load_image(str(tmp_path / "g16.tif"))
    assert_rgb_float(loaded, (6, 10))
    np.testing.assert_allclose(loaded[..., 2], grey / 257.0, rtol=1e-6, atol=1e-4)


def test_a_path_is_a_path_not_a_url(tmp_path, monkeypatch):
    """imageio takes a string starting with http:// as a download; load_image reads the
    local file that path names, as Pillow did."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "http:").mkdir()
    Image.fromarray(four_colours()).save(tmp_path / "http:" / "x.png")
    np.testing.assert_array_equal(images.load_image("http://x.png"), four_colours())
    assert images.check_readable_image("http://x.png") is None


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


def test_not_an_image_says_what_pillow_says(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    with pytest.raises(images.ImageError) as caught:
        images.load_image(str(path))
    assert str(caught.value) == f"{path}: not a readable image (cannot identify image file {str(path)!r})"
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(images.ImageError, match=r"empty.jpg: not a readable image \(cannot identify image file"):
        images.load_image(str(tmp_path / "empty.jpg"))
    assert images.check_readable_image(str(tmp_path / "empty.jpg")) == f"{tmp_path / 'empty.jpg'}: not a readable image (UnidentifiedImageError)"


def test_image_error_is_the_usage_error_type():
    assert images.ImageError is errors.ImageError


def test_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.fromarray(four_colours()).save(path)
    real_open = open

    def refuse(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(images.ImageError) as caught:
        images.load_image(str(path))
    assert str(caught.value) == f"{path}: not readable (permission denied)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_on_disk(tmp_path):
    path = tmp_path / "locked.png"
    Image.fromarray(four_colours()).save(path)
    path.chmod(0)
    assert images.check_readable_image(str(path)) == f"{path}: not readable (permission denied)"
    with pytest.raises(images.ImageError, match="not readable \\(permission denied\\)"):
        images.load_image(str(path))


def test_check_reads_no_pixels(tmp_path, monkeypatch):
    """check_readable_image runs before anything heavy: header and structure only."""
    Image.fromarray(four_colours(64, 64)).save(tmp_path / "ok.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded pixels")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "convert", no_decoding)
    monkeypatch.setattr(iio, "imread", no_decoding)
    assert images.check_readable_image(str(tmp_path / "ok.png")) is None


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
