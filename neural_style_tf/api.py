"""The Python API: one transfer in one call, for a notebook or another program.

    import neural_style_tf as nst
    result = nst.style_transfer("photo.jpg", ["painting.jpg"], width=512, iterations=150)
    nst.save(result.image, "out.png")

The keywords are neural_style.py's flags with underscores (`content_weight=`, `preset=`,
`seed=`, ...), and they go through the very code of the command line: the same parser
(cli.py) turns them into frozen settings with the same defaults and presets, the same
checks (checks.py) validate them, and one transfer runs through transfer.py's steps. A
bad value raises UsageError with the command line's one-line message. Content and styles
may be paths or arrays (H x W x 3 or 4, uint8 0..255 or float 0..1); an array is handed
to the transfer as it is, and a PNG of it in a temporary folder stands in for it in the
checks, which read files.

TensorFlow is imported at the first transfer, not with this module. Loaded networks are
kept (NETWORKS_KEPT) for the next call: loading the embedded VGG-19 takes seconds. So is
the last built objective (OBJECTIVES_KEPT, coarse_to_fine.Objectives): a call at the same
size and layers as the one before retargets its graph instead of building one, as a
video's frames do (docs/performance.md); `release()` frees them.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import cli, images, lifecycle, transfer
from .errors import UsageError
from .live import serving
from .progress import Reporter

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
# Flags that write files beside --output: with no output= they would write into a
# temporary folder that is deleted at the end.
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
    stop_reason: str  # "completed", "converged", "interrupted" (Ctrl-C: the best so far), ...
    seed: int  # the seed used (give it back as seed= to redo the run)
    settings: object = field(repr=False)  # the frozen settings.Settings of the run


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


class ApiParser(cli.Parser):
    """neural_style.py's flags, with a bad value raised as UsageError instead of exiting."""

    def error(self, message):
        raise UsageError(message)


def build_parser():
    p = ApiParser(prog="style_transfer", add_help=False, formatter_class=cli.Formatter)
    cli.add_transfer_arguments(p)
    cli.add_web_argument(p)
    return p


def keywords():
    """{keyword: its argparse action}: every flag of neural_style.py but the files."""
    actions = {}
    for action in build_parser()._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest not in OWN:
            actions[long[0][2:].replace("-", "_")] = action
    return actions


def as_array(value, what):
    """An image array -> RGB float32 0..255 and alpha 0..1 (or None). Raises UsageError."""
    array = np.asarray(value)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise UsageError(f"{what}: an array of shape {array.shape}; give H x W (grey), H x W x 3 (RGB) or "
                         "H x W x 4 (RGBA)")
    if array.dtype == np.uint8:
        pixels = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise UsageError(f"{what}: a float array must lie in 0..1 (found {np.nanmin(array):.4g} .. "
                             f"{np.nanmax(array):.4g}); give floats in 0..1 or uint8 in 0..255")
        pixels = array.astype(np.float32) * 255.0
    else:
        raise UsageError(f"{what}: an array of dtype {array.dtype}; give uint8 (0..255) or float (0..1)")
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    alpha = pixels[..., 3] / 255.0 if pixels.shape[2] == 4 else None
    return np.ascontiguousarray(pixels[..., :3]), alpha


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


def image_inputs(content, styles, folder):
    """(content path, style paths, {placeholder path: (rgb, alpha)}): each array gets a
    PNG in `folder`, so that the file checks see the image; the transfer takes the array."""
    if _is_path(styles) or isinstance(styles, np.ndarray):
        styles = [styles]
    try:
        styles = list(styles)
    except TypeError:
        raise UsageError(f"styles: {type(styles).__name__}; give a list of paths or arrays") from None
    if not styles:
        raise UsageError("styles is empty; give at least one style image (a path or an array)")
    arrays: dict[str, tuple] = {}
    paths: list[str] = []
    for what, value in [("content", content)] + [(f"styles[{i}]", s) for i, s in enumerate(styles)]:
        if _is_path(value):
            paths.append(os.fspath(value))
            continue
        if not isinstance(value, (np.ndarray, list, tuple)):
            raise UsageError(f"{what}: {type(value).__name__}; give a path or an array")
        rgb, alpha = as_array(value, what)
        path = os.path.join(folder, f"array{len(arrays)}.png")
        images.save_image(path, rgb, alpha)  # what the checks read (auto-sky looks at the picture)
        arrays[path] = (rgb, alpha)
        paths.append(path)
    return paths[0], paths[1:], arrays


