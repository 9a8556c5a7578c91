"""vgg.py: the facade (what it re-exports is its home module's) and the `vgg.py layers` /
`vgg.py normalize` command."""

from __future__ import annotations

import ast
import importlib

import weights_factory as wf
from numpy_reference import example_at

import vgg
from neural_style_tf import errors, images
from neural_style_tf.networks import loading, normalization
from neural_style_tf.networks.calibration import calibration_images, calibration_paths

# ---------------------------------------------------------------- the facade


def facade_imports(module):
    """{name: home module} of every `from M import name` at the top of `module`'s file."""
    with open(module.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {alias.asname or alias.name: node.module for node in tree.body if isinstance(node, ast.ImportFrom)
            and node.module != "__future__" for alias in node.names}


def test_every_name_vgg_re_exports_is_its_home_modules_object():
    homes = facade_imports(vgg)
    assert len(vgg.__all__) > 25 and set(vgg.__all__) <= set(homes)
    for name in vgg.__all__:
        assert getattr(vgg, name) is getattr(importlib.import_module(homes[name]), name), (name, homes[name])
    # what its users import from it, from the modules that own them now
    for name, home in (("load_net", "loading"), ("Network", "vgg_network"), ("normalize", "normalization"),
                       ("load_mat", "vgg_files"), ("sha256_of", "codebook")):
        assert homes[name] == f"neural_style_tf.networks.{home}", name
    # loading.load is gone (issue 32: only tests used it); load_net is what runs
    assert "load" not in vgg.__all__
    # the facade defines only its command
    own = {n for n, v in vars(vgg).items() if callable(v) and getattr(v, "__module__", None) == "vgg"}
    assert own == {"build_parser", "normalize_main", "layers_main", "main"}


def test_network_error_is_a_usage_error_from_one_place():
    assert vgg.NetworkError is errors.NetworkError
    assert issubclass(vgg.NetworkError, errors.UsageError)


# ---------------------------------------------------------------- command line


def test_main_layers_lists_layer_names_and_channels(tiny_net_path, tiny_network, capsys):
    assert vgg.main(["layers", "--network", tiny_net_path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("network: ") and tiny_net_path in out[0]
    rows = [line.split("\t") for line in out[1:]]
    assert [name for name, _ in rows] == list(tiny_network.layers)
    channels = dict(rows)
    assert channels["relu1_1"] == f"{wf.TINY_VGG_CHANNELS[0]} channels"
    assert channels["relu5_2"] == f"{wf.TINY_VGG_CHANNELS[4]} channels"


def test_main_layers_reports_a_bad_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.mat"
    path.write_text("not a mat file")
    assert vgg.main(["layers", "--network", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_main_normalize_reports_a_bad_network_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.mat"
    path.write_text("not a mat file")
    assert vgg.main(["normalize", "--network", str(path), "--out", str(tmp_path / "n.npz")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert not (tmp_path / "n.npz").exists()


def test_vgg_normalize_command_writes_a_network_that_loads(tiny_net_path, tmp_path, capsys):
    folder = tmp_path / "cal"
    folder.mkdir()
    for name in ("tubingen_neckarfront.jpg", "the_scream.jpg"):
        images.save_image(str(folder / name.replace(".jpg", ".png")), example_at(name, 24))
    out = tmp_path / "normalised.npz"
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out),
                     "--size", "24"]) == 0
    network = loading.load_net(str(out))
    assert "normalised" in network.name
    cal = calibration_images(calibration_paths(str(folder)), 24)
    means = normalization.mean_activations(network, cal, "avg")
    assert abs(means["relu3_1"][means["relu3_1"] > 0] - 1).max() < 1e-3
    # an existing output is not replaced; a bad folder is one line and status 2
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(folder), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert vgg.main(["normalize", "--network", tiny_net_path, "--images", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err
