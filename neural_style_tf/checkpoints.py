"""Resumable checkpoints of one transfer, and `--resume`: a run killed without warning
(SIGKILL, the OOM killer, a reboot) continues from its last checkpoint, at the right scale.

A checkpoint is one hidden file beside the output, `.<output name>.checkpoint.npz`,
written at the end of every coarse-to-fine scale, on Ctrl-C or SIGTERM, and every
`--checkpoint-every N` evaluations (0: only those). It holds:

- `image`: the best image so far, float32 RGB 0..255, as the optimiser sees it (before
  the colours are finished), at its scale's size. Why float32 and not a 16-bit PNG: the
  optimiser's variables are float32, so the resumed scale starts from exactly the image
  the killed run had (a 16-bit PNG rounds to 1/257 of a grey level); and an .npz holds
  the image and its metadata in ONE file, so a single os.replace makes both appear at
  once and they can never disagree;
- `meta`: JSON text: the scale (stage index), the iterations and evaluations done at it,
  whether it finished, the totals so far, the best image's loss terms, the seed, the
  planned stages, and the fingerprint of everything that decides the image (the settings
  but those that do not change it, settings.presentation_fields, with each input file's
  content digest in place of its path) with its sha256 digest.

It is written atomically (images.write_atomically: a temporary file beside it, fsync,
os.replace): a kill during the write leaves the previous checkpoint whole. It is removed
once the output of a finished run is written; an interrupted run keeps it for --resume.

`--resume` refuses, with one line, when there is no checkpoint, when it cannot be read,
or when the settings or the inputs differ (naming what differs); a rerun without
--resume starts again and replaces a stale checkpoint, never using it. The seed is
checked on its own, as video.py does: without --seed the resumed run takes the stored
one, with another seed it is refused.

What a resumed run cannot restore: L-BFGS's history (SciPy's fmin_l_bfgs_b has no state
to save) and the iterate average; the resumed scale starts them afresh from the
checkpoint's image, so its result is close to, not identical with, an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading

import numpy as np

from . import images, lifecycle
from .coarse_to_fine import Position
from .errors import UsageError
from .settings import input_file_fields, presentation_fields

FORMAT = 1
SUFFIX = ".checkpoint.npz"
# Input files larger than this (a network's weights: VGG-19's .mat is 510 MB) are known by
# their size and modification time instead of their content: hashing them would add
# seconds to every run's start, and a changed weights file changes both anyway.
HASH_WHOLE_BELOW = 64 << 20
# Settings outside the fingerprint: those that do not change the image, and the seed,
# checked on its own (see the module's docstring).
NOT_FINGERPRINTED = presentation_fields() + ("seed",)


def path_for(output):
    """The checkpoint of `output`: a hidden file beside it, named after it (extension included,
    so out.png's and out.jpg's do not collide)."""
    directory, name = os.path.split(os.path.abspath(output))
    return os.path.join(directory, f".{name}{SUFFIX}")


def file_digest(path):
    """sha256 of a file's content (size and mtime for a large one); a value that names no
    file (None, auto-sky) is itself."""
    if path is None or not os.path.isfile(path):
        return path
    stat = os.stat(path)
    if stat.st_size >= HASH_WHOLE_BELOW:
        return f"size {stat.st_size} mtime {stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(settings):
    """Everything that decides the image: the settings (JSON-ready) without NOT_FINGERPRINTED,
    each input file's digest in place of its path (a moved file still matches)."""
    parts = settings.as_dict()
    run = parts["run"]
    for name in NOT_FINGERPRINTED:
        run.pop(name, None)
    for name in input_file_fields("file"):
        run[name] = file_digest(run[name])
    for name in input_file_fields("files"):
        run[name] = None if run[name] is None else [file_digest(p) for p in run[name]]
    return parts


def digest_of(prints):
    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


