"""compare.py on a tiny network: every output, the CSV, fairness, the summary's numbers, resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from neural_style_tf.apps import compare

EVALUATIONS = 5
SEEDS = (0, 1)


def _write_image(path, shape, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare_images")
    return {"content": _write_image(d / "content.png", (24, 32, 3), 1),
            "style": _write_image(d / "style.png", (30, 30, 3), 2)}


def _argv(tiny_net_path, images_dir, out_dir, *extra):
    return ["--network", tiny_net_path, "--content", images_dir["content"], "--styles", images_dir["style"],
            "--out-dir", str(out_dir), "--width", "24", "--evaluations", str(EVALUATIONS),
            "--seeds", *map(str, SEEDS), "--adam-learning-rates", "10", "--lbfgs-corrections", "5",
            "--tv-weight", "1", "--init", "noise", "--quiet", *extra]


@pytest.fixture(scope="module")
def tiny_run(tiny_net_path, images_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "out"
    assert compare.main(_argv(tiny_net_path, images_dir, out)) == 0
    return out


def _csv_rows(out):
    with open(out / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("evaluation", "seed"):
            row[key] = int(row[key])
        for key in ("seconds", "content", "style", "tv", "total"):
            row[key] = float(row[key])
    return rows


def _runs(rows):
    runs = {}
    for row in rows:
        runs.setdefault((row["config"], row["seed"]), []).append(row)
    return runs


def test_a_tiny_run_writes_every_file(tiny_run):
    for name in ("evaluations.csv", "summary.json", "summary.md", "loss_vs_evaluations.png",
                 "loss_vs_seconds.png", "images.png"):
        assert (tiny_run / name).is_file(), name
    for name in ("loss_vs_evaluations.png", "loss_vs_seconds.png", "images.png"):
        with Image.open(tiny_run / name) as img:
            assert img.format == "PNG" and img.width > 200 and img.height > 100
    finals = sorted(p.name for p in (tiny_run / "runs").glob("*.png"))
    assert len(finals) == 2 * len(SEEDS)
    for name in finals:
        with Image.open(tiny_run / "runs" / name) as img:
            assert img.size == (24, 18)  # 32x24 content at width 24
    table = (tiny_run / "summary.md").read_text()
    assert "| Adam lr=10 |" in table and "| L-BFGS m=5 |" in table
    # No temporary files left behind by the atomic writes.
    assert not [p for p in tiny_run.rglob("*.tmp")]


def test_csv_has_one_row_per_evaluation_with_monotone_time(tiny_run):
    runs = _runs(_csv_rows(tiny_run))
    assert set(runs) == {(c, s) for c in ("adam-lr10", "lbfgs-m5") for s in SEEDS}
    summary = json.loads((tiny_run / "summary.json").read_text())
    for (config, seed), rows in runs.items():
        assert [r["evaluation"] for r in rows] == list(range(1, EVALUATIONS + 1))
        seconds = [r["seconds"] for r in rows]
        assert all(b >= a for a, b in zip(seconds, seconds[1:])) and seconds[0] > 0
        for r in rows:
            assert r["total"] == pytest.approx(r["content"] + r["style"] + r["tv"], rel=1e-5)
        run = summary["runs"][f"content+style__{config}__seed{seed}"]
        assert run["evaluations"] == len(rows) and run["stop_reason"] == "budget"
        assert seconds[-1] <= run["seconds"] + 1e-9  # an evaluation's time is within its run's


def test_both_optimizers_start_from_the_same_loss(tiny_run):
    runs = _runs(_csv_rows(tiny_run))
    for seed in SEEDS:
        adam, lbfgs = runs[("adam-lr10", seed)][0], runs[("lbfgs-m5", seed)][0]
        assert adam["evaluation"] == lbfgs["evaluation"] == 1
        for key in ("content", "style", "tv", "total"):
            assert adam[key] == lbfgs[key]
    # With --init noise the seed changes the start, so the seeds are really different runs.
    assert runs[("adam-lr10", 0)][0]["total"] != runs[("adam-lr10", 1)][0]["total"]
    # And the optimizers really differ after the start.
    assert runs[("adam-lr10", 0)][-1]["total"] != runs[("lbfgs-m5", 0)][-1]["total"]


def test_summary_numbers_recomputed_from_the_csv(tiny_run):
    runs = _runs(_csv_rows(tiny_run))
    summary = json.loads((tiny_run / "summary.json").read_text())
    (pair_id, pair), = summary["pairs"].items()
    best = min(r["total"] for rows in runs.values() for r in rows)
    assert pair["best_loss"] == pytest.approx(best, rel=1e-12)
    # Every run stopped at its evaluation budget: E is that budget, T the fastest run's time.
    e = min(rows[-1]["evaluation"] for rows in runs.values())
    t = min(rows[-1]["seconds"] for rows in runs.values())
    assert pair["equal_evaluations"] == e == EVALUATIONS
    assert pair["equal_seconds"] == pytest.approx(t, rel=1e-12)
    for config in ("adam-lr10", "lbfgs-m5"):
        stats = pair["configurations"][config]
        mine = [rows for (c, _), rows in runs.items() if c == config]
        at_e = [min(r["total"] for r in rows[:e]) for rows in mine]
        # A run with no evaluation finished by T (possible under load: T is the fastest
        # run's time) has no loss at T and is left out of the mean, as compare.py does.
        at_t = [min(r["total"] for r in rows if r["seconds"] <= t) for rows in mine if rows[0]["seconds"] <= t]
        assert stats["loss_at_equal_evaluations"] == pytest.approx(np.mean(at_e), rel=1e-9)
        if at_t:
            assert stats["loss_at_equal_seconds"] == pytest.approx(np.mean(at_t), rel=1e-9)
        else:
            assert stats["loss_at_equal_seconds"] is None
        assert stats["relative_loss_at_equal_evaluations"] == pytest.approx(np.mean(at_e) / best, rel=1e-9)
        for threshold, key in ((1.10, "110"), (1.01, "101")):
            firsts = [next((r for r in rows if r["total"] <= threshold * best), None) for rows in mine]
            assert stats[f"reached_{key}"] == sum(f is not None for f in firsts)
            if all(f is not None for f in firsts):
                assert stats[f"evaluations_to_{key}"] == pytest.approx(np.mean([f["evaluation"] for f in firsts]))
                assert stats[f"seconds_to_{key}"] == pytest.approx(np.mean([f["seconds"] for f in firsts]))
            else:
                assert stats[f"evaluations_to_{key}"] is None
        evals = sum(len(rows) for rows in mine)
        seconds = sum(rows[-1]["seconds"] for rows in mine)
        assert stats["evaluations_per_second"] == pytest.approx(evals / seconds, rel=1e-9)
        assert stats["failures"] == []
        assert -1.0 <= stats["ssim_to_content"] <= 1.0
        # The tiny net uses every relu layer, so the held-out layers are unused pooling layers.
        assert set(stats["gram_distance_vs_content"]) == set(pair["gram_layers"])
        assert not set(pair["gram_layers"]) & set(summary["settings"]["loss"]["style_layers"])
    # The best loss is someone's, at 100% of itself.
    assert min(s["relative_loss_at_equal_evaluations"] for s in pair["configurations"].values()) >= 1.0


def test_resume_skips_finished_runs(tiny_run, tiny_net_path, images_dir, monkeypatch):
    markers = sorted((tiny_run / "runs").glob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in markers}
    summary_before = json.loads((tiny_run / "summary.json").read_text())

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was optimised again")

    with monkeypatch.context() as m:
        # compare.py's own names (it imports them from optimize and objective)
        m.setattr(compare, "minimize", must_not_run)
        m.setattr(compare, "Objective", must_not_run)
        assert compare.main(_argv(tiny_net_path, images_dir, tiny_run)) == 0
    assert {p: p.stat().st_mtime_ns for p in markers} == before
    summary_after = json.loads((tiny_run / "summary.json").read_text())
    assert summary_after["pairs"] == summary_before["pairs"]

    # An interrupted run leaves no marker: only that run is done again.
    lost = tiny_run / "runs" / "content+style__lbfgs-m5__seed1.json"
    lost.unlink()
    calls = []
    real = compare.minimize

    def counting(objective, x0, opts, **kwargs):
        calls.append((opts.optimizer, opts.lbfgs_corrections))
        return real(objective, x0, opts, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(compare, "minimize", counting)
        assert compare.main(_argv(tiny_net_path, images_dir, tiny_run)) == 0
    assert calls == [("lbfgs", 5)]
    assert lost.is_file()
    rows = _runs(_csv_rows(tiny_run))
    assert len(rows[("lbfgs-m5", 1)]) == EVALUATIONS


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--evaluations", "0"], "--evaluations must be a positive integer, not 0"),
        (["--seeds", "-1"], "--seeds must be non-negative integers, not -1"),
        (["--adam-learning-rates", "-3"], "--adam-learning-rates must be positive, not -3"),
        (["--adam-learning-rates", "--lbfgs-corrections"], "nothing to compare"),
        (["--gram-layers", "relu1_1"], "--gram-layers: relu1_1 is in the objective"),
        (["--gram-layers", "relu9_9"], "--gram-layers: unknown layer 'relu9_9'"),
        (["--style-layers", "relu1_l"], "unknown layer 'relu1_l'"),
        (["--time-budget", "0"], "--time-budget must be a positive number of seconds, not 0.0"),
        (["--target-from", "0"], "--target-from must be a positive integer, not 0"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tiny_net_path, images_dir, tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    assert compare.main(_argv(tiny_net_path, images_dir, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (out / "runs").exists()


def test_missing_images_and_pairs_file(tiny_net_path, images_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = _argv(tiny_net_path, images_dir, out)
    args[args.index("--content") + 1] = str(tmp_path / "nope.jpg")
    assert compare.main(args) == 2
    assert "nope.jpg: no such file" in capsys.readouterr().err
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{images_dir['content']},{images_dir['style']}\nonly-one-field.jpg\n")
    argv = ["--pairs", str(pairs), "--out-dir", str(out), "--network", tiny_net_path]
    assert compare.main(argv) == 2
    assert "line 2 has 1 field(s)" in capsys.readouterr().err


def test_a_rerun_with_other_settings_is_refused(tiny_run, tiny_net_path, images_dir, capsys):
    summary = (tiny_run / "summary.json").read_bytes()
    assert compare.main(_argv(tiny_net_path, images_dir, tiny_run, "--style-weight", "7")) == 2
    err = capsys.readouterr().err
    assert "made with other settings (loss differ)" in err
    assert (tiny_run / "summary.json").read_bytes() == summary


def test_help_shows_the_transfer_loss_flags_and_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--content-weight", "--style-weight", "--tv-weight", "--content-layers", "--style-layers",
                 "--pooling", "--network", "--style-scales", "--init", "--gram-layers"):
        assert flag in text
    assert f"(default: {compare.EVALUATIONS})" in text


def test_pairs_file_runs_the_grid_and_aggregates(tiny_net_path, images_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    # Relative paths are read relative to the pairs file.
    for name in ("content", "style"):
        (tmp_path / f"{name}.png").write_bytes(open(images_dir[name], "rb").read())
    pairs.write_text("content.png,style.png\n# a comment\nstyle.png,content.png\n")
    out = tmp_path / "out"
    argv = ["--network", tiny_net_path, "--pairs", str(pairs), "--out-dir", str(out), "--width", "24",
            "--evaluations", "3", "--seeds", "0", "--adam-learning-rates", "10", "--lbfgs-corrections", "5",
            "--target-from", "2", "--quiet"]
    assert compare.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["pairs"]) == ["content+style", "style+content"]
    rows = _csv_rows(out)
    assert {(r["pair"], r["config"]) for r in rows} == {(p, c) for p in summary["pairs"] for c in ("adam-lr10", "lbfgs-m5")}
    assert len(rows) == 2 * 2 * 3
    for config, stats in summary["overall"].items():
        relative = [summary["runs"][f"{p}__{config}__seed0"]["relative_loss_at_equal_evaluations"] for p in summary["pairs"]]
        assert stats["relative_loss_at_equal_evaluations"] == pytest.approx(np.mean(relative))
        assert stats["runs"] == 2
    assert "### All pairs" in (out / "summary.md").read_text()
    # The check of L-BFGS against the best Adam, recomputed from the CSV.
    checks = {c["pair"]: c for c in summary["lbfgs_vs_best_adam"]}
    assert set(checks) == set(summary["pairs"])
    for pair, c in checks.items():
        best = {cfg: np.minimum.accumulate([r["total"] for r in rows if r["pair"] == pair and r["config"] == cfg])
                for cfg in ("adam-lr10", "lbfgs-m5")}
        ratio = best["lbfgs-m5"][1:] / best["adam-lr10"][1:]
        assert (c["from"], c["to"]) == (2, 3) and c["meets"] == bool((ratio <= 1).all())
        assert c["worst_ratio"] == pytest.approx(ratio.max()) and c["worst_evaluation"] == 2 + int(ratio.argmax())
        assert c["ratio"] == pytest.approx(list(best["lbfgs-m5"] / best["adam-lr10"]))
    assert "### L-BFGS against the best Adam, from evaluation 2" in (out / "summary.md").read_text()
    with Image.open(out / "lbfgs_vs_best_adam.png") as img:
        assert img.format == "PNG" and img.width > 200


def test_defaults_are_the_transfer_defaults_on_the_default_network(images_dir, tmp_path):
    """Without objective flags compare.py optimises neural_style.py's default objective on its
    default network, the embedded VGG-19, resolved for it the same way (W2, replicate
    padding, style-layer exponent 0.5, TV 1), from the content as neural_style.py starts."""
    import neural_style
    import vgg
    from neural_style_tf import cli
    from neural_style_tf.settings import for_network

    files = ["--content", images_dir["content"], "--styles", images_dir["style"]]
    exp = compare.read_experiment(files + ["--out-dir", str(tmp_path / "out")])
    argv = files + ["--output", str(tmp_path / "o.png")]
    transfer = cli.build_settings(neural_style.build_parser(), cli.parse_given(neural_style.build_parser(), argv))
    assert exp.loss == transfer.loss and exp.network is None and transfer.run.network is None
    assert exp.init == "content" and transfer.run.initial_noiseblend == 0.0
    network = vgg.load_net(exp.network)
    assert "VGG-19" in network.name
    resolved = for_network(exp.loss, network)
    assert (resolved.style_loss, resolved.padding, resolved.style_layer_weight_exp, resolved.tv_weight) == \
        ("w2", "replicate", 0.5, 0.1)


def test_the_comparison_takes_precision_as_neural_style_py_does(tiny_net_path, images_dir, tmp_path):
    """--precision reaches compare.py's network: float32 as asked; an explicit bfloat16
    where oneDNN cannot run it (conftest.py caps it below bfloat16) is refused in one line."""
    exp = compare.read_experiment(_argv(tiny_net_path, images_dir, tmp_path / "a", "--precision", "float32"))
    assert exp.precision == "float32"
    assert compare.load_network(exp, lambda text: None).precision == "float32"
    refused = compare.read_experiment(_argv(tiny_net_path, images_dir, tmp_path / "b", "--precision", "bfloat16"))
    with pytest.raises(compare.UsageError, match="no native bfloat16"):
        compare.load_network(refused, lambda text: None)
