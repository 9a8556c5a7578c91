"""Neural style transfer (Gatys et al.) in TensorFlow graph mode with SciPy L-BFGS.

The Python API (api.py, docs/python-api.md):

    import neural_style_tf as nst
    result = nst.style_transfer("photo.jpg", ["painting.jpg"], width=512, iterations=150)
    nst.save(result.image, "out.png")

`style_transfer`, `save`, `release`, `Result`, `Step` and `UsageError` are found here lazily: the
package itself imports nothing but the standard library.

The parts that the commands (neural_style.py, video.py, batch.py, compare.py, reproduce.py,
benchmark.py) and the classic facades (stylize.py, vgg.py) share, and the commands' code (apps/).

Importing the package, or any module in it, imports no TensorFlow: the functions that
build graphs import it where they build them (tf_runtime.import_tensorflow).

    api               the Python API: style_transfer(content, styles, **flags), save
    live              the live view of a run (--web): a page on 127.0.0.1, its server
    settings          defaults and the frozen settings dataclasses
    errors            error types and exit codes
    cli               shared command-line flags, parsing into settings
    checks            validation of settings, up front
    lifecycle         what every command's run shares: messages, signals, seed, first image, exit codes
    transfer          one job: load, check, build, optimise, write
    progress          progress bar, logs, checkpoints, plots
    tf_runtime        TensorFlow import and session set-up, the device line
    images            image files in and out, atomic writes
    color             colour control
    masks             spatial control: mask files, their checks, per-scale guidance
    sky               the automatic sky mask (--style-masks auto-sky)
    flow              optical flow (OpenCV), warping, reliability masks
    losses            the loss terms and statistics (pure functions), the loss scales, W2
    objective         targets, guidance, the terms as small objects, Objective (one graph)
    optimize          Evaluator (cached on x), L-BFGS-B, Adam, minimize, Result, Progress
    networks/         the feature networks behind one interface (see networks/__init__.py)
    networks.feature_network  the typed interface (an ABC) every network implements; mask helpers
    networks.vgg_network      the VGG network: layer spec as data, weights as arrays, its graph
    networks.vgg_files        loaders of VGG weight files: MatConvNet .mat, Keras .h5, this tool's .npz
    networks.embedded         the embedded default network (HED VGG-16), checked by sha256
    networks.codebook         the ImageNet VGG-19 shipped as 8-bit codebooks (data/vgg19), its format
    networks.torch_legacy     a restricted reader of legacy torch.save files (the converter's; no torch)
    networks.keras_network    any Keras model as the feature network
    networks.calibration      the calibration images shipped with the package
    networks.normalization    the paper's normalised network, and its cache
    networks.loading          the one entry point: a path (or none) -> a FeatureNetwork
    presets           the paper's presets
    memory            memory preflight
    coarse_to_fine    coarse-to-fine schedule
    apps/             the commands' code (see apps/__init__.py); the modules above never import it
    apps.video        a clip's run: warm starts, the temporal term, resuming, flicker
    apps.clip         a clip's frames in (a folder or a video) and out (an H.264 video)
    apps.batch        batch.py: many transfers on Ray, folder in, folder out, sweeps
    apps.jobs         batch.py's jobs: what to run, each job's id, results.jsonl
    apps.engine       Ray: a local instance or a cluster, long-lived workers, scheduling, retries
    apps.worker       a batch worker: what it keeps between jobs (networks, graphs)
    apps.sheet        a sweep's contact sheet
    apps.compare      compare.py: L-BFGS against Adam, the runs (planning, resuming, Ray)
    apps.compare_report  compare.py's numbers, evaluations.csv, summary.json and .md, the plots
    apps.metrics      image measures shared by compare and quality: SSIM, held-out Gram distances
    apps.reproduce    reproduce.py: the paper's figures with the gatys2016 preset
    apps.benchmark    benchmark.py: seconds per evaluation, FLOPs, peak RSS
    apps.benchmark_measure  benchmark.py's measurements: networks, exact FLOPs, the machine, one child's run
    apps.time_to_quality  benchmark.py --time-to-quality: routes timed to one loss
    apps.quality      the quality panel (examples/quality_panel.py): its measures and sheets
"""

__version__ = "0.2.0"

import importlib

# name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {"style_transfer": "api", "save": "api", "release": "api", "Result": "api", "Step": "api",
         "UsageError": "errors"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
