"""Image files in and out: what photos and paintings really come as, and atomic writes.

Everything inside the tool is RGB float32 in 0..255, shape (H, W, 3), with an optional
alpha plane in 0..1 kept beside it. Only this module knows about file modes.

imageio (v3 API) reads and writes the files: its pillow plugin for every 8-bit format
and its tifffile plugin for 16-bit TIFF. Files are opened here and handed to imageio as
file objects, so a path is always a path (imageio would otherwise take "http://...",
"~/..." or "a.zip/b.png" as a download, a home folder or a zip member), and a missing,
unreadable or foreign file fails with the same errors as Pillow's own `Image.open`.
"""

from __future__ import annotations

import os
import tempfile

import imageio.v3 as iio
import numpy as np
from imageio.core.request import InitializationError
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

# Formats whose files can carry an alpha channel, by Pillow format name.
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def output_format(path):
    """Pillow's format name for `path`'s extension, or None if Pillow cannot write it."""
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    return fmt if fmt in Image.SAVE else None


# Integer greyscale modes: 16-bit PNGs and TIFFs open as 'I;16' (or 'I').
_INTEGER_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")

# EXIF orientation -> how to turn the stored pixels (rows, columns, ...) upright; the
# same transpositions as Pillow's ImageOps.exif_transpose. Not imageio's rotate=True:
# imageio 2.38 picks its flip axis from the file's mode, not from the mode it returns,
# so a greyscale or palette image read as RGB with orientation 2, 4, 5 or 7 comes back
# with its colour channels flipped instead of its columns.
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise to display
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],  # transverse
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise to display
}


def _imopen(f, plugin, path):
    """iio.imopen(f, "r", plugin=plugin), raising what the library underneath raised.

    imopen wraps every failure to open in a generic OSError ("`pillow` can not handle
    the given uri."); the pillow plugin even drops Pillow's UnidentifiedImageError.
    """
    try:
        return iio.imopen(f, "r", plugin=plugin)
    except OSError as exc:
        cause = exc.__cause__
        if isinstance(cause, InitializationError):
            if plugin == "pillow":
                # What Pillow's Image.open(path) says about a file it does not recognise.
                raise UnidentifiedImageError(f"cannot identify image file {os.fspath(path)!r}") from None
            cause = cause.__context__ or cause  # e.g. tifffile's TiffFileError
        if cause is not None:
            raise cause from None
        raise


def _read_pixels(path):
    """The first image in `path`, upright, as (array, file mode, has alpha).

    The array is the file's own mode for integer greyscale and 'F', else RGBA if the
    file has an alpha channel or a transparent palette entry, else RGB (Pillow's
    conversion from 'L', '1', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV' ...).
    """
    with open(path, "rb") as f, _imopen(f, "pillow", path) as file:
        meta = file.metadata(index=0, exclude_applied=False)
        mode = meta["mode"]
        has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in meta)
        if mode in _INTEGER_GREY_MODES or mode == "F":
            # Asked for explicitly: left alone, imageio turns a PNG's 'I' into 'I;16'.
            read_mode = mode
        else:
            read_mode = "RGBA" if has_alpha else "RGB"
        # index=0: imageio would read every frame of a GIF or APNG.
        pixels = file.read(index=0, mode=read_mode, rotate=False, writeable_output=False)
        # The orientation as it stands once the pixels are loaded: Pillow's TIFF loader
        # turns the image upright itself and drops the tag.
        orientation = file.metadata(index=0, exclude_applied=False).get("Orientation")
    orient = _ORIENTATIONS.get(orientation)
    if orient is not None:
        pixels = orient(pixels)
    return pixels, mode, has_alpha


def _to_float(pixels, mode, has_alpha):
    """_read_pixels' array -> (RGB float32 0..255, alpha float32 0..1 or None)."""
    values = np.ascontiguousarray(pixels, dtype=np.float32)
    if mode in _INTEGER_GREY_MODES:
        # 16-bit greyscale: scale 0..65535 to 0..255.
        peak = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = values * (255.0 / peak)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        return np.repeat(values[..., None], 3, axis=2), None
    if has_alpha:
        return values[..., :3].copy(), values[..., 3] / 255.0
    return values, None


def load_image(path, with_alpha=False):
    """Read `path` as RGB float32 0..255, honouring the EXIF orientation.

    With `with_alpha`, returns (rgb, alpha) where alpha is None for opaque images.
    """
    try:
        rgb, alpha = _to_float(*_read_pixels(path))
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path}: is a directory, not an image") from exc
    except PermissionError as exc:
        raise ImageError(f"{path}: not readable (permission denied)") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    return (rgb, alpha) if with_alpha else rgb


def check_readable_image(path):
    """None if `path` looks like an image load_image can read, else a one-line reason.

    Cheap: opens the header and checks the file's structure (PNG chunk checksums, so a
    truncated PNG fails here) without decoding the pixels. That is Pillow's verify(),
    which imageio does not expose; Pillow is the library imageio's pillow plugin reads
    with, so the check and load_image judge a file the same way.
    """
    if not os.path.exists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: is a directory, not an image"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable (permission denied)"
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # Pillow raises many types for foreign or broken files
        return f"{path}: not a readable image ({type(exc).__name__})"
    return None


