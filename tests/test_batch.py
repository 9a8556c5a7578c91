"""batch.py: jobs, results.jsonl, reruns, a killed worker and two nodes, on a real Ray
(the pure parts: test_jobs.py, test_engine.py, test_worker.py, test_sheet.py).

One local Ray instance (2 CPUs, no dashboard) serves every test that needs one; each
batch run starts its own workers (a worker imports TensorFlow: several seconds), so the
jobs are tiny: the factory's tiny network, 32x24 px images, a few iterations. The
two-node test starts a ray.cluster_utils.Cluster of its own and runs last.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

import neural_style
from neural_style_tf.apps import batch, jobs, sheet

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    """The shared local Ray instance, started by the first test that needs it."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    # Left running for the next test; the two-node test and the session's end shut it down.


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray():
    yield
    if ray.is_initialized():
        ray.shutdown()


def results(out_dir):
    with open(os.path.join(out_dir, jobs.RESULTS), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def flags(tiny_net_path, *extra):
    return ["--network", tiny_net_path, "--iterations", "4", "--seed", "3", *extra]


# ---------------------------------------------------------------- no Ray needed


def test_jobs_are_made_and_checked_before_ray_starts(tmp_path, files, capsys):
    out = str(tmp_path / "out")
    code = batch.main(["sweep", "--content", files["content"], "--styles", files["style"],
                       "--grid", "style-wieght=1,2", "--out-dir", out])
    err = capsys.readouterr().err
    assert code == 2 and "style-wieght is not a flag" in err and "did you mean style-weight?" in err
    code = batch.main(["--contents", files["content"], "--styles", files["style"], "--out-dir", out,
                       "--style-weight", "lots"])
    err = capsys.readouterr().err
    assert code == 2 and "--style-weight: invalid float value: 'lots'" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(out)


# ---------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def first_batch(tmp_path_factory, tiny_net_path):
    """Three jobs, one with a missing content file, run once for the tests below."""
    import numpy as np
    from PIL import Image

    work = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (24, 32, 3)), ("b.png", (24, 32, 3)), ("s.png", (20, 20, 3))):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(work / name)
    out = str(work / "out")
    argv = ["--contents", str(work / "a.png"), str(work / "b.png"), str(work / "gone.png"),
            "--styles", str(work / "s.png"), "--out-dir", out, "--workers", "2", "--threads-per-worker", "1",
            "--quiet"] + flags(tiny_net_path)
    return {"work": work, "out": out, "argv": argv}


def test_three_jobs_one_bad(local_ray, first_batch):
    code = batch.main(first_batch["argv"])
    assert code == 1  # a job failed
    lines = {r["output"]: r for r in results(first_batch["out"])}
    assert lines["gone__s.png"]["status"] == "failed"
    assert lines["gone__s.png"]["error"] == f"--content {first_batch['work'] / 'gone.png'}: no such file"
    for name in ("a__s.png", "b__s.png"):
        assert lines[name]["status"] == "done" and lines[name]["losses"]["total"] > 0
        assert lines[name]["node"] and lines[name]["seconds"] > 0 and lines[name]["evaluations"] >= 4
        assert os.path.isfile(os.path.join(first_batch["out"], name))


def test_outputs_equal_neural_style_py_byte_for_byte(first_batch, tiny_net_path, tmp_path):
    for name in ("a", "b"):
        reference = str(tmp_path / f"{name}.png")
        assert neural_style.main(["--content", str(first_batch["work"] / f"{name}.png"),
                                  "--styles", str(first_batch["work"] / "s.png"), "--output", reference,
                                  "--quiet"] + flags(tiny_net_path)) == 0
        with open(reference, "rb") as f, open(os.path.join(first_batch["out"], f"{name}__s.png"), "rb") as g:
            assert f.read() == g.read()


