"""Tests of networks/torch_legacy.py on tiny legacy torch.save files written here, without torch.

The files are written opcode by opcode: the stdlib pickler would refuse to name
`torch._utils._rebuild_tensor_v2` without torch importable, and faking a `torch`
module would defeat the point (torch must never be imported).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys

import numpy as np
import pytest

from neural_style_tf.networks import torch_legacy

# ---------------------------------------------------------------- a tiny pickle writer

MARK, TUPLE, REDUCE, NONE, FALSE, EMPTY_TUPLE = b"(", b"t", b"R", b"N", b"\x89", b")"
BINPERSID, STOP, EMPTY_DICT, SETITEMS, PROTO2 = b"Q", b".", b"}", b"u", b"\x80\x02"


def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def op_int(n):
    return b"J" + struct.pack("<i", n)


def op_tuple(values):
    return MARK + b"".join(op_int(v) for v in values) + TUPLE


def op_tensor(storage_type, key, numel, offset, size, stride, view=None):
    """What torch writes for one tensor: _rebuild_tensor_v2(persistent storage id, offset,
    size, stride, requires_grad=False, OrderedDict())."""
    view_op = NONE if view is None else MARK + op_str(view[0]) + op_int(view[1]) + op_int(view[2]) + TUPLE
    pid = MARK + op_str("storage") + op_global("torch", storage_type) + op_str(key) + op_str("cpu") + op_int(numel) + view_op + TUPLE
    hooks = op_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    args = MARK + pid + BINPERSID + op_int(offset) + op_tuple(size) + op_tuple(stride) + FALSE + hooks + TUPLE
    return op_global("torch._utils", "_rebuild_tensor_v2") + args + REDUCE


def header():
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (torch_legacy.MAGIC_NUMBER, 1001, info))


def storage_section(storages):
    """The storage keys pickle, then each storage: int64 LE element count and raw LE bytes."""
    keys = sorted(storages)
    out = pickle.dumps(keys, protocol=2)
    for key in keys:
        array = storages[key]
        out += struct.pack("<q", array.size) + array.astype(array.dtype.newbyteorder("<")).tobytes()
    return out


FLOATS = np.arange(12, dtype=np.float32) * 0.5 - 1.0
BYTES = np.array([0, 1, 2, 250, 254, 255], np.uint8)


def tiny_file(path):
    """Four tensors over two storages: a slice with an offset, a transposed (strided) view of the
    same storage, a uint8 tensor, and one through an old-style storage view."""
    entries = [
        ("weight", op_tensor("FloatStorage", "11", 12, 2, (2, 3), (3, 1))),
        ("weight_t", op_tensor("FloatStorage", "11", 12, 0, (3, 2), (1, 3))),
        ("indices", op_tensor("ByteStorage", "7", 6, 0, (1, 2, 3), (6, 3, 1))),
        ("viewed", op_tensor("FloatStorage", "11", 12, 1, (3,), (1,), view=("11v", 4, 4))),
    ]
    data = PROTO2 + op_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + MARK
    data += b"".join(op_str(name) + tensor for name, tensor in entries) + SETITEMS + STOP
    path.write_bytes(header() + data + storage_section({"11": FLOATS, "7": BYTES}))
    return path


# ---------------------------------------------------------------- reading


def test_reads_shapes_strides_offsets_and_views(tmp_path):
    out = torch_legacy.load(tiny_file(tmp_path / "tiny.pt"))
    assert list(out) == ["weight", "weight_t", "indices", "viewed"]
    np.testing.assert_array_equal(out["weight"], FLOATS[2:8].reshape(2, 3))
    np.testing.assert_array_equal(out["weight_t"], FLOATS[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(out["indices"], BYTES.reshape(1, 2, 3))
    np.testing.assert_array_equal(out["viewed"], FLOATS[5:8])
    assert out["weight"].dtype == np.float32 and out["indices"].dtype == np.uint8
    # Each array is its own contiguous copy, not a view of the file's bytes.
    assert all(a.flags.c_contiguous and a.flags.owndata for a in out.values())
    assert "torch" not in sys.modules


def test_truncated_data_section_is_one_line_error(tmp_path):
    path = tiny_file(tmp_path / "tiny.pt")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(torch_legacy.TorchLegacyError) as info:
        torch_legacy.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "ends inside the data of storage 7" in message


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    data = PROTO2 + EMPTY_DICT + MARK + op_str("w") + op_tensor("FloatStorage", "1", 4, 2, (3,), (1,)) + SETITEMS + STOP
    path = tmp_path / "bad.pt"
    path.write_bytes(header() + data + storage_section({"1": np.zeros(4, np.float32)}))
    with pytest.raises(torch_legacy.TorchLegacyError, match="reaches past its storage"):
        torch_legacy.load(path)


def test_zip_format_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(torch_legacy.TorchLegacyError) as info:
        torch_legacy.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


# ---------------------------------------------------------------- refusing foreign code


class _Exploit:
    """The classic malicious pickle, made by the stdlib pickler: unpickling calls os.system."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def payloads(marker):
    """(name of the refused global, data pickle) that would each create `marker` if run."""
    shell = pickle.dumps({"w": _Exploit(f"touch {marker}")}, protocol=2)  # names posix.system (or nt.system)
    opened = PROTO2 + op_global("builtins", "open") + MARK + op_str(str(marker)) + op_str("w") + TUPLE + REDUCE + STOP
    evaled = PROTO2 + op_global("builtins", "eval") + MARK + op_str(f"open({str(marker)!r}, 'w')") + TUPLE + REDUCE + STOP
    stack_global = pickle.dumps(_Exploit(f"touch {marker}"), protocol=4)  # STACK_GLOBAL opcode, framed
    return [(os.system.__module__ + ".system", shell), ("builtins.open", opened),
            ("builtins.eval", evaled), (os.system.__module__ + ".system", stack_global)]


@pytest.mark.parametrize("case", range(4))
def test_foreign_globals_are_refused_and_never_run(tmp_path, case):
    marker = tmp_path / "pwned"
    refused, data = payloads(marker)[case]
    path = tmp_path / "evil.pt"
    path.write_bytes(header() + data + storage_section({}))
    with pytest.raises(torch_legacy.RefusedGlobalError) as info:
        torch_legacy.load(path)
    message = str(info.value)
    assert "\n" not in message and f"refused global {refused}" in message and str(path) in message
    assert not marker.exists()


def test_a_refused_global_in_the_header_is_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Exploit(f"touch {marker}"), protocol=2))
    with pytest.raises(torch_legacy.RefusedGlobalError):
        torch_legacy.load(path)
    assert not marker.exists()


def test_storage_types_cannot_be_called(tmp_path):
    """The allowed storage names resolve to inert records: calling one is an error, not torch code."""
    data = PROTO2 + op_global("torch", "FloatStorage") + MARK + op_int(3) + TUPLE + REDUCE + STOP
    path = tmp_path / "call.pt"
    path.write_bytes(header() + data + storage_section({}))
    with pytest.raises(torch_legacy.TorchLegacyError, match="data pickle is unreadable"):
        torch_legacy.load(path)
    assert "torch" not in sys.modules
