"""live.py: the live view of `neural_style.py --web`. The server binds 127.0.0.1 only,
serves the page, its state, the image and the curve, refuses every other path with 404,
and stops with the run; a real headless Chromium shows a stylised image mid-run."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import weights_factory
from PIL import Image
from run_helpers import base_args, run_main

import neural_style
from neural_style_tf import live

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def get(port, path, host=None):
    """(status, headers, body) of GET `path`."""
    connection = http.client.HTTPConnection(live.HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host or f"{live.HOST}:{port}"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def refused(port):
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((live.HOST, port)) != 0


def progress(iteration, total):
    return SimpleNamespace(iteration=iteration, iterations=10, evaluations=iteration + 1, elapsed=0.5 * iteration,
                           terms={"content": 1.0, "style": total - 1.0, "total": total})


@pytest.fixture
def view():
    with live.serving(0) as view:
        view.interval = 0.0
        yield view


def test_binds_127_0_0_1_only(view):
    assert view.server.server_address[0] == "127.0.0.1" and view.url == f"http://127.0.0.1:{view.port}/"
    outside = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
    for address in outside:  # the machine's other interfaces do not reach it
        with socket.socket() as s:
            s.settimeout(5)
            assert s.connect_ex((address, view.port)) != 0, address


def test_serves_the_page_the_state_the_image_and_the_curve(view):
    rgb = np.zeros((6, 8, 3), np.float32)
    rgb[:, 4:] = (250, 20, 10)
    for i, total in enumerate((100.0, 40.0, 30.0), start=1):
        view.step(progress(i, total), lambda: rgb)
    status, headers, body = get(view.port, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'id="image"' in page and "/image.png?v=3" in page and "iteration 3 of 10" in page
    assert "http" not in page.replace(view.url, "")  # no external assets
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    state = json.loads(get(view.port, "/state.json")[2])
    assert state["iteration"] == 3 and state["totals"] == [[1, 100.0], [2, 40.0], [3, 30.0]]
    assert state["version"] == 3 and state["size"] == [8, 6] and not state["done"]
    status, headers, body = get(view.port, "/image.png?v=3")
    assert status == 200 and headers["Content-Type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), rgb.astype(np.uint8))
    status, headers, body = get(view.port, "/curve.svg?v=3")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and b"<polyline" in body


@pytest.mark.parametrize("path", ["/index.html", "/etc/passwd", "/../../etc/passwd", "/image.png/x", "/live.py",
                                  "//etc/passwd", "/state.json/", "/tests/", "/%2e%2e/README.md"])
def test_any_other_path_is_a_404(view, path):
    view.step(progress(1, 5.0), lambda: np.zeros((4, 4, 3), np.float32))
    status, _, body = get(view.port, path)
    assert status == 404 and body == b"not found\n"


def test_the_image_is_a_404_before_the_first_one_and_another_host_is_refused(view):
    assert get(view.port, "/image.png")[0] == 404
    assert get(view.port, "/", host="attacker.example:80")[0] == 403  # a page of another site (DNS rebinding)
    assert get(view.port, "/", host=f"localhost:{view.port}")[0] == 200


def test_other_methods_are_not_served(view):
    connection = http.client.HTTPConnection(live.HOST, view.port, timeout=10)
    connection.request("POST", "/", body=b"x")
    assert connection.getresponse().status == 501
    connection.close()


def test_the_image_is_encoded_at_most_every_interval_but_the_last_always():
    with live.serving(0) as view:
        view.interval = 3600.0
        calls = []
        for i in (1, 2, 3):
            view.step(progress(i, 10.0 - i), lambda: calls.append(1) or np.zeros((4, 4, 3), np.float32))
        assert len(calls) == 1
        view.end(SimpleNamespace(stop_reason="completed", evaluations=4, elapsed=1.0, iterations=3,
                                 terms={"total": 7.0}), lambda: np.full((4, 4, 3), 9.0, np.float32))
        state = json.loads(get(view.port, "/state.json")[2])
        assert state["done"] and state["stop_reason"] == "completed" and state["version"] == 2
        assert np.asarray(Image.open(io.BytesIO(get(view.port, "/image.png")[2])))[0, 0, 0] == 9
    assert refused(view.port)


def test_a_busy_port_is_one_usage_line_before_any_network(files, tiny_net_path, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind((live.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "o.png", 2, "--web", port), capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"neural_style.py: error: --web {port}: cannot serve on 127.0.0.1:{port}")
    assert not (tmp_path / "o.png").exists()


def test_web_takes_a_port_or_the_default():
    base = ["--content", "c.png", "--styles", "s.png", "--output", "o.png"]
    parser = neural_style.build_parser()
    assert parser.parse_args(base).web is None
    assert parser.parse_args(base + ["--web"]).web == live.WEB_PORT
    assert parser.parse_args(base + ["--web", "8123"]).web == 8123
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--web", "99999"])


def test_the_run_feeds_the_view_and_stopping_it_stops_the_server(files, tiny_net_path, tmp_path, capsys):
    code, _, err = run_main(base_args(files, tiny_net_path, tmp_path / "o.png", 3, "--web", "0"), capsys)
    assert code == 0, err
    port = int(re.search(r"live view: http://127\.0\.0\.1:(\d+)/", err).group(1))
    assert refused(port)


def test_the_final_image_is_the_output(files, tiny_net_path, tmp_path):
    from neural_style_tf import transfer

    settings = neural_style.parse([str(a) for a in base_args(files, tiny_net_path, tmp_path / "o.png", 3)])
    with live.serving(0) as view:
        view.interval, view.linger = 3600.0, 0.0
        assert transfer.execute(settings, listeners=[view])[0] == 0
        state = json.loads(get(view.port, "/state.json")[2])
        served = np.asarray(Image.open(io.BytesIO(get(view.port, "/image.png")[2])))
    assert state["done"] and state["iteration"] == 3 and len(state["totals"]) == 3
    with Image.open(tmp_path / "o.png") as written:
        np.testing.assert_array_equal(served, np.asarray(written))
    assert refused(view.port)


# ---------------------------------------------------------------- a real browser


def _inputs(folder):
    """A 64x48 gradient 'photo', a striped 'painting' and the tiny network."""
    yy, xx = np.mgrid[0:48, 0:64]
    photo = np.clip(np.dstack([60 + 2 * xx, 180 - 2 * yy, 90 + xx + yy]), 0, 255).astype(np.uint8)
    painting = np.zeros((32, 32, 3), np.uint8)
    painting[:, ::4] = (250, 200, 20)
    painting[::6] = (20, 40, 200)
    Image.fromarray(photo).save(folder / "photo.png")
    Image.fromarray(painting).save(folder / "painting.png")
    weights_factory.make_mat(folder / "tiny.mat", layout="new", blocks=weights_factory.TINY_VGG_BLOCKS,
                             channels=weights_factory.TINY_VGG_CHANNELS, seed=0)
    return photo


def _start_run(folder):
    """neural_style.py --web 0 with Adam for far more steps than the test waits for; (process, port)."""
    command = [sys.executable, os.path.join(ROOT, "neural_style.py"), "--content", "photo.png", "--styles",
               "painting.png", "--output", "out.png", "--network", "tiny.mat", "--optimizer", "adam",
               "--iterations", "1000000", "--seed", "1", "--quiet", "--web", "0"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(command, cwd=folder, env=env, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # the URL is the first line, before the network is loaded
        match = re.search(r"live view: http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return process, int(match.group(1))
    process.wait(timeout=60)
    pytest.fail(f"no live view line; exit {process.returncode}")


def _wait_for_iterations(port, process, at_least):
    for _ in range(1200):
        assert process.poll() is None, "the run ended early"
        status, _, body = get(port, "/state.json")
        if status == 200 and json.loads(body)["iteration"] >= at_least:
            return
        time.sleep(0.1)
    pytest.fail(f"fewer than {at_least} iterations after 120 s")


def _screenshot(url, folder, size=(1000, 700)):
    shot = folder / "shot.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={folder / 'profile'}",
               f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot ({done.returncode}):\n{done.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("RGB")).astype(np.float64)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                             ".ci/run installs it), so the live view is not tested in a browser")
def test_a_headless_chromium_shows_a_stylised_image_mid_run(tmp_path):
    photo = _inputs(tmp_path)
    process, port = _start_run(tmp_path)
    try:
        _wait_for_iterations(port, process, 50)
        # The image is re-encoded every live.INTERVAL s while Chromium starts and draws, so the page
        # may show any of several images: keep every one served meanwhile (polled 5x faster).
        served, watching = [], threading.Event()

        def collect():
            while not watching.is_set():
                served.append(np.asarray(Image.open(io.BytesIO(get(port, "/image.png")[2]))).astype(np.float64))
                watching.wait(live.INTERVAL / 5)

        collector = threading.Thread(target=collect)
        collector.start()
        try:
            shot = _screenshot(f"http://127.0.0.1:{port}/", tmp_path)
        finally:
            watching.set()
            collector.join()
        mid_run = json.loads(get(port, "/state.json")[2])
    finally:
        process.send_signal(signal.SIGTERM)  # stops the run: the best image is written, the server closed
        _, rest = process.communicate(timeout=120)
    assert not mid_run["done"], "the screenshot was to be taken mid-run"
    left, top, width = live.IMAGE_BOX
    height = width * photo.shape[0] // photo.shape[1]
    region = shot[top:top + height, left:left + width]
    shown = np.asarray(Image.fromarray(region.astype(np.uint8)).resize(photo.shape[1::-1], Image.BILINEAR))
    assert region[8:-8, 8:-8].std() > 20, "the image element is blank"
    # It is the run's image (one served while the browser drew), and it is no longer the photo.
    # The browser may draw an image fetched between two of the test's polls (the run moves on
    # by several grey levels per iteration), so "the run's image" is measured against the
    # photo's distance: a quiet machine gives 4-8 against 130+, a loaded one up to 21.
    nearest = min(np.abs(shown - image).mean() for image in served)
    from_photo = np.abs(shown - photo).mean()
    assert from_photo > 20, from_photo
    assert nearest < from_photo / 4, (nearest, from_photo, len(served))
    background = shot[top + height + 40:, left:left + width]
    assert np.ptp(background) < 10, "something drawn below the image"
    assert process.returncode == 130, rest
    assert refused(port)
    assert (tmp_path / "out.png").is_file()


def test_the_python_api_serves_the_live_view_too(files, tiny_net_path, capsys):
    import neural_style_tf as nst

    seen = []

    def look(step):
        if step.iteration == 2:
            port = int(re.search(r"live view: http://127\.0\.0\.1:(\d+)/", capsys.readouterr().err).group(1))
            seen.append((port, json.loads(get(port, "/state.json")[2])))

    nst.style_transfer(files["content"], [files["style"]], network=tiny_net_path, iterations=3, quiet=True, seed=1,
                       web=0, progress=look)
    (port, state), = seen
    assert state["iteration"] == 2 and not state["done"]
    assert refused(port)