def test_masked_jobs_from_a_jobs_file_equal_neural_style_py(local_ray, files, tiny_net_path, tmp_path):
    """Masks are per-job files, relative to the jobs file, shipped to the worker like the images."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "masked"
    folder.mkdir()
    top = np.zeros((24, 32), np.uint8)
    top[:10] = 255
    Image.fromarray(top).save(folder / "top.png")
    Image.fromarray(255 - top).save(folder / "bottom.png")
    styles = [files["style"], files["style2"]]
    (folder / "jobs.jsonl").write_text(
        json.dumps({"content": files["content"], "styles": styles, "style-masks": ["top.png", "bottom.png"],
                    "output": "split.png"}) + "\n"
        + json.dumps({"content": files["content"], "styles": styles, "style-masks": ["bottom.png", "top.png"],
                      "output": "swapped.png"}) + "\n")
    out = str(tmp_path / "out")
    assert batch.main([str(folder / "jobs.jsonl"), "--out-dir", out, "--workers", "1", "--quiet"]
                      + flags(tiny_net_path)) == 0
    assert sorted((r["output"], r["status"]) for r in results(out)) == [("split.png", "done"), ("swapped.png", "done")]
    reference = str(tmp_path / "reference.png")
    assert neural_style.main(["--content", files["content"], "--styles", *styles, "--style-masks",
                              str(folder / "top.png"), str(folder / "bottom.png"), "--output", reference,
                              "--quiet"] + flags(tiny_net_path)) == 0
    with open(reference, "rb") as f, open(os.path.join(out, "split.png"), "rb") as g:
        assert f.read() == g.read()
    with open(os.path.join(out, "split.png"), "rb") as f, open(os.path.join(out, "swapped.png"), "rb") as g:
        assert f.read() != g.read()  # the masks made the difference


def test_a_rerun_skips_the_done_and_retries_the_failed(local_ray, first_batch):
    from PIL import Image

    before = len(results(first_batch["out"]))
    stamps = {n: os.stat(os.path.join(first_batch["out"], n)).st_mtime_ns for n in ("a__s.png", "b__s.png")}
    Image.open(first_batch["work"] / "a.png").save(first_batch["work"] / "gone.png")  # the missing file, now there
    assert batch.main(first_batch["argv"]) == 0
    new = results(first_batch["out"])[before:]
    assert [(r["output"], r["status"]) for r in new] == [("gone__s.png", "done")]
    for name, stamp in stamps.items():
        assert os.stat(os.path.join(first_batch["out"], name)).st_mtime_ns == stamp  # not redone


def test_a_sweep_writes_its_labelled_sheet(local_ray, files, tiny_net_path, tmp_path, monkeypatch):
    drawn = []
    real = sheet.write_sheet
    monkeypatch.setattr(sheet, "write_sheet", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    out = str(tmp_path / "sweep")
    assert batch.main(["sweep", "--content", files["content"], "--styles", files["style"], "--out-dir", out,
                       "--grid", "style-weight=10,1000", "--grid", "tv-weight=0,5", "--quiet"]
                      + flags(tiny_net_path)) == 0
    rows, cols, captions = drawn[0]
    assert rows == ["style-weight=10", "style-weight=1000"] and cols == ["tv-weight=0", "tv-weight=5"]
    lines = results(out)
    assert len(lines) == 4 and os.path.getsize(os.path.join(out, "sheet.png")) > 10_000
    for r in lines:
        params = tuple(tuple(p) for p in r["params"])
        assert captions[params] == f"loss {r['losses']['total']:.4g}"
    # The graph is built once, then reweighted for the other weights.
    assert sorted(r["graph"] for r in lines) == ["built", "reused", "reused", "reused"]


def _descends_from_us(pid):
    """Whether this test process is an ancestor of `pid` (the local Ray's raylet is our child):
    another Ray on the machine, and its workers, are left alone."""
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
        if pid == os.getpid():
            return True
    return False


def _kill_first_running_job(killed):
    """SIGKILL the first of our workers seen running a job (Ray titles it ray::Worker.run)."""
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read()
            except OSError:
                continue
            if title.startswith(b"ray::Worker.run") and _descends_from_us(int(pid)):
                time.sleep(0.5)  # well into the job
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [1])
def test_a_worker_killed_mid_job(local_ray, files, tiny_net_path, tmp_path, retries):
    out = str(tmp_path / "killed")
    killed = []
    killer = threading.Thread(target=_kill_first_running_job, args=(killed,), daemon=True)
    killer.start()
    code = batch.main(["--contents", files["content"], "--styles", files["style"], files["style2"],
                       "--out-dir", out, "--retries", str(retries), "--workers", "2", "--threads-per-worker", "1",
                       "--quiet", "--network", tiny_net_path, "--optimizer", "adam", "--iterations", "3000"])
    killer.join()
    assert killed, "no running job was found to kill"
    lines = results(out)
    died = [r for r in lines if r["status"] == "failed"]
    assert len(died) == 1 and died[0]["error"].startswith("worker died") and died[0]["attempt"] == 1
    final = jobs.read_results(os.path.join(out, jobs.RESULTS))
    assert len(final) == 2 and all(r["status"] == "done" for r in final.values())  # retried, and the other went on
    assert died[0]["id"] in final and code == 0


def _files(folder, pattern):
    return {p.name: p.read_bytes() for p in sorted(folder.glob(pattern))}


def test_reproduce_on_workers_gives_the_serial_panels(local_ray, tiny_net_path, tmp_path):
    from neural_style_tf.apps import reproduce

    common = ["figure3", "--size", "16", "--evaluations", "3", "--network", tiny_net_path, "--quiet"]
    assert reproduce.main(common + ["--out-dir", str(tmp_path / "serial")]) == 0
    assert reproduce.main(common + ["--out-dir", str(tmp_path / "ray"), "--workers", "2",
                                    "--threads-per-worker", "1"]) == 0
    serial, parallel = tmp_path / "serial" / "figure3", tmp_path / "ray" / "figure3"
    panels = _files(serial, "[B-F]_*.png")
    assert len(panels) == 5 and panels == _files(parallel, "[B-F]_*.png")
    a, b = (json.loads((d / "manifest.json").read_text())["panels"] for d in (serial, parallel))
    # The same panels to float32 rounding: a worker runs TensorFlow on 1 thread and this
    # process on 2, so the Gram matrices' sums are added in another order (about 1e-6 of
    # each term with the paper's Gram loss).
    assert a.keys() == b.keys()
    for k in a:
        assert a[k]["terms"].keys() == b[k]["terms"].keys()
        for term, value in a[k]["terms"].items():
            assert value == pytest.approx(b[k]["terms"][term], rel=1e-5, abs=1e-9), (k, term)
    assert (parallel / "sheet.png").is_file()


def test_compare_on_workers_gives_the_serial_runs(local_ray, tiny_net_path, files, tmp_path):
    from neural_style_tf.apps import compare

    common = ["--network", tiny_net_path, "--content", files["content"], "--styles", files["style"],
              "--width", "24", "--evaluations", "4", "--seeds", "0", "1", "--adam-learning-rates", "10",
              "--lbfgs-corrections", "5", "--quiet"]
    assert compare.main(common + ["--out-dir", str(tmp_path / "serial")]) == 0
    assert compare.main(common + ["--out-dir", str(tmp_path / "ray"), "--workers", "2",
                                  "--threads-per-worker", "1"]) == 0
    runs = _files(tmp_path / "serial" / "runs", "*.png")
    assert len(runs) == 4 and runs == _files(tmp_path / "ray" / "runs", "*.png")
    for name in runs:
        a, b = (json.loads((tmp_path / d / "runs" / name.replace(".png", ".json")).read_text()) for d in ("serial", "ray"))
        # every loss term of every evaluation, to float32 rounding: a worker runs TensorFlow on
        # 1 thread, this process on 2, and the targets' sums come out in another order
        assert len(a["rows"]) == len(b["rows"])
        for ra, rb in zip(a["rows"], b["rows"]):
            assert ra[2:] == pytest.approx(rb[2:], rel=1e-5, abs=1e-9)
    assert (tmp_path / "ray" / "summary.md").is_file()


@pytest.mark.slow
def test_two_nodes_each_run_jobs(files, tiny_net_path, tmp_path):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # the shared instance: this test is the file's last
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        out = str(tmp_path / "two")
        assert batch.main(["--contents", files["content"], files["content"], "--styles", files["style"],
                           files["style2"], "--out-dir", out, "--address", cluster.address,
                           "--threads-per-worker", "1", "--quiet"] + flags(tiny_net_path)) == 0
        nodes = {r["node"] for r in results(out)}
        assert len(results(out)) == 4
        assert nodes == {n["NodeID"] for n in ray.nodes() if n["Alive"]} and len(nodes) == 2
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
