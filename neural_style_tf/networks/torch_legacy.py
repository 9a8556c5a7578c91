"""A restricted reader of PyTorch's legacy (pre-1.6, non-zip) `torch.save` files, without torch.

Why: the VGG-19 weights we convert ship in that format, and `pickle.load` on a
foreign file can run any code it names. Here every global the pickles name goes
through `_RestrictedUnpickler.find_class`, which knows only the few names a plain
dict of tensors needs and refuses anything else before it could be called.

The legacy layout, in order (torch/serialization.py, `_legacy_save`):

1. a pickle of the magic number 0x1950a86a20f9469cfc6c,
2. a pickle of the protocol version (1001),
3. a pickle of system information (byte order, C type sizes),
4. the data pickle: the saved object; each tensor is a
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` call whose
   storage is a persistent id ('storage', type, key, location, numel, view),
5. a pickle of the list of storage keys, in the order their data follows,
6. for each key: its element count as int64 little-endian, then its raw bytes
   (torch writes both little-endian whatever the machine).

`load(path)` returns `{name: numpy array}` for a file whose object is a dict of tensors.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch's legacy storage classes and the little-endian dtype of their elements. The
# legacy format has no other way of naming an element type.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchLegacyError(ValueError):
    """A file this reader cannot or will not read; the message is one line."""


class RefusedGlobalError(TorchLegacyError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it was not imported or called)."""


@dataclass(frozen=True)
class _StorageType:
    """What `torch.FloatStorage` & co. become here: only a name and a dtype, not callable,
    so that a pickle cannot use it for anything but the persistent ids below."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """One storage: its type and size from the data pickle, its bytes from the data section."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageRef:
    """A storage as a tensor sees it: a whole storage, or a view into it (element offset)."""

    storage: _Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor found in the data pickle, made into an array once the storage bytes are read."""

    ref: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *metadata):
    """Stand-in for torch._utils._rebuild_tensor_v2: records the view, runs nothing."""
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for torch._utils._rebuild_tensor (older files, same meaning)."""
    if not isinstance(storage, _StorageRef):
        raise TorchLegacyError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    try:
        shape, strides, offset = tuple(int(n) for n in size), tuple(int(n) for n in stride), int(storage_offset)
    except (TypeError, ValueError) as exc:
        raise TorchLegacyError(f"a tensor has a malformed size, stride or offset ({exc})") from exc
    if len(shape) != len(strides) or min(shape + strides + (offset,), default=0) < 0:
        raise TorchLegacyError(f"a tensor has size {shape}, stride {strides}, offset {offset}")
    return _TensorRef(storage, offset, shape, strides)


