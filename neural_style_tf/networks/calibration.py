"""The calibration images: where a network's mean activations are measured.

The paper's normalisation (`vgg.normalize`, `--preset gatys2016`) and the Keras route's
feature scales (keras_network.py) both need a fixed set of images. The example
images, at 256 px on the long side, ship inside the package (data/calibration), so an
installed tool works from any directory without the checkout's examples/ folder.
"""

from __future__ import annotations

import os

from ..errors import NetworkError

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "calibration")
# Longest side of the calibration images. Mean activations hardly depend on it, and
# 256 px keeps a VGG-19 calibration pass over them under a minute on a CPU.
CALIBRATION_SIZE = 256
CALIBRATION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
# The example photographs and paintings the shipped copies are made from (examples/).
EXAMPLE_IMAGES = ("composition_vii.jpg", "monet_woman_with_a_parasol.jpg", "pexels_golden_gate_bridge.jpg",
                  "shipwreck_of_the_minotaur.jpg", "skimage_chelsea.jpg", "sklearn_china.jpg",
                  "starry_night.jpg", "the_scream.jpg", "tubingen_neckarfront.jpg")


def shipped_paths():
    """The shipped calibration images, in a fixed order."""
    return [os.path.join(DATA_DIR, os.path.splitext(n)[0] + ".png") for n in EXAMPLE_IMAGES]


def calibration_paths(directory=None):
    """The image files in `directory`, sorted (default: the shipped calibration images)."""
    if directory is None:
        paths = [p for p in shipped_paths() if os.path.isfile(p)]
        if not paths:
            raise NetworkError(f"calibration images: none found in {DATA_DIR}; reinstall the package or pass --images DIR")
        return paths
    if not os.path.isdir(directory):
        raise NetworkError(f"calibration images: {directory} is not a directory")
    paths = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                   if f.lower().endswith(CALIBRATION_EXTENSIONS) and not f.startswith("."))
    if not paths:
        raise NetworkError(f"calibration images: no image files ({', '.join(CALIBRATION_EXTENSIONS)}) in {directory}")
    return paths


def calibration_images(paths, size=CALIBRATION_SIZE):
    """RGB 0..255 images, each resized so its longest side is `size`."""
    from .. import images

    return [images.scale(rgb, size / max(rgb.shape[:2])) for rgb in (images.load_image(p) for p in paths)]


def remake(examples_dir):
    """Write the shipped copies from the full-size example images (8-bit PNG, 256 px)."""
    import numpy as np

    from .. import images

    for name in EXAMPLE_IMAGES:
        rgb = images.load_image(os.path.join(examples_dir, name))
        small = images.scale(rgb, CALIBRATION_SIZE / max(rgb.shape[:2]))
        out = os.path.join(DATA_DIR, os.path.splitext(name)[0] + ".png")
        images.save_image(out, np.clip(np.rint(small), 0, 255))
        print(f"wrote {out}")
