"""The Python API: one transfer in one call, for a notebook or another program.

    import neural_style_tf as nst
    result = nst.style_transfer("photo.jpg", ["painting.jpg"], width=512, iterations=150)
    nst.save(result.image, "out.png")

The keywords are neural_style.py's flags with underscores (`content_weight=`, `preset=`,
`seed=`, ...), and they go down the command line's own path, without any argv: each is
converted and checked by its flag's type= and choices (cli.build_settings), the defaults
and the preset fill in the rest, the same checks (checks.py) validate them, and
transfer.execute runs the one transfer. A bad value raises UsageError with the command
line's one-line message. Content and styles may be paths or arrays (H x W x 3 or 4, uint8
0..255 or float 0..1): an array's size is checked from its shape before it is converted,
and the checks and the transfer take it as it is; no file is written but `output`.

TensorFlow is imported at the first transfer, not with this module. Loaded networks are
kept (NETWORKS_KEPT) for the next call: loading the embedded VGG-19 takes seconds. So is
the last built objective (OBJECTIVES_KEPT, coarse_to_fine.Objectives): a call at the same
size and layers as the one before retargets its graph instead of building one, as a
video's frames do (docs/performance.md); `release()` frees them.
"""

from __future__ import annotations

import argparse
import difflib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checks, cli, images, lifecycle, transfer
from .errors import UsageError
from .live import serving
from .settings import RunSettings, Settings

if TYPE_CHECKING:
    from .networks.feature_network import FeatureNetwork

NETWORKS_KEPT = 2  # loaded networks kept between calls, the most recently used last
_networks: OrderedDict = OrderedDict()
# Built objectives kept between calls (their graphs and warmed-up sessions): one, since a
# 512 px objective holds about 0.8 GB.
OBJECTIVES_KEPT = 1
_objectives: list = []  # the coarse_to_fine.Objectives cache, made at the first transfer


def objectives():
    """The cache of built objectives that every call shares (coarse_to_fine.Objectives)."""
    if not _objectives:
        from .coarse_to_fine import Objectives

        _objectives.append(Objectives(kept=OBJECTIVES_KEPT))
    return _objectives[0]


def release():
    """Close the kept objectives' sessions and forget the loaded networks (their memory is
    TensorFlow's and NumPy's to free)."""
    while _objectives:
        _objectives.pop().close()
    _networks.clear()


# Keywords of style_transfer itself, not flags; `output` is optional here.
OWN = ("content", "styles", "output", "progress")
# Flags that write files beside --output: with no output= there is no folder to write to.
BESIDE_THE_OUTPUT = ("progress_write", "progress_plot")


@dataclass
class Result:
    """What style_transfer returns."""

    image: np.ndarray  # H x W x 3 uint8, the finished image (colours as the settings ask)
    alpha: np.ndarray | None  # H x W uint8, the content's transparency (None: opaque)
    losses: dict  # the final loss terms by name ("content", "style", "tv", "total", ...)
    iterations: int
    evaluations: int
    seconds: float  # of optimisation
    stop_reason: str  # "completed", "settled" (--min-improvement), "converged", "interrupted" (Ctrl-C: the best so far), ...
    seed: int  # the seed used (give it back as seed= to redo the run)
    # The frozen settings.Settings of the run; its content and styles are None where arrays
    # were given, its output None without output=.
    settings: object = field(repr=False)


@dataclass
class Step:
    """What the progress callback receives after each iteration."""

    iteration: int
    iterations: int
    evaluations: int
    seconds: float
    losses: dict
    scale: tuple | None  # (index, count, (height, width)) in a coarse-to-fine run, else None
    _image: Callable[[], np.ndarray] = field(repr=False)

    def image(self):
        """The best image so far as the output would show it: H x W x 3 uint8 (computed when asked)."""
        return images.to_uint(self._image())


class _Callback:
    """A progress listener (see progress.py) that calls the user's function with a Step."""

    def __init__(self, function):
        self.function = function

    def step(self, progress, image):
        self.function(Step(progress.iteration, progress.iterations, progress.evaluations, progress.elapsed,
                           dict(progress.terms), progress.scale, image))

    def end(self, result, image):
        pass


