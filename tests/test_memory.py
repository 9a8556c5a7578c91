"""memory.py: the preflight estimate grows as it should, term by term. How the commands
refuse or warn with it is in test_checks.py (checks.check_memory)."""

from __future__ import annotations

import os

from neural_style_tf import memory

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


def test_available_bytes_is_positive_and_at_most_the_physical_ram():
    available = memory.available_bytes()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available <= total


def test_available_bytes_reads_memavailable(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    1234567 kB\n")
    real_open = open

    def fake_open(path, *args, **kwargs):
        return real_open(meminfo if path == "/proc/meminfo" else path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert memory.available_bytes() == 1234567 * 1024


def test_estimate_parts_add_up_and_the_baseline_is_constant(tiny_network):
    small = memory.estimate_parts(tiny_network, 32, 32, "lbfgs", 20, LAYERS)
    large = memory.estimate_parts(tiny_network, 320, 320, "lbfgs", 20, LAYERS)
    assert memory.estimate_peak_bytes(tiny_network, 32, 32, "lbfgs", 20, LAYERS) == sum(small.values())
    assert small["tensorflow"] == large["tensorflow"] == memory.TENSORFLOW_BASELINE_BYTES
    assert small["graph weights"] == large["graph weights"]  # the weights do not depend on the size
    for part in ("activations", "optimizer", "evaluator"):
        # 100x the pixels: the per-pixel parts grow about 100x (the m^2 terms of L-BFGS do not)
        assert 90 < large[part] / small[part] <= 100.5, part
    assert memory.format_bytes(3 * 2**30) == "3.0 GB" and memory.format_bytes(5 * 2**20) == "5 MB"


def test_the_pool_reserved_for_an_evaluation_is_twice_its_resident_activations(tiny_network):
    for height, width in ((16, 24), (32, 48)):
        parts = memory.estimate_parts(tiny_network, height, width)
        assert memory.evaluation_pool_bytes(tiny_network, height, width) == 2 * parts["activations"] > 0
    assert memory.evaluation_pool_bytes(tiny_network, 32, 48) > memory.evaluation_pool_bytes(tiny_network, 16, 24)
    guided = memory.estimate_parts(tiny_network, 16, 24, guided_styles=1)
    assert memory.evaluation_pool_bytes(tiny_network, 16, 24, guided_styles=1) == 2 * (
        guided["activations"] + guided["guidance"])
