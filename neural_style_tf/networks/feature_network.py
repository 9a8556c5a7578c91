"""The one interface every feature network implements (VGG weights, a Keras model).

Code downstream (objective.py, memory.py, the commands) asks the network, never its
type: no `hasattr` checks or tags decide what happens. `networks.loading.load_net` turns
a path (or none: the embedded VGG-19) into a network.
"""

from __future__ import annotations

import difflib
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..settings import RELATIVE_CONTENT_SCALE, STYLE_LAYER_WEIGHT_EXP, TV_WEIGHT, TV_WEIGHT_RELATIVE

# Longest list of layer names that an error message prints in full.
LIST_LIMIT = 30
# {network: {precision: its copy}}: with_precision makes each copy once, so that a batch
# worker's objectives, cached by network, find the same copy for every job.
_PRECISION_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FeatureNetwork(ABC):
    """What style transfer needs of a network.

    Attributes every network sets: `name`, `path`, `layers` (the names usable as
    content or style layers, in network order), `mean_pixel` (RGB 0..255: the centre
    of the noise start) and `notes` (provenance for logs and manifests; nothing
    decides behaviour on it).
    """

    name: str
    path: str
    layers: tuple
    mean_pixel: np.ndarray
    notes: dict
    # The TV weight when none is given: the loss terms' magnitudes depend on the network.
    default_tv_weight: float = TV_WEIGHT
    # The same with a relative style loss (W2, mean-cov; settings.effective_tv_weight).
    relative_tv_weight: float = TV_WEIGHT_RELATIVE
    # The paddings its convolutions can take (settings.PADDINGS), and the one used
    # when none is given: a frozen graph (a Keras model) keeps its own zero padding.
    paddings: tuple = ("zero",)
    default_padding: str = "zero"
    # weight(style layer n+1) = exp * weight(layer n) when --style-layer-weight-exp is not given.
    default_style_layer_weight_exp: float = STYLE_LAYER_WEIGHT_EXP
    # The relative content term's scale (settings.RELATIVE_CONTENT_SCALE): measured per network.
    relative_content_scale: float = RELATIVE_CONTENT_SCALE
    # Whether the paper's normalisation of the weights (vgg.normalize) applies.
    can_normalize: bool = False
    # Said after the description when the network is not the paper's (e.g. where to get it).
    hint: str = ""
    # Whether the weights were rescaled as the paper's (vgg.normalize).
    is_normalized: bool = False
    # Whether a normalised copy may be cached next to the source file.
    cache_beside_source: bool = False
    # The arithmetic of its graph (settings.PRECISIONS but "auto"), and those it can run in:
    # a Keras model's frozen graph is float32.
    precision: str = "float32"
    precisions: tuple = ("float32",)

    def with_precision(self, precision: str) -> FeatureNetwork:
        """This network computing in `precision` (one of `precisions`): itself, or its copy,
        made once."""
        if precision == self.precision:
            return self
        if precision not in self.precisions:
            raise ValueError(f"{self.name} computes in {', '.join(self.precisions)}, not {precision}")
        copies = _PRECISION_COPIES.setdefault(self, {})
        if precision not in copies:
            copies[precision] = self._copy_with_precision(precision)
        return copies[precision]

    def _copy_with_precision(self, precision: str) -> FeatureNetwork:
        raise NotImplementedError(f"{type(self).__name__} has no precision but float32")

    # ------------------------------------------------------------ input

    @abstractmethod
    def preprocess(self, rgb: Any) -> Any:
        """RGB 0..255 (NumPy array or tensor, channels last) -> the network's input."""
        raise NotImplementedError

    @abstractmethod
    def unprocess(self, x: Any) -> Any:
        """Inverse of `preprocess`: the network's input -> RGB 0..255 (not clipped)."""
        raise NotImplementedError

    # ------------------------------------------------------------ graph

    @abstractmethod
    def features(self, input_image: Any, last: str | None = None, pooling: str = "max",
                 padding: str = "zero") -> dict[str, Any]:
        """{layer: tensor} for every layer up to `last` (default: all) on `input_image`
        (a preprocessed NHWC float32 tensor), built in the current tf.compat.v1 graph.
        Nothing past `last` is built, so nothing past it is ever computed. `padding` is
        that of every convolution, one of `paddings`."""
        raise NotImplementedError

    def deepest(self, names: Sequence[str]) -> str:
        """The layer among `names` that comes last in the network."""
        order = {n: i for i, n in enumerate(self.layers)}
        return max(names, key=order.__getitem__)

    # ------------------------------------------------------------ spatial guidance

    def mask_weights(self, mask: np.ndarray, layers: Sequence[str], pooling: str = "max") -> dict[str, np.ndarray]:
        """{layer: `mask` at that layer's size} for a (H, W) mask 0..1 over an H x W input:
        how much each position of the layer's feature map belongs to the region.

        For any network: the mask averaged over the input area of each position (a box
        resize to the layer's size). vgg.Network follows its own convolutions and poolings,
        which also takes each position's receptive field into account.
        """
        mask = np.asarray(mask, np.float32)
        height, width = mask.shape
        shapes = {n: (h, w) for n, h, w, _ in self.feature_shapes(height, width, self.deepest(layers))}
        return {n: area_resize(mask, shapes[n]) for n in layers}

    # ------------------------------------------------------------ description

    @abstractmethod
    def describe(self) -> str:
        """One line: what the network is and where it came from."""
        raise NotImplementedError

    def announce(self) -> str:
        """The line the commands print about the network they use."""
        line = f"network: {self.describe()}"
        return f"{line} ({self.hint})" if self.hint else line

    def layer_problem(self, name: str) -> str | None:
        """None if `name` can be a content or style layer, else a one-line reason."""
        if name in self.layers:
            return None
        close = difflib.get_close_matches(name, self.layers, n=1)
        return f"unknown layer {name!r} for {self.name}" + (f"; did you mean {close[0]}?" if close else "")

    @property
    def layer_advice(self) -> str:
        """Said after a refused layer name: where the network's own names are listed."""
        return f"list them with: python vgg.py layers --network {self.path}"

    @abstractmethod
    def layer_table(self) -> list[tuple[str, str]]:
        """[(layer, description)] for `vgg.py layers`: every layer, and whether it can be used."""
        raise NotImplementedError

    # ------------------------------------------------------------ memory preflight

    @abstractmethod
    def feature_shapes(self, height: int, width: int, last: str | None) -> list[tuple[str, int, int, int]]:
        """[(layer, H, W, C)] of every layer up to `last` for a height x width input."""
        raise NotImplementedError

    def tile_halo(self, last: str | None) -> tuple[int, int, int] | None:
        """(before, after, stride) of an exact tiling up to `last` (tiling.py), or None when
        the network cannot say (a frozen graph's receptive fields are not known): such a
        network is not tiled."""
        return None

    @abstractmethod
    def weight_bytes(self, last: str | None) -> int:
        """Bytes of the weights the graph holds up to `last`."""
        raise NotImplementedError


def shown_layers(layers: Sequence[str], limit: int = LIST_LIMIT) -> str:
    """A comma-separated list of layer names, cut after `limit`."""
    shown = ", ".join(layers[:limit])
    return shown + (f", ... ({len(layers) - limit} more)" if len(layers) > limit else "")


def area_resize(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A (H, W) float mask resized to `shape` (h, w) by area averaging (Pillow's box filter)."""
    from PIL import Image

    mask = np.asarray(mask, np.float32)
    if mask.shape == tuple(shape):
        return mask
    resized = Image.fromarray(mask, mode="F").resize((shape[1], shape[0]), Image.Resampling.BOX)
    return np.asarray(resized, np.float32)


def halve_mask(mask: np.ndarray) -> np.ndarray:
    """A (H, W) mask averaged over 2x2 blocks, to (ceil(H/2), ceil(W/2)): a stride-2 pooling
    with SAME padding (the edge row or column repeated when the size is odd)."""
    mask = np.asarray(mask, np.float32)
    mask = np.pad(mask, ((0, mask.shape[0] % 2), (0, mask.shape[1] % 2)), mode="edge")
    return mask.reshape(mask.shape[0] // 2, 2, mask.shape[1] // 2, 2).mean(axis=(1, 3))
