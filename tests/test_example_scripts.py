"""The scripts under examples/ run as the docs show them, `python examples/NAME.py`, from a
checkout where the package is not installed: each finds the package beside examples/.
(examples/video_clip.py did not, and `python examples/video_clip.py frames clip/`, the
video page's first command, stopped with ModuleNotFoundError.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# every script with a command line (argparse); examples/reproduce/style_share.py takes bare sizes
SCRIPTS = sorted(
    os.path.relpath(os.path.join(folder, name), ROOT)
    for folder, _, names in os.walk(os.path.join(ROOT, "examples"))
    for name in names
    if name.endswith(".py") and "argparse" in open(os.path.join(folder, name), encoding="utf-8").read()
    or name == "quality_panel.py"
)


def test_the_list_of_scripts_is_not_empty():
    assert "examples/video_clip.py" in SCRIPTS and len(SCRIPTS) >= 7


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_prints_its_help_without_the_package_installed(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # from another folder, so the working directory is not what it finds
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.startswith("usage:"), done.stdout[:200]


@pytest.mark.slow
def test_evaluation_memory_replays_a_traced_evaluation(tmp_path):
    """examples/evaluation_memory.py on a small image: a positive peak, and the nodes that
    held it, which add up to no more than the peak."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "evaluation_memory.py"), "--size", "64x48",
                           "--runs", "1", "--top", "50"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    lines = done.stdout.splitlines()
    assert lines[0].endswith("64x48") and lines[1].startswith("evaluation 1: ")
    peak = float(lines[1].split(": ")[1].split(" MB")[0])
    held = [float(line.split(" MB")[0]) for line in lines[2:]]
    assert peak > 0 and held and sum(held) <= peak + 0.1 * len(held)
