"""--tileable (tileable.py): the wrap padding and the wrapping TV against NumPy, the network
commuting with shifts by its stride (what makes the output tile), the sizes, the seam
measure, and a real run whose 2x2 tiling has no seam stronger than its inside."""

from __future__ import annotations

import os

import numpy as np
import pytest
from numpy_reference import random_input, reference_net, run_net
from run_helpers import run_main

from neural_style_tf import images, losses, tileable
from neural_style_tf.networks import vgg_network
from neural_style_tf.networks.vgg_network import layer_kind
from neural_style_tf.tf_runtime import import_tensorflow

tf = import_tensorflow()


def evaluate(fetches, feed=None):
    with tf.compat.v1.Session() as session:
        return session.run(fetches, feed)


# ---------------------------------------------------------------- the wrap padding


@pytest.mark.parametrize("kernel_size", [(3, 3), (2, 4), (1, 3), (5, 2)])
def test_wrap_padding_of_one_convolution_matches_numpy(kernel_size):
    """_conv's wrap (opposite edges concatenated) against np.pad(mode='wrap'), odd and even
    kernels: SAME's split puts the extra pixel after."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 5, 7, 2))
    kernel = rng.normal(size=kernel_size + (2, 3))
    kh, kw = kernel_size
    padded = np.pad(x[0], (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))
    expected = np.einsum("hwcij,ijco->hwo", windows, kernel)
    with tf.Graph().as_default():
        got = evaluate(vgg_network._conv(tf.constant(x), tf.constant(kernel), kernel.shape, "wrap"))
    np.testing.assert_allclose(got[0], expected, rtol=1e-10, atol=1e-10)


def test_wrap_padding_with_a_size_known_only_at_run_time():
    x = np.random.default_rng(4).normal(size=(1, 4, 6, 1))
    kernel = np.ones((3, 3, 1, 1))
    expected = np.pad(x[0, :, :, 0], 1, mode="wrap")
    expected = sum(expected[i:i + 4, j:j + 6] for i in range(3) for j in range(3))
    with tf.Graph().as_default():
        image = tf.compat.v1.placeholder(tf.float64, (1, None, None, 1))
        got = evaluate(vgg_network._conv(image, tf.constant(kernel), kernel.shape, "wrap"), {image: x})
    np.testing.assert_allclose(got[0, :, :, 0], expected, rtol=1e-10)


def test_the_network_with_wrap_padding_matches_numpy_to_relu5_2(tiny_network):
    x = random_input(seed=5, shape=(1, 32, 48, 3))
    got = run_net(tiny_network, x, last="relu5_2", padding="wrap")
    expected = reference_net(tiny_network.layers[:tiny_network.layers.index("relu5_2") + 1],
                             tiny_network.weights, x, padding="wrap")
    for name in expected:
        scale = max(np.abs(expected[name]).max(), 1e-6)
        assert np.abs(got[name] - expected[name]).max() / scale < 1e-4, name


def pools_before(network, name):
    return sum(layer_kind(n) == "pool" for n in network.layers[:network.layers.index(name)])


@pytest.mark.parametrize("shift", [(16, 32), (-16, 16), (48, -16)])
def test_features_of_a_shifted_picture_are_the_shifted_features(tiny_network, shift):
    """Equivariance, what makes the output tile: with every convolution wrapped and sizes that
    are multiples of the stride (16 to relu5_1), rolling the picture by a multiple of 16
    rolls every layer's map by the shift over that layer's stride; so the losses, sums over
    positions, cannot tell where the picture was cut. Replicate padding breaks it (the
    border is an edge), which shows the test can fail."""
    x = random_input(seed=6, shape=(1, 32, 48, 3))
    rolled = np.roll(x, shift, axis=(1, 2))
    stride = tileable.network_stride(tiny_network, ("relu5_1", "relu5_2"))
    assert stride == 16
    plain, moved = run_net(tiny_network, x, last="relu5_2", padding="wrap"), run_net(tiny_network, rolled, last="relu5_2",
                                                                                      padding="wrap")
    for name, features in plain.items():
        step = 2 ** pools_before(tiny_network, name) * (2 if layer_kind(name) == "pool" else 1)
        expected = np.roll(features, (shift[0] // step, shift[1] // step), axis=(0, 1))
        np.testing.assert_allclose(moved[name], expected, rtol=1e-4, atol=1e-3 * np.abs(features).max(), err_msg=name)
    edge = run_net(tiny_network, x, last="relu3_1", padding="replicate")["relu3_1"]
    edge_moved = run_net(tiny_network, rolled, last="relu3_1", padding="replicate")["relu3_1"]
    assert not np.allclose(edge_moved, np.roll(edge, (shift[0] // 4, shift[1] // 4), axis=(0, 1)), atol=1e-2)


# ---------------------------------------------------------------- the wrapping TV


def np_tv_wrapped(x):
    return np.mean((np.roll(x, -1, axis=1) - x) ** 2) + np.mean((np.roll(x, -1, axis=2) - x) ** 2)


def test_wrapping_tv_and_its_gradient_match_numpy():
    """The value against NumPy's rolled differences; the written-out gradient against central
    finite differences of that NumPy function (float64: no rounding to hide a wrong term)."""
    x = np.random.default_rng(7).uniform(0, 255, size=(1, 4, 5, 2))
    with tf.Graph().as_default():
        image = tf.constant(x)
        tv = losses.total_variation(image, wrap=True)
        value, grad = evaluate((tv, tf.gradients(tv, image)[0]))
    assert value == pytest.approx(np_tv_wrapped(x), rel=1e-12)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-3
        numeric[index] = (np_tv_wrapped(x + step) - np_tv_wrapped(x - step)) / 2e-3
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_wrapping_tv_counts_the_seam_and_the_open_one_does_not():
    """A horizontal ramp: the open TV sees only the steps inside; the wrapping one also the
    jump from the last column back to the first."""
    ramp = np.tile(np.arange(6.0)[None, None, :, None], (1, 3, 1, 1))
    with tf.Graph().as_default():
        open_tv, wrapped = evaluate((losses.total_variation(tf.constant(ramp)),
                                     losses.total_variation(tf.constant(ramp), wrap=True)))
    assert open_tv == pytest.approx(1.0)  # 5 steps of 1 over 5 differences per row
    assert wrapped == pytest.approx((5 * 1.0 + 25.0) / 6)  # and the jump of 5, over 6


def test_the_default_path_is_unchanged_and_each_loss_scale_wraps():
    x = np.random.default_rng(8).uniform(0, 255, size=(1, 6, 9, 3)).astype(np.float32)
    expected = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    with tf.Graph().as_default():
        image = tf.constant(x)
        values = evaluate({name: (scale.tv(image), tileable.wrapping(scale).tv(image))
                           for name, scale in losses.LOSS_SCALES.items()})
    for name, (plain, wrapped) in values.items():
        factor = (9 / losses.REFERENCE_SIZE) ** 2 if name == "normalized" else 1.0
        assert plain == pytest.approx(expected * factor, rel=1e-5), name
        assert wrapped == pytest.approx(np_tv_wrapped(x.astype(np.float64)) * factor, rel=1e-5), name
        scale = losses.LOSS_SCALES[name]
        assert tileable.wrapping(scale) is tileable.wrapping(scale)  # one object: the terms compare equal


# ---------------------------------------------------------------- sizes and the measure


def test_sizes_round_to_the_stride(tiny_network):
    assert tileable.network_stride(tiny_network, ("relu1_1",)) == 1
    assert tileable.network_stride(tiny_network, ("relu1_1", "relu3_1")) == 4
    assert tileable.tileable_size((187, 250), 16) == (192, 256)
    assert tileable.tileable_size((5, 300), 16) == (16, 304)


def test_the_seam_measure():
    """About 1 for a periodic texture (smoothed noise, the same everywhere, the seam
    included), well above for one whose sides do not meet: the same texture cut off-period."""
    from scipy import ndimage

    noise = np.random.default_rng(9).normal(size=(160, 192, 3))
    periodic = 128 + 400 * ndimage.gaussian_filter(noise, (3, 3, 0), mode="wrap")
    assert tileable.seam_ratio(periodic) == pytest.approx(1.0, abs=0.15)
    assert tileable.seam_ratio(periodic[:140, :170]) > 3  # cut: its sides are 20 px apart
    y, x = np.mgrid[0:48, 0:64]
    assert tileable.seam_ratio(np.repeat((x * 4.0)[..., None], 3, axis=2)) > 20  # a ramp: the seam jumps it all
    assert tileable.tile(periodic).shape == (320, 384, 3)


def test_border_weights_and_the_periodic_start():
    weights = tileable.border_weights((32, 48))
    assert weights.shape == (32, 48) and weights.max() == 1.0 and weights[16, 24] == 1.0
    assert weights[0].max() < 0.05 and weights[:, 0].max() < 0.05
    photo = np.repeat(np.linspace(0, 255, 48)[None, :, None], 32, axis=0) * np.ones(3)
    start = tileable.periodic_start(photo)
    assert tileable.seam_ratio(photo) > 20 and tileable.seam_ratio(start) < 2
    np.testing.assert_allclose(start[16, 24], photo[16, 24], atol=1e-3)  # the middle is the photo's


# ---------------------------------------------------------------- a real run


def test_a_tileable_run_has_no_seam_and_a_plain_one_has(tmp_path, capsys):
    """The embedded VGG-19 on a 64 px Neckarfront x Starry Night (rounded from 64x50 to
    64x48, said): the 2x2 tiling of the --tileable output has no seam stronger than its
    inside (seam_ratio at most 1.2), while the plain run of the same seed keeps the photo's
    (well above)."""
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples") + os.sep
    scores = {}
    for name, extra in (("plain", []), ("tileable", ["--tileable"])):
        out = tmp_path / f"{name}.png"
        code, out_text, err = run_main(["--content", examples + "tubingen_neckarfront.jpg", "--styles",
                                        examples + "starry_night.jpg", "--output", out, "--width", 62,
                                        "--iterations", 40, "--quiet", "--seed", 1, *extra], capsys)
        assert code == 0, err
        result = images.load_image(str(out))
        scores[name] = tileable.seam_ratio(result)
        if extra:
            assert result.shape[:2] == (48, 64)
            assert "rounded to 64x48" in out_text + err
    print("seam ratios", scores)
    assert scores["tileable"] <= 1.2, scores
    assert scores["plain"] > 1.5 * scores["tileable"], scores


def test_a_tiled_scale_is_refused_with_tileable(content_and_style, tiny_net_path, tmp_path, capsys):
    """The tiles of print size (tiling.py) take halos from their neighbours and pad at the
    picture's border, not round it: --tileable refuses a scale they would evaluate, in one line."""
    out = tmp_path / "o.png"
    code, _, err = run_main(["--network", tiny_net_path, "--content", content_and_style[0], "--styles",
                             content_and_style[1], "--output", out, "--iterations", 2, "--quiet",
                             "--tileable", "--tile-size", 16], capsys)
    assert code == 2 and "--tileable: the 32x32 scale would be evaluated in tiles" in err, err
    assert [line for line in err.splitlines() if "error" in line] == err.strip().splitlines()[-1:]
    assert "Traceback" not in err and not out.exists()
