"""The whole plain command, timed as a user runs it: `benchmark.py --command`.

    python benchmark.py --command [NAME=FLAGS ...] [--command-width 512] [--command-rounds 1]

Each variant is `neural_style.py` on the example photo and The Starry Night with its
flags, in a child process of its own, as the README's main command. The variants
alternate round by round, so that a machine that gets busier slows them all alike. For
each run: the wall time to the process's end, the seconds before the first evaluation
("ready") and after the image was written (the process's exit, "exit"), the peak RSS of
the child (os.wait4), and the evaluations at each scale (from its --log). A
per-evaluation benchmark says what an evaluation costs; this says what the user waits for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .benchmark_measure import CONTENT_IMAGE, ROOT, STYLE_IMAGE, cpu_model

DEFAULT_VARIANTS = (("default", ""),)


def parse_variant(text):
    """'NAME=FLAGS' -> (name, flags)."""
    name, _, flags = text.partition("=")
    if not name:
        raise ValueError(f"a variant is NAME=FLAGS, not {text!r}")
    return name, flags


def evaluations_per_scale(log_path):
    """{scale number (1 = the coarsest; 1 on a single scale): evaluations} from a --log file."""
    per_scale, last = {}, 0
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "iteration" not in row:
                continue
            scale = row.get("scale", 1)
            per_scale[scale] = per_scale.get(scale, 0) + row["evaluations"] - last
            last = row["evaluations"]
    return per_scale


def run_command(flags, width, folder, seed=0):
    """One run of neural_style.py; returns its measurements."""
    output, log = os.path.join(folder, "out.png"), os.path.join(folder, "run.jsonl")
    for path in (output, log):
        if os.path.exists(path):
            os.remove(path)
    argv = [sys.executable, os.path.join(ROOT, "neural_style.py"), "--content", CONTENT_IMAGE, "--styles",
            STYLE_IMAGE, "--output", output, "--width", str(width), "--seed", str(seed), "--quiet", "--log", log,
            *flags.split()]
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read() if child.stderr else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall, ended = time.perf_counter() - t0, time.time()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"neural_style.py {flags!r} failed: {stderr.strip().splitlines()[-1:]}")
    ready = next((float(line.split()[2]) for line in stderr.splitlines() if line.startswith("ready in ")), None)
    with open(log, encoding="utf-8") as f:
        end = [json.loads(line) for line in f][-1]
    # The image is written to a temporary file and renamed: its time is the moment it was done.
    return {"wall": wall, "ready": ready, "exit": ended - os.stat(output).st_mtime,
            "peak_rss_gb": usage.ru_maxrss / 1024**2, "evaluations": evaluations_per_scale(log),
            "loss": end["terms"]["total"]}


def markdown(results, width):
    lines = [f"Plain command at {width} px ({cpu_model()}); median of the rounds where there are several.", "",
             "| variant | flags | wall s | ready s | exit s | evaluations per scale | peak RSS GB | loss |",
             "|---|---|---|---|---|---|---|---|"]
    for name, flags, runs in results:
        walls = sorted(r["wall"] for r in runs)
        r = runs[[x["wall"] for x in runs].index(walls[len(walls) // 2])]
        per_scale = " + ".join(str(r["evaluations"][k]) for k in sorted(r["evaluations"]))
        lines.append(f"| {name} | `{flags or '(none)'}` | {r['wall']:.1f} | {r['ready'] or 0:.1f} | {r['exit']:.2f} "
                     f"| {per_scale} | {r['peak_rss_gb']:.2f} | {r['loss']:.4g} |")
    return "\n".join(lines) + "\n"


def run(variants, width, rounds, out=None, say=print):
    """Run every variant `rounds` times, alternating; print (and write to `out`) the table."""
    results = [(name, flags, []) for name, flags in variants]
    with tempfile.TemporaryDirectory(prefix="benchmark-command-") as folder:
        for round_index in range(rounds):
            for name, flags, runs in results:
                say(f"round {round_index + 1}/{rounds}: {name} ...", file=sys.stderr)
                runs.append(run_command(flags, width, folder))
    text = markdown(results, width)
    say(text)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    return results
