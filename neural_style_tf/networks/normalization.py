"""The paper's normalised network: every filter's mean activation rescaled to 1 on
calibration images (Gatys et al. 2016), computed once and cached.

`normalize` is the math; `normalized_network` the cache around it (next to the source
file when that is writable, else in the user's cache folder). The cached copy is the
source network with its weights, name and path replaced: every other attribute of the
network it wraps is kept by construction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from .. import images
from ..errors import NetworkError
from ..tf_runtime import import_tensorflow, network_session
from . import calibration
from .codebook import sha256_of
from .vgg_files import load_npz, save_npz_to
from .vgg_network import Network, layer_kind, net_preloaded

# Filters whose mean activation is below this fraction of their layer's median are
# treated as dead by `normalize` (see there why).
NORMALISE_FLOOR = 1e-2


def mean_activations(network: Network, images_rgb: list, pooling: str = "max") -> dict[str, np.ndarray]:
    """{relu_layer: per-channel mean activation} over RGB 0..255 images and positions."""
    tf = import_tensorflow()

    sums: dict[str, np.ndarray | float] = {name: 0.0 for name in network.relu_layers}
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3))
        net = net_preloaded(network, network.preprocess(image), pooling)
        means = {n: tf.reduce_mean(net[n], axis=(0, 1, 2)) for n in network.relu_layers}
        graph.finalize()
        with network_session(graph) as sess:
            for rgb in images_rgb:
                fetched = sess.run(means, {image: np.asarray(rgb, np.float32)[None]})
                for n in sums:
                    sums[n] = sums[n] + fetched[n].astype(np.float64)
    return {n: np.asarray(s, np.float64) / len(images_rgb) for n, s in sums.items()}


def normalize(network: Network, images_rgb: list, pooling: str = "max", target: float = 1.0, name: str | None = None,
              floor: float = NORMALISE_FLOOR) -> Network:
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
        factor = normalizing_factors(means[conv.replace("conv", "relu")], target, floor)
        kernel, bias = weights[conv]
        weights[conv] = (kernel * factor, bias * factor)
        if i + 1 < len(convs):
            next_kernel, next_bias = weights[convs[i + 1]]
            weights[convs[i + 1]] = (next_kernel / factor[None, None, :, None], next_bias)
    notes = {**network.notes, "normalised": {"target": target, "pooling": pooling, "images": len(images_rgb),
                                             "floor": floor}}
    return replace_weights(network, weights, name=name or f"{network.name}, normalised (mean activation {target:g})",
                           is_normalized=True, notes=notes)


def normalizing_factors(mean: np.ndarray, target: float = 1.0, floor: float = NORMALISE_FLOOR) -> np.ndarray:
    """Per-channel factors target/mean; channels below floor x median get target/median."""
    mean = np.asarray(mean, np.float64)
    alive = mean[mean > 0]
    if alive.size == 0:
        return np.ones_like(mean)
    typical = float(np.median(alive))
    ok = (mean > 0) & (mean >= floor * typical)
    return np.where(ok, target / np.where(ok, mean, 1.0), target / typical)


def replace_weights(network: Network, weights: dict, **changes) -> Network:
    """A copy of `network` with new conv weights (cast to float32)."""
    cast = {n: (np.asarray(k, np.float32), np.asarray(b, np.float32)) for n, (k, b) in weights.items()}
    changes.setdefault("notes", dict(network.notes))
    return dataclasses.replace(network, weights=cast, **changes)


# ---------------------------------------------------------------- command line



# ---------------------------------------------------------------- the normalised network


def cache_dir():
    """~/.cache/neural-style-tf (or $XDG_CACHE_HOME/neural-style-tf)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "neural-style-tf")


# The user's cache folder holds at most this many bytes of normalised networks (a VGG-19
# is 80 MB): writing one more removes the least recently used beyond it.
CACHE_LIMIT_BYTES = 400 * 2**20
CACHE_PATTERN = ".normalised-"


