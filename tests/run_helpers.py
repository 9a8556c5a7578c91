"""Running neural_style.py's main in-process, the arguments of a short run on the
conftest.py files, and its JSON-lines log.

A plain module (not test_*), imported by the tests of neural_style, masks, progress and
transfer, and by conftest.py (CONTENT_SIZE).
"""

from __future__ import annotations

import json

import neural_style

CONTENT_SIZE = (24, 32)  # height, width of the `files` content (conftest.py)


def run_main(argv, capsys):
    """neural_style.main(argv) -> (exit status, stdout, stderr); argparse's exits included."""
    try:
        code = neural_style.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def base_args(files, tiny_net_path, output, iterations=6, *extra):
    return ["--network", tiny_net_path, "--content", files["content"], "--styles", files["style"],
            "--output", output, "--iterations", iterations, "--quiet", "--seed", 1, *extra]


def read_log(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sigterm_at_iteration(monkeypatch, iteration):
    """Make the run raise a real SIGTERM from inside its progress callback at `iteration`."""
    import signal

    from neural_style_tf import progress

    real_call = progress.Reporter.__call__

    def call(self, report):
        real_call(self, report)
        if report.iteration == iteration:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(progress.Reporter, "__call__", call)
