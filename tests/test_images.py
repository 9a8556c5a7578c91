"""images.py and color.py: every kind of file photos and paintings come as, path checks,
16-bit files, and atomic writes that never leave a half-written or clobbered output."""

from __future__ import annotations

import io
import os
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from neural_style_tf import color, errors, images


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


@pytest.mark.parametrize("ext, fmt, options", [
    (".png", "PNG", {}),
    (".jpg", "JPEG", {"quality": 95}),
    (".jpeg", "JPEG", {"quality": 95}),
    (".tif", "TIFF", {}),  # Pillow's TIFF writer, not tifffile
    (".webp", "WEBP", {"quality": 95}),
    (".bmp", "BMP", {}),
])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_8_bit_files_are_what_pillow_writes(tmp_path, ext, fmt, options, with_alpha):
    """imageio drives Pillow: the same bytes as Pillow's own save, JPEG and WebP at quality 95."""
    rng = np.random.default_rng(8)
    rgb = rng.uniform(-5, 260, (7, 9, 3))
    alpha = rng.uniform(0, 1, (7, 9)) if with_alpha else None
    path = tmp_path / f"o{ext}"
    images.save_image(str(path), rgb, alpha)
    pixels = images.to_uint(rgb)
    if with_alpha and fmt in images.ALPHA_FORMATS:
        a = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
        expected = Image.fromarray(np.dstack([pixels, a]), "RGBA")
    else:
        expected = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    expected.save(buffer, format=fmt, **options)
    assert path.read_bytes() == buffer.getvalue()


def test_upper_case_extension_is_written(tmp_path):
    images.save_image(str(tmp_path / "O.PNG"), np.full((2, 2, 3), 7.0))
    assert np.asarray(Image.open(tmp_path / "O.PNG"))[0, 0, 0] == 7


@pytest.mark.parametrize("name, bit_depth", [("o.png", 8), ("o.jpg", 8), ("o.tif", 8), ("o.png", 16), ("o.tif", 16)])
@pytest.mark.parametrize("stage", ["write", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, name, bit_depth, stage, error):
    """The bytes are encoded, then written to the temporary file, synced and renamed; a
    failure (full disk) or Ctrl-C at any of those steps leaves the old output as it was."""
    path = tmp_path / name
    images.save_image(str(path), np.full((8, 8, 3), 50.0), bit_depth=bit_depth)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWrittenFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])  # half of it reaches the disk ...
            raise error  # ... then the disk is full (or Ctrl-C)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fail(*args, **kwargs):
        raise error

    if stage == "write":
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWrittenFile(real_fdopen(*a, **k)))
    elif stage == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(error)):
        images.save_image(str(path), np.full((8, 8, 3), 200.0), bit_depth=bit_depth)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, [name]) == []


def test_write_into_a_folder_that_refuses_it_creates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "o.png"
    images.save_image(str(path), np.full((4, 4, 3), 50.0))
    before = path.read_bytes()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(images.tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError):
        images.save_image(str(path), np.full((4, 4, 3), 200.0))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["o.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_write_into_a_read_only_folder(tmp_path, bit_depth):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "o.png"
    images.save_image(str(path), np.full((4, 4, 3), 50.0), bit_depth=bit_depth)
    before = path.read_bytes()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            images.save_image(str(path), np.full((4, 4, 3), 200.0), bit_depth=bit_depth)
        assert path.read_bytes() == before and os.listdir(folder) == ["o.png"]
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------- 16-bit files


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16_bit_round_trip(tmp_path, ext, with_alpha):
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (9, 13, 3))
    alpha = rng.uniform(0, 1, (9, 13)) if with_alpha else None
    path = tmp_path / f"deep{ext}"
    images.save_image(str(path), rgb, alpha, bit_depth=16)
    back = images.load_image_16(str(path))
    assert back.shape == (9, 13, 4 if with_alpha else 3)
    # 16 bits: error at most half a step of 255/65535; 8 bits could not do better than 0.5
    assert np.abs(back[..., :3] - rgb).max() <= 0.5 * 255 / 65535 + 1e-9
    assert np.abs(back[..., :3] - np.rint(rgb)).max() > 0.1  # values between 8-bit levels survived
    if with_alpha:
        assert np.abs(back[..., 3] / 255 - alpha).max() <= 0.5 / 65535 + 1e-9


def every_16_bit_value(with_alpha):
    """All 65536 16-bit levels (so every low bit), as the float 0..255 the tool works in."""
    levels = np.arange(65536, dtype=np.uint16)
    rgb16 = np.stack([levels, levels[::-1], np.roll(levels, 12345)], axis=1).reshape(128, 512, 3)
    alpha16 = np.roll(levels, 777).reshape(128, 512) if with_alpha else None
    return rgb16, alpha16


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16_bit_files_keep_every_bit(tmp_path, ext, with_alpha):
    rgb16, alpha16 = every_16_bit_value(with_alpha)
    path = tmp_path / f"all{ext}"
    alpha = None if alpha16 is None else alpha16 / 65535.0
    images.save_image(str(path), rgb16 * (255.0 / 65535.0), alpha, bit_depth=16)
    # Read by another library: the file really holds these 16-bit values.
    if ext == ".png":
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        assert info["bitdepth"] == 16 and info["planes"] == (4 if with_alpha else 3)
        stored = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, -1)
    else:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            assert page.photometric == tifffile.PHOTOMETRIC.RGB
            assert tuple(page.extrasamples) == ((tifffile.EXTRASAMPLE.UNASSALPHA,) if with_alpha else ())
            stored = page.asarray()
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored[..., :3], rgb16)
    if with_alpha:
        np.testing.assert_array_equal(stored[..., 3], alpha16)
    # And load_image_16 gives every level back.
    back = images.load_image_16(str(path))
    np.testing.assert_array_equal(images.to_uint(back[..., :3], 16), rgb16)
    if with_alpha:
        np.testing.assert_array_equal(images.to_uint(back[..., 3], 16), alpha16)


def test_16_bit_tiff_written_elsewhere_loads(tmp_path):
    rgb16 = np.random.default_rng(9).integers(0, 65536, (5, 4, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "x.tiff", rgb16, photometric="rgb")
    np.testing.assert_allclose(images.load_image_16(str(tmp_path / "x.tiff")), rgb16 * (255.0 / 65535.0), rtol=1e-12)


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
