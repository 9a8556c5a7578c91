"""neural_style.py end to end: real image files, the tiny network file, real L-BFGS and
Adam; every bad input; Ctrl-C and SIGTERM in a real subprocess; parse(), --help and the
entry point.

The steps of one transfer (signals, non-finite losses, transparency, seeds) are tested
through transfer.run in test_transfer.py; the progress outputs in test_progress.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from run_helpers import CONTENT_SIZE, base_args, read_log, run_main

import stylize
from neural_style_tf import checks, color, images, transfer
from neural_style_tf.errors import EXIT_INTERRUPTED, EXIT_USAGE
from neural_style_tf.networks import calibration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "neural_style.py")


def iteration_rows(log):
    return [row for row in log if "iteration" in row]


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64)


# ---------------------------------------------------------------- end to end


def test_lbfgs_run_decreases_the_loss_logs_every_term_and_has_the_requested_width(files, tiny_net_path, tmp_path, capsys):
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    code, _, err = run_main(base_args(files, tiny_net_path, out, 8, "--width", 20, "--log", log,
                                      "--print-iterations", 4, "--initial-noiseblend", 1), capsys)
    assert code == 0, err
    assert Image.open(out).size == (20, 15)  # 24 * 20 / 32 = 15 rows
    rows = read_log(log)
    assert rows[0]["event"] == "start" and rows[0]["seed"] == 1 and rows[0]["size"] == [15, 20]
    assert rows[-1]["event"] == "end" and rows[-1]["stop_reason"] == "completed"
    its = iteration_rows(rows)
    assert [r["iteration"] for r in its] == list(range(1, 9))
    for r in its:
        assert set(stylize.LOSS_TERMS) | {"evaluations", "seconds"} <= set(r)
        assert r["total"] == pytest.approx(r["content"] + r["style"] + r["tv"], rel=1e-5)
    assert its[-1]["total"] < 0.8 * its[0]["total"]
    assert all(r["evaluations"] >= r["iteration"] for r in its)
    assert rows[-1]["evaluations"] >= its[-1]["evaluations"] and rows[-1]["iterations"] == 8
    # --print-iterations 4: every loss term at iterations 4 and 8, with honest labels.
    printed = [line for line in err.splitlines() if line.startswith("iteration ")]
    assert [line.split()[1] for line in printed] == ["4/8", "8/8"]
    assert all("evaluations" in line and "content" in line and "tv" in line for line in printed)
    assert "wrote" in err and "8 iterations" in err


def test_adam_run_decreases_the_loss_one_evaluation_per_step(files, tiny_net_path, tmp_path, capsys):
    out, log = tmp_path / "out.jpg", tmp_path / "run.jsonl"
    argv = base_args(files, tiny_net_path, out, 8, "--optimizer", "adam", "--log", log)
    argv.remove("--quiet")  # with the progress bar, this once
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert "8/8" in err  # the bar reached the end
    its = iteration_rows(read_log(log))
    assert [r["evaluations"] for r in its] == list(range(1, 9))
    assert its[-1]["total"] < its[0]["total"]
    assert Image.open(out).format == "JPEG" and Image.open(out).size == (32, 24)


def test_two_styles_with_blend_weights(files, tiny_net_path, tmp_path, capsys):
    """Blend weights really weigh the styles: (1, 0) is exactly the first style alone."""
    styles = ["--styles", files["style"], files["style2"]]
    outputs = {}
    for name, extra in (("blend", [*styles, "--style-blend-weights", 1, 3, "--style-scales", 1, 0.5]),
                        ("first-only", [*styles, "--style-blend-weights", 1, 0]),
                        ("single", [])):
        outputs[name] = tmp_path / f"{name}.png"
        log = tmp_path / f"{name}.jsonl"
        code, _, err = run_main(base_args(files, tiny_net_path, outputs[name], 5, "--log", log, *extra), capsys)
        assert code == 0, err
        its = iteration_rows(read_log(log))
        assert its[-1]["total"] < its[0]["total"]
    assert read_log(tmp_path / "blend.jsonl")[0]["loss"]["style_blend_weights"] == [1.0, 3.0]
    assert outputs["first-only"].read_bytes() == outputs["single"].read_bytes()
    assert outputs["blend"].read_bytes() != outputs["single"].read_bytes()


def test_preserve_colors_gives_the_contents_chroma(files, tiny_net_path, tmp_path, capsys):
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    for out, extra in ((plain, []), (kept, ["--preserve-colors"])):
        code, _, err = run_main(base_args(files, tiny_net_path, out, 5, "--initial-noiseblend", 1, *extra), capsys)
        assert code == 0, err
    content = color.rgb_to_ycbcr(load(files["content"]))
    plain_ycc, kept_ycc = color.rgb_to_ycbcr(load(plain)), color.rgb_to_ycbcr(load(kept))
    # Same run (same seed), so the same luminance; the chroma is the content's. Allow for
    # 8-bit rounding, and for the few pixels clipped at 0 or 255.
    assert np.median(np.abs(kept_ycc[..., 0] - plain_ycc[..., 0])) < 1.0
    assert np.median(np.abs(kept_ycc[..., 1:] - content[..., 1:])) < 1.0
    # ... and without --preserve-colors the chroma is clearly not the content's.
    assert np.median(np.abs(plain_ycc[..., 1:] - content[..., 1:])) > 5.0


def test_same_seed_same_output_other_seed_other_output(files, tiny_net_path, tmp_path, capsys):
    """The seed draws the noise of the start image (the default start, the content, has none)."""
    outputs = []
    for i, seed in enumerate((7, 7, 8)):
        out = tmp_path / f"out{i}.png"
        code, _, err = run_main(base_args(files, tiny_net_path, out, 4) + ["--seed", seed, "--initial-noiseblend", 0.5],
                                capsys)
        assert code == 0, err
        assert f"seed: {seed}" in err
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


@pytest.mark.parametrize("extra, starts_at_content", [
    ([], True),  # the default: the content (the classic tool's was noise)
    (["--initial-noiseblend", "1"], False),  # noise, as the classic tool
    (["--preset", "classic"], False),
    (["--initial-noiseblend", "0"], True),  # no --initial and noiseblend below 1: the content
    (["--initial", "{content}"], True),  # --initial without noiseblend: that image, no noise
    (["--initial", "{style2}"], False),
])
def test_initial_image_options(files, tiny_net_path, tmp_path, capsys, extra, starts_at_content):
    # Adam's first row is the loss at the starting image itself.
    log = tmp_path / "run.jsonl"
    extra = [e.format(**files) for e in extra]
    code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "o.png", 1, "--optimizer", "adam",
                                      "--log", log, *extra), capsys)
    assert code == 0, err
    first = iteration_rows(read_log(log))[0]
    # From the content the content loss is 0; from noise or another image it is the
    # content weight times a relative error of order one (31 at the default weight on the
    # tiny network): the gap is many orders, so 1 separates them safely.
    if starts_at_content:
        assert first["content"] < 1e-3
    else:
        assert first["content"] > 1.0


def test_overwrite_replaces_an_existing_output(files, tiny_net_path, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    code, _, err = run_main(base_args(files, tiny_net_path, out, 2, "--overwrite"), capsys)
    assert code == 0, err
    assert Image.open(out).size == (32, 24)


def test_cli_writes_16_bit_png(files, tiny_net_path, tmp_path, capsys):
    import png

    out = tmp_path / "o.png"
    code, _, err = run_main(base_args(files, tiny_net_path, out, 4, "--bit-depth", 16), capsys)
    assert code == 0, err
    _, _, _, info = png.Reader(filename=str(out)).read()
    assert info["bitdepth"] == 16 and info["planes"] == 3
    eight = images.load_image(str(out))
    assert eight.shape == CONTENT_SIZE + (3,)  # Pillow still reads it (as 8 bits)


# ---------------------------------------------------------------- Ctrl-C and SIGTERM in a subprocess


def read_log_lines(path):
    """The complete lines of a log that is still being written."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_a_real_process_writes_the_best_image_and_exits_130(files, tiny_net_path, tmp_path, sig):
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    # Adam never converges early: a million steps are still running when the signal comes.
    cmd = [sys.executable, SCRIPT] + [str(a) for a in base_args(
        files, tiny_net_path, out, 1_000_000, "--optimizer", "adam", "--log", log)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # A shell without job control starts background jobs with SIGINT ignored, and Python
    # keeps an inherited "ignore". Give the child the default disposition, as a terminal does.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        deadline = time.monotonic() + 300  # a safety net against a hang, not a timing assertion
        while not (log.exists() and len(iteration_rows(read_log_lines(log))) >= 3):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no progress in the log"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted: wrote the best image so far to {out}" in err
    with Image.open(out) as img:
        img.verify()
    assert images.load_image(str(out)).shape == CONTENT_SIZE + (3,)
    end = read_log(log)[-1]
    assert end["event"] == "end" and end["stop_reason"] == "interrupted" and end["iterations"] >= 3
    # and the hidden resumable checkpoint, kept for --resume (tests/test_checkpoints.py)
    assert sorted(os.listdir(tmp_path)) == sorted(["content.png", "style.jpg", "style2.png", "out.png", "run.jsonl",
                                                   ".out.png.checkpoint.npz"])
    assert "--resume continues the run" in err


@pytest.mark.slow
def test_a_real_process_ends_with_everything_written(files, tiny_net_path, tmp_path):
    """The command's process ends by os._exit, without the interpreter's teardown
    (lifecycle.exit_process): its status, its image, its whole log and its last line on
    stdout must all be there, as after a normal exit."""
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    args = [str(a) for a in base_args(files, tiny_net_path, out, 3, "--log", log) if a != "--quiet"]
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"wrote {out}")  # the messages go to stderr (lifecycle.say)
    assert images.load_image(str(out)).shape == CONTENT_SIZE + (3,)
    rows = read_log(log)
    assert rows[0]["event"] == "start" and rows[-1]["event"] == "end" and rows[-1]["stop_reason"] == "completed"
    assert len(iteration_rows(rows)) == rows[-1]["iterations"] == 3


def test_ctrl_c_before_the_optimization_is_one_line_and_exit_130(files, tiny_net_path, tmp_path, capsys, monkeypatch):
    def interrupted(settings, network=None, arrays=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer, "load", interrupted)
    out = tmp_path / "out.png"
    code, out_text, err = run_main(base_args(files, tiny_net_path, out, 5), capsys)
    assert code == EXIT_INTERRUPTED == 130
    assert err.strip() == "neural_style.py: interrupted before any image was made"
    assert out_text == "" and not out.exists()


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing touched


def bad_cases():
    """(id, argv changes, fragments the message must contain). `{tmp}` is the test's directory."""
    return [
        ("missing-content", {"--content": "{tmp}/missing.png"}, ["missing.png", "no such file"]),
        ("content-not-an-image", {"--content": "{tmp}/notes.png"}, ["notes.png", "not a readable image"]),
        ("truncated-content", {"--content": "{tmp}/half.png"}, ["half.png", "not a readable image"]),
        ("missing-style", {"--styles": ["{style}", "{tmp}/nostyle.jpg"]}, ["nostyle.jpg", "--styles"]),
        ("content-is-a-directory", {"--content": "{tmp}/adir"}, ["adir", "directory"]),
        ("missing-initial", {"--initial": "{tmp}/noinit.png"}, ["noinit.png", "--initial"]),
        ("output-dir-missing", {"--output": "{tmp}/nodir/out.png"}, ["nodir", "does not exist"]),
        ("output-exists", {"--overwrite": None}, ["existing.png", "--overwrite"]),
        ("unknown-output-extension", {"--output": "{tmp}/out.xyz"}, ["out.xyz", ".xyz"]),
        ("output-is-a-directory", {"--output": "{tmp}/adir.png"}, ["adir.png", "directory"]),
        ("width-0", {"--width": "0"}, ["--width", "0"]),
        ("width-negative", {"--width": "-5"}, ["--width", "-5"]),
        ("width-not-a-number", {"--width": "abc"}, ["--width", "abc"]),
        ("iterations-0", {"--iterations": "0"}, ["--iterations", "0"]),
        ("iterations-negative", {"--iterations": "-1"}, ["--iterations", "-1"]),
        ("style-scales-count", {"--style-scales": ["1", "2"]}, ["--style-scales", "2 values", "1 style"]),
        ("style-scales-zero", {"--style-scales": ["0"]}, ["--style-scales", "0"]),
        ("blend-weights-count", {"--style-blend-weights": ["1", "2", "3"]}, ["--style-blend-weights", "3 values"]),
        ("blend-weights-negative", {"--style-blend-weights": ["-1"]}, ["--style-blend-weights", "-1"]),
        ("bad-style-layer", {"--style-layers": "relu1_1,relu3_l"}, ["relu3_l", "did you mean relu3_1"]),
        ("bad-content-layer", {"--content-layers": "relu4_3"}, ["relu4_3", "did you mean relu4_"]),
        ("empty-style-layers", {"--style-layers": ","}, ["--style-layers", "empty"]),
        ("bad-pooling", {"--pooling": "median"}, ["--pooling", "median"]),
        ("bad-optimizer", {"--optimizer": "sgd"}, ["--optimizer", "sgd"]),
        ("network-not-weights", {"--network": "{tmp}/net.mat"}, ["net.mat"]),
        ("network-missing", {"--network": "{tmp}/nonet.mat"}, ["nonet.mat", "does not exist"]),
        ("network-unknown-format", {"--network": "{tmp}/net.bin"}, ["net.bin", "unknown weights format"]),
        ("noiseblend-above-1", {"--initial-noiseblend": "2"}, ["--initial-noiseblend", "2"]),
        ("negative-style-weight", {"--style-weight": "-1"}, ["--style-weight", "-1"]),
        ("beta1-1", {"--beta1": "1"}, ["--beta1", "1"]),
        ("learning-rate-0", {"--learning-rate": "0"}, ["--learning-rate", "0"]),
        ("checkpoint-without-placeholder", {"--checkpoint-output": "{tmp}/ck.png", "--checkpoint-iterations": "2"},
         ["ck.png", "placeholder"]),
        ("checkpoint-without-iterations", {"--checkpoint-output": "{tmp}/ck_{{}}.png"}, ["--checkpoint-iterations"]),
        ("checkpoint-iterations-0", {"--checkpoint-output": "{tmp}/ck_%d.png", "--checkpoint-iterations": "0"},
         ["--checkpoint-iterations", "0"]),
        ("log-dir-missing", {"--log": "{tmp}/nologdir/run.jsonl"}, ["nologdir", "--log"]),
        ("seed-negative", {"--seed": "-1"}, ["--seed", "-1"]),
        ("style-scale-infinite", {"--style-scales": ["inf"]}, ["--style-scales", "inf"]),
        ("style-weight-nan", {"--style-weight": "nan"}, ["--style-weight", "nan"]),
        ("blend-weight-nan", {"--style-blend-weights": ["nan"]}, ["--style-blend-weights", "nan"]),
        ("layer-weight-exp-negative", {"--style-layer-weight-exp": "-2"}, ["--style-layer-weight-exp", "-2"]),
        ("log-is-a-directory", {"--log": "{tmp}/adir"}, ["adir", "--log", "is a directory"]),
        ("content-weight-blend-above-1", {"--content-weight-blend": "1.5"}, ["--content-weight-blend", "1.5"]),
        ("missing-required", {"--content": "DROP"}, ["--content", "required"]),
    ]


