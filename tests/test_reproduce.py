"""reproduce.py: a tiny run of the paper's grid that resumes, and its refusals. (The normalisation is
tested in test_vgg.py, the presets in test_presets.py.) Tiny network, 16 px images."""

from __future__ import annotations

import json
import os

from neural_style_tf import images
from neural_style_tf.apps import reproduce

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")





# ---------------------------------------------------------------- normalisation










# ---------------------------------------------------------------- the preset losses against NumPy










# ---------------------------------------------------------------- presets on the command line
















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
