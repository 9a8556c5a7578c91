"""A clip's frames in and out: a folder of numbered images or a video read by ffmpeg, and
the finished frames assembled into an H.264 video. The run itself is in video.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import images
from ..errors import UsageError

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
FRAME_NAME = "frame_{:05d}.png"


@dataclass(frozen=True)
class Source:
    """The input clip: a video file or a folder of numbered images."""

    path: str
    files: tuple | None  # the frame files of a folder, in order; None for a video file
    count: int
    fps: float | None
    size: tuple  # (height, width)


def _natural_key(name):
    """'frame_10.png' after 'frame_9.png'."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def open_folder(path):
    files = sorted((f for f in os.listdir(path) if os.path.splitext(f)[1].lower() in FRAME_EXTENSIONS
                    and not f.startswith(".")), key=_natural_key)
    if not files:
        raise UsageError(f"--input {path}: no frames in this folder (images named in order, e.g. frame_00001.png)")
    from PIL import Image

    sizes = {}
    for name in files:
        full = os.path.join(path, name)
        problem = images.check_readable_image(full)
        if problem:
            raise UsageError(f"--input frame {problem}")
        with Image.open(full) as img:
            sizes.setdefault(img.size, name)
    if len(sizes) > 1:
        (a, first), (b, other) = list(sizes.items())[:2]
        raise UsageError(f"--input {path}: frames of different sizes: {first} is {a[0]}x{a[1]}, "
                         f"{other} is {b[0]}x{b[1]}; every frame must have the same size")
    (width, height), = sizes
    return Source(path, tuple(os.path.join(path, f) for f in files), len(files), None, (height, width))


def open_video(path):
    """A video file's frame count, rate and size, read by ffmpeg (imageio-ffmpeg's binary)."""
    import imageio.v3 as iio
    import imageio_ffmpeg

    try:
        meta = iio.immeta(path, plugin="FFMPEG")
        count, _ = imageio_ffmpeg.count_frames_and_secs(path)
    except Exception as exc:  # ffmpeg fails in many ways on a foreign or broken file
        raise UsageError(f"--input {path}: not a readable video ({type(exc).__name__})") from exc
    if not count:
        raise UsageError(f"--input {path}: the video has no frames")
    width, height = meta["size"]
    return Source(path, None, int(count), float(meta["fps"]), (int(height), int(width)))


def open_source(path):
    if os.path.isdir(path):
        return open_folder(path)
    if not os.path.isfile(path):
        raise UsageError(f"--input {path}: no such file or folder")
    if not os.access(path, os.R_OK):
        raise UsageError(f"--input {path}: not readable (permission denied)")
    return open_video(path)


def read_frames(source, width=None):
    """The clip's frames, one at a time, RGB float32 0..255, resized to `width`."""
    if source.files is not None:
        frames = (images.load_image(f) for f in source.files)
    else:
        import imageio.v3 as iio

        frames = (np.asarray(f, np.float32) for f in iio.imiter(source.path, plugin="FFMPEG"))
    for frame in frames:
        yield frame if width is None else images.resize_to_width(frame, width)


def write_video(path, frames_dir, count, fps):
    """Frames 1..count -> an H.264 video at `fps`, written atomically (images.write_atomically)."""
    import imageio.v3 as iio

    def write(f):
        # imageio's ffmpeg plugin writes to a file of its own and copies it into `f`.
        with iio.imopen(f, "w", plugin="FFMPEG", extension=os.path.splitext(path)[1].lower(),
                        legacy_mode=True) as file:
            with file.legacy_get_writer(fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                        pixelformat="yuv420p", ffmpeg_log_level="error") as writer:
                for index in range(count):
                    rgb = images.load_image(os.path.join(frames_dir, FRAME_NAME.format(index + 1)))
                    writer.append_data(even(images.to_uint(rgb)))

    images.write_atomically(path, write)


def even(pixels):
    """H.264 in yuv420p needs an even width and height: repeat the last row or column."""
    height, width = pixels.shape[:2]
    return np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