def weights_digest(network):
    """The sha256 of the network's weights (every conv's kernel and bias, in order) and its
    mean pixel: the same for the same weights wherever their file lies and whatever its
    time stamp, so that every checkout and install shares one cache entry. About 0.1 s
    for VGG-19's 80 MB."""
    digest = hashlib.sha256()
    for name in sorted(network.weights):
        for array in network.weights[name]:
            array = np.ascontiguousarray(array)
            digest.update(f"{name} {array.dtype} {array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(np.asarray(network.mean_pixel, np.float64).tobytes())
    return digest.hexdigest()


def cache_key(network, calibration, pooling, size, target=1.0):
    """A short hash of the weights' content and the calibration (the images' content and
    the settings): keyed by content, not by path or time stamp, so a second checkout finds
    the first one's entry instead of adding another."""
    data = {"network": weights_digest(network), "images": [sha256_of(p) for p in calibration],
            "pooling": pooling, "size": size, "target": target, "floor": NORMALISE_FLOOR}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def prune_cache(folder, keep, limit=None):
    """Remove the least recently used normalised networks in `folder` until the rest
    (`keep` always among them) take at most `limit` bytes (default CACHE_LIMIT_BYTES). Only this tool's cache files
    (*.normalised-*.npz) are touched. Returns the removed paths."""
    try:
        names = [n for n in os.listdir(folder) if CACHE_PATTERN in n and n.endswith(".npz")]
    except OSError:
        return []
    limit = CACHE_LIMIT_BYTES if limit is None else limit
    entries = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        entries.append((st.st_mtime_ns, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in sorted(entries):  # oldest first
        if total <= limit:
            break
        if os.path.abspath(path) == os.path.abspath(keep):
            continue
        try:
            os.remove(path)
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed


def cache_paths(network, key):
    """Where a normalised copy may live: next to the source (if writable and not the
    embedded package's file, which belongs to pip), then the user's cache folder."""
    base = os.path.splitext(os.path.basename(network.path))[0] + f".normalised-{key}.npz"
    paths = []
    source_dir = os.path.dirname(os.path.abspath(network.path))
    if network.cache_beside_source and os.access(source_dir, os.W_OK):
        paths.append(os.path.join(source_dir, base))
    paths.append(os.path.join(cache_dir(), base))
    return paths


def normalized_network(network, pooling="avg", images_dir=None, size=calibration.CALIBRATION_SIZE, log=None):
    """`network` normalised as in the paper, from the cache if it was computed before.

    Calibrates on the images in `images_dir` (default: the shipped calibration images).
    A network that is already normalised (e.g. a `vgg.py normalize` .npz) is returned as is.
    """
    if not network.can_normalize:
        raise ValueError("--preset gatys2016 normalises a VGG network's weights; a Keras model's features are "
                         "scaled already (keras_network.py): use --loss-scale gatys2016 and its --ratio instead")
    if network.is_normalized:
        return network
    say = log or (lambda text: None)
    paths = calibration.calibration_paths(images_dir)
    key = cache_key(network, paths, pooling, size)
    candidates = cache_paths(network, key)
    for path in candidates:
        if os.path.isfile(path):
            try:
                cached = load_npz(path)
            except NetworkError:
                continue  # a damaged cache file is recomputed and replaced
            say(f"normalised network: {path} (cached)")
            _touch(path)  # recently used: the last to be pruned
            return _with_notes(cached, network, path)
    where = images_dir or f"the {len(paths)} shipped calibration images (no calibration folder given)"
    say(f"normalising {network.name} on {where}, {pooling} pooling (once; cached)")
    rgbs = calibration.calibration_images(paths, size)
    normalized = normalize(network, rgbs, pooling)
    for path in candidates:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            images.write_atomically(path, lambda f: save_npz_to(normalized, f))
        except OSError:
            continue
        say(f"normalised network cached in {path}")
        if os.path.dirname(path) == cache_dir():
            prune_cache(cache_dir(), keep=path)
        return _with_notes(normalized, network, path)
    say("normalised network: no writable cache folder; it will be recomputed next time")
    return normalized


def _touch(path):
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves; it is only pruned in a different order


def _with_notes(normalized, source, path):
    """The source network with the normalised weights: every other attribute of the source
    (its hint, defaults, paddings, conventions) is kept by construction, whatever it has."""
    notes = {**source.notes, **normalized.notes}
    notes["normalised"] = notes.get("normalised") or True
    notes["normalized_from"] = source.path
    # The path is the cached file's, whether it was just written or read back, so that
    # logs and manifests name the same file on a first and a resumed run.
    return dataclasses.replace(source, weights=normalized.weights, name=normalized.name, path=path, notes=notes,
                               is_normalized=True)
