"""The live view of a running transfer (`neural_style.py --web [PORT]`): a small page on
http://127.0.0.1:PORT/ that shows the best image so far and the loss curve, refreshed as
the run goes, and the final image at the end.

A progress listener (progress.Reporter calls `step` after each iteration and `end` once)
with a standard-library HTTP server beside it, in a thread of the run's process, bound to
127.0.0.1 only. It serves exactly four things, all made in memory from the run: the page
(/), its state (/state.json), the image (/image.png) and the curve (/curve.svg); any other
path is a 404, nothing is read from disk, there is no directory listing, and the page
loads nothing from elsewhere (its Content-Security-Policy forbids it). Stopping the run
stops the server (the `serving` context manager closes it, whatever ends the run).

The image is encoded in the run's thread, at most every `interval` seconds (a PNG of
512x384 takes some 20 ms), so the server's threads only hand out bytes made already.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import math
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .errors import UsageError

HOST = "127.0.0.1"  # this computer only: never 0.0.0.0
WEB_PORT = 8000  # --web without a PORT
INTERVAL = 0.5  # seconds between two encodings of the image (the last one is always encoded)
# After the end, when someone is watching: serve until a client has fetched the final
# image, or this many seconds, so the page shows the result before the process exits.
LINGER = 3.0
POLL_MS = 1000  # the page asks for news this often
# Where the page draws the image (CSS pixels, from the top left of the page), so that a
# screenshot test knows where to look; the curve is drawn to the right of it.
IMAGE_BOX = (16, 64, 512)  # left, top, width
CURVE_SIZE = (420, 260)  # width, height of /curve.svg
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; connect-src 'self'; "
                               "script-src 'unsafe-inline'; style-src 'unsafe-inline'",
}


def encode_png(rgb):
    """RGB float 0..255 -> PNG bytes."""
    from PIL import Image

    from .images import to_uint

    buffer = io.BytesIO()
    Image.fromarray(to_uint(rgb)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class State:
    """What the page shows, guarded by a lock: the run's thread writes, the server's read."""

    def __init__(self):
        self.lock = threading.Lock()
        self.png = None
        self.version = 0  # counts the images encoded
        self.totals = []  # [(iteration, total loss)]
        self.info: dict[str, Any] = {"iteration": 0, "iterations": None, "evaluations": 0, "seconds": 0.0, "terms": {},
                     "done": False, "stop_reason": None, "size": None}

    def snapshot(self):
        with self.lock:
            return dict(self.info, version=self.version, totals=list(self.totals))


def curve_svg(totals, size=CURVE_SIZE):
    """The total loss per iteration as an SVG line chart, on a log scale."""
    width, height = size
    left, right, top, bottom = 64, 12, 14, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="#ffffff" stroke="#cccccc"/>']
    points = [(i, math.log10(v)) for i, v in totals if v > 0 and math.isfinite(v)]
    if points:
        x0, x1 = points[0][0], max(points[-1][0], points[0][0] + 1)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        y0, y1 = (y0 - 0.5, y1 + 0.5) if y1 - y0 < 1e-9 else (y0, y1)

        def xy(i, y):
            return (left + (i - x0) / (x1 - x0) * (width - left - right),
                    top + (y1 - y) / (y1 - y0) * (height - top - bottom))

        line = " ".join("{:.1f},{:.1f}".format(*xy(i, y)) for i, y in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f5fbf" stroke-width="2"/>')
        for y, anchor in ((y1, top + 4), (y0, height - bottom)):
            parts.append(f'<text x="{left - 6}" y="{anchor:.0f}" text-anchor="end">{10 ** y:.4g}</text>')
        for i, anchor in ((x0, "start"), (points[-1][0], "end")):
            parts.append(f'<text x="{xy(i, y0)[0]:.0f}" y="{height - 10}" text-anchor="{anchor}">{i}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 10}" text-anchor="middle">iteration (total loss, '
                 'log scale)</text></svg>')
    return "\n".join(parts).encode()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neural style: live view</title>
<style>
body {{ margin: 0; font-family: sans-serif; background: #f2f2f2; color: #222; }}
header {{ position: absolute; left: 16px; top: 12px; height: 40px; font-size: 15px; }}
#image {{ position: absolute; left: {left}px; top: {top}px; width: {width}px; background: #ddd; }}
#curve {{ position: absolute; left: {curve_left}px; top: {top}px; }}
</style></head>
<body>
<header><b>neural style</b> &middot; <span id="status">{status}</span></header>
<img id="image" src="/image.png?v={version}" alt="the best image so far">
<img id="curve" src="/curve.svg?v={count}" alt="the loss curve" width="{curve_width}" height="{curve_height}">
<script>
let shown = {version}, count = {count};
function describe(s) {{
  if (s.done) return "finished (" + s.stop_reason + "): " + s.iteration + " iterations, " + s.evaluations +
    " evaluations, " + s.seconds.toFixed(1) + " s, loss " + (s.terms.total || 0).toPrecision(6);
  return "iteration " + s.iteration + " of " + s.iterations + " (" + s.evaluations + " evaluations, " +
    s.seconds.toFixed(1) + " s), loss " + (s.terms.total || 0).toPrecision(6);
}}
async function poll() {{
  let s;
  try {{
    s = await (await fetch("/state.json", {{cache: "no-store"}})).json();
  }} catch (e) {{
    document.getElementById("status").textContent += " (the run has ended)";
    return;
  }}
  document.getElementById("status").textContent = describe(s);
  if (s.version !== shown) {{
    const next = new Image();
    next.onload = () => {{ document.getElementById("image").src = next.src; }};
    next.src = "/image.png?v=" + s.version;
    shown = s.version;
  }}
  if (s.totals.length !== count) {{
    count = s.totals.length;
    document.getElementById("curve").src = "/curve.svg?v=" + count;
  }}
  if (!s.done) setTimeout(poll, {poll_ms});
  else document.getElementById("status").textContent = describe(s);
}}
setTimeout(poll, {poll_ms});
</script>
</body></html>
"""


