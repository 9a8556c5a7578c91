"""Many jobs on Ray: a local Ray instance, or a running cluster by address.

`run_tasks` starts N long-lived workers (Ray actors holding a worker.Worker), gives each
the next task (preferring one of the group it ran last, so that it reuses its graph),
and hands every finished task's record to the caller's `on_result` on the driver, which
writes the files. What can go wrong with one task stays with it:

- a job's own failure (a bad file, NaN) comes back as a record with status "failed";
- a worker that dies (SIGKILL, out of memory) fails its task with "worker died"; the
  task is tried again on a new worker up to `retries` times, and the batch goes on;
- Ctrl-C kills the workers (their unfinished outputs were never written: a worker's
  output reaches the out-dir only through on_result) and raises KeyboardInterrupt.

Each worker declares its CPUs (its TensorFlow threads), GPUs and memory (memory.py's
estimate of one run), so Ray never puts more workers on a node than fit. TensorFlow's
thread pools are fixed when the process starts them, so the thread count reaches a
worker through its environment (runtime_env), not through a later session setting.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass

from ..errors import UsageError
from ..memory import format_bytes

WORKER_CLASS = "neural_style_tf.apps.worker:Worker"
# 2 threads per worker: measured here on 2 cores, one worker with 2 threads against two
# with 1 thread each (docs/batch.md, Throughput).
THREADS_PER_WORKER = 2
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Task:
    """One job for a worker: `function(worker, payload)` ("module:function") run there."""

    id: str
    function: str
    payload: object
    group: object = None  # tasks of a group share a graph: sent to the worker that ran the group
    label: str = ""


@dataclass(frozen=True)
class PoolOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a local Ray instance
    workers: int | None = None  # None: as many as fit
    threads: int | None = None  # None: THREADS_PER_WORKER, at most a node's CPUs
    gpus: float = 0.0
    memory: int | None = None  # bytes per worker (memory.py's estimate)
    retries: int = 1  # how many times a task whose worker died is tried again


def add_pool_arguments(p, retries=1):
    """The Ray flags of batch.py, reproduce.py and compare.py."""
    g = p.add_argument_group("Ray (docs/batch.md)")
    g.add_argument("--address", default=None,
                   help="a running Ray cluster: host:port or auto (batch.py: default RAY_ADDRESS, else a local "
                        "Ray instance started and stopped here)")
    g.add_argument("--workers", type=int, default=None, help="Ray workers (default: as many as fit)")
    g.add_argument("--threads-per-worker", type=int, default=None,
                   help=f"TensorFlow threads (and CPUs) of each worker (default {THREADS_PER_WORKER}, "
                        "at most a node's CPUs)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs of each worker (default none)")
    g.add_argument("--retries", type=int, default=retries,
                   help="times a job whose worker died is tried again in this run")
    return g


def pool_options(args, always=False):
    """PoolOptions from the flags; None (run here, no Ray) unless `always`, --address or --workers."""
    if not (always or args.address or args.workers):
        return None
    return PoolOptions(address=args.address, workers=args.workers, threads=args.threads_per_worker,
                       gpus=args.gpus_per_worker, retries=args.retries)


def check_options(options):
    for label, value in (("--workers", options.workers), ("--threads-per-worker", options.threads)):
        if value is not None and value <= 0:
            raise UsageError(f"{label} must be a positive integer, not {value}")
    if options.gpus < 0:
        raise UsageError(f"--gpus-per-worker must be non-negative, not {options.gpus:g}")
    if options.retries < 0:
        raise UsageError(f"--retries must be non-negative, not {options.retries}")


def connect(address=None):
    """Join the cluster at `address` (or RAY_ADDRESS); else start a local Ray instance.
    Returns True when this process started Ray (and must shut it down)."""
    import ray

    if ray.is_initialized():  # a program (or a test) that joined Ray itself: its instance is used
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # The workers' messages go to each job's log (worker.py), not to this terminal.
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
            return False
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        return True
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--address {address}: cannot connect to Ray ({first})") from exc


def node_capacities():
    """[(CPUs, memory bytes, GPUs)] of every live node."""
    import ray

    out = []
    for node in ray.nodes():
        if node.get("Alive"):
            r = node.get("Resources", {})
            out.append((r.get("CPU", 0.0), r.get("memory", 0.0), r.get("GPU", 0.0)))
    return out


def plan_workers(options, capacities, tasks):
    """(workers, threads): how many workers of how many threads, and what fits where.

    Without --threads-per-worker: THREADS_PER_WORKER, or fewer when --workers asks for more
    workers than that leaves room for (--workers 2 on 2 cores: 1 thread each)."""
    threads = options.threads
    if threads is None:
        total = sum(c for c, _, _ in capacities)
        share = total // options.workers if options.workers else THREADS_PER_WORKER
        threads = int(max(1, min(THREADS_PER_WORKER, share, max(c for c, _, _ in capacities))))
    fit = 0
    for cpus, memory, gpus in capacities:
        n = int(cpus // threads)
        if options.memory:
            n = min(n, int(memory // options.memory))
        if options.gpus:
            n = min(n, int(gpus // options.gpus))
        fit += n
    if fit == 0:
        need = f"{threads} CPU(s)" + (f", {format_bytes(options.memory)}" if options.memory else "")
        need += f", {options.gpus:g} GPU(s)" if options.gpus else ""
        raise UsageError(f"no node of the Ray cluster can hold a worker ({need}); use fewer "
                         f"--threads-per-worker or --gpus-per-worker, or a smaller --width")
    workers = min(options.workers or fit, fit, max(1, len(tasks)))
    return workers, threads


def worker_options(options, threads):
    # OMP_NUM_THREADS: Ray sets it to the worker's CPUs, and it sets how many threads
    # OpenBLAS gives SciPy's L-BFGS-B, whose sums then round differently: measured, a panel
    # run in a 1-CPU worker left a serial run's path after ~20 evaluations (loss 222.53 vs
    # 223.48 at 150). A worker keeps what a command started here would have, so that its
    # results equal a serial run's; L-BFGS-B's vector work is small next to TensorFlow's.
    blas = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
    env = {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": blas}
    if not options.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker must not grab a GPU another worker asked for
    out = {"num_cpus": threads, "num_gpus": options.gpus, "max_restarts": 0, "runtime_env": {"env_vars": env}}
    if options.memory:
        out["memory"] = int(options.memory)
    return out


def order(tasks):
    """Tasks grouped (first appearance order), so that a worker meets its group's tasks in a row."""
    groups = {}
    for task in tasks:
        groups.setdefault(task.group if task.group is not None else ("task", task.id), []).append(task)
    return deque(t for g in groups.values() for t in g)


