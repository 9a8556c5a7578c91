"""Many transfers as jobs: what to run, each job's id, and results.jsonl.

A job is a neural_style.py command line (its argv, with --output in the batch's output
folder). The batch makes jobs from content x style pairs, from a jobs.jsonl file (one
job a line) or from a sweep's grid; each is parsed and validated by the very code of
neural_style.py (cli.settings_from_argv), so a job gets its defaults, presets and
one-line messages. No Ray and no TensorFlow here.

results.jsonl gets one line per attempt of a job; the last line of an id is its state.
The id is a hash of the settings with every input path replaced by the file's sha256,
so a rerun recognises a finished job even if its files moved, and redoes it if an input
changed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import os
from dataclasses import dataclass

from .. import cli
from ..errors import UsageError
from ..networks.codebook import sha256_of
from ..settings import AUTO_SKY, PRECISION, input_file_fields, presentation_fields

RESULTS = "results.jsonl"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
# What a batch job may not ask for: these write files beside the output, and a job's
# output is made on a worker, perhaps another machine, and sent back as bytes.
NOT_IN_A_BATCH = {"checkpoint_output": "--checkpoint-output", "progress_write": "--progress-write",
                  "progress_plot": "--progress-plot", "log": "--log"}
# Settings that do not change the image, left out of the job id: settings.presentation_fields()
# but the ones a batch refuses (NOT_IN_A_BATCH, and --checkpoint-iterations, which checks.py
# accepts only with --checkpoint-output). A job always holds those at their defaults, so
# they stay in the hashed settings: taking them out would decide nothing differently but
# would change every job id, and results.jsonl of earlier batches would no longer match.
# The seed is in the id: it changes the image (a job without --seed draws one per run).
ID_NEUTRAL_DEFAULTS = {"precision": PRECISION}
NOT_IN_THE_ID = tuple(f for f in presentation_fields() if f not in NOT_IN_A_BATCH and f != "checkpoint_iterations")


@dataclass(frozen=True)
class Job:
    """One transfer of a batch: its output file name (in the out-dir) and its argv."""

    name: str
    argv: tuple
    params: tuple = ()  # ((flag, value), ...): a sweep's values for this job, for the sheet
    error: str | None = None  # a jobs.jsonl line that could not be read: the job fails with this


class JobParser(cli.Parser):
    """neural_style.py's flags, with a bad flag raised (a job's failure) instead of exiting."""

    def error(self, message):
        raise UsageError(message)


def job_parser():
    return cli.add_transfer_arguments(JobParser(prog="job", add_help=False, formatter_class=cli.Formatter))


def parse_job(job, out_dir):
    """A job's settings, validated exactly as neural_style.py validates its command line."""
    if job.error:
        raise UsageError(job.error)
    argv = list(job.argv) + ["--output", os.path.join(out_dir, job.name), "--quiet"]
    # Validated as if --overwrite were given: the output of a finished job exists, and
    # whether it may be replaced is decided after looking at results.jsonl (batch.plan).
    settings = cli.settings_from_argv(job_parser, argv + ["--overwrite"])
    settings = dataclasses.replace(settings, run=dataclasses.replace(settings.run, overwrite="--overwrite" in argv))
    for field, flag in NOT_IN_A_BATCH.items():
        if settings.value(field):
            raise UsageError(f"{flag} is not available in a batch (the output is made on a worker)")
    return settings


# ---------------------------------------------------------------- making jobs


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def image_files(items, label):
    """Files and folders -> image files (a folder's images in name order). Raises UsageError."""
    out = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, n)))
            if not found:
                raise UsageError(f"{label} {item}: no images in the folder ({', '.join(IMAGE_EXTENSIONS)})")
            out += found
        else:
            out.append(item)  # a missing file becomes that job's failure, the others go on
    return out


def unique_names(jobs):
    """Jobs with distinct output names (a-2.jpg after a.jpg)."""
    seen, out = set(), []
    for job in jobs:
        base, ext = os.path.splitext(job.name)
        name, n = job.name, 2
        while name in seen:
            name, n = f"{base}-{n}{ext}", n + 1
        seen.add(name)
        out.append(dataclasses.replace(job, name=name))
    return out


def extension(ext, content):
    return "." + ext.lstrip(".") if ext else (os.path.splitext(content)[1] or ".png")


def pair_jobs(contents, styles, common, ext=None):
    """Every content x style pair: the folder-in, folder-out batch."""
    jobs = [Job(f"{stem(c)}__{stem(s)}{extension(ext, c)}", ("--content", c, "--styles", s) + tuple(common))
            for c in contents for s in styles]
    return unique_names(jobs)


def parse_grid(items):
    """['style-weight=100,500', ...] -> (('style-weight', ('100', '500')), ...); checks the flags."""
    known = {a.dest.replace("_", "-"): a for a in job_parser()._actions}
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not values.strip():
            raise UsageError(f"--grid {item}: expected FLAG=V1,V2,... e.g. style-weight=100,500")
        if key not in known or key in ("content", "output"):
            close = difflib.get_close_matches(key, list(known), n=1)
            raise UsageError(f"--grid {item}: {key} is not a flag of neural_style.py that a sweep can vary"
                             + (f"; did you mean {close[0]}?" if close else ""))
        grid.append((key, tuple(v.strip() for v in values.split(",") if v.strip())))
    return tuple(grid)


def value_text(value):
    return "".join(c if c.isalnum() or c in ".-+_" else "_" for c in value)


