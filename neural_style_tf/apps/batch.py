"""Many transfers on Ray, from a laptop to a cluster: folder in, folder out.

    python batch.py --contents photos/ --styles a.jpg b.jpg --out-dir out [neural_style.py flags]
    python batch.py jobs.jsonl --out-dir out [flags for every job]
    python batch.py sweep --content c.jpg --styles s.jpg --grid style-weight=100,500 --grid tv-weight=0,1 --out-dir out

Every job is a neural_style.py command line, parsed and validated by the same code
(jobs.parse_job), before Ray starts; a bad one is recorded as failed with its one-line
message and the others go on. The jobs run on long-lived workers (engine.py, worker.py).
out-dir gets each job's image (written atomically), logs/<job>.txt, results.jsonl (one
line per attempt: id, status, output, losses, seconds, node, error) and, for a sweep,
sheet.png. A rerun skips the jobs that are done and runs the others again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .. import checks, cli, images, lifecycle, memory
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..tf_runtime import configure_process
from . import engine, jobs, sheet

PROG = "batch.py"
RETRIES = 1


def build_parser():
    p = argparse.ArgumentParser(
        prog=cli.command_name(PROG), formatter_class=cli.Formatter, allow_abbrev=False,
        description="Run many neural_style.py jobs on Ray: content x style pairs, a jobs.jsonl file, "
                    "or a sweep ('sweep' first). Every other flag is a neural_style.py flag for every job. "
                    "JOBS.jsonl: one job a line, a JSON list of neural_style.py flags or an object {flag: value}.")
    # The optional first argument, JOBS.jsonl or 'sweep', is taken before argparse (read_request):
    # a positional would swallow the value of a neural_style.py flag that argparse does not know.
    p.usage = (f"{cli.command_name(PROG)} [JOBS.jsonl | sweep] --out-dir DIR [--contents ... --styles ...] [--grid FLAG=V1,V2] "
               "[Ray flags] [neural_style.py flags]")
    io_group = p.add_argument_group("jobs")
    io_group.add_argument("--contents", nargs="+", default=None, metavar="FILE_OR_DIR",
                          help="content images, or folders of them (every content x style pair)")
    io_group.add_argument("--content", default=None, help="sweep: the content image")
    io_group.add_argument("--styles", nargs="+", default=None, metavar="STYLE",
                          help="style images (a sweep uses them together in every job)")
    io_group.add_argument("--grid", action="append", default=None, metavar="FLAG=V1,V2",
                          help="sweep: a neural_style.py flag and its values; repeat for more (rows, columns)")
    io_group.add_argument("--out-dir", required=True, help="folder for the images, results.jsonl, logs/")
    io_group.add_argument("--ext", default=None, help="output format (jpg, png, ...; default: the content's)")
    ray_group = engine.add_pool_arguments(p, RETRIES)
    ray_group.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    return p


# ---------------------------------------------------------------- the request


def read_request(argv):
    """argv -> (args, [jobs.Job], grid). Raises UsageError."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv and not argv[0].startswith("-") else None
    sweep = first == "sweep"
    args, common = build_parser().parse_known_args(argv[1:] if first else argv)
    args.jobs_file = None if sweep else first
    options = engine.pool_options(args, always=True)
    engine.check_options(options)
    check_common(common)
    grid = ()
    if sweep:
        if not (args.content and args.styles and args.grid):
            raise UsageError("sweep needs --content, --styles and at least one --grid FLAG=V1,V2")
        grid = jobs.parse_grid(args.grid)
        todo = jobs.sweep_jobs(args.content, args.styles, grid, common, args.ext)
    elif args.jobs_file:
        if args.contents or args.styles or args.content:
            raise UsageError(f"give either {args.jobs_file} or --contents with --styles, not both")
        todo = jobs.file_jobs(args.jobs_file, common, args.ext)
    elif args.contents and args.styles:
        todo = jobs.pair_jobs(jobs.image_files(args.contents, "--contents"),
                              jobs.image_files(args.styles, "--styles"), common, args.ext)
    else:
        raise UsageError("give --contents and --styles, a JOBS.jsonl file, or 'sweep' (see --help)")
    problem = images.check_output_dir(args.out_dir)
    if problem:
        raise UsageError(f"--out-dir {problem}")
    return args, todo, grid