def differences(old, new):
    """The flags whose values differ between two fingerprints, e.g. ['--iterations', '--styles']."""
    names = []
    for part in sorted(set(old) | set(new)):
        a, b = old.get(part) or {}, new.get(part) or {}
        names += [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return ["--" + ("eps" if name == "epsilon" else name).replace("_", "-") for name in names]


# ---------------------------------------------------------------- the file


def save(path, meta, position):
    """Write the checkpoint of `position` atomically. `meta`: the run's (fingerprint, digest, seed, stages)."""
    record = meta | {"format": FORMAT, "stage": position.stage, "iterations": position.iterations,
                     "evaluations": position.evaluations, "finished": bool(position.finished),
                     "done": [int(position.done[0]), int(position.done[1]), float(position.done[2])],
                     "terms": None if position.terms is None else {k: float(v) for k, v in position.terms.items()}}
    image = np.asarray(position.image, np.float32)
    # Straight into the temporary file, not through memory: at print size the image alone is
    # 133 MB (3840x2880x3 float32), and a copy would add that much to the peak.
    images.write_atomically(path, lambda f: np.savez(f, image=image, meta=np.array(json.dumps(record))))


def load(path):
    """(meta, Position) of a checkpoint file. Raises UsageError for a file that cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            image = np.asarray(data["image"], np.float32)
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')}, not {FORMAT}")
        position = Position(int(meta["stage"]), int(meta["iterations"]), int(meta["evaluations"]),
                            bool(meta["finished"]), image, meta["terms"], tuple(meta["done"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume: the checkpoint {path} cannot be read ({exc}); "
                         "rerun without --resume to start again") from None
    return meta, position


def remove(path):
    """Remove a checkpoint, and the temporary files a kill during a write left beside it."""
    directory, name = os.path.split(path)
    # images.write_atomically's temporary files: f".{name}.<random>.tmp"
    stale = [n for n in os.listdir(directory) if n.startswith(f".{name}.") and n.endswith(".tmp")]
    for victim in [path] + [os.path.join(directory, n) for n in stale]:
        try:
            os.unlink(victim)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- one run's checkpoints


class Checkpoints:
    """One transfer's checkpoints: the `checkpoint` hook of coarse_to_fine.run, and what a
    resumed run starts from (`start`, a Position; None for a fresh run)."""

    def __init__(self, settings, say=None):
        """Reads the checkpoint when settings.run.resume; raises UsageError (one line) when
        there is none or it does not match. No network is needed: this runs before loading."""
        run = settings.run
        self.say = say or lifecycle.say
        self.path = path_for(run.output)
        self.every = run.checkpoint_every or 0
        prints = fingerprint(settings)
        self.meta = {"fingerprint": prints, "digest": digest_of(prints)}
        self.start: Position | None = None
        self.seed = run.seed
        self.last_evaluations = 0
        self.stored_stages = None
        if run.resume:
            self._read(run)
        elif os.path.exists(self.path):
            self.say(f"a checkpoint of an earlier run of {run.output} is there: starting again, it will be "
                     "replaced (--resume continues it instead)")

    def _read(self, run):
        if not os.path.exists(self.path):
            raise UsageError(f"--resume: no checkpoint of {run.output} to resume ({self.path} does not exist); "
                             "rerun without --resume to start again")
        meta, position = load(self.path)
        if meta.get("digest") != self.meta["digest"]:
            changed = differences(meta.get("fingerprint") or {}, self.meta["fingerprint"]) or ["the inputs"]
            raise UsageError(f"--resume: the checkpoint of {run.output} was made with other settings or inputs "
                             f"({', '.join(changed)}); rerun without --resume to start again")
        if run.seed is not None and run.seed != meta.get("seed"):
            raise UsageError(f"--resume: the checkpoint of {run.output} was made with --seed {meta.get('seed')}, "
                             f"not {run.seed}; rerun without --seed (or without --resume to start again)")
        self.seed, self.start = meta.get("seed"), position
        self.stored_stages = meta.get("stages")
        self.last_evaluations = position.done[1]

    def begin(self, job):
        """Once the job is prepared: its seed and stages go into every checkpoint; a resumed
        run's stages must be the stored ones, and the resume line is said."""
        stages = [[int(s.size[0]), int(s.size[1]), int(s.iterations)] for s in job.stages]
        self.meta = self.meta | {"seed": job.seed, "stages": stages}
        if self.start is None:
            return
        if self.stored_stages != stages:
            raise UsageError(f"--resume: the checkpoint's scales {self.stored_stages} are not this run's {stages}; "
                             "rerun without --resume to start again")
        self.say(resume_line(self.start, job.stages))

    def __call__(self, position, periodic):
        """coarse_to_fine.run's hook: every stage's end and an interrupt are written; an
        iteration only once `every` evaluations have passed since the last write."""
        if periodic and (not self.every or position.done[1] - self.last_evaluations < self.every):
            return
        # A second Ctrl-C during a write must not lose the run (the stage's end is outside
        # the optimiser, which turns the first into a result): the signals wait a moment.
        # (Not during an iteration's: the optimiser turns an interrupt there into a result,
        # and an ignored Ctrl-C would be lost.)
        hold = not periodic and threading.current_thread() is threading.main_thread()
        with lifecycle.signals_held() if hold else contextlib.nullcontext():
            save(self.path, self.meta, position)
        self.last_evaluations = position.done[1]

    def finish(self, result):
        """After the output is written: a finished run's checkpoint is removed; an interrupted
        one's is kept for --resume."""
        if result.image is not None and result.stop_reason != "interrupted":
            remove(self.path)
            return False
        return os.path.exists(self.path)


def resume_line(position, stages):
    """'resuming at scale 2/3 (512x384) after 40 of 100 iterations'."""
    index, done = position.stage, position.iterations
    if position.finished:
        index, done = index + 1, 0
    if index >= len(stages):
        return f"resuming after the last scale ({len(stages)}/{len(stages)}): every iteration was done"
    stage = stages[index]
    return (f"resuming at scale {index + 1}/{len(stages)} ({stage.size[1]}x{stage.size[0]}) "
            f"after {done} of {stage.iterations} iterations")
