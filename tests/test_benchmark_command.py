"""benchmark.py --command: the whole plain command timed as a user runs it."""

from __future__ import annotations

import json

import pytest

from neural_style_tf.apps import benchmark_command


def test_evaluations_per_scale_from_a_log(tmp_path):
    log = tmp_path / "run.jsonl"
    rows = [{"event": "start"},
            {"iteration": 1, "evaluations": 3, "scale": 1}, {"iteration": 2, "evaluations": 5, "scale": 1},
            {"iteration": 3, "evaluations": 7, "scale": 2}, {"iteration": 4, "evaluations": 8, "scale": 2},
            {"event": "end"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert benchmark_command.evaluations_per_scale(log) == {1: 5, 2: 3}


def test_a_single_scale_log_has_one_scale(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps({"iteration": i, "evaluations": 2 * i}) + "\n" for i in (1, 2, 3)))
    assert benchmark_command.evaluations_per_scale(log) == {1: 6}


def test_variant_parsing():
    assert benchmark_command.parse_variant("fast=--iterations 5 --scales 2") == ("fast", "--iterations 5 --scales 2")
    assert benchmark_command.parse_variant("plain=") == ("plain", "")
    with pytest.raises(ValueError):
        benchmark_command.parse_variant("=--iterations 5")


@pytest.mark.slow
def test_the_plain_command_measured(tmp_path):
    """A real neural_style.py child at 32 px: its evaluations, its peak RSS and its table row."""
    out = tmp_path / "table.md"
    (name, flags, runs), = benchmark_command.run([("tiny", "--iterations 2")], 32, 1, out=str(out),
                                                 say=lambda *a, **k: None)
    run = runs[0]
    assert run["wall"] > 0 and run["ready"] is not None and run["ready"] < run["wall"]
    assert 0 <= run["exit"] < run["wall"] - run["ready"]  # the exit comes after the image, and is part of the wall time
    assert sum(run["evaluations"].values()) >= 2
    assert 0.1 < run["peak_rss_gb"] < 8
    assert "| tiny |" in out.read_text()