def build_parser() -> argparse.ArgumentParser:
    """neural_style.py's flags: where the keywords, their types, choices and defaults come from."""
    p = cli.Parser(prog="style_transfer", add_help=False, formatter_class=cli.Formatter)
    cli.add_transfer_arguments(p)
    cli.add_web_argument(p)
    return p


def keywords(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.Action]:
    """{keyword: its argparse action}: every flag of neural_style.py but the files."""
    actions = {}
    for action in (parser or build_parser())._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest not in OWN:
            actions[long[0][2:].replace("-", "_")] = action
    return actions


def given_keywords(options: dict[str, Any], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The options given, as {dest: value}: None (and False for a switch) is the flag's
    default, as not giving the flag is. Raises UsageError for an unknown keyword."""
    known, given = keywords(parser), {}
    for key, value in options.items():
        action = known.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(known) + list(OWN), n=1)
            hint = f"; did you mean {close[0]}=?" if close else " (the keywords are neural_style.py's flags)"
            raise UsageError(f"unknown keyword {key}={value!r}{hint}")
        if value is None or value is False and action.nargs == 0:
            continue
        given[action.dest] = value
    return given


def checked_array(value: Any, what: str) -> np.ndarray:
    """An image array as given, its shape and dtype checked; not converted (nor copied: a
    huge array is refused by its size before anything is allocated). Raises UsageError."""
    array = np.asarray(value)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise UsageError(f"{what}: an array of shape {array.shape}; give H x W (grey), H x W x 3 (RGB) or "
                         "H x W x 4 (RGBA)")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{what}: an array of dtype {array.dtype}; give uint8 (0..255) or float (0..1)")
    return array


def to_pixels(array: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A checked array -> RGB float32 0..255 and alpha 0..1 (or None). Raises UsageError."""
    if array.dtype == np.uint8:
        pixels = array.astype(np.float32)
    else:
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise UsageError(f"{what}: a float array must lie in 0..1 (found {np.nanmin(array):.4g} .. "
                             f"{np.nanmax(array):.4g}); give floats in 0..1 or uint8 in 0..255")
        pixels = array.astype(np.float32) * 255.0
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    alpha = pixels[..., 3] / 255.0 if pixels.shape[2] == 4 else None
    return np.ascontiguousarray(pixels[..., :3]), alpha


def as_array(value: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An image array -> RGB float32 0..255 and alpha 0..1 (or None). Raises UsageError."""
    return to_pixels(checked_array(value, what), what)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def image_sources(content: Any, styles: Any) -> list[tuple[str, str | np.ndarray]]:
    """[(what, a path or a checked array)]: the content, then each style. Raises UsageError."""
    if _is_path(styles) or isinstance(styles, np.ndarray):
        styles = [styles]
    try:
        styles = list(styles)
    except TypeError:
        raise UsageError(f"styles: {type(styles).__name__}; give a list of paths or arrays") from None
    if not styles:
        raise UsageError("styles is empty; give at least one style image (a path or an array)")
    sources: list[tuple[str, str | np.ndarray]] = []
    for what, value in [("content", content)] + [(f"styles[{i}]", s) for i, s in enumerate(styles)]:
        if _is_path(value):
            sources.append((what, os.fspath(value)))
        elif isinstance(value, (np.ndarray, list, tuple)):
            sources.append((what, checked_array(value, what)))
        else:
            raise UsageError(f"{what}: {type(value).__name__}; give a path or an array")
    return sources


def settings_for(content: Any, styles: Any, output: Any = None,
                 options: dict[str, Any] | None = None) -> tuple[Settings, transfer.ImageArrays]:
    """The validated settings of a call and the images it gives as arrays: the command
    line's path (cli.build_settings, checks.validate) with the keywords as they are. An
    array's size is checked from its shape before it is converted; no file is written."""
    options = options or {}
    for name in BESIDE_THE_OUTPUT:
        if options.get(name) and output is None:
            raise UsageError(f"{name}=True writes beside the output; give output= too")
    if output is not None and not _is_path(output):
        raise UsageError(f"output: {type(output).__name__}; give a path (or nothing: the image is returned)")
    parser = build_parser()
    given = given_keywords(options, parser)
    sources = image_sources(content, styles)
    files = {"content": None if isinstance(sources[0][1], np.ndarray) else sources[0][1],
             "styles": tuple(None if isinstance(s, np.ndarray) else s for _, s in sources[1:]),
             "output": None if output is None else os.fspath(output)}
    settings = cli.build_settings(parser, given, files)
    for index, (what, source) in enumerate(sources):
        if isinstance(source, np.ndarray):
            checks.check_array_size(settings, what, source.shape, is_content=index == 0)
    pixels = [to_pixels(s, what) if isinstance(s, np.ndarray) else None for what, s in sources]
    content_pixels = pixels[0] or (None, None)
    arrays = transfer.ImageArrays(content_pixels[0], content_pixels[1],
                                  tuple(None if p is None else p[0] for p in pixels[1:]))
    checks.validate(settings, arrays.content)  # the checks see the arrays themselves
    return settings, arrays


def style_transfer(content: Any, styles: Any, *, output: Any = None, progress: Callable[[Step], Any] | None = None,
                   **options: Any) -> Result:
    """Stylise `content` (a path or an array) with `styles` (a list of paths or arrays).

    `options`: neural_style.py's flags with underscores, e.g. width=512, iterations=150,
    style_weight=1000, preset="classic", seed=1, quiet=True, web=8000 (the live view).
    `output`: also write the image there, as --output does (None: only return it).
    `progress(step)`: called after every iteration with a Step (iteration, losses, and
    step.image() for the best image so far). Returns a Result; raises UsageError for a
    bad value, before any network is built.
    """
    if threading.current_thread() is not threading.main_thread():
        # The transfer keeps Ctrl-C and SIGTERM for itself (its best image is saved), and
        # Python lets only the main thread set signal handlers.
        raise UsageError("style_transfer runs in the main thread (it handles Ctrl-C and SIGTERM itself)")
    from .tf_runtime import configure_process

    settings, arrays = settings_for(content, styles, output, options)
    configure_process()  # before TensorFlow is imported (a no-op if it is already)
    with serving(settings.run.web, lifecycle.say) as view:
        listeners = [x for x in (view, progress and _Callback(progress)) if x]
        _, job, result = transfer.execute(settings, network_for(settings.run), objectives(), listeners, arrays)
    if result.image is None:
        raise RuntimeError(f"no image was produced: {result.message}")
    rgb, alpha = job.finish_image(result.image)
    return Result(images.to_uint(rgb), None if alpha is None else images.to_uint(alpha * 255.0),
                  dict(result.terms or {}), result.iterations, result.evaluations, result.elapsed,
                  result.stop_reason, job.seed, settings)


def network_for(run: RunSettings) -> FeatureNetwork:
    """The network the settings name, loaded once and kept (NETWORKS_KEPT) for later calls."""
    from .networks import loading

    path = run.network
    stamp = None
    if path is not None and os.path.exists(path):
        info = os.stat(path)
        stamp = (os.path.abspath(path), info.st_mtime_ns, info.st_size)
    key = (path, stamp, run.input_range)
    if key not in _networks:
        _networks[key] = loading.load_net(path, run.input_range)
        while len(_networks) > NETWORKS_KEPT:
            _networks.popitem(last=False)
    _networks.move_to_end(key)
    return _networks[key]


def save(image, path, *, alpha=None, bit_depth=8, overwrite=False):
    """Write an image array (H x W x 3, uint8 or float 0..1) to `path` atomically, in the
    format its extension names; as the command line, an existing file is kept unless
    `overwrite`. Raises UsageError for a bad array or path."""
    rgb, own_alpha = as_array(image, "image")
    if alpha is not None:
        alpha = as_array(alpha, "alpha")[0][..., 0] / 255.0
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite and not os.path.isdir(path):
        raise UsageError(f"{path} already exists; pass overwrite=True to replace it")
    problem = images.check_output_path(path, overwrite=True)
    if problem:
        raise UsageError(problem)
    if bit_depth not in (8, 16):
        raise UsageError(f"bit_depth must be 8 or 16, not {bit_depth}")
    images.save_image(path, rgb, own_alpha if alpha is None else alpha, bit_depth=bit_depth)
    return path