def flag_arguments(options):
    """Keywords -> the argv of neural_style.py. Raises UsageError for an unknown keyword."""
    known, argv = keywords(), []
    for key, value in options.items():
        action = known.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(known) + list(OWN), n=1)
            hint = f"; did you mean {close[0]}=?" if close else " (the keywords are neural_style.py's flags)"
            raise UsageError(f"unknown keyword {key}={value!r}{hint}")
        if value is None or value is False and action.nargs == 0:
            continue  # the default
        flag = action.option_strings[-1]
        if action.nargs == 0 or value is True and action.nargs == "?":
            argv.append(flag)  # a switch, or the bare flag (preserve_colors=True, web=True)
        elif action.type is cli.layer_list and not isinstance(value, str):
            argv += [flag, ",".join(map(str, value))]
        elif action.nargs == "+":
            argv += [flag] + [str(v) for v in ([value] if _is_path(value) or np.isscalar(value) else value)]
        else:
            argv += [flag, str(value)]
    return argv


def network_for(run):
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


def load(settings, arrays):
    """transfer.load, with the arrays in place of their placeholder files."""
    run = settings.run
    network = transfer.load_network(settings, network_for(run))

    def image(path, with_alpha=False):
        if path in arrays:
            rgb, alpha = arrays[path]
            return (rgb, alpha) if with_alpha else rgb
        return images.load_image(path, with_alpha=with_alpha)

    content, alpha = image(run.content, with_alpha=True)
    return transfer.Inputs(network, content, alpha, [image(path) for path in run.styles])


def settings_for(content, styles, output, options, folder):
    """The validated settings of a call (cli.settings_from_argv, as neural_style.py) and its arrays."""
    for name in BESIDE_THE_OUTPUT:
        if options.get(name) and output is None:
            raise UsageError(f"{name}=True writes beside the output; give output= too")
    content_path, style_paths, arrays = image_inputs(content, styles, folder)
    if output is None:
        output = os.path.join(folder, "result.png")  # checked like an output, never written
    elif not _is_path(output):
        raise UsageError(f"output: {type(output).__name__}; give a path (or nothing: the image is returned)")
    argv = ["--content", content_path, "--styles", *style_paths, "--output", os.fspath(output)]
    return cli.settings_from_argv(build_parser, argv + flag_arguments(options)), arrays


def style_transfer(content, styles, *, output=None, progress=None, **options):
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

    with tempfile.TemporaryDirectory(prefix="neural-style-") as folder:
        settings, arrays = settings_for(content, styles, output, options, folder)
        configure_process()  # before TensorFlow is imported (a no-op if it is already)
        with serving(settings.run.web, lifecycle.say) as view:
            return _run(settings, arrays, output is not None, [x for x in (view, progress and _Callback(progress)) if x])


def _run(settings, arrays, write, listeners):
    inputs = load(settings, arrays)
    job = transfer.prepare(settings, inputs, transfer.check(settings, inputs))
    transfer.announce(settings, job)
    reporter = Reporter(settings.run, settings.optimizer.iterations, job.finish_image, transfer.record(settings, job),
                        listeners)
    result = transfer.optimise(settings, job, reporter, objectives())
    if write:
        transfer.write(settings, job, result, reporter)
    else:
        reporter.close(result)
    if result.image is None:
        raise RuntimeError(f"no image was produced: {result.message}")
    rgb, alpha = job.finish_image(result.image)
    return Result(images.to_uint(rgb), None if alpha is None else images.to_uint(alpha * 255.0),
                  dict(result.terms or {}), result.iterations, result.evaluations, result.elapsed,
                  result.stop_reason, job.seed, settings)


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
