"""Shared fixtures: a tiny VGG-shaped network file that every test of the transfer can use,
small images, the default objective on them, and an empty home.

`import vgg` and `import weights_factory` work because pyproject.toml sets pytest's
pythonpath to the checkout and tests/. Plain helpers live in modules not named test_*:
weights_factory (network files), numpy_reference (NumPy references, pictures) and
run_helpers (running neural_style.main); no test module imports another.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output
# The suite's results must not depend on whether this CPU computes bfloat16 natively: with
# oneDNN capped below its bfloat16 instruction sets, --precision auto is float32 in every
# test process and in the children they start (Ray workers, commands). tests/test_precision.py
# runs bfloat16 explicitly, in children without the cap.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")

import pytest  # noqa: E402
import weights_factory  # noqa: E402
from numpy_reference import random_image  # noqa: E402
from run_helpers import CONTENT_SIZE  # noqa: E402

from neural_style_tf.networks import loading  # noqa: E402
from neural_style_tf.objective import Objective  # noqa: E402


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
    """`loading.load_net(tiny_net_path)`. Shared across tests: do not mutate it."""
    return loading.load_net(tiny_net_path)


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


@pytest.fixture
def files(tmp_path):
    """Real image files: a content PNG with gentle colours (32x24), two style images (JPEG, PNG)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:CONTENT_SIZE[0], 0:CONTENT_SIZE[1]]
    content = np.dstack([90 + 3 * xx, 150 - 2 * yy, 100 + xx + yy]) + rng.uniform(-10, 10, CONTENT_SIZE + (3,))
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.jpg", "style2": tmp_path / "style2.png"}
    Image.fromarray(np.clip(content, 0, 255).astype(np.uint8)).save(paths["content"])
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(paths["style"], quality=95)
    stripes = np.zeros((16, 24, 3), np.uint8)
    stripes[:, ::4] = (250, 200, 20)
    Image.fromarray(stripes).save(paths["style2"])
    return {k: str(v) for k, v in paths.items()}


# ---------------------------------------------------------------- the algorithm's tests (losses, objective, optimize)


@pytest.fixture(scope="module")
def content():
    """A 16x16 random-noise content image (RGB 0..255, float32)."""
    return random_image(10)


@pytest.fixture(scope="module")
def style():
    """A 20x24 random-noise style image."""
    return random_image(11, (20, 24, 3))


@pytest.fixture(scope="module")
def objective(tiny_network, content, style):
    """The default objective on the tiny network. Shared: tests must not change it
    (monkeypatching its attributes is fine, pytest undoes that)."""
    with Objective(tiny_network, content, [style]) as obj:
        yield obj


# ---------------------------------------------------------------- the networks' tests (embedded, loading)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """cwd and HOME both empty temporary directories: no default network files anywhere."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("USERPROFILE", raising=False)
    return cwd, home