@pytest.mark.parametrize("changes, fragments", [c[1:] for c in bad_cases()], ids=[c[0] for c in bad_cases()])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(files, tiny_net_path, tmp_path, capsys, changes, fragments):
    (tmp_path / "notes.png").write_text("not a picture\n")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "net.mat").write_text("these are not weights\n")
    (tmp_path / "net.bin").write_bytes(b"\x00" * 64)
    existing = tmp_path / "existing.png"
    images.save_image(str(existing), np.full((4, 4, 3), 99.0))
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path) if (tmp_path / p).is_file()}
    listing = sorted(os.listdir(tmp_path))

    args = {"--network": tiny_net_path, "--content": files["content"], "--styles": [files["style"]],
            "--output": str(existing), "--iterations": "3", "--overwrite": [], "--quiet": []}
    for key, value in changes.items():
        if value is None:
            del args[key]
        else:
            args[key] = value
    argv = []
    for key, value in args.items():
        if value == "DROP":
            continue
        values = value if isinstance(value, list) else [value]
        argv += [key] + [v.format(tmp=tmp_path, style=files["style"]) for v in values]

    code, out, err = run_main(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert sorted(os.listdir(tmp_path)) == listing  # nothing written, no temporary file left
    assert {p: (tmp_path / p).read_bytes() for p in before} == before


def test_a_content_too_thin_for_the_network_is_refused_up_front(files, tiny_net_path, tiny_network, tmp_path,
                                                                capsys):
    """200x2 px: the TV term of a side of 1-2 px is (nearly) a mean over nothing, and the
    deepest layer's features describe one pixel padded with zeros. This used to end in
    "loss became nan at evaluation 1" (exit 1); it is refused before any graph is built,
    naming the minimum size, and a content at that minimum runs."""
    need = checks.minimum_side(tiny_network, ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"))
    assert need > 2  # relu5_1 sits behind 4 poolings of the tiny net
    thin = tmp_path / "thin.png"
    Image.fromarray(np.full((2, 200, 3), 128, np.uint8)).save(thin)
    out = tmp_path / "out.png"
    argv = base_args(files, tiny_net_path, out, 5, "--scales", 1)  # one scale: the output's own size is checked
    argv[argv.index("--content") + 1] = str(thin)
    code, _, err = run_main(argv, capsys)
    assert code == EXIT_USAGE == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "nan" not in err.lower()
    # The network's line, then the refusal: before the seed, the graph or any evaluation.
    assert len(lines) == 2 and lines[0].startswith("network: ")
    assert lines[1].startswith("neural_style.py: error: the output would be 200x2 px")
    assert "relu5_1" in lines[1] and f"at least {need} px" in lines[1] and "--width" in lines[1]
    assert not out.exists()
    # One pixel less than the minimum is refused too; the minimum itself runs.
    for height, status in ((need - 1, EXIT_USAGE), (need, 0)):
        Image.fromarray(np.full((height, 200, 3), 128, np.uint8)).save(thin)
        code, _, err = run_main(argv, capsys)
        assert code == status, (height, err)
    assert out.exists()


def test_an_error_of_a_network_loader_reaches_the_user_as_one_line(files, tiny_net_path, tmp_path, capsys,
                                                                  monkeypatch):
    """The paper's preset normalises the network on the shipped calibration images; when
    they are missing, the loader's NetworkError is one line and exit 2, not a traceback."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty = tmp_path / "no-calibration"
    empty.mkdir()
    monkeypatch.setattr(calibration, "DATA_DIR", str(empty))
    out = tmp_path / "out.png"
    code, _, err = run_main(base_args(files, tiny_net_path, out, 2, "--preset", "gatys2016", "--width", 32), capsys)
    assert code == EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("neural_style.py: error: calibration images: none found in ")
    assert str(empty) in lines[-1]
    # Only the network line came before it: the error is one line of its own.
    assert len(lines) == 2 and lines[0].startswith("network: ")
    assert not out.exists()


@pytest.mark.slow
def test_validation_fails_before_tensorflow_is_imported(files, tmp_path):
    """A typo costs about a second: the checks run without importing TensorFlow."""
    code = (
        "import sys, neural_style\n"
        f"rc = neural_style.main(['--content', {files['content']!r}, '--styles', {files['style']!r},"
        f" '--output', {str(tmp_path / 'out.png')!r}, '--width', '0'])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "neural_style.py: error: --width must be a positive integer, not 0"
