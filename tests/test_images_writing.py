"""images.py, the writing half: output paths, atomic writes that never leave a
half-written or clobbered output, 16-bit files, resizing; and color.py's conversions.
(Reading every kind of file is tests/test_images.py.)"""


from __future__ import annotations

import io
import os

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from neural_style_tf import color, images

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