def check_common(common):
    """The flags given for every job, checked once (a typo would otherwise fail every job)."""
    placeholder = ["--content", "c.png", "--styles", "s.png", "--output", "o.png"]
    jobs.job_parser().parse_args(placeholder + list(common))


# ---------------------------------------------------------------- planning


def plan(todo, out_dir, previous, digest):
    """[(job, settings or None, id, state)]: state "done" (skipped), "invalid: message" or "run"."""
    out = []
    for job in todo:
        try:
            settings = jobs.parse_job(job, out_dir)
        except UsageError as exc:
            out.append((job, None, jobs.invalid_id(job), f"invalid: {exc}"))
            continue
        job_id = jobs.job_id(settings, digest)
        state = "done" if jobs.is_done(previous.get(job_id), out_dir) else "run"
        if state == "run":
            # Not done: an existing file is someone else's, and is left alone (as neural_style.py does).
            problem = images.check_output_path(settings.run.output, settings.run.overwrite)
            state = f"invalid: {problem}" if problem else state
        out.append((job, settings, job_id, state))
    return out


def image_shape(path):
    """(height, width) as load_image will see it (EXIF rotation applied), from the header only."""
    from PIL import Image

    with Image.open(path) as im:
        width, height = im.size
        if im.getexif().get(0x0112) in (5, 6, 7, 8):
            width, height = height, width
    return height, width


def worker_memory(planned, networks):
    """Bytes a worker declares: memory.py's peak estimate of the largest job it may get."""
    need = 0
    for _, settings, _, _ in planned:
        net = networks(settings.run.network, settings.run.input_range)
        shape = image_shape(settings.run.content)
        _, (height, width) = checks.largest_size(settings, shape, [image_shape(s) for s in settings.run.styles])
        opt = settings.optimizer
        need = max(need, memory.estimate_peak_bytes(net, height, width, opt.optimizer, opt.lbfgs_corrections,
                                                    checks.used_layers(settings.loss),
                                                    checks.guided_styles(settings.run)))
    return need


def tasks_of(planned, digest, ship):
    """engine.Tasks for the jobs to run; their input files go through Ray's object store when `ship`."""
    import ray

    refs, tasks = {}, []
    for job, settings, job_id, _ in planned:
        files = {}
        for path in jobs.input_files(settings):
            if path not in refs:
                with open(path, "rb") as f:
                    refs[path] = (digest(path), ray.put(f.read()) if ship else None)
            files[path] = refs[path]
        # Jobs with the same inputs, size and layers can share a graph: weights only differ.
        group = (settings.run.content, settings.run.styles, settings.run.width, settings.run.network,
                 settings.loss.content_layers, settings.loss.style_layers)
        tasks.append(engine.Task(job_id, "neural_style_tf.apps.worker:run_transfer",
                                 {"settings": settings, "files": files}, group, job.name))
    return tasks


# ---------------------------------------------------------------- running


