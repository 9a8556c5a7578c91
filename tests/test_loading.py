"""loading.py: the one entry point from a path (or none) to a feature network: the
dispatch on the file, the default search order, and the normalised network of the
paper's preset."""

from __future__ import annotations

import os
import sys

import pytest
import weights_factory as wf
from weights_factory import assert_network_error

from neural_style_tf import errors
from neural_style_tf.networks import codebook, embedded, loading, vgg_network

# ---------------------------------------------------------------- the default search order


def test_without_a_network_the_embedded_vgg19_is_used_wherever_the_command_runs(empty_home):
    """No folder or cache is searched: a paper .mat in the working directory and a Keras
    cache file are ignored, so the same command gives the same network everywhere."""
    cwd, home = empty_home
    cache = home / ".keras" / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cache.parent.mkdir(parents=True)
    wf.make_keras_h5(cache)
    wf.make_mat(cwd / embedded.PAPER_MAT)
    network = loading.load_net()
    assert network.path == codebook.SHIPPED_PATH
    assert network.announce().startswith("network: VGG-19 (embedded, ImageNet weights, 8-bit codebook)")
    assert network.layers == vgg_network.VGG19_LAYERS and network.channel_order == "BGR"
    assert "torch" not in sys.modules


# ---------------------------------------------------------------- the dispatch on the file


def test_unknown_extension(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(1, 200)))
    assert_network_error(path, "unknown weights format")


def test_missing_file(tmp_path):
    assert_network_error(tmp_path / "nowhere.mat", "does not exist")


def test_directory(tmp_path):
    path = tmp_path / "weights.mat"
    path.mkdir()
    assert_network_error(path, "directory")


def test_file_named_like_the_embedded_weights_is_sha256_checked(tmp_path):
    bogus = tmp_path / embedded.HED_WEIGHTS_NAME
    wf.make_keras3_h5(bogus)
    with pytest.raises(errors.NetworkError, match="sha256"):
        loading.load_net(str(bogus))


# ---------------------------------------------------------------- load_net and load_normalized: the network a run uses


def test_input_range_without_a_network_file_is_refused():
    with pytest.raises(errors.NetworkError, match="--input-range is for Keras models given with --network"):
        loading.load_net(None, "0-255")


def test_load_normalized_gives_the_normalized_network_from_its_cache(tmp_path, monkeypatch):
    """What transfer.load_network does for --preset gatys2016: load_net, then load_normalized."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "net.mat"
    wf.make_mat(path, blocks=wf.TINY_VGG_BLOCKS, channels=wf.TINY_VGG_CHANNELS)
    plain = loading.load_net(str(path))
    assert not plain.is_normalized and plain.path == str(path)
    said = []
    first = loading.load_normalized(plain, "avg", log=said.append)
    assert first.is_normalized and first.layers == plain.layers and first.path != str(path)
    assert first.notes["normalized_from"] == str(path) and first.notes["normalised"]["pooling"] == "avg"
    assert os.path.isfile(first.path) and not said[-1].endswith("(cached)")
    again = loading.load_normalized(loading.load_net(str(path)), "avg", log=said.append)
    assert again.path == first.path and said[-1] == f"normalised network: {first.path} (cached)"


def test_a_network_that_cannot_be_normalized_is_one_line_for_the_user():
    class Model:  # what load_normalized asks of a network that refuses (a Keras model)
        can_normalize = False
        is_normalized = False

    with pytest.raises(errors.NetworkError, match="use --loss-scale gatys2016") as err:
        loading.load_normalized(Model(), "avg")
    assert "\n" not in str(err.value) and isinstance(err.value.__cause__, ValueError)