# The whole allow-list: (module, name) -> what the pickle gets instead. OrderedDict is
# what torch pickles as a tensor's (empty) backward hooks and as a state dict.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}
_ALLOWED.update({("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals and torch's storage ids."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        # Every GLOBAL, STACK_GLOBAL, INST and EXT opcode lands here: refusing here means
        # the foreign name is never imported, let alone called.
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedGlobalError(f"refused global {module}.{name}: only torch tensors and OrderedDict are allowed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchLegacyError(f"unsupported persistent id {str(pid)[:80]}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise TorchLegacyError(f"malformed storage id {str(pid)[:80]}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, numel)
        elif storage.dtype != storage_type.dtype or storage.numel != numel:
            raise TorchLegacyError(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return _StorageRef(storage, 0, numel)
        # Old files share one storage between tensors through views: (view key, offset, size).
        try:
            _view_key, offset, size = view
            offset, size = int(offset), int(size)
        except (TypeError, ValueError) as exc:
            raise TorchLegacyError(f"malformed storage view {str(view)[:80]}") from exc
        if offset < 0 or size < 0 or offset + size > numel:
            raise TorchLegacyError(f"storage view {offset}+{size} lies outside storage {key} of {numel} elements")
        return _StorageRef(storage, offset, size)


def _unpickle(f: BinaryIO, storages: dict[str, _Storage], what: str):
    try:
        return _RestrictedUnpickler(f, storages).load()
    except TorchLegacyError:
        raise
    except Exception as exc:  # truncated or foreign bytes raise many types
        raise TorchLegacyError(f"the {what} pickle is unreadable ({type(exc).__name__}: {exc})") from exc


def _read_storage_data(f: BinaryIO, keys: list, storages: dict[str, _Storage]) -> None:
    """The data section: each storage's element count and bytes, in the order of `keys`."""
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise TorchLegacyError(f"the data section holds storage {key}, which no tensor uses")
        head = f.read(8)
        if len(head) != 8:
            raise TorchLegacyError(f"the file ends before the data of storage {key}")
        numel = int.from_bytes(head, "little", signed=True)
        if numel != storage.numel:
            raise TorchLegacyError(f"storage {key} has {numel} elements in the data section, {storage.numel} in the pickle")
        raw = f.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise TorchLegacyError(f"the file ends inside the data of storage {key}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    missing = [k for k, s in storages.items() if s.data is None]
    if missing:
        raise TorchLegacyError(f"storage {missing[0]} has no data in the data section")


def _materialise(tensor: _TensorRef) -> np.ndarray:
    """The tensor as its own C-contiguous native-endian array (a copy, not a view of the file)."""
    ref = tensor.ref
    assert ref.storage.data is not None, "storages are read before any tensor is materialised"
    flat = ref.storage.data[ref.offset : ref.offset + ref.numel]
    if any(n == 0 for n in tensor.shape):
        return np.zeros(tensor.shape, ref.storage.dtype.newbyteorder("="))
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if last >= flat.size:
        raise TorchLegacyError(
            f"a tensor of size {tensor.shape}, stride {tensor.stride}, offset {tensor.offset} "
            f"reaches past its storage of {flat.size} elements"
        )
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[tensor.offset :], shape=tensor.shape, strides=tuple(s * item for s in tensor.stride), writeable=False
    )
    # A real copy even when the view is already contiguous: a view would keep the whole
    # file's bytes alive and be read-only.
    return np.array(view, dtype=ref.storage.dtype.newbyteorder("="), order="C", copy=True)


def load_bytes(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """`load` for the file's bytes (e.g. read from inside a wheel); `name` is for the messages."""
    try:
        return _load(io.BytesIO(data))
    except TorchLegacyError as exc:
        raise type(exc)(f"{name}: {exc}") from exc


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: array} of a legacy `torch.save` file holding a dict of tensors.

    Raises TorchLegacyError (RefusedGlobalError for a global outside the allow-list)
    with a one-line message naming the file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TorchLegacyError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return load_bytes(data, os.fspath(path))


def _load(f: BinaryIO) -> dict[str, np.ndarray]:
    storages: dict[str, _Storage] = {}
    if _unpickle(f, storages, "magic number") != MAGIC_NUMBER:
        raise TorchLegacyError("not a legacy torch.save file (wrong magic number; a zip-format file needs torch)")
    protocol = _unpickle(f, storages, "protocol version")
    if protocol != PROTOCOL_VERSION:
        raise TorchLegacyError(f"protocol version {protocol}; only {PROTOCOL_VERSION} is known")
    info = _unpickle(f, storages, "system information")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        # Torch's data section is little-endian anyway, but a big-endian writer is untested.
        raise TorchLegacyError("written on a big-endian machine or without system information")
    obj = _unpickle(f, storages, "data")
    keys = _unpickle(f, storages, "storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchLegacyError("the storage keys are not a list of strings")
    _read_storage_data(f, keys, storages)
    if not isinstance(obj, dict):
        raise TorchLegacyError(f"the saved object is a {type(obj).__name__}, not a dict of tensors")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _TensorRef):
            raise TorchLegacyError(f"entry {str(key)[:40]!r} is not a named tensor")
        out[key] = _materialise(value)
    return out
