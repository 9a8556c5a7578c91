"""The installed tool: `pip install .` into a fresh virtual environment, then the
console scripts run from another directory, with the checkout nowhere on sys.path.

The virtual environment sees the test interpreter's packages (--system-site-packages),
so TensorFlow and the rest are not installed again; only this project is (--no-deps).
It is built once per session (module fixture). The first test checks pyproject.toml
itself and needs no installation.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import site
import subprocess
import sys
import time

import numpy as np
import pytest
import weights_factory
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTRIBUTION = "neural-style-tf"
PY_MODULES = ["neural_style", "stylize", "vgg", "video"]
PACKAGES = ["neural_style_tf", "neural_style_tf.apps", "neural_style_tf.networks"]
SCRIPTS = {
    "neural-style": "neural_style:console_main",
    "neural-style-video": "video:console_main",
    "neural-style-compare": "neural_style_tf.apps.compare:main",
    "neural-style-reproduce": "neural_style_tf.apps.reproduce:main",
    "neural-style-benchmark": "neural_style_tf.apps.benchmark:main",
    "neural-style-batch": "neural_style_tf.apps.batch:main",
    "neural-style-vgg": "vgg:main",
}
# Top-level .py files of the checkout that are deliberately not installed: shims that run
# the experiment commands from a checkout (installed, they are the neural-style-* scripts).
CHECKOUT_SHIMS = {"compare", "reproduce", "benchmark", "batch"}
CALIBRATION_DIR = os.path.join(ROOT, "neural_style_tf", "data", "calibration")
BIN = "Scripts" if os.name == "nt" else "bin"
# Untracked, ignored things a copy of the checkout must leave out (when git is unavailable).
COPY_IGNORE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "out", "runs")


# ---------------------------------------------------------------- pyproject.toml, statically


def test_pyproject_declares_the_layout():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        config = tomllib.load(f)
    project, setuptools = config["project"], config["tool"]["setuptools"]
    assert project["scripts"] == SCRIPTS
    assert setuptools["py-modules"] == PY_MODULES
    assert setuptools["packages"] == PACKAGES
    top_level = {n[:-3] for n in os.listdir(ROOT) if n.endswith(".py")}
    assert top_level - set(PY_MODULES) == CHECKOUT_SHIMS, "a top-level module neither installed nor a known shim"
    globs = setuptools["package-data"]["neural_style_tf"]
    shipped = [n for n in os.listdir(CALIBRATION_DIR) if not n.startswith(".")]
    assert len([n for n in shipped if n.endswith(".png")]) == 9
    unmatched = [n for n in shipped if not any(fnmatch.fnmatch(f"data/calibration/{n}", g) for g in globs)]
    assert not unmatched, f"calibration files package-data leaves out: {unmatched}"
    # ruff's target-version is requires-python's lower bound.
    lowest = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"]).groups()
    assert config["tool"]["ruff"]["target-version"] == "py" + "".join(lowest)
    pytest_options = config["tool"]["pytest"]["ini_options"]
    assert {".", "tests"} <= set(pytest_options["pythonpath"])
    assert any(m.startswith("slow:") for m in pytest_options["markers"])


def test_every_script_target_exists():
    import importlib

    for script, target in SCRIPTS.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function, None)), script


# ---------------------------------------------------------------- the installation


def _env(**extra):
    """The environment of every subprocess: no PYTHONPATH, so the checkout is not importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def _run(command, cwd, env, timeout=300):
    return subprocess.run([str(c) for c in command], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)


def _checked(done, what):
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _copy_checkout(dest):
    """The working tree (tracked and untracked files, .gitignore respected) into `dest`, so
    that building leaves no build/ or *.egg-info in the checkout."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*COPY_IGNORE))
        return
    for name in filter(None, listed):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source):  # a tracked file deleted in the working tree is skipped
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))


def _build_isolation_needed(python, env):
    """Whether the venv's setuptools is too old for pyproject.toml's build requirement.

    If it is recent enough, `--no-build-isolation` builds offline; else pip fetches
    setuptools from the package index into an isolated build environment.
    """
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        match = re.search(r'"setuptools>=(\d+)', f.read())
    needed = int(match.group(1)) if match else 0
    probe = "import setuptools; print(setuptools.__version__)"
    done = _run([python, "-c", probe], os.path.dirname(python), env)
    if done.returncode != 0:
        return True
    return int(re.match(r"\d+", done.stdout.strip()).group()) < needed


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv with the project installed; a work folder with a tiny network and two images."""
    base = tmp_path_factory.mktemp("packaging")
    started = time.perf_counter()
    source, venv, work = base / "source", base / "venv", base / "work"
    _copy_checkout(source)
    env = _env()
    _checked(_run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], base, env),
             "python -m venv")
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    if sys.prefix != sys.base_prefix:
        # The tests run in a venv themselves: --system-site-packages sees the base
        # interpreter's packages, not this venv's, so add those after the new venv's own.
        purelib = _checked(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                base, env), "sysconfig").stdout.strip()
        with open(os.path.join(purelib, "_outer_site_packages.pth"), "w", encoding="utf-8") as f:
            f.write("\n".join(site.getsitepackages()) + "\n")
    if _run([python, "-m", "pip", "--version"], base, env).returncode != 0:
        _checked(_run([python, "-m", "ensurepip"], base, env), "ensurepip")
    isolation = _build_isolation_needed(python, env)
    command = [python, "-m", "pip", "install", "--no-deps", "--quiet"]
    command += [] if isolation else ["--no-build-isolation"]
    _checked(_run(command + [source], base, env, timeout=600), "pip install")
    work.mkdir()
    weights_factory.make_mat(work / "tiny.mat", layout="new", blocks=weights_factory.TINY_VGG_BLOCKS,
                             channels=weights_factory.TINY_VGG_CHANNELS, seed=0)
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(work / name)
    run_env = _env(XDG_CACHE_HOME=str(base / "cache"), KERAS_HOME=str(base / "keras"))
    print(f"\nvenv built and installed in {time.perf_counter() - started:.1f} s "
          f"({'isolated build' if isolation else '--no-build-isolation'})")
    return {"venv": venv, "python": python, "bin": venv / BIN, "work": work, "env": run_env, "base": base}