def status_line(info):
    if info["iterations"] is None:
        return "starting"
    state = f"finished ({info['stop_reason']})" if info["done"] else "iteration"
    return f"{state} {info['iteration']} of {info['iterations']}"


def page(state):
    snap = state.snapshot()
    left, top, width = IMAGE_BOX
    return PAGE.format(left=left, top=top, width=width, curve_left=left + width + 24, status=html.escape(
        status_line(snap)), version=snap["version"], count=len(snap["totals"]), poll_ms=POLL_MS,
        curve_width=CURVE_SIZE[0], curve_height=CURVE_SIZE[1]).encode()


class Handler(BaseHTTPRequestHandler):
    """GET of the four paths; 404 for any other. The server's `live` is the LiveView."""

    server_version = "neural-style-live"

    def do_GET(self):  # noqa: N802 (the http.server name)
        view = self.server.live  # type: ignore[attr-defined]
        view.seen.set()
        if self.headers.get("Host") not in view.hosts:  # a DNS-rebinding page of another site
            return self.reply(HTTPStatus.FORBIDDEN, b"forbidden\n", "text/plain; charset=utf-8")
        path = self.path.partition("?")[0]  # the query only busts caches
        if path == "/":
            return self.reply(HTTPStatus.OK, page(view.state), "text/html; charset=utf-8")
        if path == "/state.json":
            return self.reply(HTTPStatus.OK, json.dumps(view.state.snapshot()).encode(), "application/json")
        if path == "/curve.svg":
            return self.reply(HTTPStatus.OK, curve_svg(view.state.snapshot()["totals"]), "image/svg+xml")
        if path == "/image.png":
            with view.state.lock:
                png, version, done = view.state.png, view.state.version, view.state.info["done"]
            if png is not None:
                self.reply(HTTPStatus.OK, png, "image/png")
                if done and version == view.final_version:
                    view.fetched_final.set()
                return None
        return self.reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        """Nothing printed: the run's own messages are the terminal's."""


class LiveView:
    """The server and the listener. Binds at once (a busy port is a UsageError, before any
    network is built); `close()` stops it."""

    def __init__(self, port=WEB_PORT, interval=INTERVAL, linger=LINGER):
        self.state = State()
        self.interval, self.linger = interval, linger
        self.last_encoded = None
        self.final_version = None
        self.seen, self.fetched_final = threading.Event(), threading.Event()
        try:
            self.server = ThreadingHTTPServer((HOST, port), Handler)
        except OSError as exc:
            raise UsageError(f"--web {port}: cannot serve on {HOST}:{port} ({exc.strerror or exc}); "
                             "choose another port, or 0 for any free one") from exc
        self.server.daemon_threads = True
        self.server.live = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self.url = f"http://{HOST}:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="neural-style-live", daemon=True)
        self.thread.start()

    def _publish(self, rgb):
        png = encode_png(rgb)
        with self.state.lock:
            self.state.png = png
            self.state.version += 1
            self.state.info["size"] = [int(rgb.shape[1]), int(rgb.shape[0])]
        self.last_encoded = time.monotonic()

    def step(self, progress, image):
        with self.state.lock:
            self.state.totals.append((progress.iteration, float(progress.terms["total"])))
            self.state.info.update(iteration=progress.iteration, iterations=progress.iterations,
                                   evaluations=progress.evaluations, seconds=round(progress.elapsed, 3),
                                   terms={k: float(v) for k, v in progress.terms.items()})
        if self.last_encoded is None or time.monotonic() - self.last_encoded >= self.interval:
            self._publish(image())

    def end(self, result, image):
        final = image()
        if final is not None:
            self._publish(final)
        with self.state.lock:
            self.state.info.update(done=True, stop_reason=result.stop_reason, evaluations=result.evaluations,
                                   seconds=round(result.elapsed, 3),
                                   terms={k: float(v) for k, v in (result.terms or {}).items()},
                                   iteration=result.iterations)
            self.final_version = self.state.version

    def close(self):
        """Stop serving (after the final image was fetched, or `linger` s, when someone watched)."""
        try:
            if self.final_version is not None and self.seen.is_set():
                self.fetched_final.wait(self.linger)
        except KeyboardInterrupt:
            pass  # Ctrl-C while the page fetches the final image: stop now, the image is written
        finally:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@contextlib.contextmanager
def serving(port, say=None):
    """A LiveView on `port` for the block (None: no live view, yields None), closed after it."""
    if port is None:
        yield None
        return
    view = LiveView(port)
    if say is not None:
        say(f"live view: {view.url}")
    try:
        yield view
    finally:
        view.close()
