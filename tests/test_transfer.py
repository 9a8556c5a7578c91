"""transfer.py: one job from frozen settings to a written image, step by step (load,
check, prepare, record, optimise, write, outcome) and whole (`run`): signals, non-finite
losses, transparency and seeds. Tiny network, images of 16-64 px."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from PIL import Image
from run_helpers import CONTENT_SIZE, base_args, read_log, sigterm_at_iteration

import neural_style
import stylize
from neural_style_tf import images, progress, settings, transfer
from neural_style_tf.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

STYLE_LAYERS = settings.STYLE_LAYERS
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
STYLE = os.path.join(EXAMPLES, "starry_night.jpg")


def parse(argv):
    return neural_style.parse([str(a) for a in argv])


def run(argv, capsys):
    """transfer.run on the settings neural_style.py makes of argv -> (status, stderr)."""
    status = transfer.run(parse(argv))
    return status, capsys.readouterr().err


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64)


def photo(width=40):
    """The example cat photo at `width` px."""
    return images.resize_to_width(images.load_image(os.path.join(EXAMPLES, "skimage_chelsea.jpg")), width)


# ---------------------------------------------------------------- the steps


def test_load_reads_the_network_and_the_images_at_their_file_sizes(files, tiny_net_path, tmp_path, capsys):
    inputs = transfer.load(parse(base_args(files, tiny_net_path, tmp_path / "o.png", 2, "--width", 16)))
    assert inputs.network.path == tiny_net_path
    assert inputs.content.shape == CONTENT_SIZE + (3,) and inputs.alpha is None  # not resized yet
    assert [s.shape for s in inputs.styles] == [(20, 20, 3)]
    assert capsys.readouterr().err.startswith("network: ")


def test_load_refuses_an_unknown_layer_before_announcing_the_network(files, tiny_net_path, tmp_path, capsys):
    with pytest.raises(UsageError, match="relu3_9.*did you mean relu3_1"):
        transfer.load(parse(base_args(files, tiny_net_path, tmp_path / "o.png", 2, "--style-layers", "relu3_9")))
    assert capsys.readouterr().err == ""


def test_check_refuses_a_first_coarse_to_fine_scale_too_small_for_the_network(tiny_net_path, tmp_path, capsys):
    # 48x64 with 4 scales: the first would be 6x8 px, below relu5_1's minimum; 3 scales start at 12x16.
    content = tmp_path / "c.png"
    images.save_image(str(content), np.random.default_rng(0).uniform(0, 255, (48, 64, 3)))
    argv = ["--network", tiny_net_path, "--content", content, "--styles", content, "--output", tmp_path / "o.png",
            "--iterations", 8, "--quiet"]
    settings_4 = parse(argv + ["--scales", 4])
    with pytest.raises(UsageError, match=r"the first coarse-to-fine scale would be 8x6 px.*relu5_1"):
        transfer.check(settings_4, transfer.load(settings_4))
    settings_3 = parse(argv + ["--scales", 3])
    transfer.check(settings_3, transfer.load(settings_3))  # no error


def test_prepare_resizes_resolves_the_tv_weight_and_chooses_a_seed(files, tiny_net_path, tmp_path):
    no_seed = parse(["--network", tiny_net_path, "--content", files["content"], "--styles", files["style"],
                     "--output", tmp_path / "o.png", "--iterations", 9, "--width", 16])
    assert no_seed.run.seed is None and no_seed.loss.tv_weight is None
    job = transfer.prepare(no_seed, transfer.load(no_seed))
    assert job.content.shape == (12, 16, 3) and job.target.shape == (12, 16, 3)
    assert [(s.size, s.iterations) for s in job.stages] == [((12, 16), 9)]
    # No --tv-weight: with the default (relative) W2 loss the network's relative one (a VGG
    # weights file's); the classic 1e2 of a weights file is for the Gram loss.
    assert job.loss.tv_weight == settings.TV_WEIGHT_RELATIVE_VGG and job.network.default_tv_weight == settings.TV_WEIGHT
    assert isinstance(job.seed, int) and 0 <= job.seed < 2**32
    seeds = {transfer.prepare(no_seed, transfer.load(no_seed)).seed for _ in range(3)}
    assert len(seeds) > 1  # a fresh random seed for each run without --seed
    given = parse(base_args(files, tiny_net_path, tmp_path / "o.png", 9, "--tv-weight", 3, "--seed", 5))
    job = transfer.prepare(given, transfer.load(given))
    assert job.loss.tv_weight == 3.0 and job.seed == 5
    assert job.content.shape == CONTENT_SIZE + (3,)


def test_prepare_fills_what_lies_under_full_transparency(tiny_net_path, tmp_path):
    rgb = photo(32)
    alpha = np.ones(rgb.shape[:2], np.float32)
    alpha[:, :8] = 0.0
    rgb[:, :8] = 0.0  # garbage under alpha 0
    content = tmp_path / "rgba.png"
    images.save_image(str(content), rgb, alpha)
    run_settings = parse(["--network", tiny_net_path, "--content", content, "--styles", content,
                          "--output", tmp_path / "o.png", "--quiet"])
    job = transfer.prepare(run_settings, transfer.load(run_settings))
    visible_mean = job.content[:, 8:].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(job.content[:, :8], np.broadcast_to(visible_mean, job.content[:, :8].shape), atol=1e-3)
    np.testing.assert_array_equal(job.alpha, images.load_image(str(content), with_alpha=True)[1])


def test_record_is_the_reproducible_start_of_the_log(files, tiny_net_path, tmp_path):
    run_settings = parse(base_args(files, tiny_net_path, tmp_path / "o.png", 9, "--width", 16, "--seed", 11))
    job = transfer.prepare(run_settings, transfer.load(run_settings))
    record = transfer.record(run_settings, job)
    assert record["seed"] == 11 and record["network_path"] == tiny_net_path
    assert record["size"] == [12, 16] and record["scales"] == [[12, 16, 9]]
    assert record["loss"]["tv_weight"] == settings.TV_WEIGHT_RELATIVE_VGG  # resolved, not None
    assert record["loss"]["style_layers"] == list(STYLE_LAYERS)
    assert record["optimizer"]["iterations"] == 9 and record["styles"] == [files["style"]]
    json.dumps(record)  # it goes into the JSON-lines log as it is


def result(stop_reason, image=True, message="why"):
    return stylize.Result(np.zeros((2, 2, 3), np.float32) if image else None,
                          {"content": 1.0, "style": 2.0, "tv": 3.0, "total": 6.0} if image else None,
                          4, 7, 1.25, stop_reason, message)


@pytest.mark.parametrize("stop_reason, status, says", [
    ("completed", EXIT_OK, "wrote out.png (4 iterations, 7 evaluations, 1.2 s; loss 6)"),
    ("budget", EXIT_OK, "wrote out.png"),
    ("converged", EXIT_OK, "L-BFGS stopped early: why"),
    ("stopped", EXIT_OK, "L-BFGS stopped early: why"),
    ("interrupted", EXIT_INTERRUPTED, "interrupted: wrote the best image so far to out.png"),
    ("nonfinite", EXIT_FAILED, "error: why; wrote the last finite best image to out.png"),
])
def test_outcome_status_and_closing_line(capsys, stop_reason, status, says):
    assert transfer.outcome("out.png", result(stop_reason)) == status
    assert says in capsys.readouterr().err


def test_outcome_without_any_image_fails(capsys):
    assert transfer.outcome("out.png", result("budget", image=False, message="time budget of 0 s reached")) == 1
    assert capsys.readouterr().err.strip() == "error: time budget of 0 s reached; no image was produced"


# ---------------------------------------------------------------- whole runs


def test_lbfgs_stopping_early_reports_scipys_reason(files, tiny_net_path, tmp_path, capsys):
    # Content only, starting at the content: the gradient is zero and L-BFGS-B stops at once.
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    code, err = run(base_args(files, tiny_net_path, out, 30, "--style-weight", 0, "--tv-weight", 0,
                              "--initial-noiseblend", 0, "--log", log), capsys)
    assert code == 0, err
    assert "L-BFGS stopped early: CONVERGENCE" in err and "0 iterations, 1 evaluations" in err
    end = read_log(log)[-1]
    assert end["stop_reason"] == "converged" and "CONVERGENCE" in end["message"]
    np.testing.assert_array_equal(load(out), load(files["content"]))


def test_rgba_content_keeps_its_alpha_in_the_output(files, tiny_net_path, tmp_path, capsys):
    rgba = np.dstack([np.asarray(Image.open(files["content"])), np.full(CONTENT_SIZE, 255, np.uint8)])
    rgba[:, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = tmp_path / "out.png"
    argv = base_args(files, tiny_net_path, out, 2, "--width", 16)
    argv[argv.index("--content") + 1] = str(tmp_path / "rgba.png")
    code, err = run(argv, capsys)
    assert code == 0, err
    written = np.asarray(Image.open(out))
    assert written.shape == (12, 16, 4)
    assert written[:, :3, 3].max() < 30 and written[:, -3:, 3].min() > 225


def rgba_file(path, width=40):
    """A photo with a transparent band, a half-transparent band and one faint pixel."""
    rgb = photo(width)
    h, w = rgb.shape[:2]
    alpha = np.ones((h, w), np.float32)
    alpha[:, : w // 4] = 0.0  # fully transparent band
    alpha[:, w // 4: w // 2] = 0.5  # half transparent band
    alpha[0, -1] = 0.2
    rgb[alpha == 0] = 0.0  # garbage under alpha 0
    images.save_image(str(path), rgb, alpha)
    return np.asarray(Image.open(path))[..., 3]


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_rgba_in_rgba_out_alpha_unchanged(files, tiny_net_path, tmp_path, capsys, ext):
    content = tmp_path / "logo.png"
    alpha_in = rgba_file(content)
    out = tmp_path / f"out{ext}"
    code, err = run(["--content", content, "--styles", STYLE, "--output", out, "--network", tiny_net_path,
                     "--iterations", 10, "--quiet", "--seed", 1], capsys)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.mode == "RGBA"
        written = np.asarray(img)
    np.testing.assert_array_equal(written[..., 3], alpha_in)
    # the style was transferred to the RGB: the visible part changed
    visible = alpha_in == 255
    change = np.abs(written[..., :3][visible].astype(float) - photo()[visible]).mean()
    # 10 iterations, not 4: with every convolution replicate-padded the tiny random network's
    # deep 1-2 px maps dominate its loss and L-BFGS's first steps are short (4 iterations
    # changed the visible part by 1.5 grey levels, 10 by 13-15; a copy changes it by 0)
    assert change > 2


def test_seed_gives_byte_identical_outputs(files, tiny_net_path, tmp_path, capsys):
    content = tmp_path / "c.png"
    images.save_image(str(content), photo())
    outputs = {}
    for name, seed in (("a", 42), ("b", 42), ("other", 43)):
        outputs[name] = tmp_path / f"{name}.png"
        # noise initialisation, so the seed matters
        code, err = run(["--content", content, "--styles", STYLE, "--output", outputs[name], "--network",
                         tiny_net_path, "--iterations", 4, "--quiet", "--seed", seed, "--initial-noiseblend", 1],
                        capsys)
        assert code == 0, err
    assert outputs["a"].read_bytes() == outputs["b"].read_bytes()
    assert outputs["a"].read_bytes() != outputs["other"].read_bytes()


def test_logged_seed_reproduces_the_run(files, tiny_net_path, tmp_path, capsys):
    content = tmp_path / "c.png"
    images.save_image(str(content), photo())
    first, again, log = tmp_path / "first.png", tmp_path / "again.png", tmp_path / "run.jsonl"
    common = ["--content", content, "--styles", STYLE, "--network", tiny_net_path, "--iterations", 4,
              "--quiet"]
    code, err = run(common + ["--output", first, "--log", log], capsys)  # no --seed: a random one
    assert code == 0, err
    seed = read_log(log)[0]["seed"]
    assert f"seed: {seed}" in err
    code, err = run(common + ["--output", again, "--seed", seed], capsys)
    assert code == 0, err
    assert first.read_bytes() == again.read_bytes()


def test_sigterm_during_lbfgs_writes_the_best_image_and_exits_130(files, tiny_net_path, tmp_path, capsys, monkeypatch):
    """In-process: the real SIGTERM handler, raised from inside the L-BFGS callback."""
    sigterm_at_iteration(monkeypatch, 3)
    out, log = tmp_path / "out.png", tmp_path / "run.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    code, err = run(base_args(files, tiny_net_path, out, 50, "--log", log), capsys)
    assert code == 130, err
    assert "interrupted: wrote the best image so far" in err
    assert read_log(log)[-1]["stop_reason"] == "interrupted" and read_log(log)[-1]["iterations"] == 3
    assert Image.open(out).size == (32, 24)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


def test_a_second_signal_during_the_final_writes_does_not_lose_the_image(files, tiny_net_path, tmp_path, capsys,
                                                                          monkeypatch):
    real_call, real_close = progress.Reporter.__call__, progress.Reporter.close

    def call(self, report):
        real_call(self, report)
        if report.iteration == 2:
            # The first Ctrl-C, raised as Python's SIGINT handler does; not raise_signal,
            # whose handler Python runs at a later bytecode (one full run lost it).
            raise KeyboardInterrupt

    def close(self, result):
        signal.raise_signal(signal.SIGINT)  # the impatient second one, while the plot is drawn
        signal.raise_signal(signal.SIGTERM)
        real_close(self, result)

    monkeypatch.setattr(progress.Reporter, "__call__", call)
    monkeypatch.setattr(progress.Reporter, "close", close)
    out = tmp_path / "out.png"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code, err = run(base_args(files, tiny_net_path, out, 50, "--progress-plot"), capsys)
    assert code == 130, err
    assert "interrupted: wrote the best image so far" in err
    assert Image.open(out).size == (32, 24)
    assert (tmp_path / "progress.png").exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_non_finite_loss_keeps_the_last_finite_best_and_fails(files, tiny_net_path, tmp_path, capsys, monkeypatch):
    real = stylize.Objective.evaluate
    calls = []

    def evaluate(self, x):
        calls.append(1)
        terms, grad = real(self, x)
        if len(calls) > 4:
            terms = {k: float("nan") for k in terms}
        return terms, grad

    monkeypatch.setattr(stylize.Objective, "evaluate", evaluate)
    out = tmp_path / "out.png"
    code, err = run(base_args(files, tiny_net_path, out, 20), capsys)
    assert code == 1
    assert "nan" in err.lower() and "last finite best image" in err
    assert Image.open(out).size == (32, 24)