def take(pending, group):
    """The next task, one of `group` if any is left."""
    if group is not None:
        for i, task in enumerate(pending):
            if task.group == group:
                del pending[i]
                return task
    return pending.popleft()


class Pool:
    """The workers and what each is doing."""

    def __init__(self, count, options):
        import importlib

        import ray

        module, name = WORKER_CLASS.split(":")
        self.actor_class = ray.remote(getattr(importlib.import_module(module), name)).options(**options)
        self.actors = [self.actor_class.remote() for _ in range(count)]
        self.last_group = [None] * count
        self.busy = {}  # ref -> (index, task)

    def idle(self):
        taken = {i for i, _ in self.busy.values()}
        return [i for i in range(len(self.actors)) if i not in taken]

    def submit(self, index, task):
        self.busy[self.actors[index].run.remote(task.function, task.payload)] = (index, task)
        self.last_group[index] = task.group

    def replace(self, index):
        import ray

        ray.kill(self.actors[index], no_restart=True)
        self.actors[index] = self.actor_class.remote()
        self.last_group[index] = None

    def kill(self, graceful=True):
        import ray

        if graceful:  # let each worker remove its scratch folder first
            try:
                ray.get([actor.close.remote() for actor in self.actors], timeout=10)
            except ray.exceptions.RayError:
                pass
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")


def collect(pool, ref, attempts, options, pending):
    """The record of a finished task, or of its dead worker (then maybe queued again)."""
    import ray

    index, task = pool.busy.pop(ref)
    try:
        return task, ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the job raised past Worker.run (a bug): its own failure
        return task, {"status": "failed", "error": _one_line(getattr(exc, "cause", None) or exc)}
    except ray.exceptions.RayError as exc:  # the worker died: killed, out of memory, node lost
        attempts[task.id] = attempts.get(task.id, 0) + 1
        pool.replace(index)
        retry = attempts[task.id] <= options.retries
        if retry:
            pending.appendleft(task)
        return task, {"status": "retrying" if retry else "failed",
                      "error": f"worker died ({_one_line(exc)})", "attempt": attempts[task.id]}


def run_tasks(tasks, options, on_result, progress=None, say=None):
    """Run `tasks` on a pool of workers; `on_result(task, record)` for every finished
    attempt, on the driver, as it comes. `progress(running)` is called while waiting.
    Raises KeyboardInterrupt after killing the workers on Ctrl-C."""
    import ray

    if not tasks:
        return
    count, threads = plan_workers(options, node_capacities(), tasks)
    if say is not None:
        memory = f", {format_bytes(options.memory)} each" if options.memory else ""
        fewer = f" (of {options.workers} asked: no more fit)" if options.workers and count < options.workers else ""
        say(f"{count} worker(s){fewer} x {threads} thread(s){memory}")
    pool = Pool(count, worker_options(options, threads))
    pending, attempts = order(tasks), {}
    graceful = False
    try:
        while pending or pool.busy:
            for index in pool.idle():
                if pending:
                    pool.submit(index, take(pending, pool.last_group[index]))
            ready, _ = ray.wait(list(pool.busy), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                on_result(*collect(pool, ref, attempts, options, pending))
            if progress is not None:
                progress(len(pool.busy))
        graceful = True
    finally:
        pool.kill(graceful)  # on Ctrl-C at once: what is running is dropped


def shutdown(started):
    import ray

    if started:
        ray.shutdown()
