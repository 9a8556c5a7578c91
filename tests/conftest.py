"""Shared fixtures: a tiny VGG-shaped network file that every test of the transfer can use."""

from __future__ import annotations

import os
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(TESTS_DIR)
for _path in (ROOT_DIR, TESTS_DIR):  # `import vgg` and `import weights_factory` from any cwd
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output

import pytest  # noqa: E402
import weights_factory  # noqa: E402

import vgg  # noqa: E402


@pytest.fixture(scope="session")
def tiny_net_path(tmp_path_factory):
    """A newer-layout MatConvNet .mat with 1-2 convs per block and 4-8 channels.

    Has every layer the transfer uses by default: relu1_1 .. relu5_1, relu4_2, relu5_2.
    """
    path = tmp_path_factory.mktemp("tiny_net") / "tiny-vgg.mat"
    weights_factory.make_mat(
        path,
        layout="new",
        blocks=weights_factory.TINY_VGG_BLOCKS,
        channels=weights_factory.TINY_VGG_CHANNELS,
        seed=0,
    )
    return str(path)


@pytest.fixture(scope="session")
def tiny_network(tiny_net_path):
    """`vgg.load_net(tiny_net_path)`. Shared across tests: do not mutate it."""
    return vgg.load_net(tiny_net_path)


@pytest.fixture
def content_and_style(tmp_path):
    """Paths of two 32x24 random-noise PNGs: a content and a style image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for name in ("content.png", "style.png"):
        path = tmp_path / name
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths
