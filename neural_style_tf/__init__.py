"""The parts that the commands (neural_style.py, compare.py, reproduce.py, benchmark.py)
and the algorithm (stylize.py, vgg.py) share.

Importing the package, or any module in it, imports no TensorFlow: the functions that
build graphs import it where they build them (tf_runtime.import_tensorflow).

    settings          defaults and the frozen settings dataclasses
    errors            error types and exit codes
    cli               shared command-line flags, parsing into settings
    checks            validation of settings, up front
    transfer          one job: load, check, build, optimise, write
    progress          progress bar, logs, checkpoints, plots
    tf_runtime        TensorFlow import and session set-up, the device line
    images, color     image files in and out; colour control
    feature_network   the interface every feature network implements
    keras_network     any Keras model as the feature network
    calibration       the calibration images shipped with the package
    presets, memory, coarse_to_fine
    compare, reproduce, benchmark   the code of the experiment commands
"""

__version__ = "0.2.0"
