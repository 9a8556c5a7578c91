"""worker.py without Ray: a worker's cache of objectives, and a job's inputs made local."""

from __future__ import annotations

import dataclasses

import numpy as np

import stylize
from neural_style_tf.apps import worker as worker_module
from neural_style_tf.apps.worker import Worker
from neural_style_tf.settings import LossOptions, RunSettings, Settings, input_file_fields


def test_a_reweighted_objective_equals_a_new_one(tiny_network):
    rng = np.random.default_rng(1)
    content, style, x = (rng.uniform(0, 255, (16, 20, 3)).astype(np.float32) for _ in range(3))
    first = LossOptions(style_weight=10.0, tv_weight=1.0)
    second = dataclasses.replace(first, content_weight=2.0, style_weight=1000.0, tv_weight=5.0)
    worker = Worker()
    try:
        with worker.make_objective(tiny_network, content, [style], first) as built:
            built.evaluate(x)
        with worker.make_objective(tiny_network, content, [style], second) as reused:
            assert reused is built and worker.counts == {"built": 1, "reused": 1}
            terms, grad = reused.evaluate(x)
        with stylize.Objective(tiny_network, content, [style], second) as fresh:
            fresh_terms, fresh_grad = fresh.evaluate(x)
        assert terms == fresh_terms and np.array_equal(grad, fresh_grad)
        other_layers = dataclasses.replace(second, style_layers=("relu1_1",))
        with worker.make_objective(tiny_network, content, [style], other_layers) as rebuilt:
            assert rebuilt is not built and worker.counts["built"] == 2
    finally:
        worker.close()


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
