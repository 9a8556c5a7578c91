"""worker.py without Ray: a worker's cache of objectives, and a job's inputs made local."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

import neural_style
import stylize
from neural_style_tf import cli, transfer
from neural_style_tf.apps import worker as worker_module
from neural_style_tf.apps.worker import Worker
from neural_style_tf.objective import Problem
from neural_style_tf.settings import LossOptions, RunSettings, Settings, input_file_fields


def test_a_reweighted_objective_equals_a_new_one(tiny_network):
    rng = np.random.default_rng(1)
    content, style, x = (rng.uniform(0, 255, (16, 20, 3)).astype(np.float32) for _ in range(3))
    first = LossOptions(style_weight=10.0, tv_weight=1.0)
    second = dataclasses.replace(first, content_weight=2.0, style_weight=1000.0, tv_weight=5.0)
    worker = Worker()
    try:
        with worker.make_objective(Problem.create(tiny_network, content, [style], first)) as built:
            built.evaluate(x)
        with worker.make_objective(Problem.create(tiny_network, content, [style], second)) as reused:
            assert reused is built and worker.counts == {"built": 1, "reused": 1}
            terms, grad = reused.evaluate(x)
        with stylize.Objective(tiny_network, content, [style], second) as fresh:
            fresh_terms, fresh_grad = fresh.evaluate(x)
        assert terms == fresh_terms and np.array_equal(grad, fresh_grad)
        other_layers = dataclasses.replace(second, style_layers=("relu1_1",))
        with worker.make_objective(Problem.create(tiny_network, content, [style], other_layers)) as rebuilt:
            assert rebuilt is not built and worker.counts["built"] == 2
    finally:
        worker.close()


def test_two_jobs_of_other_images_at_one_size_share_one_objective(tiny_net_path, files, tmp_path):
    """A second job with another content and another style at the same size retargets
    the first job's objective (built once), and writes what a job run alone writes."""
    second_content, second_style = tmp_path / "content2.png", tmp_path / "style2.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(second_content)
    Image.fromarray(rng.integers(0, 256, (30, 18, 3), dtype=np.uint8)).save(second_style)

    def settings(content, style, output):
        return cli.settings_from_argv(neural_style.build_parser, [
            "--network", tiny_net_path, "--content", content, "--styles", style, "--output", str(output),
            "--iterations", "4", "--seed", "1", "--quiet"])

    worker = Worker()
    try:
        records = [worker_module.run_transfer(worker, {"settings": settings(c, s, tmp_path / name), "files": {}})
                   for c, s, name in ((files["content"], files["style"], "a.png"),
                                      (str(second_content), str(second_style), "b.png"))]
    finally:
        worker.close()
    assert [r["status"] for r in records] == ["done", "done"]
    assert [r["graph"] for r in records] == ["built", "reused"] and worker.counts == {"built": 1, "reused": 1}
    alone = settings(str(second_content), str(second_style), tmp_path / "alone.png")
    assert transfer.run(alone) == 0
    assert records[1]["image"] == (tmp_path / "alone.png").read_bytes()


class _Here:
    """A worker whose local copy of each file is "local/<name>"."""

    def __init__(self, scratch):
        self.scratch = scratch

    def local_file(self, path, sha, ref):
        return f"local/{path}"


def test_localise_makes_every_input_file_local(tmp_path):
    run = RunSettings(content="c.png", styles=("s1.png", "s2.png"), output="out/o.png", initial="i.png",
                      color_source="k.png", network="n.mat", style_masks=("m1.png", "m2.png"),
                      style_region_masks=("r1.png", "r2.png"), content_mask="cm.png", log=None)
    names = [run.content, *run.styles, run.initial, run.color_source, run.network, *run.style_masks,
             *run.style_region_masks, run.content_mask]
    files = {name: ("sha", None) for name in names}
    local = worker_module.localise(_Here(str(tmp_path)), Settings(run=run), files).run
    for name in input_file_fields("file"):
        assert getattr(local, name) == f"local/{getattr(run, name)}"
    for name in input_file_fields("files"):
        assert getattr(local, name) == tuple(f"local/{p}" for p in getattr(run, name))
    assert local.output.startswith(str(tmp_path)) and local.output.endswith("o.png")
    assert local.overwrite and local.quiet
