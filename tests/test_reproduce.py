"""reproduce.py: a tiny run of the paper's grid that resumes, its refusals, and the normalised network's cache
it writes (keyed by the weights, bounded in size). (The normalisation is
tested in test_vgg.py, the presets in test_presets.py.) Tiny network, 16 px images."""

from __future__ import annotations

import json
import os

from neural_style_tf import images
from neural_style_tf.apps import reproduce

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


# ---------------------------------------------------------------- reproduce.py


def test_reproduce_grid_writes_sheet_and_manifest_and_resumes(tiny_net_path, tmp_path, capsys):
    argv = ["grid", "--out-dir", str(tmp_path / "repro"), "--size", "16", "--evaluations", "2",
            "--network", tiny_net_path]
    assert reproduce.main(argv) == 0
    folder = tmp_path / "repro" / "grid"
    sheet = images.load_image(str(folder / "sheet.png"))
    assert sheet.shape[0] > 200 and sheet.shape[1] > 200 and sheet.std() > 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["panels"]) == 20
    for entry in manifest["panels"].values():
        assert (folder / entry["file"]).is_file()
        assert 1 <= entry["evaluations"] <= 2 and 0 < entry["seconds"] < 120
        assert set(entry["terms"]) == {"content", "style", "tv", "total"}
        assert entry["settings"]["size"] == [12, 16]
    one = manifest["panels"]["conv3_1_r1e-3"]
    assert one["settings"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1"] and one["settings"]["ratio"] == 1e-3
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("conv*.png")}
    capsys.readouterr()

    assert reproduce.main(argv) == 0  # the second run skips every finished panel
    err = capsys.readouterr().err
    assert err.count("skipped") == 20
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("conv*.png")} == mtimes

    # a panel missing from the manifest is redone
    del manifest["panels"]["conv1_1_r1e-5"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert reproduce.main(argv) == 0
    assert capsys.readouterr().err.count("skipped") == 19

    # --as-loaded keeps the network as it is: another network, so every panel is redone
    assert reproduce.main(argv + ["--as-loaded"]) == 0
    assert capsys.readouterr().err.count("skipped") == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "normalised" not in manifest["settings"]["network"]
    assert all("normalised" not in e["settings"]["network"] for e in manifest["panels"].values())


def test_reproduce_bad_input_is_one_line(tiny_net_path, tmp_path, capsys):
    assert reproduce.main(["grid", "--out-dir", str(tmp_path / "a" / "b"), "--network", tiny_net_path]) == 2
    assert reproduce.main(["content-layer", "--out-dir", str(tmp_path), "--network", tiny_net_path]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "relu2_2" in err and "Traceback" not in err


# ---------------------------------------------------------------- the convention of the terms


def _paper_terms(network, content, style, x, convention, ratio=1e-3):
    """(content term, style term) at image x by a NumPy transcription of the formulas:
    literal (Gatys et al. 2016): alpha 1/2 sum (F - P)^2 and beta sum_l w_l sum (G - A)^2 / (4 N^2 M^2),
    G = F^T F; authors' code: alpha MSE(F, P) and beta sum_l w_l (1e3 / N^2) MSE(G / M, A / M); w_l = 1/5."""
    import numpy as np

    from neural_style_tf import presets
    from neural_style_tf.losses import gram_matrix
    from neural_style_tf.targets import TargetGraphs

    layers = presets.STYLE_LAYERS_PAPER
    feats = {}
    with TargetGraphs() as graphs:  # the features, in a graph of their own (no objective involved)
        graph = graphs.graph(network, ("relu4_2",) + layers, (), "avg", gram_matrix, "zero", False)
        for name, image in (("x", x), ("p", content), ("a", style)):
            got = graph.content_features(image)
            feats[name] = {n: got[n].reshape(-1, got[n].shape[-1]).astype(np.float64) for n in got}
    f, p = feats["x"]["relu4_2"], feats["p"]["relu4_2"]
    content_term = ratio * (0.5 * np.sum((f - p) ** 2) if convention == "literal" else np.mean((f - p) ** 2))
    style_term = 0.0
    for n in layers:
        fx, fa = feats["x"][n], feats["a"][n]
        m, channels = fx.shape
        g, a = fx.T @ fx, fa.T @ fa
        if convention == "literal":
            e = np.sum((g - a) ** 2) / (4 * channels**2 * m**2)
        else:
            e = 1e3 / channels**2 * np.mean((g / m - a / m) ** 2)
        style_term += e / len(layers)
    return content_term, style_term


def test_each_convention_is_its_formulas_and_the_literal_one_starves_the_style(tiny_net_path):
    """Why reproduce.py uses the authors' convention: with the paper's formulas taken
    literally the content term is a sum over every element of relu4_2, so at the paper's
    alpha/beta the style's share of the starting loss (from noise) is small and shrinks as
    the image grows (about 1/4 per doubling of the side); the authors' MSE content keeps it
    the same at every size. The objective's terms are checked against the transcription."""
    import numpy as np

    import vgg
    from neural_style_tf import objective

    network = vgg.load_net(str(tiny_net_path))
    rng = np.random.default_rng(0)
    balance = {}
    for side in (32, 64):
        content = rng.uniform(0, 255, (side, side, 3)).astype(np.float32)
        style = rng.uniform(0, 255, (side, side, 3)).astype(np.float32)
        x = objective.initial_image(content, network, noiseblend=1.0, seed=0)
        for convention in reproduce.CONVENTIONS:
            panel = {"ratio": 1e-3, "content_layers": ("relu4_2",), "style_layers": presets_layers(),
                     "convention": convention}
            with objective.Objective(network, content, [style], reproduce.loss_options(panel)) as obj:
                terms, _ = obj.evaluate(x)
            want_content, want_style = _paper_terms(network, content, style, x, convention)
            assert np.isclose(terms["content"], want_content, rtol=2e-4), (convention, side)
            assert np.isclose(terms["style"], want_style, rtol=2e-4), (convention, side)
            balance[convention, side] = want_content / want_style
    # The literal content is a sum over the M positions of relu4_2, the style per entry: the
    # content's weight against the style grows as M, 4x when the side doubles (the style's
    # share of the loss falls with the size), while the authors' per-element means keep the
    # balance whatever the size.
    assert 2.5 < balance["literal", 64] / balance["literal", 32] < 6.0
    assert 0.5 < balance["authors", 64] / balance["authors", 32] < 2.0
    # At the same alpha/beta the literal content weighs M N / 2 times the authors' (relu4_2:
    # 2 x 2 positions x 8 channels at 32 px, over 1e3/N^2 x 4 of the style's normalisation).
    assert balance["literal", 64] > 10 * balance["authors", 64]


def presets_layers():
    from neural_style_tf import presets

    return presets.STYLE_LAYERS_PAPER


# ---------------------------------------------------------------- the normalised network's cache


def _calibration_folder(tmp_path):
    from numpy_reference import example_at

    folder = tmp_path / "cal"
    folder.mkdir(exist_ok=True)
    images.save_image(str(folder / "a.png"), example_at("starry_night.jpg", 24))
    return str(folder)


def test_the_cache_is_keyed_by_the_weights_not_by_where_the_file_lies(tiny_net_path, tmp_path, monkeypatch):
    """Issue 32: the key held the file's path and time stamp, so every checkout and every
    install added another 80 MB copy. Two copies of the same weights, at two paths with two
    time stamps, now share one entry; other weights get another."""
    import dataclasses
    import shutil

    from neural_style_tf.networks import loading, normalization

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cal = _calibration_folder(tmp_path)
    copies = []
    for i, where in enumerate(("checkout_a", "site-packages_b")):
        path = tmp_path / where / "tiny-vgg.mat"
        path.parent.mkdir()
        shutil.copyfile(tiny_net_path, path)
        os.utime(path, ns=(10**18 + i, 10**18 + i))  # different time stamps too
        # as the embedded network: never beside its (package's) file, always in the user's cache
        copies.append(dataclasses.replace(loading.load_net(str(path)), cache_beside_source=False))
    said = []
    first = normalization.normalized_network(copies[0], "avg", cal, size=24, log=said.append)
    second = normalization.normalized_network(copies[1], "avg", cal, size=24, log=said.append)
    assert second.path == first.path and said[-1].endswith("(cached)")
    assert os.listdir(tmp_path / "cache" / "neural-style-tf") == [os.path.basename(first.path)]
    other = dataclasses.replace(copies[0], weights={n: (k * 2, b) for n, (k, b) in copies[0].weights.items()})
    assert normalization.weights_digest(other) != normalization.weights_digest(copies[0])
    assert normalization.cache_key(other, [], "avg", 24) != normalization.cache_key(copies[0], [], "avg", 24)


def test_the_cache_folder_is_bounded_oldest_first(tmp_path):
    from neural_style_tf.networks import normalization

    folder = tmp_path / "neural-style-tf"
    folder.mkdir()
    for age, name in enumerate(("d.normalised-4.npz", "c.normalised-3.npz", "b.normalised-2.npz",
                                "a.normalised-1.npz")):
        path = folder / name
        path.write_bytes(b"x" * 100)
        os.utime(path, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))  # a: the oldest
    (folder / "notes.txt").write_bytes(b"y" * 1000)  # not ours: never removed
    keep = str(folder / "a.normalised-1.npz")  # the one just written is kept, however old
    removed = normalization.prune_cache(str(folder), keep=keep, limit=250)
    assert sorted(os.path.basename(p) for p in removed) == ["b.normalised-2.npz", "c.normalised-3.npz"]
    assert sorted(os.listdir(folder)) == ["a.normalised-1.npz", "d.normalised-4.npz", "notes.txt"]
    assert normalization.prune_cache(str(folder), keep=keep, limit=250) == []  # within the bound
    assert normalization.prune_cache(str(tmp_path / "missing"), keep=keep) == []


def test_writing_a_new_entry_prunes_the_user_cache(tiny_network, tmp_path, monkeypatch):
    import dataclasses

    from neural_style_tf.networks import normalization

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "neural-style-tf"
    folder.mkdir(parents=True)
    stale = folder / "old.normalised-0.npz"
    stale.write_bytes(b"x" * 10)
    os.utime(stale, ns=(10**9, 10**9))
    monkeypatch.setattr(normalization, "CACHE_LIMIT_BYTES", 1)  # room for the new entry only
    network = dataclasses.replace(tiny_network, cache_beside_source=False)
    fresh = normalization.normalized_network(network, "avg", _calibration_folder(tmp_path), size=24)
    assert os.listdir(folder) == [os.path.basename(fresh.path)]
