"""compare_report.py on hand-made records: the L-BFGS-against-Adam check, its table, the
per-pair reference points and the ranges of counts. Pure NumPy; fast."""

from __future__ import annotations

import pytest

from neural_style_tf.apps import compare_report


def _record(config, optimizer, totals, pair="p", seed=0):
    rows = [[i + 1, 0.1 * (i + 1), 0.0, t, 0.0, t] for i, t in enumerate(totals)]
    return {"pair": pair, "seed": seed, "config": config, "label": config, "optimizer": optimizer, "rows": rows}


def test_lbfgs_against_the_best_adam_at_every_count():
    # Two Adam rates take turns at being best; L-BFGS is behind the lower of them at 2-4 only.
    records = [_record("adam-a", "adam", [10, 9, 5, 5, 5, 5, 5]),
               _record("adam-b", "adam", [10, 8, 7, 6, 4, 3, 3]),
               _record("lbfgs", "lbfgs", [10, 9, 6, 5.5, 3, 3.3, 2]),
               # An L-BFGS run that converged after 4 evaluations keeps its best loss.
               _record("lbfgs-short", "lbfgs", [10, 2, 2, 1])]
    (c, short) = compare_report.lbfgs_against_adam(records, start=2)
    assert (c["from"], c["to"], c["meets"]) == (2, 7, False)
    # Best-so-far from count 2: L-BFGS 9 6 5.5 3 3 2 against Adam's envelope 8 5 5 4 3 3
    # (adam-b, adam-a, adam-a, adam-b, adam-b, adam-b); equal (count 6) is not behind.
    assert c["above"] == [[2, 4]]
    assert c["worst_ratio"] == pytest.approx(6 / 5) and c["worst_evaluation"] == 3
    assert c["best_adam_there"] == "adam-a"
    assert c["ratio_at_start"] == pytest.approx(9 / 8) and c["ratio_at_end"] == pytest.approx(2 / 3)
    assert short["meets"] and short["to"] == 7 and short["ratio_at_end"] == pytest.approx(1 / 3)
    assert c["ratio"] == pytest.approx([1, 9 / 8, 6 / 5, 5.5 / 5, 3 / 4, 1, 2 / 3])
    # Too few evaluations for the check: nothing to say.
    assert compare_report.lbfgs_against_adam(records, start=8) == []
    assert "| p | 0 | lbfgs | no (2-7) | 1.200 (3; adam-a) | 2-4 |" in compare_report.target_table([c])


def test_ranges_of_consecutive_counts():
    assert compare_report._ranges([]) == []
    assert compare_report._ranges([2, 3, 4, 7, 9, 10]) == [[2, 4], [7, 7], [9, 10]]


def test_pair_references_take_the_shortest_budgeted_run():
    # A run that ended by itself (converged) after 2 evaluations does not lower E or T.
    runs = [dict(_record("a", "adam", [5, 4, 3, 2]), stop_reason="budget"),
            dict(_record("b", "lbfgs", [5, 1]), stop_reason="converged"),
            dict(_record("c", "adam", [6, 5, 4]), stop_reason="budget")]
    best, e, t = compare_report.pair_references(runs)
    assert best == 1 and e == 3 and t == pytest.approx(0.3)
