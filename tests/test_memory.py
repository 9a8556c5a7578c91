"""memory.py: the preflight estimate grows as it should, and the CLI refuses with advice."""

from __future__ import annotations

import pytest

from neural_style_tf import memory
import neural_style

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")


def test_estimate_grows_with_size(tiny_network):
    small = memory.estimate_peak_bytes(tiny_network, 64, 64, "lbfgs", 20, LAYERS)
    large = memory.estimate_peak_bytes(tiny_network, 128, 128, "lbfgs", 20, LAYERS)
    assert large > small


def test_lbfgs_history_is_exactly_2mn_float64(tiny_network):
    n = 48 * 64 * 3
    m10 = memory.estimate_parts(tiny_network, 48, 64, "lbfgs", 10, LAYERS)["optimizer"]
    m20 = memory.estimate_parts(tiny_network, 48, 64, "lbfgs", 20, LAYERS)["optimizer"]
    # SciPy's working array is 2mn + 5n + 11m^2 + 8m float64: only the m terms change.
    assert m20 - m10 == (2 * 10 * n + 11 * (400 - 100) + 8 * 10) * 8


def test_estimate_grows_with_corrections_and_depth(tiny_network):
    base = memory.estimate_peak_bytes(tiny_network, 64, 64, "lbfgs", 5, LAYERS)
    assert memory.estimate_peak_bytes(tiny_network, 64, 64, "lbfgs", 50, LAYERS) > base
    shallow = memory.estimate_peak_bytes(tiny_network, 64, 64, "lbfgs", 5, ("relu1_1",))
    assert shallow < base
    assert memory.estimate_peak_bytes(tiny_network, 64, 64, "adam", 5, LAYERS) < base


def test_activations_follow_the_network_shapes(tiny_network):
    # Tiny net: conv1_1 and relu1_1 have 4 channels at 16x16; pool1 halves the size.
    assert memory.activation_bytes(tiny_network, 16, 16, ("relu1_1",)) == 2 * 16 * 16 * 4 * 4
    # Through pool1 (8x8) and conv2_1/relu2_1 (6 channels at 8x8).
    assert memory.activation_bytes(tiny_network, 16, 16, ("relu2_1",)) == (2 * 256 * 4 + 64 * 4 + 2 * 64 * 6) * 4


def test_preflight_levels(tiny_network):
    need = memory.estimate_peak_bytes(tiny_network, 32, 32, "lbfgs", 20, LAYERS)
    assert memory.preflight(tiny_network, 32, 32, "lbfgs", 20, LAYERS, available=10 * need)[0] is None
    assert memory.preflight(tiny_network, 32, 32, "lbfgs", 20, LAYERS, available=int(need / 0.8))[0] == "warn"
    level, message = memory.preflight(tiny_network, 32, 32, "lbfgs", 20, LAYERS, available=need // 2)
    assert level == "refuse" and "--width" in message and "--lbfgs-corrections (now 20)" in message


def test_available_bytes_is_positive():
    assert memory.available_bytes() > 0


def test_cli_refuses_with_advice_and_exit_2(tiny_net_path, content_and_style, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--iterations", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert "32x24 image needs about" in err and "smaller --width" in err and "--lbfgs-corrections" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_warns_and_runs(tiny_net_path, content_and_style, tmp_path, monkeypatch, capsys):
    need = memory.estimate_peak_bytes(neural_style.vgg.load_net(tiny_net_path), 24, 32, "lbfgs", 20,
                                      ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"))
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need / 0.8))
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--iterations", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "warning: a 32x24 image needs about" in err
    assert out.exists()


@pytest.mark.parametrize("extra, largest", [(["--width", "1000000"], "1000000x750000"),
                                            (["--width", "32", "--style-scales", "40000"], "1280000x960000")])
def test_cli_refuses_an_absurd_size_before_resizing(tiny_net_path, content_and_style, tmp_path, capsys, extra, largest):
    # Resizing to these sizes would need terabytes and the OOM killer would end the run
    # without a word: the preflight must see the sizes before any image is resized.
    out = tmp_path / "out.png"
    status = neural_style.main(["--content", content_and_style[0], "--styles", content_and_style[1],
                                "--output", str(out), "--network", tiny_net_path, "--quiet"] + extra)
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"a {largest} image needs about" in err and "Traceback" not in err
    assert ("style image" in err) == ("--style-scales" in extra)
    assert not out.exists()
