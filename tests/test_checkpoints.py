"""checkpoints.py and --resume: the file (atomic, lossless), the fingerprint, a real run
killed with SIGKILL and resumed at the right scale, the refusals, Ctrl-C, and no
checkpoint left after a finished run."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from run_helpers import base_args, read_log, run_main, sigterm_at_iteration

import neural_style
from neural_style_tf import checkpoints, images
from neural_style_tf.coarse_to_fine import Position
from neural_style_tf.errors import EXIT_INTERRUPTED, EXIT_USAGE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "neural_style.py")
META = {"fingerprint": {"run": {"content": "abc"}}, "digest": "d", "seed": 1, "stages": [[4, 5, 6]]}


def position(value=10.0, stage=0, iterations=3, finished=False):
    image = np.full((4, 5, 3), value, np.float32)
    image[0, 0] = [0.1234567, 254.99, 1e-3]  # values a 16-bit PNG could not keep
    return Position(stage, iterations, iterations + 1, finished, image, {"total": 2.5, "style": 1.0},
                    (iterations + 7, iterations + 9, 1.5))


# ---------------------------------------------------------------- the file


def test_a_checkpoint_keeps_the_image_exactly_and_where_the_run_stands(tmp_path):
    path = checkpoints.path_for(str(tmp_path / "out.png"))
    assert os.path.basename(path) == ".out.png.checkpoint.npz" and os.path.dirname(path) == str(tmp_path)
    saved = position(finished=True)
    checkpoints.save(path, META, saved)
    meta, loaded = checkpoints.load(path)
    np.testing.assert_array_equal(loaded.image, saved.image)  # float32, bit for bit
    assert loaded.image.dtype == np.float32
    assert dataclasses.replace(loaded, image=None) == dataclasses.replace(saved, image=None)
    assert meta["seed"] == 1 and meta["stages"] == [[4, 5, 6]] and meta["digest"] == "d"


def test_a_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = checkpoints.path_for(str(tmp_path / "out.png"))
    checkpoints.save(path, META, position(10.0))
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        # At the rename the temporary file beside it is already a whole checkpoint.
        seen.append((os.path.dirname(src), dst, checkpoints.load(src)[1].image[1, 1, 0]))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    checkpoints.save(path, META, position(20.0))
    assert seen == [(str(tmp_path), path, 20.0)]

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(path, META, position(30.0))
    # The write failed half-way: the previous checkpoint is whole, no temporary file is left.
    assert checkpoints.load(path)[1].image[1, 1, 0] == 20.0
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    # A kill during a write leaves its temporary file: removing the checkpoint removes it too.
    (tmp_path / f".{os.path.basename(path)}.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "other.tmp").write_bytes(b"not ours")
    checkpoints.remove(path)
    assert os.listdir(tmp_path) == ["other.tmp"]


def test_an_unreadable_checkpoint_is_one_usage_line(tmp_path):
    path = tmp_path / ".out.png.checkpoint.npz"
    path.write_bytes(b"half a file")
    with pytest.raises(checkpoints.UsageError, match="cannot be read") as exc:
        checkpoints.load(str(path))
    assert "\n" not in str(exc.value)


def test_the_fingerprint_follows_the_inputs_content_not_their_paths_or_the_presentation(files, tmp_path):
    def parse(*extra, content=files["content"]):
        return neural_style.parse(["--content", content, "--styles", files["style"],
                                   "--output", str(tmp_path / "o.png"), *extra])

    base = checkpoints.fingerprint(parse())
    moved = tmp_path / "moved.png"
    moved.write_bytes(open(files["content"], "rb").read())
    assert checkpoints.fingerprint(parse(content=str(moved))) == base
    # what does not change the image, and the seed (checked on its own)
    assert checkpoints.fingerprint(parse("--quiet", "--checkpoint-every", "3", "--seed", "4")) == base
    changed = checkpoints.fingerprint(parse("--iterations", "7", "--eps", "1e-5"))
    assert checkpoints.differences(base, changed) == ["--eps", "--iterations"]
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(moved)
    assert checkpoints.differences(base, checkpoints.fingerprint(parse(content=str(moved)))) == ["--content"]


def test_the_resume_line_names_the_scale_and_the_iterations_done():
    from neural_style_tf.coarse_to_fine import Stage
    stages = [Stage(0, (24, 32), 10), Stage(1, (48, 64), 100), Stage(2, (96, 128), 100)]
    assert checkpoints.resume_line(position(stage=1, iterations=40), stages) == \
        "resuming at scale 2/3 (64x48) after 40 of 100 iterations"
    assert checkpoints.resume_line(position(stage=0, iterations=10, finished=True), stages) == \
        "resuming at scale 2/3 (64x48) after 0 of 100 iterations"
    assert "after the last scale" in checkpoints.resume_line(position(stage=2, finished=True), stages)


# ---------------------------------------------------------------- real runs


def start(cmd, tmp_path):
    return subprocess.Popen(cmd, cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(proc, path, ready):
    """SIGKILL `proc` as soon as the checkpoint at `path` satisfies `ready(position)`: (its
    Position, proc's stderr)."""
    deadline = time.monotonic() + 120  # a safety net against a hang, not a timing assertion
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        if os.path.exists(path):
            found = checkpoints.load(path)[1]  # whole whenever it is there: it is written atomically
            if ready(found):
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return checkpoints.load(path)[1], err


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint_at_the_right_scale(files, tiny_net_path,
                                                                                       tmp_path):
    out = tmp_path / "out.png"
    path = checkpoints.path_for(str(out))
    cmd = [sys.executable, SCRIPT] + [str(a) for a in base_args(
        files, tiny_net_path, out, 100, "--width", 64, "--scales", 2, "--coarse-iterations", 10)]
    # 1. Killed once the first scale's checkpoint is there (only those: --checkpoint-every 0).
    first, _ = kill_when(start(cmd + ["--checkpoint-every", "0"], tmp_path), path, lambda p: True)
    assert (first.stage, first.finished, first.image.shape) == (0, True, (24, 32, 3))
    assert not out.exists()
    # 2. Resumed at scale 2 (the checkpoint's every-N setting may change: it does not change
    # the image), then killed midway through it.
    midway, err = kill_when(start(cmd + ["--resume", "--checkpoint-every", "3"], tmp_path), path,
                            lambda p: p.stage == 1 and not p.finished and p.iterations >= 3)
    assert "resuming at scale 2/2 (64x48) after 0 of 100 iterations" in err
    # 3. Resumed midway: the rest of scale 2's budget, the output written, the checkpoint gone.
    done = subprocess.run(cmd + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming at scale 2/2 (64x48) after {midway.iterations} of 100 iterations" in done.stderr
    assert "Traceback" not in done.stderr and "wrote " in done.stderr
    assert images.load_image(str(out)).shape == (48, 64, 3)
    assert not os.path.exists(path)
    assert sorted(os.listdir(tmp_path)) == ["content.png", "out.png", "style.jpg", "style2.png"]


def one_line(err):
    return err.strip().splitlines()


def test_resume_refuses_in_one_line_without_a_checkpoint_or_with_other_settings(files, tiny_net_path, tmp_path,
                                                                                 capsys, monkeypatch):
    out = tmp_path / "out.png"
    path = checkpoints.path_for(str(out))
    args = base_args(files, tiny_net_path, out, 4)
    code, _, err = run_main(args + ["--resume"], capsys)
    assert code == EXIT_USAGE and len(one_line(err)) == 1 and "--resume: no checkpoint of" in err
    assert "Traceback" not in err and not out.exists()
    # A run killed after its last checkpoint: here, one whose checkpoint was not removed.
    monkeypatch.setattr(checkpoints, "remove", lambda path: None)
    assert run_main(args, capsys)[0] == 0 and os.path.exists(path)
    monkeypatch.undo()
    written = out.read_bytes()
    for extra, names in ((["--style-weight", "7"], "--style-weight"), (["--iterations", "5"], "--iterations"),
                         (["--seed", "2"], "--seed 1, not 2")):
        code, _, err = run_main([a for a in args if a not in ("--seed", 1)] + extra + ["--resume"], capsys)
        assert code == EXIT_USAGE and len(one_line(err)) == 1 and names in err, err
        assert "other settings" in err or "--seed" in err
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(files["content"])  # the photo changed
    code, _, err = run_main(args + ["--resume"], capsys)
    assert code == EXIT_USAGE and "(--content)" in err and len(one_line(err)) == 1
    assert out.read_bytes() == written and os.path.exists(path)  # nothing touched


def test_a_stale_checkpoint_is_replaced_not_used_without_resume(files, tiny_net_path, tmp_path, capsys):
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    path = checkpoints.path_for(str(out))
    checkpoints.save(path, META, position())  # an earlier run's, of other settings
    code, _, err = run_main(base_args(files, tiny_net_path, out, 4, "--log", log), capsys)
    assert code == 0 and "starting again, it will be replaced" in err and "resuming" not in err
    rows = [r for r in read_log(log) if "iteration" in r]
    assert rows[0]["iteration"] == 1 and len(rows) == 4  # the whole budget, from the start
    assert not os.path.exists(path)


def test_checkpoints_are_written_at_each_scales_end_and_every_n_evaluations_and_removed_after(
        files, tiny_net_path, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.png"
    written = []
    real_save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save", lambda path, meta, p: (written.append(p), real_save(path, meta, p)))
    code, _, err = run_main(base_args(files, tiny_net_path, out, 6, "--width", 64, "--scales", 2,
                                      "--coarse-iterations", 4, "--checkpoint-every", 5), capsys)
    assert code == 0, err
    ends = [(p.stage, p.iterations, p.image.shape) for p in written if p.finished]
    assert ends == [(0, 4, (24, 32, 3)), (1, 6, (48, 64, 3))]
    periodic = [p.done[1] for p in written if not p.finished]
    assert periodic and all(b - a >= 5 for a, b in zip([0] + periodic, periodic))
    assert sorted(os.listdir(tmp_path)) == ["content.png", "out.png", "style.jpg", "style2.png"]


def test_ctrl_c_keeps_the_checkpoint_and_resume_goes_on_from_it(files, tiny_net_path, tmp_path, capsys,
                                                                monkeypatch):
    sigterm_at_iteration(monkeypatch, 3)
    out = tmp_path / "out.png"
    args = base_args(files, tiny_net_path, out, 8, "--checkpoint-every", 0)
    code, _, err = run_main(args, capsys)
    assert code == EXIT_INTERRUPTED and "interrupted: wrote the best image so far" in err
    assert "the same command with --resume continues the run" in err
    assert out.exists() and checkpoints.load(checkpoints.path_for(str(out)))[1].iterations == 3
    monkeypatch.undo()
    code, _, err = run_main(args + ["--resume"], capsys)  # the interrupted run's output may be replaced
    assert code == 0, err
    assert "resuming at scale 1/1 (32x24) after 3 of 8 iterations" in err
    assert not os.path.exists(checkpoints.path_for(str(out)))
