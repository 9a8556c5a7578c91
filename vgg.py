"""The classic entry point to the feature networks, and the `vgg.py` command.

The networks themselves live in neural_style_tf/networks/ (one folder: the interface,
the VGG implementation and its loaders, the Keras one, calibration, normalisation and
the one `load` entry point). This module re-exports what the classic tool's users and
this project's scripts import from `vgg`, and runs the command:

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
from neural_style_tf.networks.embedded import (  # noqa: F401 (re-exported)
    HED_DISTRIBUTION,
    HED_MEAN_BGR,
    HED_SHA256,
    HED_WEIGHTS_NAME,
    PAPER_NETWORK_HINT,
    embedded_weights_path,
    load_embedded,
    sha256_of,
)
from neural_style_tf.networks.loading import load_net  # noqa: F401
from neural_style_tf.networks.normalization import (  # noqa: F401
    NORMALISE_FLOOR,
    mean_activations,
    normalising_factors,
    normalize,
    replace_weights,
)
from neural_style_tf.networks.vgg_files import load_h5, load_mat, load_npz, save_npz, save_npz_to  # noqa: F401
from neural_style_tf.networks.vgg_network import (  # noqa: F401
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
from neural_style_tf.tf_runtime import import_tensorflow  # noqa: F401

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
    if not network.can_normalise:
        raise NetworkError(f"{network.path}: normalize rescales VGG weights; a Keras model cannot be normalised")
    rgbs = calibration.calibration_images(paths, args.size)
    print(network.announce())
    where = args.images if args.images else f"the {len(paths)} shipped calibration images (no --images given)"
    print(f"calibrating on {where}, longest side {args.size} px, {args.pooling} pooling")
    normalised = normalization.normalize(network, rgbs, args.pooling)
    images.write_atomically(args.out, lambda f: vgg_files.save_npz_to(normalised, f))
    print(f"wrote {args.out}: {normalised.name}")
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
