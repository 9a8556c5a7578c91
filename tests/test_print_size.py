"""Which scales are tiled, with what optimizer and budget (print_size.py), and a real run of
the command with tiled scales."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from run_helpers import base_args, run_main

from neural_style_tf import images, print_size
from neural_style_tf.coarse_to_fine import Stage
from neural_style_tf.errors import UsageError
from neural_style_tf.networks import loading
from neural_style_tf.objective import Objective, Problem
from neural_style_tf.settings import LossOptions, OptimizerOptions, RunSettings, Settings
from neural_style_tf.tiled_objective import TiledObjective

LAYERS = ("relu4_2", "relu5_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def settings(**optimizer):
    return Settings(RunSettings(content="c.png", styles=("s.png",), output="o.png"), LossOptions(),
                    OptimizerOptions(**optimizer))


@pytest.fixture(scope="module")
def vgg19():
    return loading.load_net(None)


def test_a_scale_within_the_budget_is_not_tiled_and_one_above_it_is(vgg19):
    stages = [Stage(0, (384, 512), 100), Stage(1, (2880, 3840), 100)]
    planned = print_size.plan(stages, vgg19, settings(), LAYERS)
    assert planned[0].core is None and planned[0].optimizer is None and planned[0].iterations == 100
    big = planned[1]
    assert big.core in print_size.CORES and big.optimizer == "adam"
    assert big.learning_rate == print_size.TILED_LEARNING_RATE
    assert big.iterations == round(100 * 1024 / 3840)
    # The core is the largest whose estimate fits, and the estimate is within the budget.
    fits = print_size.BUDGET_MARGIN * 6 * 2**30
    assert print_size.tiled_bytes(vgg19, big.size, big.core, LAYERS, 0) <= fits
    larger = [c for c in print_size.CORES if c > big.core]
    assert larger and all(print_size.tiled_bytes(vgg19, big.size, c, LAYERS, 0) > fits for c in larger)


def test_tile_size_tiles_every_scale_larger_than_it(vgg19):
    planned = print_size.plan([Stage(0, (96, 128), 10), Stage(1, (192, 256), 10)], vgg19, settings(tile_size=128),
                              LAYERS)
    assert [s.core for s in planned] == [None, 128]


def test_past_the_budget_the_machine_decides(vgg19, monkeypatch):
    # The budget chooses the tiles; a run that cannot meet it goes on in the largest tiles
    # the machine holds, and only what the machine cannot hold is refused, in one line.
    monkeypatch.setattr(print_size.memory, "available_bytes", lambda: 24 * 2**30)
    planned = print_size.plan([Stage(0, (2880, 3840), 10)], vgg19, settings(memory_budget=0.5), LAYERS)
    assert planned[0].core is not None
    assert print_size.tiled_bytes(vgg19, (2880, 3840), planned[0].core, LAYERS, 0) <= 0.7 * 24 * 2**30
    monkeypatch.setattr(print_size.memory, "available_bytes", lambda: 2 * 2**30)
    with pytest.raises(UsageError, match=r"even in tiles of 256 px.*smaller --width") as error:
        print_size.plan([Stage(0, (2880, 3840), 10)], vgg19, settings(memory_budget=0.5), LAYERS)
    assert "\n" not in str(error.value)


def test_the_budget_of_a_scale_falls_with_its_size():
    assert print_size.scale_iterations(100, (768, 1024)) == 100
    assert print_size.scale_iterations(100, (1536, 2048)) == 50
    assert print_size.scale_iterations(100, (5760, 7680)) == print_size.MIN_ITERATIONS
    assert print_size.scale_iterations(5, (5760, 7680)) == 5  # never more than asked


def test_the_tiled_scales_share_one_tile_graph(tiny_network):
    rng = np.random.default_rng(0)
    style = rng.uniform(0, 255, (40, 40, 3)).astype(np.float32)
    objectives = print_size.Objectives({(64, 80): 32, (48, 60): 32})
    try:
        for shape in ((48, 60), (64, 80)):
            problem = Problem.create(tiny_network, rng.uniform(0, 255, shape + (3,)).astype(np.float32), [style],
                                     LossOptions())
            with objectives(problem) as built:
                assert isinstance(built, TiledObjective)
                terms, grad = built.evaluate(problem.content)
                assert grad.shape == (1,) + shape + (3,) and np.isfinite(terms["total"])
        with objectives(Problem.create(tiny_network, style, [style], LossOptions())) as untiled:
            assert isinstance(untiled, Objective)
        assert objectives.built == 1
    finally:
        objectives.close()


def test_the_command_runs_tiled_scales_and_says_so(files, tiny_net_path, tmp_path, capsys):
    output = tmp_path / "out.png"
    code, out, err = run_main(base_args(files, tiny_net_path, output, 4, "--width", 64, "--scales", 2,
                                        "--tile-size", 32, "--coarse-iterations", 3), capsys)
    assert code == 0, err
    assert "adam, ~" in out + err and "tiles of 32 px" in out + err
    image = images.load_image(str(output))
    assert image.shape == (48, 64, 3)
    assert image.std() > 1.0  # a picture, not a flat frame


def test_memory_budget_must_be_positive(files, tiny_net_path, tmp_path, capsys):
    code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "o.png", 2, "--memory-budget", 0), capsys)
    assert code != 0 and "--memory-budget must be positive" in err and "Traceback" not in err


def test_plan_keeps_the_stages_other_fields(vgg19):
    stage = Stage(3, (100, 120), 7)
    assert print_size.plan([stage], vgg19, settings(), LAYERS) == [dataclasses.replace(stage)]


PEAK_SCRIPT = """
import json, os, sys
import numpy as np
from neural_style_tf.tf_runtime import configure_process, import_tensorflow
configure_process()
from neural_style_tf import memory, optimize
from neural_style_tf.networks import loading
from neural_style_tf.objective import Problem
from neural_style_tf.settings import LossOptions, OptimizerOptions
from neural_style_tf.tiled_objective import TiledObjective