def sweep_jobs(content, styles, grid, common, ext=None):
    """One job per point of the grid (the product of its values), for one content and style set."""
    jobs = []
    base = "+".join([stem(content)] + [stem(s) for s in styles])
    for values in itertools.product(*(v for _, v in grid)):
        params = tuple((key, value) for (key, _), value in zip(grid, values))
        flags = tuple(x for key, value in params for x in (f"--{key}", value))
        name = base + "".join(f"__{key}={value_text(value)}" for key, value in params) + extension(ext, content)
        jobs.append(Job(name, ("--content", content, "--styles", *styles) + tuple(common) + flags, params))
    return unique_names(jobs)


# The flags whose values are input files: relative to the jobs file when not found as given.
FILE_FLAGS = ("--content", "--styles", "--initial", "--color-source", "--network", "--style-masks",
              "--style-region-masks", "--content-mask")


def line_argv(entry, base):
    """One jobs.jsonl entry (a list of flags, or {flag: value}) -> (argv, output name or None)."""
    if isinstance(entry, list) and all(isinstance(x, str) for x in entry):
        argv = list(entry)
    elif isinstance(entry, dict):
        argv = []
        for key, value in entry.items():
            flag = "--" + str(key).lstrip("-")
            if value is True:
                argv.append(flag)
            elif value not in (False, None):
                argv += [flag] + [str(v) for v in (value if isinstance(value, list) else [value])]
    else:
        raise ValueError("a line must be a JSON list of flags or an object {flag: value}")
    output = None
    if "--output" in argv:
        i = argv.index("--output")
        output = argv[i + 1] if i + 1 < len(argv) else None
        del argv[i:i + 2]
    # Paths relative to the jobs file, so the file can travel with its images.
    for flag in FILE_FLAGS:
        if flag in argv:
            i = argv.index(flag) + 1
            while i < len(argv) and not argv[i].startswith("--"):
                if not os.path.isabs(argv[i]) and not os.path.exists(argv[i]) and argv[i] != AUTO_SKY:
                    argv[i] = os.path.join(base, argv[i])
                i += 1
    return argv, output


def file_jobs(path, common, ext=None):
    """jobs.jsonl -> jobs; a line that is not JSON becomes a job that fails with its message."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line.strip()) for n, line in enumerate(f, start=1)]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    base = os.path.dirname(os.path.abspath(path))
    jobs = []
    for number, line in lines:
        if not line or line.startswith("#"):
            continue
        try:
            argv, output = line_argv(json.loads(line), base)
        except ValueError as exc:
            # An unreadable line fails as its own job; the others go on.
            jobs.append(Job(f"line{number}.png", (), error=f"{os.path.basename(path)} line {number}: {exc}"))
            continue
        content = argv[argv.index("--content") + 1] if "--content" in argv[:-1] else f"line{number}"
        name = output or f"{stem(content)}__line{number}{extension(ext, content)}"
        jobs.append(Job(name, tuple(common) + tuple(argv)))
    if not jobs:
        raise UsageError(f"{path}: no jobs in the file")
    return unique_names(jobs)


# ---------------------------------------------------------------- ids and results


class Digests:
    """sha256 of files, each computed once per (path, size, mtime)."""

    def __init__(self):
        self.known = {}

    def __call__(self, path):
        info = os.stat(path)
        key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
        if key not in self.known:
            self.known[key] = sha256_of(path)
        return self.known[key]


# The settings (RunSettings fields) that name input files, one path or a list of them (settings.py marks them).
FILE_FIELDS = input_file_fields("file")
FILE_LIST_FIELDS = input_file_fields("files")


def input_files(settings):
    """Every input file of a job's settings (network included when it is a file; masks
    that are files, not auto-sky)."""
    run = settings.run
    paths = [getattr(run, f) for f in FILE_FIELDS] + [p for f in FILE_LIST_FIELDS for p in getattr(run, f) or ()]
    return [p for p in paths if p is not None and os.path.isfile(p)]


def job_id(settings, digest):
    """Hash of the settings, with each input file's content in place of its path."""
    data = settings.as_dict()
    run = data["run"]

    def content_of(path):
        return digest(path) if path is not None and os.path.isfile(path) else path

    for key in FILE_FIELDS:
        run[key] = content_of(run[key])
    for key in FILE_LIST_FIELDS:
        run[key] = None if run[key] is None else [content_of(p) for p in run[key]]
    run["output_name"] = os.path.basename(run["output"])
    for key in NOT_IN_THE_ID:
        run.pop(key, None)
    # Settings added after batches were first run, at their default: left out, so that the
    # ids in the results.jsonl of earlier batches still match (a value that changes the
    # image, given explicitly, is in the id).
    for key, default in ID_NEUTRAL_DEFAULTS.items():
        if run.get(key) == default:
            run.pop(key)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def invalid_id(job):
    """The id of a job whose settings could not be made: its name and flags."""
    return hashlib.sha256(json.dumps([job.name, list(job.argv)]).encode()).hexdigest()[:16]


def read_results(path):
    """{id: its last record} from results.jsonl (a torn last line, from a kill, is ignored)."""
    latest = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "id" in record:
                    latest[record["id"]] = record
    except FileNotFoundError:
        pass
    return latest


def append_result(path, record):
    """One line, flushed and synced: what finished is on disk before anything else happens."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def is_done(record, out_dir):
    return bool(record) and record.get("status") == "done" and os.path.isfile(os.path.join(out_dir, record["output"]))
