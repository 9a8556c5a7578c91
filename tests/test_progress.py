"""progress.py: the Reporter that turns stylize's Progress reports into printed terms,
checkpoints, a JSON-lines log, progress.txt and a plot; on its own and in real runs."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image
from run_helpers import base_args, run_main

import stylize
from neural_style_tf import progress
from neural_style_tf.settings import RunSettings


class Best:
    """Stands in for the Evaluator: the best image so far."""

    def __init__(self, image):
        self.image = image

    def best_image(self):
        return self.image


def report(iteration, iterations=4, scale=None, image=None):
    terms = {"content": 10.0 / iteration, "style": 20.0 / iteration, "tv": 1.0, "total": 30.0 / iteration + 1.0}
    p = stylize.Progress(iteration, iterations, 2 * iteration, 0.5 * iteration, terms, terms["total"],
                         Best(np.full((6, 8, 3), 40.0 * iteration, np.float32) if image is None else image))
    if scale is not None:
        p.scale = scale
    return p


def run_settings(tmp_path, **changes):
    base = RunSettings(content="c.png", styles=("s.png",), output=str(tmp_path / "out.png"), quiet=True)
    return dataclasses.replace(base, **changes)


def finished(iterations=4):
    return stylize.Result(np.zeros((6, 8, 3), np.float32), {"content": 1.0, "style": 2.0, "tv": 0.5, "total": 3.5},
                          iterations, 2 * iterations, 1.5, "completed", "")


def test_log_has_the_start_record_a_row_per_iteration_and_the_end(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    reporter = progress.Reporter(run_settings(tmp_path, log=str(log)), 4, lambda x: (x, None), {"seed": 3})
    for i in range(1, 5):
        reporter(report(i))
    reporter.close(finished())
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows[0] == {"event": "start", "seed": 3}
    assert [r["iteration"] for r in rows[1:-1]] == [1, 2, 3, 4]
    assert rows[2] == {"iteration": 2, "evaluations": 4, "seconds": 1.0, "content": 5.0, "style": 10.0, "tv": 1.0,
                       "total": 16.0}
    assert rows[-1] == {"event": "end", "stop_reason": "completed", "message": "", "iterations": 4,
                        "evaluations": 8, "seconds": 1.5, "terms": finished().terms}
    assert capsys.readouterr().err == ""  # quiet, no --print-iterations: nothing printed
    assert reporter.log.closed


def test_print_iterations_prints_every_term_every_n_and_at_the_end(tmp_path, capsys):
    reporter = progress.Reporter(run_settings(tmp_path, print_iterations=2), 5, lambda x: (x, None), {})
    for i in range(1, 6):
        reporter(report(i, iterations=5))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == ["2/5", "4/5", "5/5"]
    assert lines[0] == ("iteration 2/5 (4 evaluations, 1.0 s): content 5, style 10, tv 1, total 16")


def test_scales_are_labelled_in_rows_and_printed_lines(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    reporter = progress.Reporter(run_settings(tmp_path, print_iterations=1, log=str(log)), 2, lambda x: (x, None), {})
    reporter(report(1, 2, scale=(0, 2, (6, 8))))
    reporter(report(2, 2, scale=(1, 2, (12, 16))))
    reporter.close(finished(2))
    rows = [json.loads(line) for line in log.read_text().splitlines()][1:-1]
    assert [r["scale"] for r in rows] == [1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("scale 1/2 (8x6) iteration 1/2") and lines[1].startswith("scale 2/2 (16x12) iteration 2/2")
    # a single scale is not labelled
    single = progress.Reporter(run_settings(tmp_path), 1, lambda x: (x, None), {})
    single(report(1, 1, scale=(0, 1, (6, 8))))
    assert "scale" not in single.history[0]


def test_the_bar_counts_work_across_scales_so_its_eta_covers_them_all(tmp_path, capsys):
    """An iteration at half the side is a quarter of a final one: 100 + 2 coarse at 1/4 = 100.5
    final-scale iterations; a scale that stopped early leaves its share behind at the next."""
    from neural_style_tf.coarse_to_fine import Position, Stage

    stages = [Stage(0, (6, 8), 2), Stage(1, (12, 16), 100)]
    work = progress.Work(stages, 100)
    assert work.scaled and work.total == 100.5 and work.done == 0
    assert work.step(0) == 0.25  # a coarse iteration
    assert work.step(1) == 1.25  # the first final one, plus the coarse iteration never run
    assert progress.Work([], 7).total == 7 and not progress.Work([], 7).scaled  # one scale: iterations
    # a resumed run starts where its checkpoint is
    resumed = progress.Work(stages, 100, Position(1, 40, 45, False, None, None))
    assert resumed.done == 0.5 + 40
    bar = progress.Reporter(dataclasses.replace(run_settings(tmp_path), quiet=False), 100, lambda x: (x, None), {},
                            stages=stages).bar
    assert bar.total == 100.5
    bar.close()


def test_checkpoints_are_the_finished_best_image_every_n_iterations(tmp_path):
    finished_images = []

    def finish(x):
        finished_images.append(x)
        return np.clip(x + 1.0, 0, 255), None

    settings = run_settings(tmp_path, checkpoint_output=str(tmp_path / "ck_%02d.png"), checkpoint_iterations=2)
    reporter = progress.Reporter(settings, 5, finish, {})
    for i in range(1, 6):
        reporter(report(i, 5))
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("ck_")) == ["ck_02.png", "ck_04.png"]
    assert len(finished_images) == 2
    saved = np.asarray(Image.open(tmp_path / "ck_04.png"), np.float64)
    np.testing.assert_array_equal(saved, np.full((6, 8, 3), 161.0))  # best image of iteration 4, finished


def test_progress_table_and_plot(tmp_path):
    history = [{"iteration": i, "evaluations": i + 1, "seconds": 0.1 * i, "content": 4.0 / i, "style": 0.0,
                "tv": 1.0, "total": 5.0 / i} for i in range(1, 4)]
    progress.write_progress_table(str(tmp_path / "progress.txt"), history)
    lines = (tmp_path / "progress.txt").read_text().splitlines()
    assert lines[0] == "# iteration evaluations seconds content style tv total"
    np.testing.assert_allclose(np.loadtxt(tmp_path / "progress.txt"),
                               [[r[k] for k in history[0]] for r in history])
    progress.write_progress_plot(str(tmp_path / "progress.png"), history)
    with Image.open(tmp_path / "progress.png") as plot:
        assert plot.format == "PNG" and plot.size == (700, 450)
    assert sorted(os.listdir(tmp_path)) == ["progress.png", "progress.txt"]  # no temporary files


# ---------------------------------------------------------------- in real runs


@pytest.mark.parametrize("pattern, names", [
    ("ck_{:03}.png", ["ck_002.png", "ck_004.png"]),
    ("ck_%03d.jpg", ["ck_002.jpg", "ck_004.jpg"]),
])
def test_checkpoints_appear(files, tiny_net_path, tmp_path, capsys, pattern, names):
    code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "out.png", 5, "--checkpoint-output",
                                      tmp_path / pattern, "--checkpoint-iterations", 2), capsys)
    assert code == 0, err
    found = sorted(n for n in os.listdir(tmp_path) if n.startswith("ck_"))
    assert found == names
    for name in names:
        assert Image.open(tmp_path / name).size == (32, 24)


def test_progress_write_and_plot(files, tiny_net_path, tmp_path, capsys):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    code, _, err = run_main(base_args(files, tiny_net_path, out_dir / "out.png", 5, "--progress-write",
                                      "--progress-plot"), capsys)
    assert code == 0, err
    lines = (out_dir / "progress.txt").read_text().splitlines()
    assert lines[0].split()[1:] == ["iteration", "evaluations", "seconds", "content", "style", "tv", "total"]
    table = np.loadtxt(out_dir / "progress.txt")
    assert table.shape == (5, 7)
    np.testing.assert_array_equal(table[:, 0], [1, 2, 3, 4, 5])
    assert table[-1, 6] < table[0, 6]
    plot = Image.open(out_dir / "progress.png")
    assert plot.format == "PNG" and plot.size[0] > 200
    assert sorted(os.listdir(out_dir)) == ["out.png", "progress.png", "progress.txt"]  # no temporary files


def test_a_tiled_evaluation_moves_the_bar_tile_by_tile_and_the_step_completes_it():
    from neural_style_tf.coarse_to_fine import Stage

    stages = [Stage(0, (6, 8), 2), Stage(1, (12, 16), 10)]
    work = progress.Work(stages, 10)
    assert work.step(0) == 0.25 and work.step(0) == 0.25
    # the first tiles of the final scale: the jump into it, then a third of an iteration
    assert work.partial(1, 1 / 3) == pytest.approx(1 / 3)
    assert work.partial(1, 1 / 3) == 0  # a second evaluation of the same iteration: nothing until past it
    assert work.partial(1, 1.0) == pytest.approx(2 / 3)
    assert work.step(1) == pytest.approx(0)  # the iteration is shown already
    assert work.partial(1, 0.5) == pytest.approx(0.5) and work.step(1) == pytest.approx(0.5)
    assert work.position == pytest.approx(0.5 + 2)  # two coarse quarters, two final iterations


def test_the_reporters_tile_updates_its_bar(tmp_path):
    from neural_style_tf.coarse_to_fine import Stage

    stages = [Stage(0, (6, 8), 2), Stage(1, (12, 16), 10)]
    reporter = progress.Reporter(dataclasses.replace(run_settings(tmp_path), quiet=False, output=None), 10,
                                 lambda x: (x, None), {}, stages=stages)
    reporter.tile(1, 0.25)
    assert reporter.bar.n == pytest.approx(0.5 + 0.25)  # the coarse scale's share (never run), then a quarter
    reporter(report(1, 10, scale=(1, 2, (12, 16))))
    assert reporter.bar.n == pytest.approx(1.5)
    reporter.close(finished(10))


def test_the_bar_never_passes_its_total_at_the_end_of_a_4k_run():
    """The 4K print's four scales: their float weights add up to 2e-14 above the total, and
    tqdm printed "TqdmWarning: clamping frac to range [0, 1]" at the run's last step."""
    from neural_style_tf.coarse_to_fine import Stage

    stages = [Stage(0, (384, 512), 100), Stage(1, (752, 1002), 100), Stage(2, (1472, 1962), 52),
              Stage(3, (2880, 3840), 27)]
    work = progress.Work(stages, 100)
    for index, stage in enumerate(stages):
        for _ in range(stage.iterations):
            work.partial(index, 0.5)
            work.step(index)
    assert work.position == work.total
