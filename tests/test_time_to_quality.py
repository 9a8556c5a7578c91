"""time_to_quality.py (benchmark.py --time-to-quality): the report read from saved traces,
the route names. No optimisation runs here; fast."""

from __future__ import annotations

import argparse
import json

import pytest

from neural_style_tf import images
from neural_style_tf.apps import time_to_quality as ttq


def test_time_to_quality_report_reads_the_traces(tmp_path):
    """The target is the reference's final loss; a route's time is its first CPU second at
    or below it (rows: CPU s, wall s, best full-size loss, evaluations)."""
    def save(name, rows):
        record = {"name": name, "flags": "", "final_loss": min(r[2] for r in rows), "rows": rows}
        images.write_atomically(ttq.trace_path(str(tmp_path), name), lambda f: f.write(json.dumps(record).encode()))

    inf = float("inf")
    save(ttq.REFERENCE[0], [[10, 11, 50.0, 10], [40, 41, 20.0, 40], [100, 101, 10.0, 100]])
    save("fast", [[5, 5, inf, 30], [15, 16, 12.0, 35], [25, 27, 9.0, 40]])  # coarse scales first: no loss yet
    save("slow", [[50, 50, 30.0, 50], [200, 200, 11.0, 200]])
    results = ttq.report(str(tmp_path), [ttq.REFERENCE[0], "fast", "slow"])
    assert results[ttq.REFERENCE[0]]["seconds_to_target"] == 100 and results[ttq.REFERENCE[0]]["ratio"] == 1.0
    assert results["fast"]["seconds_to_target"] == 25 and results["fast"]["ratio"] == 0.25
    assert results["fast"]["evaluations_to_target"] == 40
    assert results["slow"]["seconds_to_target"] is None and results["slow"]["ratio"] is None
    table = ttq.markdown(results, 256)
    assert "| fast |" in table and "| 0.25 |" in table and "never" in table
    # within 25% of the target (12.5): the reference at 100 s, fast at 15 s, slow at 200 s
    within = results["fast"]["within"]
    assert within[0.25] == 15 and within[0.10] == 25 and results["slow"]["within"][0.25] == 200
    assert results[ttq.REFERENCE[0]]["within"][0.25] == 100
    assert "| 25% | 100 s (1.00x) | 15 s (0.15x) | 200 s (2.00x) |" in table


def test_time_to_quality_route_names_and_refusal():
    assert ttq.parse_route("c2f=--scales 3") == ("c2f", "--scales 3")
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=FLAGS"):
        ttq.parse_route("--scales 3")