def status():
    return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":") for line in open("/proc/self/status"))
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


height, width, core = 384, 640, 256
import_tensorflow()
net = loading.load_net(None)
before = status()
rng = np.random.default_rng(0)
content, style = (rng.uniform(0, 255, (height, width, 3)).astype(np.float32) for _ in range(2))
with TiledObjective(Problem.create(net, content, [style], LossOptions()), core=core) as tiled:
    optimize.minimize(tiled, content, OptimizerOptions(optimizer="adam", iterations=2, learning_rate=2.0))
    tiles = len(tiled.tiles)
parts = memory.estimate_tiled_parts(net, height, width, core, sys.argv[1].split(","))
print(json.dumps({"tiles": tiles, "before": before, "after": status(),
                  "growth": status()["VmHWM"] - before["VmRSS"],
                  "estimate": sum(parts.values()) - parts["tensorflow"]}))
"""


@pytest.mark.slow
def test_the_estimate_of_a_tiled_run_holds_its_measured_peak(tmp_path):
    """The preflight's estimate of the tiled path (memory.estimate_tiled_parts) against a real
    tiled run (VGG-19, 640x384 in 6 tiles of 256, Adam), in a process of its own: the memory
    the run adds to a process that has imported TensorFlow and loaded the network, against the
    estimate less its TensorFlow baseline. Never below it (the preflight would let through what
    does not fit), and not far above. The peak is the process's VmHWM, not getrusage's
    ru_maxrss: that one survives execve, so a child of the test process reported the pytest
    process's own 1.89 GB late in the full suite (against 1.08 GB alone)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, ",".join(LAYERS)], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["tiles"] == 6
    assert measured["growth"] <= measured["estimate"] <= 2.0 * measured["growth"], measured
