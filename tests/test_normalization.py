"""normalization.py: the paper's normalised network (every filter's mean activation 1 on
the calibration images, the features only rescaled) and its cache."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from numpy_reference import example_at, relu_features

from neural_style_tf import images, settings
from neural_style_tf.networks import normalization, vgg_files, vgg_network

# ---------------------------------------------------------------- normalisation (the paper's)


@pytest.fixture(scope="module")
def calibration_set():
    return [example_at(n) for n in ("tubingen_neckarfront.jpg", "starry_night.jpg", "the_scream.jpg")]


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_normalized_mean_activations_are_one_and_features_only_rescaled(tiny_network, calibration_set, pooling):
    original = normalization.mean_activations(tiny_network, calibration_set, pooling)
    normalized = normalization.normalize(tiny_network, calibration_set, pooling)
    means = normalization.mean_activations(normalized, calibration_set, pooling)
    checked = 0
    for layer, mean in means.items():
        median = np.median(original[layer][original[layer] > 0])
        alive = original[layer] >= normalization.NORMALISE_FLOOR * median
        assert np.all(np.abs(mean[alive] - 1.0) < 1e-3), (layer, mean)
        # nearly dead filters keep their proportion to the layer's median filter
        np.testing.assert_allclose(mean[~alive], original[layer][~alive] / median, rtol=1e-3, atol=1e-7)
        checked += alive.sum()
    assert checked > 20
    # On an image that was not used for calibration, the deepest style layer's features
    # are the original's times a positive per-channel factor: 1 / (original mean).
    other = example_at("composition_vii.jpg", 40)
    deepest = vgg_network.deepest(tiny_network, settings.STYLE_LAYERS + ("relu4_2",))
    assert deepest == "relu5_1"
    before = relu_features(tiny_network, other, [deepest], pooling)[deepest]
    after = relu_features(normalized, other, [deepest], pooling)[deepest]
    factor = normalization.normalizing_factors(original[deepest])
    assert np.all(factor > 0) and not np.allclose(factor, 1.0)
    assert before.max() > 0
    np.testing.assert_allclose(after, before * factor, rtol=1e-4, atol=1e-5 * after.max())
    # the factor is estimated, not assumed: it matches the ratio of the features themselves
    active = before.mean(axis=0) > 0
    np.testing.assert_allclose(after.mean(axis=0)[active] / before.mean(axis=0)[active], factor[active], rtol=1e-3)


def test_nearly_dead_filters_get_the_median_factor():
    mean = np.array([2.0, 4.0, 1e-7, 0.0, 8.0, 4.0])  # median of the non-zero means: 4
    factor = normalization.normalizing_factors(mean, floor=1e-2)
    np.testing.assert_allclose(factor, [0.5, 0.25, 0.25, 0.25, 0.125, 0.25])
    # without a floor, 1/mean for every live filter (the paper's rule); dead ones still finite
    np.testing.assert_allclose(normalization.normalizing_factors(mean, floor=0.0), [0.5, 0.25, 1e7, 0.25, 0.125, 0.25])


# ---------------------------------------------------------------- the normalised network's cache


def test_normalized_network_is_cached(tiny_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cal"
    folder.mkdir()
    images.save_image(str(folder / "a.png"), example_at("starry_night.jpg", 24))
    first = normalization.normalized_network(tiny_network, "avg", str(folder), size=24)
    assert os.path.isfile(first.path) and first.path != tiny_network.path
    second = normalization.normalized_network(tiny_network, "avg", str(folder), size=24)
    assert second.path == first.path
    for name in tiny_network.weights:
        np.testing.assert_array_equal(first.weights[name][0], second.weights[name][0])
    # a different calibration setting is a different cache entry
    third = normalization.normalized_network(tiny_network, "max", str(folder), size=24)
    assert third.path != first.path


def test_an_already_normalized_network_is_returned_as_is(tiny_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    normalized = dataclasses.replace(tiny_network, is_normalized=True)
    assert normalization.normalized_network(normalized, "avg") is normalized
    assert not (tmp_path / "cache").exists()


def test_a_network_that_cannot_be_normalized_is_refused_with_advice():
    class Model:
        can_normalize = False
        is_normalized = False

    with pytest.raises(ValueError, match="use --loss-scale gatys2016"):
        normalization.normalized_network(Model())


def test_the_cache_is_beside_the_source_only_when_allowed(tiny_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    beside, user = normalization.cache_paths(tiny_network, "abc")
    assert os.path.dirname(beside) == os.path.dirname(os.path.abspath(tiny_network.path))
    assert user == os.path.join(str(tmp_path / "cache"), "neural-style-tf", os.path.basename(beside))
    assert beside.endswith(".normalised-abc.npz")
    package_file = dataclasses.replace(tiny_network, cache_beside_source=False)  # e.g. the embedded weights
    assert normalization.cache_paths(package_file, "abc") == [user]


def test_a_damaged_cache_file_is_recomputed(tiny_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cal"
    folder.mkdir()
    images.save_image(str(folder / "a.png"), example_at("starry_night.jpg", 24))
    network = dataclasses.replace(tiny_network, cache_beside_source=False)
    first = normalization.normalized_network(network, "avg", str(folder), size=24)
    with open(first.path, "wb") as f:
        f.write(b"PK damaged")
    again = normalization.normalized_network(network, "avg", str(folder), size=24)
    assert again.path == first.path and again.is_normalized
    assert vgg_files.load_npz(again.path).layers == tiny_network.layers  # rewritten whole
    for name in tiny_network.weights:
        np.testing.assert_array_equal(first.weights[name][0], again.weights[name][0])
