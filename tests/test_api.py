"""api.py: style_transfer and save, on the tiny test network and 24x32 images: paths and
arrays in, the callback, the result's shape and dtype, one bad value of each kind, and
the same image as the command line for the same seed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from run_helpers import CONTENT_SIZE, base_args, run_main

import neural_style_tf as nst
from neural_style_tf import api, images
from neural_style_tf.errors import UsageError
from neural_style_tf.live import WEB_PORT
from neural_style_tf.transfer import ImageArrays


def transfer(files, tiny_net_path, **options):
    options = {"network": tiny_net_path, "iterations": 4, "quiet": True, "seed": 1, **options}
    return nst.style_transfer(options.pop("content", files["content"]), options.pop("styles", [files["style"]]),
                              **options)


def test_importing_the_package_imports_no_tensorflow_and_reexports_the_api():
    code = ("import sys, neural_style_tf as nst; nst.style_transfer; nst.save; nst.UsageError; "
            "print('tensorflow' in sys.modules, 'neural_style_tf.api' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
    assert nst.style_transfer is api.style_transfer and nst.UsageError is UsageError
    assert {"style_transfer", "save", "UsageError"} <= set(dir(nst))
    with pytest.raises(AttributeError):
        nst.no_such_thing  # noqa: B018


def test_paths_in_an_image_and_the_final_losses_out(files, tiny_net_path):
    result = transfer(files, tiny_net_path)
    assert result.image.shape == CONTENT_SIZE + (3,) and result.image.dtype == np.uint8
    assert result.alpha is None and result.seed == 1
    assert {"content", "style", "tv", "total"} <= set(result.losses)
    assert result.iterations == 4 and result.evaluations >= 4 and result.stop_reason == "completed"
    assert result.settings.optimizer.iterations == 4


def test_keywords_are_the_flags_with_their_defaults(files, tiny_net_path):
    result = transfer(files, tiny_net_path, width=16, style_weight=50, content_layers=["relu4_2"])
    loss = result.settings.loss
    assert result.image.shape == (12, 16, 3)
    assert loss.style_weight == 50 and loss.content_layers == ("relu4_2",)
    assert loss.content_weight == nst.api.cli.settings.CONTENT_WEIGHT  # a default, as neural_style.py's


def test_arrays_in_uint8_and_float_give_the_same_image(files, tiny_net_path):
    content = images.to_uint(images.load_image(files["content"]))
    style = images.to_uint(images.load_image(files["style"]))
    from_paths = transfer(files, tiny_net_path)
    from_uint8 = transfer(files, tiny_net_path, content=content, styles=[style])
    from_float = transfer(files, tiny_net_path, content=content / 255.0, styles=[style.astype(np.float32) / 255])
    np.testing.assert_array_equal(from_uint8.image, from_paths.image)
    assert np.abs(from_float.image.astype(int) - from_uint8.image).max() <= 1


def test_the_callback_gets_each_iteration_its_losses_and_the_image_on_request(files, tiny_net_path):
    steps = []
    result = transfer(files, tiny_net_path, progress=steps.append)
    assert [s.iteration for s in steps] == [1, 2, 3, 4] and all(s.iterations == 4 for s in steps)
    assert all("total" in s.losses for s in steps)
    assert steps[-1].losses["total"] <= steps[0].losses["total"]
    image = steps[-1].image()
    assert image.shape == CONTENT_SIZE + (3,) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, result.image)  # the best so far, finished as the result is


def test_the_same_image_as_the_command_line_for_the_same_seed(files, tiny_net_path, tmp_path, capsys):
    code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "cli.png", 4), capsys)
    assert code == 0, err
    result = transfer(files, tiny_net_path, output=str(tmp_path / "api.png"))
    with Image.open(tmp_path / "cli.png") as cli_image, Image.open(tmp_path / "api.png") as api_image:
        np.testing.assert_array_equal(np.asarray(api_image), np.asarray(cli_image))
        np.testing.assert_array_equal(result.image, np.asarray(cli_image))


def test_the_network_is_loaded_once_for_many_calls(files, tiny_net_path, monkeypatch):
    from neural_style_tf.networks import loading

    api._networks.clear()
    calls = []
    real = loading.load_net
    monkeypatch.setattr(loading, "load_net", lambda *a: calls.append(a) or real(*a))
    transfer(files, tiny_net_path, iterations=1)
    transfer(files, tiny_net_path, iterations=1, width=16)
    assert len(calls) == 1


@pytest.mark.parametrize("options, message", [
    ({"iterations": 0}, "--iterations must be a positive integer, not 0"),  # a value the checks refuse
    ({"width": "wide"}, "invalid int value: 'wide'"),  # a value of the wrong type
    ({"optimizer": "sgd"}, "invalid choice: 'sgd'"),  # not one of the choices
    ({"style_wieght": 3}, "unknown keyword style_wieght=3; did you mean style_weight=?"),  # a typo
    ({"content": "missing.jpg"}, "--content missing.jpg: no such file"),  # a missing file
    ({"content": np.zeros((4, 4, 3), np.int64)}, "content: an array of dtype int64"),  # an array of a bad type
    ({"content": np.full((4, 4, 3), 2.0)}, "a float array must lie in 0..1"),  # floats out of range
    ({"styles": [np.zeros((4, 4, 2))]}, "styles[0]: an array of shape (4, 4, 2)"),  # a bad shape
    ({"styles": []}, "styles is empty"),
    ({"styles": 7}, "styles: int; give a list of paths or arrays"),
    ({"checkpoint_output": "c_{}.png"}, "--checkpoint-output and --checkpoint-iterations go together"),
    ({"progress_plot": True}, "progress_plot=True writes beside the output; give output= too"),
    ({"web": 70000}, "invalid port 70000"),
])
def test_a_bad_value_raises_one_usage_error_before_any_network(files, tiny_net_path, monkeypatch, options, message):
    monkeypatch.setattr(api, "network_for", lambda run: pytest.fail("a network was loaded"))
    with pytest.raises(UsageError) as exc:
        transfer(files, tiny_net_path, **options)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_an_existing_output_is_kept_without_overwrite(files, tiny_net_path, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"mine")
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        transfer(files, tiny_net_path, output=str(out))
    assert out.read_bytes() == b"mine"
    transfer(files, tiny_net_path, output=str(out), overwrite=True, iterations=1)
    with Image.open(out) as image:
        assert image.size == (32, 24)


def test_a_layer_the_network_lacks_is_a_usage_error(files, tiny_net_path):
    with pytest.raises(UsageError, match="relu9_9"):
        transfer(files, tiny_net_path, style_layers=["relu9_9"])


def test_transparency_comes_back_as_alpha(files, tiny_net_path):
    rgba = np.dstack([images.to_uint(images.load_image(files["content"])), np.full(CONTENT_SIZE, 128, np.uint8)])
    result = transfer(files, tiny_net_path, content=rgba, iterations=1)
    assert result.alpha.shape == CONTENT_SIZE and result.alpha.dtype == np.uint8 and result.alpha[0, 0] == 128


def test_save_writes_arrays_and_keeps_an_existing_file(tmp_path):
    image = np.zeros((8, 10, 3), np.uint8)
    image[:, :5] = 200
    path = tmp_path / "out.png"
    assert nst.save(image, path) == str(path)
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), image)
    with pytest.raises(UsageError, match="already exists; pass overwrite=True"):
        nst.save(image, path)
    nst.save(image / 255.0, path, overwrite=True)
    with pytest.raises(UsageError, match="unknown image extension"):
        nst.save(image, tmp_path / "out.xyz")
    with pytest.raises(UsageError, match="bit_depth must be 8 or 16"):
        nst.save(image, tmp_path / "b.png", bit_depth=12)


def test_only_the_main_thread_may_run_a_transfer(files, tiny_net_path):
    import threading

    caught = []
    thread = threading.Thread(target=lambda: caught.append(pytest.raises(UsageError, transfer, files, tiny_net_path)))
    thread.start()
    thread.join()
    assert "main thread" in str(caught[0].value)


def test_keywords_are_converted_as_the_command_line_converts_its_text(files, tmp_path):
    """Typed values are taken as they are, text goes through the flag's own type=: the
    bare-flag forms, one value for a flag of many, a layer list as a sequence or as text."""
    settings, _ = api.settings_for(files["content"], [files["style"]], tmp_path / "o.png", {
        "preserve_colors": True, "web": True, "quiet": True, "overwrite": False, "style_scales": 1,
        "style_blend_weights": np.array([2]), "content_layers": ("relu4_2", "relu5_2"),
        "style_layers": "relu1_1, relu2_1", "seed": None, "eps": np.float64(1e-6), "width": "16"})
    run, loss = settings.run, settings.loss
    assert (run.preserve_colors, run.web, run.quiet, run.overwrite, run.seed, run.width) == (
        "luminance", WEB_PORT, True, False, None, 16)
    assert loss.style_scales == (1.0,) and loss.style_blend_weights == (2.0,)
    assert loss.content_layers == ("relu4_2", "relu5_2") and loss.style_layers == ("relu1_1", "relu2_1")
    assert settings.optimizer.epsilon == 1e-6 and type(run.width) is int and type(loss.style_scales[0]) is float


@pytest.mark.parametrize("options, message", [
    ({"width": 5.5}, "argument --width: invalid int value: 5.5"),
    ({"width": True}, "argument --width: invalid int value: True"),
    ({"quiet": "yes"}, "argument --quiet: a switch takes True or False, not 'yes'"),
    ({"style_scales": []}, "argument --style-scales: expected at least one argument"),
    ({"bit_depth": 12}, "argument --bit-depth: invalid choice: 12"),
])
def test_a_typed_value_of_the_wrong_kind_is_refused_as_the_flag_would_be(files, options, message):
    with pytest.raises(UsageError) as exc:
        api.settings_for(files["content"], [files["style"]], None, options)
    assert message in str(exc.value)


CLI_AND_API = [
    ([], {}),
    (["--preset", "classic"], {"preset": "classic"}),
    # explicit flags win over the preset, on both doors, whatever their value (max is the default)
    (["--preset", "gatys2016", "--pooling", "max", "--content-weight", "2", "--width", "20"],
     {"preset": "gatys2016", "pooling": "max", "content_weight": 2, "width": 20}),
    (["--ratio", "1e-3", "--style-layers", "relu1_1,relu3_1", "--preserve-colors", "--style-scales", "0.5",
      "--web", "--seed", "7", "--quiet"],
     {"ratio": 1e-3, "style_layers": ["relu1_1", "relu3_1"], "preserve_colors": True, "style_scales": 0.5,
      "web": True, "seed": 7, "quiet": True}),
    (["--optimizer", "adam", "--iterations", "5", "--tv-weight", "0", "--bit-depth", "16", "--color-match", "cholesky"],
     {"optimizer": "adam", "iterations": "5", "tv_weight": 0, "bit_depth": 16, "color_match": "cholesky"}),
]


@pytest.mark.parametrize("argv, options", CLI_AND_API)
def test_the_api_and_the_command_line_make_equal_settings(files, tmp_path, argv, options):
    import neural_style

    out = str(tmp_path / "o.png")
    paths = ["--content", str(files["content"]), "--styles", str(files["style"]), "--output", out]
    from_cli = neural_style.parse(paths + argv)
    from_api, arrays = api.settings_for(files["content"], [files["style"]], out, options)
    assert from_api == from_cli
    assert arrays == ImageArrays(None, None, (None,))  # paths: nothing given as an array


def test_arrays_in_and_no_output_write_no_file(files, tiny_net_path, tmp_path, monkeypatch):
    """Nothing is written: no temporary file, nothing in the working folder."""
    import tempfile

    temporary, working = tmp_path / "tmp", tmp_path / "cwd"
    temporary.mkdir()
    working.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.chdir(working)
    content = images.to_uint(images.load_image(files["content"]))
    style = images.load_image(files["style"]) / 255.0
    result = transfer(files, tiny_net_path, content=content, styles=[style], iterations=2)
    assert result.image.shape == CONTENT_SIZE + (3,) and result.settings.run.content is None
    assert result.settings.run.output is None and result.settings.run.styles == (None,)
    assert os.listdir(temporary) == [] and os.listdir(working) == []


def test_a_huge_array_is_refused_by_its_shape_before_any_conversion(files, tiny_net_path, monkeypatch):
    monkeypatch.setattr(api, "to_pixels", lambda *a: pytest.fail("the array was converted"))
    monkeypatch.setattr(api, "network_for", lambda run: pytest.fail("a network was loaded"))
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (40000, 40000, 3))
    with pytest.raises(UsageError, match=r"content: a 40000x40000 image needs about .* of memory and .* is available"):
        nst.style_transfer(huge, [files["style"]], network=tiny_net_path)
    # A small output does not make a huge array small: converting it alone would not fit.
    with pytest.raises(UsageError, match="40000x40000"):
        nst.style_transfer(huge, [files["style"]], network=tiny_net_path, width=64)
    with pytest.raises(UsageError, match=r"styles\[0\]: a 40000x40000 image"):
        nst.style_transfer(files["content"], [huge], network=tiny_net_path)


def test_auto_sky_is_checked_on_the_array_itself(files, monkeypatch):
    """The check sees the caller's float array (not an 8-bit copy of it)."""
    from neural_style_tf import masks

    seen = []
    monkeypatch.setattr(masks, "sky_split", lambda photo, count: seen.append(photo) or [np.ones(photo.shape[:2])])
    content = np.random.default_rng(0).uniform(0, 1, (24, 256, 3))
    api.settings_for(content, [files["style"]], None, {"style_masks": "auto-sky"})
    np.testing.assert_allclose(seen[0], content.astype(np.float32) * 255.0, rtol=1e-6)


def test_a_second_call_at_the_same_size_reuses_the_graph_and_gives_a_fresh_calls_image(files, tiny_net_path):
    """The last built objective is kept: a call with other images at the same size retargets
    it (nothing is built), and its image is the one a call with nothing kept makes."""
    other = np.asarray(Image.open(files["style2"]).convert("RGB").resize((CONTENT_SIZE[1], CONTENT_SIZE[0])))
    nst.release()
    transfer(files, tiny_net_path)
    kept = api.objectives()
    second = transfer(files, tiny_net_path, content=other)
    assert api.objectives() is kept and kept.counts == {"built": 1, "reused": 1}
    nst.release()
    fresh = transfer(files, tiny_net_path, content=other)
    assert api.objectives().counts == {"built": 1, "reused": 0}
    np.testing.assert_array_equal(second.image, fresh.image)
    assert second.losses == fresh.losses