def check_output_dir(path):
    """None if `path` is (or can be created as) a writable output folder, else the problem."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{path} exists and is not a directory"
    if not os.path.isdir(parent):
        return f"{path}: directory {parent} does not exist"
    target = path if os.path.isdir(path) else parent
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{path}: {target} is not writable"
    return None


def check_output_path(path, overwrite=False, what="output"):
    """None if an image can be written at `path`, else a one-line reason with the fix.

    Never writes anything: a dummy write would destroy the user's file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if output_format(path) is None:
        ext = os.path.splitext(path)[1] or "(none)"
        return f"{what} {path}: unknown image extension {ext}; use .png, .jpg, .tif or .webp"
    if not os.path.isdir(directory):
        return f"{what} {path}: directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{what} {path}: directory {directory} is not writable"
    if os.path.isdir(path):
        return f"{what} {path}: is a directory"
    if os.path.exists(path) and not overwrite:
        return f"{what} {path} already exists; pass --overwrite to replace it"
    return None


def resize(rgb, size):
    """Resize float (H, W, C) or (H, W) to size=(height, width), per channel in float."""
    height, width = int(size[0]), int(size[1])
    if rgb.shape[:2] == (height, width):
        return rgb.astype(np.float32, copy=True)
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    planes = rgb[..., None] if rgb.ndim == 2 else rgb
    out = np.stack(
        [np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], np.float32), mode="F").resize((width, height), method))
         for c in range(planes.shape[2])],
        axis=2,
    )
    return out[..., 0] if rgb.ndim == 2 else out


def size_at_width(shape, width):
    """(height, width) of an image of `shape` resized to `width`, keeping the aspect ratio;
    the height is rounded down as the classic tool does."""
    return max(1, int(shape[0] * width / shape[1])), width


def resize_to_width(rgb, width):
    return resize(rgb, size_at_width(rgb.shape, width))


def scale(rgb, factor):
    height = max(1, int(round(rgb.shape[0] * factor)))
    width = max(1, int(round(rgb.shape[1] * factor)))
    return resize(rgb, (height, width))


def to_uint(rgb, bit_depth=8):
    peak = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.rint(np.asarray(rgb, np.float64) * (peak / 255.0)), 0, peak).astype(dtype)


def _pixels_8(rgb, alpha, fmt):
    """uint8 RGB, or RGBA if there is an alpha plane and `fmt` can store it."""
    pixels = to_uint(rgb)
    if alpha is not None and fmt in ALPHA_FORMATS:
        a = np.clip(np.rint(np.asarray(alpha) * 255.0), 0, 255).astype(np.uint8)
        return np.dstack([pixels, a])
    return pixels


def save_image(path, rgb, alpha=None, quality=95, bit_depth=8):
    """Write `rgb` (float 0..255, clipped) to `path` atomically.

    imageio encodes the image in memory; the bytes go to a temporary file in the same
    directory, which then replaces `path` in one rename, so a crash or full disk never
    leaves a half-written output.
    """
    fmt = output_format(path)
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension")
    if bit_depth == 16:
        return save_image_16(path, rgb, alpha)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    # plugin="pillow" for every format: imageio would otherwise pick tifffile for .tif.
    data = iio.imwrite("<bytes>", _pixels_8(rgb, alpha, fmt), plugin="pillow",
                       extension=os.path.splitext(path)[1].lower(), format=fmt, is_batch=False, **options)
    write_atomically(path, lambda f: f.write(data))


# Extensions that can hold 16 bits per channel here: TIFF through imageio's tifffile
# plugin, PNG through pypng (see save_image_16).
BIT_DEPTH_16_EXTENSIONS = (".png", ".tif", ".tiff")


def save_image_16(path, rgb, alpha=None):
    """Write 16 bits per channel (RGB or RGBA) to a .png or .tif/.tiff, atomically."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in BIT_DEPTH_16_EXTENSIONS:
        raise ImageError(f"{path}: 16-bit output needs .png, .tif or .tiff")
    pixels = to_uint(rgb, 16)
    if alpha is not None:
        a = np.clip(np.rint(np.asarray(alpha, np.float64) * 65535.0), 0, 65535).astype(np.uint16)
        pixels = np.dstack([pixels, a])
    height, width, planes = pixels.shape
    if ext == ".png":
        # pypng, not imageio: none of imageio's PNG writers that need no extra install
        # can write 16-bit RGB(A). Pillow has no 16-bit RGB mode ("Cannot handle this
        # data type: (1, 1, 3), <u2"), and the others (freeimage, ITK, pyav, opencv)
        # need downloads or packages outside requirements.txt.
        import png

        writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
        rows = pixels.reshape(height, width * planes)
        write_atomically(path, lambda f: writer.write(f, rows))
    else:
        data = iio.imwrite("<bytes>", pixels, plugin="tifffile", photometric="rgb",
                           extrasamples=("unassalpha",) if planes == 4 else None)
        write_atomically(path, lambda f: f.write(data))


def load_image_16(path):
    """Read a 16-bit .png or .tif/.tiff as float 0..255 (H, W, C), keeping all 16 bits.

    TIFF through imageio's tifffile plugin; PNG through pypng, because Pillow (and so
    imageio's pillow plugin) reads a 16-bit RGB PNG as 8 bits.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        import png

        width, height, rows, info = png.Reader(filename=path).asDirect()
        planes = info["planes"]
        pixels = np.vstack([np.asarray(r, np.float64) for r in rows]).reshape(height, width, planes)
        peak = 2 ** info["bitdepth"] - 1
    else:
        with open(path, "rb") as f, _imopen(f, "tifffile", path) as file:
            raw = file.read(index=0)
        pixels = np.asarray(raw, np.float64)
        peak = 65535 if raw.dtype == np.uint16 else 255
    return pixels * (255.0 / peak)


def write_atomically(path, write):
    """Call write(file_object) on a temporary file beside `path`, then rename it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
