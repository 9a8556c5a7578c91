"""The classic entry point to the feature networks, and the `vgg.py` command.

A compatibility facade: `vgg.load_net`, `vgg.Network`, `vgg.normalize` ... keep working
for the classic tool's users and for older scripts, each imported from the module that
defines it (docs/README.md, "The package, module by module"). Code inside the package
imports those modules, never this file. It also runs the command:

    python vgg.py layers [--network FILE]       the layers of a network
    python vgg.py normalize --out net.npz       the paper's normalised network
"""

from __future__ import annotations

import argparse
import os
import sys

from neural_style_tf import cli, images
from neural_style_tf.errors import EXIT_USAGE, NetworkError, UsageError
from neural_style_tf.networks import calibration, loading, normalization, vgg_files

# The re-exported names: one block per home module, one name per line, listed again in
# __all__ (the command's own imports above are not part of the facade).
from neural_style_tf.networks.codebook import (
    sha256_of,
)
from neural_style_tf.networks.embedded import (
    HED_DISTRIBUTION,
    HED_MEAN_BGR,
    HED_SHA256,
    HED_WEIGHTS_NAME,
    PAPER_NETWORK_HINT,
    embedded_weights_path,
    load_embedded,
)
from neural_style_tf.networks.loading import (
    load_net,
)
from neural_style_tf.networks.normalization import (
    NORMALISE_FLOOR,
    mean_activations,
    normalize,
    normalizing_factors,
    replace_weights,
)
from neural_style_tf.networks.vgg_files import (
    load_h5,
    load_mat,
    load_npz,
    save_npz,
    save_npz_to,
)
from neural_style_tf.networks.vgg_network import (
    CAFFE_MEAN_BGR,
    VGG16_BLOCKS,
    VGG16_LAYERS,
    VGG19_BLOCKS,
    VGG19_LAYERS,
    Network,
    deepest,
    layer_kind,
    net_preloaded,
    vgg_layers,
)
from neural_style_tf.settings import POOLING_CHOICES
from neural_style_tf.tf_runtime import (
    import_tensorflow,
)

__all__ = [
    # errors (what a failed load raises; the command imports it too)
    "NetworkError",
    # networks.codebook
    "sha256_of",
    # networks.embedded
    "HED_DISTRIBUTION",
    "HED_MEAN_BGR",
    "HED_SHA256",
    "HED_WEIGHTS_NAME",
    "PAPER_NETWORK_HINT",
    "embedded_weights_path",
    "load_embedded",
    # networks.loading
    "load_net",
    # networks.normalization
    "NORMALISE_FLOOR",
    "mean_activations",
    "normalizing_factors",
    "normalize",
    "replace_weights",
    # networks.vgg_files
    "load_h5",
    "load_mat",
    "load_npz",
    "save_npz",
    "save_npz_to",
    # networks.vgg_network
    "CAFFE_MEAN_BGR",
    "VGG16_BLOCKS",
    "VGG16_LAYERS",
    "VGG19_BLOCKS",
    "VGG19_LAYERS",
    "Network",
    "deepest",
    "layer_kind",
    "net_preloaded",
    "vgg_layers",
    # tf_runtime
    "import_tensorflow",
]

# ---------------------------------------------------------------- command line


def build_parser():
    parser = argparse.ArgumentParser(prog=cli.command_name("vgg.py"), description="Inspect feature networks.")
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
    network = loading.load_net(args.network)
    if not network.can_normalize:
        raise NetworkError(f"{network.path}: normalize rescales VGG weights; a Keras model cannot be normalised")
    rgbs = calibration.calibration_images(paths, args.size)
    print(network.announce())
    where = args.images if args.images else f"the {len(paths)} shipped calibration images (no --images given)"
    print(f"calibrating on {where}, longest side {args.size} px, {args.pooling} pooling")
    normalized = normalization.normalize(network, rgbs, args.pooling)
    images.write_atomically(args.out, lambda f: vgg_files.save_npz_to(normalized, f))
    print(f"wrote {args.out}: {normalized.name}")
    return 0


def layers_main(args):
    """`vgg.py layers`: every layer of the network, and whether it can be used."""
    network = loading.load_net(args.network)
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
