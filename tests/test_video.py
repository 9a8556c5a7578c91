"""video.py end to end on a 4-frame 48 px clip with the tiny network: frames and mp4 in
and out, the frame rate kept, less flicker than independent transfer, resuming after an
interrupt, and every bad input refused in one line before any network is built."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import vgg
import video
from neural_style_tf import coarse_to_fine
from neural_style_tf.apps import video as v
from neural_style_tf.errors import EXIT_INTERRUPTED, EXIT_USAGE
from neural_style_tf.tf_runtime import import_tensorflow

FRAMES = 4
SIZE = (36, 48)  # height, width
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "video.py")


def pan(count=FRAMES, size=SIZE, step=2, seed=0):
    """A camera panning right over a smooth random scene, `step` px a frame, uint8 frames."""
    rng = np.random.default_rng(seed)
    scene = rng.uniform(0, 255, (size[0], size[1] + step * count, 3))
    scene = np.stack([ndimage.gaussian_filter(scene[..., c], 1.5) for c in range(3)], axis=-1)
    scene = 255 * (scene - scene.min()) / (scene.max() - scene.min())
    return [scene[:, i * step:i * step + size[1]].astype(np.uint8) for i in range(count)]


@pytest.fixture
def clip(tmp_path):
    """The pan as numbered PNGs in a folder, and as an mp4 at 12 fps; a style image."""
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = pan()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{i + 1}.png")
    mp4 = tmp_path / "clip.mp4"
    with imageio.get_writer(mp4, format="FFMPEG", fps=12, codec="libx264", quality=10, macro_block_size=1,
                            ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)
    style = tmp_path / "style.png"
    stripes = np.zeros((24, 24, 3), np.uint8)
    stripes[:, ::4] = (250, 200, 20)
    stripes[::5] = (20, 60, 200)
    Image.fromarray(stripes).save(style)
    return {"folder": str(folder), "mp4": str(mp4), "style": str(style), "dir": tmp_path}


def run(argv, capsys):
    try:
        code = video.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    _, err = capsys.readouterr()
    return code, err


def args(clip, tiny_net_path, source, output, *extra):
    return ["--network", tiny_net_path, "--input", clip[source], "--styles", clip["style"], "--output", output,
            "--iterations", 12, "--frame-iterations", 6, "--seed", 3, "--quiet", *extra]


def summary_of(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def frame_files(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("frame_") and f.endswith(".png"))


# ---------------------------------------------------------------- end to end


@pytest.fixture
def graphs_built(monkeypatch):
    """[count]: the TensorFlow graphs made from now on (objectives' and targets')."""
    tf = import_tensorflow()
    count = [0]

    class Counted(tf.Graph):
        def __init__(self, *a, **k):
            count[0] += 1
            super().__init__(*a, **k)

    monkeypatch.setattr(tf, "Graph", Counted)
    return count


def test_frames_in_frames_out_with_less_flicker_than_independent_transfer(clip, tiny_net_path, capsys, graphs_built):
    """Frames in and out, less flicker than independent frames; and every frame after the
    first reuses the first frame's graphs: one objective and one target graph for the
    clip (video.py retargets them), in either mode."""
    out, independent = clip["dir"] / "out", clip["dir"] / "independent"
    # The tiny random network's content and style terms are ~1e5 (the embedded network's:
    # ~1e2), so the temporal weight that matters here is ~1e3 times the default.
    code, err = run(args(clip, tiny_net_path, "folder", out, "--temporal-weight", 3e4), capsys)
    assert code == 0, err
    assert frame_files(out) == [f"frame_{i:05d}.png" for i in range(1, FRAMES + 1)]
    assert all(Image.open(out / f).size == (SIZE[1], SIZE[0]) for f in frame_files(out))
    summary = summary_of(out / "summary.json")
    assert summary["frames"] == FRAMES and summary["stop"] == "completed" and summary["mode"] == "temporal"
    frames = summary["per_frame"]
    assert frames[0]["flicker"] is None and all(f["flicker"] is not None for f in frames[1:])
    assert "temporal" not in frames[0]["terms"] and all(f["terms"]["temporal"] > 0 for f in frames[1:])
    assert [f["iterations"] for f in frames] == [12, 6, 6, 6]
    assert f"flicker {summary['flicker']:.3f}" in err
    assert graphs_built == [2]

    code, err = run(args(clip, tiny_net_path, "folder", independent, "--independent"), capsys)
    assert code == 0, err
    alone = summary_of(independent / "summary.json")
    assert alone["mode"] == "independent" and [f["iterations"] for f in alone["per_frame"]] == [12] * FRAMES
    assert all("temporal" not in f["terms"] for f in alone["per_frame"])
    assert graphs_built == [4]
    assert summary["flicker"] < 0.5 * alone["flicker"], (summary["flicker"], alone["flicker"])


def test_mp4_in_mp4_out_keeps_the_frame_rate(clip, tiny_net_path, capsys):
    out = clip["dir"] / "styled.mp4"
    code, err = run(args(clip, tiny_net_path, "mp4", out, "--width", 32), capsys)
    assert code == 0, err
    meta = iio.immeta(out, plugin="FFMPEG")
    assert meta["fps"] == pytest.approx(12) and meta["size"] == (32, 24)
    assert len(list(iio.imiter(out, plugin="FFMPEG"))) == FRAMES
    assert len(frame_files(clip["dir"] / "styled.frames")) == FRAMES
    summary = summary_of(clip["dir"] / "styled.json")
    assert summary["fps"] == 12 and summary["frames"] == FRAMES and summary["flicker"] > 0


def test_long_term_consistency_holds_frames_to_earlier_results(clip, tiny_net_path, capsys):
    out = clip["dir"] / "long"
    code, err = run(args(clip, tiny_net_path, "folder", out, "--long-term", 2, 3, "--fill", "noise"), capsys)
    assert code == 0, err
    assert summary_of(out / "summary.json")["frames"] == FRAMES
    # Only the last three raw results are kept for a resume (offsets up to 3).
    assert sorted(os.listdir(out / v.RAW_DIR)) == ["00002.npy", "00003.npy", "00004.npy"]


# ---------------------------------------------------------------- resuming


class InterruptAt:
    """coarse_to_fine.run that raises KeyboardInterrupt (Ctrl-C) when frame `at` starts."""

    real = staticmethod(coarse_to_fine.run)  # the one monkeypatch replaces

    def __init__(self, at=None):
        self.at, self.calls = at, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.real(*a, **k)


def test_ctrl_c_keeps_finished_frames_assembles_them_and_a_rerun_resumes(clip, tiny_net_path, capsys, monkeypatch):
    out = clip["dir"] / "resumed.mp4"
    frames_dir = clip["dir"] / "resumed.frames"
    first = InterruptAt(3)
    monkeypatch.setattr(v.coarse_to_fine, "run", first)
    code, err = run(args(clip, tiny_net_path, "folder", out), capsys)
    assert code == EXIT_INTERRUPTED, err
    assert frame_files(frames_dir) == ["frame_00001.png", "frame_00002.png"]
    assert len(list(iio.imiter(out, plugin="FFMPEG"))) == 2  # what exists, assembled
    assert summary_of(clip["dir"] / "resumed.json")["stop"] == "interrupted"
    assert "run the same command again" in err
    kept = {f: os.stat(frames_dir / f).st_mtime_ns for f in frame_files(frames_dir)}

    second = InterruptAt()
    monkeypatch.setattr(v.coarse_to_fine, "run", second)
    code, err = run(args(clip, tiny_net_path, "folder", out), capsys)
    assert code == 0, err
    assert "resuming after frame 2" in err and second.calls == 2  # only frames 3 and 4 were made
    assert {f: os.stat(frames_dir / f).st_mtime_ns for f in kept} == kept
    assert len(list(iio.imiter(out, plugin="FFMPEG"))) == FRAMES
    summary = summary_of(clip["dir"] / "resumed.json")
    assert summary["frames"] == FRAMES and summary["per_frame"][2]["flicker"] is not None

    # Other settings are not resumed over the frames: one line, and nothing changes.
    code, err = run(args(clip, tiny_net_path, "folder", out, "--temporal-weight", 7), capsys)
    assert code == EXIT_USAGE and "other settings" in err and len(err.strip().splitlines()) == 1
    code, err = run(args(clip, tiny_net_path, "folder", out, "--temporal-weight", 7, "--overwrite"), capsys)
    assert code == 0, err
    assert summary_of(clip["dir"] / "resumed.json")["settings"]["video"]["temporal_weight"] == 7


def _optimizing_frame(log, frame):
    """Whether the JSON-lines log holds an iteration of `frame` (a line after its start line)."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:  # a line being written
            continue
        if record.get("event") == "start" and record.get("frame") == frame:
            return any("iteration" in rest for rest in lines[i + 1:])
    return False


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_keeps_the_finished_frame_and_exits_130(clip, tiny_net_path):
    out = clip["dir"] / "real.mp4"
    state = clip["dir"] / "real.frames" / v.STATE_NAME
    # Frame 1 takes 3 iterations; frame 2 a million Adam steps, still running at the signal.
    log = clip["dir"] / "real.jsonl"  # frame 2's iterations there say it is optimising
    cmd = [sys.executable, SCRIPT] + [str(a) for a in args(clip, tiny_net_path, "folder", out)] + [
        "--iterations", "3", "--frame-iterations", "1000000", "--optimizer", "adam", "--log", str(log)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # A shell without job control starts background jobs with SIGINT ignored (see test_neural_style).
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        deadline = time.monotonic() + 300  # a safety net against a hang, not a timing assertion
        while not (state.exists() and _optimizing_frame(log, 2)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "frame 2 never started optimising"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "kept 1 of 4 frames" in err
    assert frame_files(clip["dir"] / "real.frames") == ["frame_00001.png"]
    assert len(list(iio.imiter(out, plugin="FFMPEG"))) == 1
    assert summary_of(clip["dir"] / "real.json")["stop"] == "interrupted"


# ---------------------------------------------------------------- bad input


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a network was loaded before the input was checked")

    monkeypatch.setattr(vgg, "load_net", refuse)


def bad_inputs(clip):
    junk = clip["dir"] / "junk.mp4"
    junk.write_text("not a video\n")
    empty = clip["dir"] / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here\n")
    mixed = clip["dir"] / "mixed"
    mixed.mkdir()
    for i, size in enumerate([(48, 36), (48, 36), (50, 36)]):
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(mixed / f"{i:03d}.png")
    existing = clip["dir"] / "existing.mp4"
    existing.write_bytes(b"an earlier video")
    return {
        "unreadable video": (["--input", junk], "not a readable video"),
        "missing input": (["--input", clip["dir"] / "nope.mp4"], "no such file"),
        "empty frame folder": (["--input", empty], "no frames"),
        "frames of differing sizes": (["--input", mixed], "different sizes: 000.png is 48x36, 002.png is 50x36"),
        "an image as output": (["--output", clip["dir"] / "out.png"], "give a folder"),
        "an existing video": (["--output", existing], "already exists; pass --overwrite"),
        "the input folder as output": (["--output", clip["folder"]], "is the input folder"),
        "--content": (["--content", clip["style"]], "takes --input"),
        "negative temporal weight": (["--temporal-weight", -1], "--temporal-weight must be"),
        "long-term offset 1": (["--long-term", 1], "--long-term takes"),
        "a transfer flag": (["--iterations", 0], "--iterations must be a positive integer"),
        "a missing style": (["--styles", clip["dir"] / "nope.jpg"], "--styles"),
    }


CASES = ["unreadable video", "missing input", "empty frame folder", "frames of differing sizes", "an image as output",
         "an existing video", "the input folder as output", "--content", "negative temporal weight", "long-term offset 1", "a transfer flag",
         "a missing style"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2_before_any_network(clip, tiny_net_path, capsys, no_network, case):
    change, message = bad_inputs(clip)[case]
    argv = args(clip, tiny_net_path, "folder", clip["dir"] / "out")
    for flag, value in zip(change[::2], change[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    code, err = run(argv, capsys)
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("video.py: error:") and message in lines[0], err
    assert not (clip["dir"] / "out").exists()


def test_help_lists_the_video_flags_and_the_transfer_flags(capsys):
    with pytest.raises(SystemExit) as done:
        video.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for flag in ("--input", "--temporal-weight", "--frame-iterations", "--long-term", "--flow", "--fill",
                 "--independent", "--style-weight", "--optimizer", "--preserve-colors"):
        assert flag in out
    assert not re.search(r"--content(?![-\w])", out)  # each frame is the content; --content-weight stays


def test_tileable_is_refused_in_one_line(clip, tiny_net_path, tmp_path, capsys):
    """--tileable's fade and periodic start belong to a single image's run: a clip refuses it."""
    out = tmp_path / "out"
    code, err = run(args(clip, tiny_net_path, "folder", out, "--tileable"), capsys)
    assert code == 2 and "--tileable" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
