"""A batch worker: one long-lived process (a Ray actor, see engine.py) that runs jobs one
after another and keeps what is expensive between them.

Measured here (embedded VGG-16, 160 px, 1 thread): importing TensorFlow 3.5-7 s; loading
the network 0.1 s; building an Objective 3.1-3.3 s (2.8 s of it the targets' own graph
and session) and its first evaluation 2.2 s (Grappler, oneDNN set-up), against 0.24 s per
evaluation after that. So a worker keeps:

- TensorFlow, imported once;
- the networks it loaded, by (file, input range); a network sent by the driver (a
  normalised one, say) by its object reference;
- the last Objectives it built (OBJECTIVES_KEPT: one per scale of a coarse-to-fine
  run), with their warmed-up sessions, keyed by what fixes a graph (objective.graph_key:
  the network, the size, the layers, the loss options but the weights, which terms and
  masks there are): a job of other images at the same size `retarget`s them (new
  targets assigned, nothing built), one that differs only in the content, style or TV
  weight `reweight`s them and starts at once (coarse_to_fine.Objectives). The coarser
  scales' graphs are a quarter of the next one's, so a worker's memory stays near one
  run's, as memory.py estimates it, plus the kept target graph (targets.TargetGraphs);
- copies of input files that were not readable at the driver's path (no shared storage),
  by sha256.

A job function is named "module:function" and called as function(worker, payload) ->
record dict; it runs in the worker process, so it may use TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import shutil
import socket
import tempfile
import time
import traceback

from .. import coarse_to_fine, transfer
from ..errors import EXIT_OK, UsageError
from ..networks.codebook import sha256_of
from ..networks.loading import load_net
from ..settings import input_file_fields
from ..tf_runtime import configure_process, import_tensorflow

# Objectives a worker keeps: a coarse-to-fine run's scales (2-3 by default) reuse theirs.
OBJECTIVES_KEPT = 3


class Worker:
    """The state a Ray actor keeps; its methods run in the actor's process."""

    def __init__(self):
        configure_process()
        import_tensorflow()  # seconds, paid once per worker instead of once per job
        self.networks = {}
        self.shared = {}
        self.objectives = coarse_to_fine.Objectives(OBJECTIVES_KEPT)
        self.counts = self.objectives.counts  # {"built": n, "reused": n}
        self.files = {}
        self.file_digests = {}
        self.scratch = tempfile.mkdtemp(prefix="neural-style-worker-")

    # ---------------------------------------------------------------- what is kept

    def network(self, path, input_range=None):
        key = (path, input_range)
        if key not in self.networks:
            self.networks[key] = load_net(path, input_range)
        return self.networks[key]

    def shared_object(self, ref):
        """An object the driver put in Ray's object store (e.g. a normalised network), fetched once."""
        import ray

        key = ref.hex()
        if key not in self.shared:
            self.shared[key] = ray.get(ref)
        return self.shared[key]

    def make_objective(self, problem):
        """An objective.Problem -> a context manager giving a built Objective, the one kept
        for its graph key retargeted if there is one (coarse_to_fine.Objectives)."""
        return self.objectives(problem)

    def forget_objectives(self):
        self.objectives.close()

    def local_file(self, path, sha, ref):
        """The driver's file `path` here: in place when it is readable and the same (shared
        storage, or this machine), else a copy fetched from Ray's object store."""
        if os.path.isfile(path):
            info = os.stat(path)
            key = (path, info.st_size, info.st_mtime_ns)
            if key not in self.file_digests:
                self.file_digests[key] = sha256_of(path)
            if self.file_digests[key] == sha:
                return path
        if sha not in self.files:
            import ray

            if ref is None:
                raise UsageError(f"{path}: not readable on this worker ({socket.gethostname()}), and not sent")

            folder = os.path.join(self.scratch, sha)
            os.makedirs(folder, exist_ok=True)
            local = os.path.join(folder, os.path.basename(path))
            with open(local, "wb") as f:
                f.write(ray.get(ref))
            self.files[sha] = local
        return self.files[sha]

    # ---------------------------------------------------------------- running a job

    def where(self):
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def run(self, function, payload):
        """Run one job; never raises for the job's own failure (the record says it)."""
        module, name = function.split(":")
        t0 = time.perf_counter()
        log = io.StringIO()
        with contextlib.redirect_stderr(log):
            try:
                record = getattr(importlib.import_module(module), name)(self, payload)
            except UsageError as exc:  # NetworkError, ImageError: the job's one-line message
                record = {"status": "failed", "error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the batch
                record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()}
        record.update(seconds=round(time.perf_counter() - t0, 2), log=log.getvalue(), **self.where())
        return record

    def close(self):
        self.forget_objectives()
        shutil.rmtree(self.scratch, ignore_errors=True)


# ---------------------------------------------------------------- the transfer job


def localise(worker, settings, files):
    """The job's settings with its inputs readable here and its output in the worker's scratch."""
    run = settings.run

    def here(path):
        return None if path is None else worker.local_file(path, *files[path]) if path in files else path

    def all_here(paths):
        return None if paths is None else tuple(here(p) for p in paths)

    output = os.path.join(tempfile.mkdtemp(dir=worker.scratch), os.path.basename(run.output))
    # Every input file settings.py marks, one path or a tuple of them.
    inputs = ({name: here(getattr(run, name)) for name in input_file_fields("file")}
              | {name: all_here(getattr(run, name)) for name in input_file_fields("files")})
    return dataclasses.replace(settings, run=dataclasses.replace(run, **inputs, output=output, overwrite=True,
                                                                 quiet=True))


def run_transfer(worker, payload):
    """One neural_style.py job: transfer.execute with the worker's network and objectives.

    payload: {"settings": Settings (validated by the driver), "files": {path: (sha256, ref)}}.
    Returns the image file's bytes; the driver writes them into the out-dir.
    """
    settings = localise(worker, payload["settings"], payload["files"])
    network = worker.network(settings.run.network, settings.run.input_range)
    reused = worker.counts["reused"]
    status, job, result = transfer.execute(settings, network, worker.make_objective)
    image = None
    if os.path.isfile(settings.run.output):
        with open(settings.run.output, "rb") as f:
            image = f.read()
        shutil.rmtree(os.path.dirname(settings.run.output), ignore_errors=True)
    ok = status == EXIT_OK and image is not None
    return {"status": "done" if ok else "failed", "error": None if ok else (result.message or "no image"),
            "image": image if ok else None, "losses": result.terms, "iterations": result.iterations,
            "evaluations": result.evaluations, "stop_reason": result.stop_reason, "seed": job.seed,
            "optimize_seconds": round(result.elapsed, 2),
            "graph": "reused" if worker.counts["reused"] > reused else "built"}