class Recorder:
    """The driver's side of the results: files, results.jsonl, the bar and the counts."""

    def __init__(self, out_dir, total, quiet):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, jobs.RESULTS)
        self.counts = {"done": 0, "failed": 0}
        self.rows = []
        self.bar = None
        if not quiet and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", desc="batch", dynamic_ncols=True, file=sys.stderr)

    def record(self, job_id, name, record, params=()):
        """Write a finished job's image (atomically), its log, then its line in results.jsonl."""
        status = record.get("status")
        image = record.pop("image", None)
        if status == "done":
            images.write_atomically(os.path.join(self.out_dir, name), lambda f: f.write(image))
        log = record.pop("log", "")
        if log:
            os.makedirs(os.path.join(self.out_dir, "logs"), exist_ok=True)
            path = os.path.join(self.out_dir, "logs", os.path.splitext(name)[0] + ".txt")
            images.write_atomically(path, lambda f: f.write(log.encode()))
        line = {"id": job_id, "output": name, "status": "failed" if status == "retrying" else status,
                "params": [list(p) for p in params], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        line.update({k: v for k, v in record.items() if k not in ("status", "traceback")})
        jobs.append_result(self.path, line)
        if status != "retrying":
            self.counts["done" if status == "done" else "failed"] += 1
            self.rows.append(line)
            if self.bar is not None:
                self.bar.update(1)

    def say(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)

    def running(self, count):
        if self.bar is not None:
            text = f"done {self.counts['done']}, failed {self.counts['failed']}, running {count}"
            if text != self.bar.postfix:
                self.bar.set_postfix_str(text, refresh=False)  # drawn at tqdm's own pace

    def close(self):
        if self.bar is not None:
            self.bar.close()


def summary_table(rows):
    """One line per job of this run: status, loss, seconds, node, error."""
    lines = [f"{'job':<40} {'status':<7} {'loss':>10} {'seconds':>8} {'node':<9} error"]
    for r in rows:
        loss = (r.get("losses") or {}).get("total")
        name = r["output"] if len(r["output"]) <= 40 else "…" + r["output"][-39:]  # a sweep's values are at the end
        lines.append(f"{name:<40} {r['status']:<7} {'' if loss is None else format(loss, '.4g'):>10} "
                     f"{r.get('seconds', ''):>8} {(r.get('node') or '')[:8]:<9} {(r.get('error') or '')[:90]}")
    return "\n".join(lines)


def run_jobs(args, planned, recorder):
    """Record the invalid jobs, run the others on Ray. Returns False if interrupted."""
    params = {job_id: job.params for job, _, job_id, _ in planned}
    for job, _, job_id, state in planned:
        if state.startswith("invalid: "):
            recorder.record(job_id, job.name, {"status": "failed", "error": state[len("invalid: "):]}, job.params)
    runnable = [p for p in planned if p[3] == "run"]
    if not runnable:
        return True
    digest = jobs.Digests()
    networks = cache_networks()
    options = engine.pool_options(args, always=True)
    options = engine.PoolOptions(**{**vars(options), "memory": worker_memory(runnable, networks)})
    started = engine.connect(args.address)
    try:
        tasks = tasks_of(runnable, digest, ship=not started)
        engine.run_tasks(tasks, options, lambda task, rec: recorder.record(task.id, task.label, rec, params[task.id]),
                         recorder.running, recorder.say)
    except KeyboardInterrupt:
        return False
    finally:
        engine.shutdown(started)
    return True


def cache_networks():
    from ..networks.loading import load_net

    loaded = {}

    def network(path, input_range):
        if (path, input_range) not in loaded:
            loaded[(path, input_range)] = load_net(path, input_range)
        return loaded[(path, input_range)]

    return network


def write_sweep_sheet(out_dir, planned):
    results = jobs.read_results(os.path.join(out_dir, jobs.RESULTS))
    entries = []
    for job, _, job_id, _ in planned:
        record = results.get(job_id, {})
        done = jobs.is_done(record, out_dir)
        loss = (record.get("losses") or {}).get("total") if done else None
        entries.append((job.params, os.path.join(out_dir, job.name) if done else None, loss, record.get("error")))
    path = os.path.join(out_dir, "sheet.png")
    sheet.write_sheet(path, entries)
    return path


def run(args, todo, grid, say):
    """Plan, run, record, summarise. Returns the exit status."""
    configure_process()
    os.makedirs(args.out_dir, exist_ok=True)
    previous = jobs.read_results(os.path.join(args.out_dir, jobs.RESULTS))
    planned = plan(todo, args.out_dir, previous, jobs.Digests())
    skipped = sum(state == "done" for *_, state in planned)
    if skipped:
        say(f"{skipped} of {len(planned)} jobs done before, skipped")
    recorder = Recorder(args.out_dir, len(planned) - skipped, args.quiet)
    try:
        finished = run_jobs(args, planned, recorder)
    finally:
        recorder.close()
    if recorder.rows:
        say(summary_table(recorder.rows))
    if grid:
        say(f"wrote {write_sweep_sheet(args.out_dir, planned)}")
    if not finished:
        print(f"{PROG}: interrupted; what finished is kept ({jobs.RESULTS}); run the same command again for the "
              f"rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    counts = recorder.counts
    say(f"{counts['done']} done, {counts['failed']} failed, {skipped} skipped; results in "
        f"{os.path.join(args.out_dir, jobs.RESULTS)}")
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def main(argv=None):
    def command():
        cli.require_extra("batch")  # Ray: pip install 'neural-style-tf[batch]'
        args, todo, grid = read_request(argv)

        def say(text):
            if not args.quiet:
                print(text, file=sys.stderr)

        return run(args, todo, grid, say)

    return lifecycle.run_command(cli.command_name(PROG), command, "interrupted")
