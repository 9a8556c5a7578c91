"""benchmark.py: the table it writes, and its refusals (the measurements: test_benchmark_measure.py)."""

from __future__ import annotations

import json

import pytest

import vgg
from neural_style_tf.apps import benchmark, benchmark_measure


def test_main_writes_the_table(tiny_net_path, tmp_path, capsys):
    out = tmp_path / "B.md"
    status = benchmark.main(["--network", tiny_net_path, "--no-reference-size", "--sizes", "32", "--repeats", "1",
                             "--lbfgs-evaluations", "3", "--matmul-size", "128", "--out", str(out)])
    assert status == 0
    text = out.read_text()
    assert text == capsys.readouterr().out.strip("\n") + "\n"
    assert "GFLOP/s" in text and "| 32x24 |" in text
    data = json.loads((tmp_path / "B.json").read_text())
    row = data["rows"][0]
    net = vgg.load_net(tiny_net_path)
    needed, style = benchmark_measure.used_layers(__import__("stylize").LossOptions())
    assert row["flops"] == benchmark_measure.count_flops(net, 24, 32, needed, style)
    assert row["lbfgs_evaluations"] == 3 and row["baseline_rss"] > 0
    # the memory preflight's estimate is meant for a warning, not to the megabyte: within 2x
    assert 0.5 < row["estimate"] / row["peak_rss"] < 2.0, (row["estimate"], row["peak_rss"])
    assert row["seconds"] > 0 and data["matmul_gflops"] > 0


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--sizes", "8"], ["--network", "/nonexistent.mat"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        benchmark.main(["--no-reference-size", "--sizes", "32", "--out", "/tmp/unused.md"] + argv)
    assert exc.value.code == 2
