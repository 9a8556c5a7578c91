"""From a path (or none) to a feature network.

`load_net(path, input_range)` dispatches on the file: VGG weights give a `Network`, a
whole Keras model a `KerasNetwork`, no path the embedded default. `load_normalized`
adds the paper's normalisation (normalization.py), from its cache when it was made before.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import NetworkError
from . import codebook, keras_network
from .embedded import HED_WEIGHTS_NAME, load_embedded
from .feature_network import FeatureNetwork
from .normalization import normalized_network
from .vgg_files import load_h5, load_mat, load_npz


def _load_file(path: str, input_range: str | None = None) -> FeatureNetwork:
    if not os.path.exists(path):
        raise NetworkError(f"network file {path} does not exist")
    if keras_network.kind_of(path):  # a whole Keras model, not VGG weights
        return keras_network.load(path, input_range)
    if input_range is not None:
        raise NetworkError(f"--input-range is for Keras models; {path} is a VGG weights file with its own preprocessing")
    if os.path.isdir(path):
        raise NetworkError(f"network {path} is a directory, not a weights file")
    with open(path, "rb") as f:
        head = f.read(8)
    lower = path.lower()
    if head.startswith(b"MATLAB") or lower.endswith(".mat"):
        return load_mat(path)
    if head.startswith(b"\x89HDF") or lower.endswith((".h5", ".hdf5")):
        if os.path.basename(path) == HED_WEIGHTS_NAME:
            return load_embedded(path)
        return load_h5(path)
    if head.startswith(b"PK") or lower.endswith(".npz"):
        # The embedded VGG-19's own format (or a copy of it), else this tool's .npz.
        return codebook.load_network(path, expected_sha256=None) if codebook.is_codebook(path) else load_npz(path)
    raise NetworkError(f"{path}: unknown weights format; expected a MatConvNet .mat, a Keras .h5, a .npz or a whole Keras model (.keras)")


def load_net(path: str | None = None, input_range: str | None = None) -> FeatureNetwork:
    """Load a network: `path`, or without one the embedded ImageNet VGG-19 (codebook.py),
    wherever the command runs: no folder or cache is searched, so the same command gives
    the same network on every machine. Raises NetworkError with a one-line message.

    A whole Keras model (.keras, full-model .h5) gives a `keras_network.KerasNetwork`;
    `input_range` ('0-1', '0-255', 'caffe') is how its input is scaled.
    """
    if path is None:
        if input_range is not None:
            raise NetworkError("--input-range is for Keras models given with --network")
        return codebook.load_network()
    return _load_file(path, input_range)


def load_normalized(network: FeatureNetwork, pooling: str, log: Callable[[str], None] | None = None) -> FeatureNetwork:
    """`network` normalised as in the paper (normalization.normalized_network); its refusal
    of a network that cannot be normalised becomes a NetworkError (one line, exit 2)."""
    try:
        return normalized_network(network, pooling, log=log)
    except ValueError as exc:
        raise NetworkError(str(exc)) from exc
