"""The VGG network: its layer spec as data, its weights as NumPy arrays, its graph.

A *loader* (vgg_files.py, embedded.py) turns one file format into a plain `Network`
(layer names in order, conv weights as arrays, mean pixel, channel order). Nothing
after the loaders knows about file formats. `Network.features` (the classic tool's
`net_preloaded`) builds tf.compat.v1 graph ops by looping over the layer-name list.

TensorFlow is imported inside the functions that build graphs, so that the command
line can load weights and validate layer names in about a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..settings import (
    PADDINGS,
    POOLING_CHOICES,
    RELATIVE_CONTENT_SCALE_VGG,
    STYLE_LAYER_WEIGHT_EXP_VGG,
    TV_WEIGHT,
    TV_WEIGHT_RELATIVE_VGG,
    WRAP_PADDING,
)
from ..tf_runtime import held_weight, import_tensorflow
from .feature_network import FeatureNetwork, halve_mask

# Caffe/Keras VGG mean, in B, G, R order as Keras documents it.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Convolutions per block: the whole difference between VGG-16 and VGG-19.
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG19_BLOCKS = (2, 2, 4, 4, 4)


def vgg_layers(blocks: Sequence[int]) -> tuple[str, ...]:
    """Layer names of a VGG with `blocks[i]` convolutions in block i+1.

    Each conv is followed by its relu, each block by a 2x2 pool.
    >>> vgg_layers((1, 2))
    ('conv1_1', 'relu1_1', 'pool1', 'conv2_1', 'relu2_1', 'conv2_2', 'relu2_2', 'pool2')
    """
    names = []
    for b, count in enumerate(blocks, start=1):
        for c in range(1, count + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return tuple(names)


VGG16_LAYERS = vgg_layers(VGG16_BLOCKS)
VGG19_LAYERS = vgg_layers(VGG19_BLOCKS)


def layer_kind(name: str) -> str:
    """'conv', 'relu' or 'pool' from a layer name such as 'relu3_1'."""
    return name[:4]


@dataclass(frozen=True, eq=False)
class Network(FeatureNetwork):
    """Weights and conventions of a VGG-style network, independent of the file they came from.

    `weights[conv_name] = (kernel HWIO float32, bias float32)`. `mean_pixel` is in RGB
    order; `channel_order` is what the network expects as input ('RGB' or 'BGR').
    """

    name: str
    path: str
    layers: tuple[str, ...]
    weights: dict[str, tuple[np.ndarray, np.ndarray]]
    mean_pixel: np.ndarray
    channel_order: str = "RGB"
    notes: dict = field(default_factory=dict)
    default_tv_weight: float = TV_WEIGHT
    # Replicate padding of every convolution by default: zero padding is a black frame
    # to the network, which paints bright dots and a warm strip along the border
    # (settings.PADDINGS).
    paddings: tuple = PADDINGS + (WRAP_PADDING,)  # wrap: the image of --tileable (settings.WRAP_PADDING)
    default_padding: str = "replicate"
    default_style_layer_weight_exp: float = STYLE_LAYER_WEIGHT_EXP_VGG
    relative_content_scale: float = RELATIVE_CONTENT_SCALE_VGG
    relative_tv_weight: float = TV_WEIGHT_RELATIVE_VGG
    hint: str = ""
    # Whether a normalised copy may be cached next to the weights file (not for files
    # that belong to an installed package, such as the embedded network's).
    cache_beside_source: bool = True
    is_normalized: bool = False  # every filter's mean activation rescaled (normalize)
    can_normalize = True
    # The convolutions, biases, ReLUs and poolings in this precision (settings.PRECISIONS);
    # every layer's output is handed on in float32 (see features).
    precision: str = "float32"
    precisions: tuple = ("float32", "bfloat16")

    def _copy_with_precision(self, precision: str) -> Network:
        """A copy whose weights are stored in `precision`: converted once here, so that the
        graph's weight variables hold bfloat16 (half the memory of float32 ones, and nothing
        to convert at any evaluation).
        NumPy's bfloat16 is ml_dtypes' (a TensorFlow dependency); it rounds to nearest even,
        as tf.cast does."""
        if precision == "float32":
            weights = {n: (k.astype(np.float32), b.astype(np.float32)) for n, (k, b) in self.weights.items()}
        else:
            from ml_dtypes import bfloat16

            weights = {n: (k.astype(bfloat16), b.astype(bfloat16)) for n, (k, b) in self.weights.items()}
        return dataclasses.replace(self, precision=precision, weights=weights)

    def preprocess(self, rgb: Any) -> Any:
        x = rgb - self.mean_pixel.astype(np.float32)
        return x[..., ::-1] if self.channel_order == "BGR" else x

    def unprocess(self, x: Any) -> Any:
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        return x + self.mean_pixel.astype(np.float32)

    @property
    def relu_layers(self) -> tuple[str, ...]:
        return tuple(n for n in self.layers if layer_kind(n) == "relu")

    def describe(self) -> str:
        convs = sum(layer_kind(n) == "conv" for n in self.layers)
        return f"{self.name}: {convs} conv layers, {self.channel_order} input, from {self.path}"

    def layer_table(self) -> list[tuple[str, str]]:
        return [(name, f"{channels} channels") for name, _, _, channels in self.feature_shapes(1, 1, None)]

    def features(self, input_image: Any, last: str | None = None, pooling: str = "max",
                 padding: str = "zero") -> dict[str, Any]:
        """The classic tool's net_preloaded: one loop over the layer-name list (the spec is data).

        `padding` (zero, replicate or reflect) is that of every convolution. The network was
        trained with zero padding, but a zero frame is a black border to the first layer and
        a frame of dead features to every deeper one: with only the first layer replicated,
        the style loss at 512 px pushed the last 5-6 columns warm (a faint strip along the
        right edge of the sky, R - B -43 against -70 inside; docs/quality.md). Replicating
        at every convolution removed it (-61 to -77) at the same loss (506 against 502).

        In bfloat16 (self.precision) the input and the weights are cast once and the whole
        chain runs in bfloat16, but every layer's output is cast back to float32 where it
        is handed on: only a layer that a loss reads is ever cast (graph mode computes what
        is fetched), and the statistics, losses and their sums stay float32. Explicit casts
        rather than grappler's auto_mixed_precision_onednn_bfloat16 rewrite: measured at
        512x384 (VGG-19 to relu5_1, forward + backward, Intel Xeon with AMX, 2 threads) they
        took 0.29 s against 0.46 s for the rewrite, and the rewrite also lowers the loss
        sums to bfloat16 unless every loss op is deny-listed.

        The weights are variables (tf_runtime.held_weight): a session over the graph runs
        tf_runtime.initialize_weights (or is made by tf_runtime.network_session) before
        its first evaluation.
        """
        tf = import_tensorflow()

        if pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, not {pooling!r}")
        if padding not in self.paddings:
            raise ValueError(f"padding must be one of {self.paddings}, not {padding!r}")
        if last is not None and last not in self.layers:
            raise ValueError(f"unknown layer {last!r} for {self.name}")
        low = self.precision == "bfloat16"

        def weight(array, name):
            # A variable, not a constant: tf_runtime.held_weight says why. A bfloat16 network
            # holds its weights in bfloat16 already (_copy_with_precision), so nothing is cast.
            value = held_weight(array, name)
            return tf.cast(value, tf.bfloat16) if low and value.dtype != tf.bfloat16 else value

        net = {}
        current = tf.cast(input_image, tf.bfloat16) if low else input_image
        for name in self.layers:
            kind = layer_kind(name)
            if kind == "conv":
                kernel, bias = self.weights[name]
                current = _conv(current, weight(kernel, f"{name}_kernel"), kernel.shape, padding)
                current = tf.nn.bias_add(current, weight(bias, f"{name}_bias"))
            elif kind == "relu":
                current = tf.nn.relu(current)
            elif kind == "pool":
                pool = tf.nn.max_pool2d if pooling == "max" else tf.nn.avg_pool2d
                current = pool(current, ksize=2, strides=2, padding="SAME")
            else:  # loaders only produce the three kinds above
                raise ValueError(f"unknown layer kind in {name!r}")
            net[name] = tf.cast(current, tf.float32) if low else current
            if name == last:
                break
        return net

    def feature_shapes(self, height: int, width: int, last: str | None) -> list[tuple[str, int, int, int]]:
        """(layer, H, W, C) of every layer up to and including `last`, as `features` builds them."""
        h, w, c = height, width, 3
        out = []
        for name in self.layers:
            kind = layer_kind(name)
            if kind == "conv":
                c = self.weights[name][0].shape[3]
            elif kind == "pool":  # 2x2, stride 2, SAME padding
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            out.append((name, h, w, c))
            if name == last:
                break
        return out

    def mask_weights(self, mask: np.ndarray, layers: Sequence[str], pooling: str = "max") -> dict[str, np.ndarray]:
        """{layer: `mask` at that layer's size}, brought there through the network's own
        layers (FeatureNetwork.mask_weights).

        Each convolution averages the mask over its k x k window (edges replicated, as the
        default padding), so a position's weight is the share of its receptive field
        inside the region: how Gatys et al. 2017 take the receptive field into account,
        kept soft where they erode the mask to the positions wholly inside, so that soft
        edges blend and complementary masks stay complementary (the propagation is linear).
        Each pooling averages 2 x 2 blocks whatever `pooling` is: a max would grow every
        region, and two complementary masks would overlap at their border.
        """
        from scipy import ndimage

        current = np.asarray(mask, np.float32)
        wanted, last, out = set(layers), self.deepest(layers), {}
        for name in self.layers:
            kind = layer_kind(name)
            if kind == "conv":
                current = ndimage.uniform_filter(current, size=self.weights[name][0].shape[:2], mode="nearest")
            elif kind == "pool":
                current = halve_mask(current)
            if name in wanted:
                out[name] = current
            if name == last:
                break
        return {n: out[n] for n in layers}

    def tile_halo(self, last: str | None) -> tuple[int, int, int] | None:
        """(before, after, stride) for tiling.py: a tile's window reaching `before` pixels
        before its core and `after` after it computes every layer up to `last` over the
        core exactly as the whole image would; `stride` is the total stride of `last`
        (`before` is a multiple of it, so that the windows keep the poolings' grid).

        Position j of a layer of stride s reads the input pixels s j - b .. s j + a: each
        k x k convolution adds s (k - 1) // 2 before and s k // 2 after, each 2 x 2 pooling
        s after and doubles s. The core's last position of a layer of stride s is the core's
        end - s, so a window must reach a - s + 1 past the core's end."""
        before = after = 0
        reach_before = reach_after = 0
        stride = 1
        for name in self.layers:
            kind = layer_kind(name)
            if kind == "conv":
                kh, kw = self.weights[name][0].shape[:2]
                before += stride * (max(kh, kw) - 1) // 2
                after += stride * (max(kh, kw) // 2)
            elif kind == "pool":
                after += stride
                stride *= 2
            reach_before, reach_after = max(reach_before, before), max(reach_after, after - stride + 1)
            if name == last:
                break
        return -(-reach_before // stride) * stride, reach_after, stride

    def weight_bytes(self, last: str | None) -> int:
        convs = [name for name, *_ in self.feature_shapes(1, 1, last) if layer_kind(name) == "conv"]
        return sum(self.weights[n][0].nbytes + self.weights[n][1].nbytes for n in convs)


# tf.pad's names for the paddings: for a pad of 1, SYMMETRIC repeats the edge pixel.
_TF_PAD_MODES = {"replicate": "SYMMETRIC", "reflect": "REFLECT"}


def _conv(x, kernel, shape, padding):
    """A stride-1 convolution of `kernel` (a tensor of HWIO `shape`) whose output has the
    input's size, padded as asked."""
    tf = import_tensorflow()

    if padding == "zero":
        return tf.nn.conv2d(x, kernel, strides=(1, 1, 1, 1), padding="SAME")
    kh, kw = shape[:2]
    # SAME's split: the extra pixel of an even kernel goes after.
    pads = [[0, 0], [(kh - 1) // 2, kh // 2], [(kw - 1) // 2, kw // 2], [0, 0]]
    if max(kh, kw) > 3 and padding == "replicate":
        raise ValueError("replicate padding is implemented for kernels of at most 3x3")
    if padding == WRAP_PADDING:
        # --tileable: the picture is a torus, so the row above the first is the last row and
        # the column left of the first is the last column. tf.pad has no wrap mode, so the
        # opposite edges are concatenated on (rows first, then columns of the taller map,
        # which fills the corners with the opposite corners, as np.pad(mode="wrap") does).
        # With every convolution wrapped (and the poolings on sizes that are multiples of
        # their stride, tileable.py), shifting the input round shifts every feature map
        # round: no position is an edge, so nothing the losses see marks a seam.
        padded = x
        for axis, (before, after) in ((1, pads[1]), (2, pads[2])):
            size = padded.shape[axis]
            if size is not None and max(before, after) > size:
                raise ValueError(f"wrap padding of {max(before, after)} needs a map of at least that size, not {size}")
            keep = (slice(None),) * axis
            parts = ([padded[keep + (slice(-before, None),)]] if before else []) + [padded]
            parts += [padded[keep + (slice(None, after),)]] if after else []
            padded = tf.concat(parts, axis=axis)
        return tf.nn.conv2d(padded, kernel, strides=(1, 1, 1, 1), padding="VALID")
    if padding == "reflect":
        # A deep layer of a small image can be 1 pixel high or wide, which has nothing to
        # reflect: there the only continuation is the pixel itself (NumPy's reflect does
        # the same), so such a map is replicated; decided in the graph when the size is
        # known only at run time.
        size = [d for d in x.shape[1:3]]
        if all(d is not None for d in size):
            mode = "REFLECT" if min(size) >= 2 else _TF_PAD_MODES["replicate"]
            padded = tf.pad(x, pads, mode=mode)
        else:
            wide = tf.reduce_min(tf.shape(x)[1:3]) >= 2
            padded = tf.cond(wide, lambda: tf.pad(x, pads, mode="REFLECT"),
                             lambda: tf.pad(x, pads, mode=_TF_PAD_MODES["replicate"]))
    else:
        padded = tf.pad(x, pads, mode=_TF_PAD_MODES[padding])
    return tf.nn.conv2d(padded, kernel, strides=(1, 1, 1, 1), padding="VALID")


def deepest(network: FeatureNetwork, names: Sequence[str]) -> str:
    """The layer among `names` that comes last in `network.layers`."""
    return network.deepest(names)


def net_preloaded(network: FeatureNetwork, input_image: Any, pooling: str = "max", last: str | None = None) -> dict[str, Any]:
    """Build the network on `input_image` (preprocessed NHWC float32 tensor): {layer: tensor}
    for every layer up to and including `last` (default: all). The classic tool's name
    for `network.features`, for any FeatureNetwork."""
    return network.features(input_image, last, pooling)


# ---------------------------------------------------------------- loaders