def neural_style(installed, *args, script="neural-style", timeout=300):
    """Run an installed console script in the work folder (not the checkout)."""
    return _run([installed["bin"] / script, *args], installed["work"], installed["env"], timeout=timeout)


def _tiny_run(installed, output, *extra, network="tiny.mat"):
    return neural_style(installed, "--content", "c.png", "--styles", "s.png", "--output", output,
                        "--network", network, "--width", "32", "--iterations", "2", "--quiet", *extra)


def _assert_wrote(installed, done, output):
    _checked(done, "neural-style")
    assert "Traceback" not in done.stderr, done.stderr
    path = installed["work"] / output
    assert path.is_file(), f"no {output}:\n{done.stdout}\n{done.stderr}"
    with Image.open(path) as image:
        assert image.size == (32, 24)


_INSTALLED_FILES = """
import importlib, importlib.metadata as md, json
files = [str(f) for f in md.files("neural-style-tf")]
where = {m: importlib.import_module(m).__file__ for m in ("neural_style", "stylize", "vgg", "video", "neural_style_tf")}
print(json.dumps({"files": files, "where": where}))
"""


@pytest.mark.slow
def test_only_the_top_level_modules_and_the_package_are_installed(installed):
    done = _checked(_run([installed["python"], "-c", _INSTALLED_FILES], installed["work"], installed["env"]),
                    "importlib.metadata")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    ours = {f"{m}.py" for m in PY_MODULES} | {"neural_style_tf"}
    stray, scripts = [], set()
    for name in report["files"]:
        parts = name.replace("\\", "/").split("/")
        if parts[0] == "..":
            scripts.add(os.path.splitext(parts[-1])[0])  # ../../../bin/neural-style
        elif parts[0] == "__pycache__":
            if parts[-1].split(".")[0] not in PY_MODULES:
                stray.append(name)
        elif parts[0] not in ours and not parts[0].endswith(".dist-info"):
            stray.append(name)
    assert not stray, f"installed at the top level of site-packages besides {sorted(ours)}: {stray}"
    assert scripts == set(SCRIPTS)
    shipped = {f"neural_style_tf/data/calibration/{n}" for n in os.listdir(CALIBRATION_DIR)}
    assert shipped <= set(report["files"]), sorted(shipped - set(report["files"]))
    venv = os.path.realpath(installed["venv"])
    for module, path in report["where"].items():
        assert os.path.realpath(path).startswith(venv + os.sep), f"{module} imported from {path}, not the venv"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_has_help(installed, script):
    done = _checked(neural_style(installed, "--help", script=script), f"{script} --help")
    assert "usage:" in done.stdout


@pytest.mark.slow
def test_a_tiny_run(installed):
    _assert_wrote(installed, _tiny_run(installed, "out.png"), "out.png")


@pytest.mark.slow
def test_the_gatys2016_preset_finds_the_shipped_calibration_images(installed):
    # --preset gatys2016 normalises the network on the calibration images inside the
    # installed package; the checkout's examples/ is nowhere in reach.
    _assert_wrote(installed, _tiny_run(installed, "preset.png", "--preset", "gatys2016"), "preset.png")


_TINY_KERAS = """
import sys
import keras

model = keras.Sequential([
    keras.Input((None, None, 3)),
    keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
    keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2"),
])
model.save(sys.argv[1])
"""


@pytest.mark.slow
def test_a_tiny_keras_model(installed):
    path = installed["work"] / "m.keras"
    env = dict(installed["env"], TF_CPP_MIN_LOG_LEVEL="2")
    _checked(_run([sys.executable, "-c", _TINY_KERAS, path], installed["work"], env), "making m.keras")
    done = _tiny_run(installed, "keras.png", "--content-layers", "c2", "--style-layers", "c1,c2", network="m.keras")
    _assert_wrote(installed, done, "keras.png")


@pytest.mark.slow
@pytest.mark.parametrize("name, text", [("not_a_network.txt", "not a network\n"),
                                        ("broken.mat", "not a MATLAB file\n")])
def test_a_network_loader_error_is_one_line(installed, name, text):
    (installed["work"] / name).write_text(text)
    done = _tiny_run(installed, f"never_{name}.png", network=name)
    assert done.returncode == 2, f"{done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("neural_style.py: error:"), done.stderr
    assert not (installed["work"] / f"never_{name}.png").exists()
