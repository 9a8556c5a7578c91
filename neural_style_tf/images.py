"""Image files in and out: what photos and paintings really come as, and atomic writes.

Everything inside the tool is RGB float32 in 0..255, shape (H, W, 3), with an optional
alpha plane in 0..1 kept beside it. Only this module knows about file modes.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# Formats whose files can carry an alpha channel, by Pillow format name.
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def output_format(path):
    """Pillow's format name for `path`'s extension, or None if Pillow cannot write it."""
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    return fmt if fmt in Image.SAVE else None


def _to_float(img):
    """A Pillow image of any mode -> (RGB float32 0..255, alpha float32 0..1 or None)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNGs open as 'I;16' (or 'I'); scale 0..65535 to 0..255.
        grey = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey = grey * (255.0 / peak)
        return np.repeat(grey[..., None], 3, axis=2), None
    if img.mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        return np.repeat(grey[..., None], 3, axis=2), None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        return rgba[..., :3].copy(), rgba[..., 3] / 255.0
    # 'L', '1', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGB' all convert cleanly to RGB.
    return np.asarray(img.convert("RGB"), dtype=np.float32), None


def load_image(path, with_alpha=False):
    """Read `path` as RGB float32 0..255, honouring the EXIF orientation.

    With `with_alpha`, returns (rgb, alpha) where alpha is None for opaque images.
    """
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            rgb, alpha = _to_float(img)
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
    """None if `path` looks like an image Pillow can open, else a one-line reason."""
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


def _pil_image(rgb, alpha, fmt):
    pixels = to_uint(rgb)
    if alpha is not None and fmt in ALPHA_FORMATS:
        a = np.clip(np.rint(np.asarray(alpha) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([pixels, a]), mode="RGBA")
    return Image.fromarray(pixels, mode="RGB")


def save_image(path, rgb, alpha=None, quality=95, bit_depth=8):
    """Write `rgb` (float 0..255, clipped) to `path` atomically.

    The image goes to a temporary file in the same directory, then replaces `path` in
    one rename, so a crash or full disk never leaves a half-written output.
    """
    fmt = output_format(path)
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension")
    if bit_depth == 16:
        return save_image_16(path, rgb, alpha)
    img = _pil_image(rgb, alpha, fmt)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    write_atomically(path, lambda f: img.save(f, format=fmt, **options))


# Extensions that can hold 16 bits per channel here (Pillow cannot write 16-bit RGB PNG,
# so PNG goes through pypng and TIFF through tifffile).
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
        import png

        writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
        rows = pixels.reshape(height, width * planes)
        write_atomically(path, lambda f: writer.write(f, rows))
    else:
        import io

        import tifffile

        # tifffile looks at the file object's name, which is an int for our descriptor:
        # encode in memory, then write the bytes atomically.
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, pixels, photometric="rgb", extrasamples=("unassalpha",) if planes == 4 else None)
        write_atomically(path, lambda f: f.write(buffer.getvalue()))


def load_image_16(path):
    """Read a 16-bit .png or .tif/.tiff as float 0..255 (H, W, C), keeping all 16 bits.

    Pillow reads 16-bit RGB PNGs as 8 bits, so this goes through pypng / tifffile.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        import png

        width, height, rows, info = png.Reader(filename=path).asDirect()
        planes = info["planes"]
        pixels = np.vstack([np.asarray(r, np.float64) for r in rows]).reshape(height, width, planes)
        peak = 2 ** info["bitdepth"] - 1
    else:
        import tifffile

        raw = tifffile.imread(path)
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
