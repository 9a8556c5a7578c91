"""Temporally consistent video style transfer: Ruder, Dosovitskiy & Brox, *Artistic style
transfer for videos* (GCPR 2016), on the transfer of neural_style.py.

Each frame is one transfer job (transfer.prepare, coarse_to_fine.run, the same flags),
with two changes after the first frame:

- it starts from the previous result warped into it by the optical flow (flow.py),
  where that warp is reliable, and from the content (or noise) elsewhere;
- its objective has the temporal term: --temporal-weight times the mean, over the
  reliable pixels, of the squared difference to that warped result (terms.PixelTarget),
  optionally held to several earlier frames (long-term consistency, --long-term).

Every frame's objective is one graph, built for the first frame (with a temporal term
that holds nothing there) and retargeted to each later frame: its new content target
and temporal target are assigned, nothing is built (coarse_to_fine.Objectives).

Data flow: `plan(settings, options)` checks everything that needs no network (the
input, the output, a run to resume) and returns a Plan; `run(settings, options, plan)`
loads the network, stylises the frames one by one, writes each finished frame
atomically with a state file (a rerun continues after the last finished frame), and at
the end, or on Ctrl-C, measures the flicker and assembles what exists.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import checks, coarse_to_fine, flow, images, lifecycle, transfer
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..lifecycle import say
from ..objective import initial_image
from ..progress import Reporter
from ..settings import presentation_fields
from ..terms import PixelTarget
from .clip import FRAME_NAME, Source, open_source, read_frames, write_video

# ---------------------------------------------------------------- defaults

# Measured on the clip of docs/video.md (embedded network, 256 px): see there.
TEMPORAL_WEIGHT = 1.0
# Iterations of every frame after the first, which starts close (the warped result):
# by default this share of --iterations (rounded up).
FRAME_ITERATIONS_SHARE = 1 / 3  # "a third" in video.py --help
FILLS = ("content", "noise")
FILL = "content"
# Frames per second of a video made from numbered images (a folder has none of its own).
FPS = 24.0
# Containers written through ffmpeg with H.264; a folder takes numbered PNG frames.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv")
STATE_NAME = "state.json"
RAW_DIR = ".raw"  # the last results as optimised (before colour finishing), for resuming
# Settings left out of the resume fingerprint: a rerun may change them and still resume.
# Those that do not change the frames (settings.presentation_fields()), and the seed, which
# does change them but is checked on its own (resume_point): a rerun without --seed
# continues with the stored one, a rerun with another seed is refused.
PRESENTATION = presentation_fields() + ("seed",)


@dataclass(frozen=True)
class VideoOptions:
    """video.py's own flags; the transfer's are a settings.Settings beside them."""

    input: str
    output: str
    temporal_weight: float = TEMPORAL_WEIGHT
    frame_iterations: int | None = None  # None: FRAME_ITERATIONS_SHARE of --iterations
    long_term: tuple = ()  # earlier frames (offsets > 1) the temporal term also holds to
    flow: str = flow.METHOD
    fill: str = FILL
    independent: bool = False  # every frame as neural_style.py would: the comparison
    fps: float | None = None
    summary: str | None = None


@dataclass(frozen=True)
class Plan:
    """What `plan` found: the clip, where everything goes, and where to start."""

    source: Source
    frames_dir: str
    video: str | None  # the video file to assemble, if --output is one
    summary: str
    fps: float
    start: int  # frames already finished by an earlier run
    seed: int | None
    records: tuple  # those frames' records
    fingerprint: dict


# ---------------------------------------------------------------- the output and resuming


def output_layout(output):
    """(frames folder, video file or None, summary file) for --output."""
    ext = os.path.splitext(output)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        stem = os.path.splitext(output)[0]
        return stem + ".frames", output, stem + ".json"
    if images.output_format(output) is not None and not os.path.isdir(output):  # out.png: one image, not a clip
        raise UsageError(f"--output {output}: give a folder (numbered PNG frames) or a video file "
                         f"({', '.join(VIDEO_EXTENSIONS)})")
    return output, None, os.path.join(output, "summary.json")


def fingerprint(settings, options, source):
    """Everything that decides the frames: a rerun resumes only if it is unchanged."""
    parts = settings.as_dict()
    parts["run"] = {k: v for k, v in parts["run"].items() if k not in PRESENTATION}
    # Not the frame rate: the video is assembled anew from the frames at every run's end.
    video = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("output", "summary", "fps")}
    parts["video"] = json.loads(json.dumps(video))
    parts["source"] = {"count": source.count, "size": list(source.size)}
    return parts


def read_state(frames_dir):
    path = os.path.join(frames_dir, STATE_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable resume state ({exc}); pass --overwrite to start again") from exc


def resume_point(state, frames_dir, prints, seed):
    """(frames finished, seed, their records) of a matching earlier run, or a UsageError."""
    if state is None:
        return 0, seed, ()
    if state.get("fingerprint") != prints:
        raise UsageError(f"{frames_dir} holds frames made with other settings; pass --overwrite to start again, "
                         f"or choose another --output")
    if seed is not None and seed != state.get("seed"):
        raise UsageError(f"{frames_dir} holds frames made with --seed {state.get('seed')}, not {seed}; "
                         f"pass --overwrite to start again")
    records = []
    for record in state.get("frames", []):
        if not os.path.exists(os.path.join(frames_dir, FRAME_NAME.format(record["frame"]))):
            break
        records.append(record)
    return len(records), state.get("seed"), tuple(records)


def check_output(output, frames_dir, video, overwrite):
    problem = images.check_output_dir(frames_dir)
    if problem:
        raise UsageError(f"--output {problem}")
    if video is not None and os.path.isdir(video):
        raise UsageError(f"--output {video}: is a directory")
    state = None if overwrite or not os.path.isdir(frames_dir) else read_state(frames_dir)
    if state is None and not overwrite:
        leftover = os.path.isdir(frames_dir) and any(f.startswith("frame_") for f in os.listdir(frames_dir))
        if leftover or (video is not None and os.path.exists(video)):
            raise UsageError(f"--output {video or frames_dir} already exists; pass --overwrite to replace it")
    return state


def plan(settings, options):
    """Check the input, the output and a run to resume, before any network: a Plan."""
    source = open_source(options.input)
    frames_dir, video, summary = output_layout(options.output)
    if source.files is not None and os.path.realpath(frames_dir) == os.path.realpath(source.path):
        raise UsageError(f"--output {options.output} is the input folder; the results need a folder of their own")
    state = check_output(options.output, frames_dir, video, settings.run.overwrite)
    # The transfer's own checks, as neural_style.py makes them, on a frame's output path
    # (its folder may not exist yet: its parent is what must then be writable).
    folder = frames_dir if os.path.isdir(frames_dir) else os.path.dirname(os.path.abspath(frames_dir))
    checks.validate(settings.with_values({"output": os.path.join(folder, FRAME_NAME.format(1)), "overwrite": True}))
    prints = fingerprint(settings, options, source)
    start, seed, records = resume_point(state, frames_dir, prints, settings.run.seed)
    seed = lifecycle.choose_seed(seed)
    fps = options.fps or source.fps or FPS
    return Plan(source, frames_dir, video, options.summary or summary, fps, start, seed, records, prints)


# ---------------------------------------------------------------- one frame


@dataclass
class Done:
    """A finished frame, as later frames need it."""

    frame: np.ndarray  # the input frame at the working size
    raw: np.ndarray  # the result as optimised (the temporal term's space)
    shown: np.ndarray  # the result as written (after colour finishing, quantised)


@dataclass
class Link:
    """An earlier frame's result warped into the current one, and where that is reliable."""

    offset: int
    raw: np.ndarray
    shown: np.ndarray
    frame: np.ndarray  # the earlier input frame warped: its flicker is the floor of the measure
    mask: np.ndarray


def links(frame, history, offsets, method):
    """The warps of the results `offsets` frames back (those that exist) into `frame`."""
    found = []
    for offset in offsets:
        if offset > len(history):
            break
        earlier = history[-offset]
        forward = flow.estimate_flow(earlier.frame, frame, method)
        backward = flow.estimate_flow(frame, earlier.frame, method)
        found.append(Link(offset, flow.warp(earlier.raw, backward), flow.warp(earlier.shown, backward),
                          flow.warp(earlier.frame, backward), flow.reliability(forward, backward)))
    return found


def temporal_target(found):
    """(target, mask) of the temporal term: each pixel held to its nearest reliable earlier frame."""
    weights = flow.long_term_weights([link.mask for link in found])
    return flow.combine([link.raw for link in found], weights)


def frame_iterations(options, iterations):
    """Iterations of a frame after the first."""
    if options.frame_iterations is not None:
        return options.frame_iterations
    return max(1, math.ceil(FRAME_ITERATIONS_SHARE * iterations))


def frame_settings(settings, options, plan, index):
    """The transfer settings of frame `index`: its iterations, output path and seed.

    A frame after the first that starts from the warped result runs at its full size
    only: coarse-to-fine would shrink that start and redo the large-scale structure the
    warm start already has (and its coarse scales would hold nothing to the last frame)."""
    values = {"quiet": True, "seed": plan.seed, "output": os.path.join(plan.frames_dir, FRAME_NAME.format(index + 1))}
    if index > 0 and not options.independent:
        # min_improvement 0: a warm-started frame's loss falls slowly from its first iteration,
        # and --frame-iterations is what the flicker check measured.
        values |= {"iterations": frame_iterations(options, settings.optimizer.iterations), "scales": 1,
                   "start_size": None, "min_improvement": 0.0}
    return settings.with_values(values)


def starts(job, settings, options, index, target, mask):
    """first_x0 for coarse_to_fine.run: as neural_style.py, or the warped result filled in."""
    network, run = job.network, settings.run

    def first_x0(scaled):
        if target is None:
            return lifecycle.first_image(scaled, network, job.initial, run.initial_noiseblend, job.seed)
        fill = job.target if options.fill == "content" else initial_image(
            job.target, network, None, 1.0, job.seed + index)
        x0 = mask[..., None] * target + (1.0 - mask[..., None]) * fill
        return images.resize(x0, scaled.shape[:2])

    return first_x0


def stylise(ctx, index, frame, history):
    """Optimise frame `index`; returns (optimize.Result, job, warps of earlier results)."""
    settings, options = frame_settings(ctx.settings, ctx.options, ctx.plan, index), ctx.options
    job = transfer.prepare(settings, transfer.NetworkAndImages(ctx.network, frame, None, ctx.styles))
    offsets = (1,) if options.independent else ctx.offsets
    found = links(job.content, history, offsets, options.flow) if history else []
    target = mask = None
    if found and not options.independent:
        target, mask = temporal_target(found)

    def objective_kwargs(size):
        if options.independent or options.temporal_weight == 0:
            return {}
        if target is None:
            # The first frame holds to nothing, but has the (zero) term: its graph is then
            # the later frames' graph, and they reuse it (ctx.objectives).
            return {"temporal": PixelTarget.off(size)}
        return {"temporal": PixelTarget(images.resize(target, size), images.resize(mask, size).clip(0, 1),
                                        options.temporal_weight)}

    record = transfer.record(settings, job) | {"frame": index + 1}
    reporter = Reporter(settings.run, settings.optimizer.iterations, job.finish_image, record)
    problem_at = coarse_to_fine.problems(job.network, job.target, job.styles, job.loss, objective_kwargs)
    result, _ = coarse_to_fine.run(job.stages, problem_at, settings.optimizer,
                                   starts(job, settings, options, index, target, mask), callback=reporter,
                                   make_objective=ctx.objectives)
    reporter.close(result)
    return result, job, found


# ---------------------------------------------------------------- the run


@dataclass
class Context:
    settings: object
    options: VideoOptions
    plan: Plan
    network: object
    styles: list
    offsets: tuple
    # The graphs built, kept for the next frames: one per output size (the last frame's
    # final scale), retargeted to each frame (coarse_to_fine.Objectives).
    objectives: object = None


def shown_image(job, raw, bit_depth):
    """What a frame's file holds: the finished colours, quantised to the bit depth."""
    rgb, _ = job.finish_image(raw)
    peak = 255.0 if bit_depth == 8 else 65535.0
    return images.to_uint(rgb, bit_depth).astype(np.float32) * (255.0 / peak)


def finish_frame(ctx, index, result, job, found, started):
    """Write frame `index` (atomically) and its raw result; return its record and Done.
    `started`: when work on the frame began (time.perf_counter)."""
    shown = shown_image(job, result.image, ctx.settings.run.bit_depth)
    images.save_image(os.path.join(ctx.plan.frames_dir, FRAME_NAME.format(index + 1)), shown,
                      bit_depth=ctx.settings.run.bit_depth)
    save_raw(ctx.plan.frames_dir, index, result.image, max(ctx.offsets))
    first = found[0] if found and found[0].offset == 1 else None
    record = {"frame": index + 1, "terms": result.terms, "iterations": result.iterations,
              "evaluations": result.evaluations, "optimizer_seconds": round(result.elapsed, 3),
              # everything: flow, graph, optimisation, writing
              "seconds": round(time.perf_counter() - started, 3),
              "flicker": None if first is None else flow.flicker(shown, first.shown, first.mask),
              "input_flicker": None if first is None else flow.flicker(job.content, first.frame, first.mask),
              "reliable": None if first is None else round(float(first.mask.mean()), 4)}
    return record, Done(job.content, result.image, shown)


def raw_path(frames_dir, index):
    return os.path.join(frames_dir, RAW_DIR, f"{index + 1:05d}.npy")


def save_raw(frames_dir, index, raw, keep):
    """Keep the last `keep` raw results on disk (what a resumed run warps), drop older ones."""
    os.makedirs(os.path.join(frames_dir, RAW_DIR), exist_ok=True)
    images.write_atomically(raw_path(frames_dir, index), lambda f: np.save(f, np.asarray(raw, np.float32)))
    old = raw_path(frames_dir, index - keep)
    if index >= keep and os.path.exists(old):
        os.unlink(old)


def load_done(ctx, index, frame):
    """A frame an earlier run finished, as Done (its raw result, or the file if that is gone)."""
    path = os.path.join(ctx.plan.frames_dir, FRAME_NAME.format(index + 1))
    shown = images.load_image_16(path) if ctx.settings.run.bit_depth == 16 else images.load_image(path)
    raw = np.load(raw_path(ctx.plan.frames_dir, index)) if os.path.exists(raw_path(ctx.plan.frames_dir, index)) \
        else shown
    return Done(frame, raw.astype(np.float32), shown[..., :3].astype(np.float32))


def write_state(ctx, records):
    state = {"fingerprint": ctx.plan.fingerprint, "seed": ctx.plan.seed, "frames": records}
    path = os.path.join(ctx.plan.frames_dir, STATE_NAME)
    images.write_atomically(path, lambda f: f.write(json.dumps(state, indent=1).encode()))


def frame_bar(plan, quiet):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=plan.source.count, initial=plan.start, unit="frame", dynamic_ncols=True, file=sys.stderr)


def stylise_all(ctx, records, bar):
    """Every frame not yet finished, in order, each one's record appended to `records`.
    Returns how it stopped: "completed", "interrupted" or "nonfinite"."""
    history = collections.deque(maxlen=max(ctx.offsets))
    for index, frame in enumerate(read_frames(ctx.plan.source, ctx.settings.run.width)):
        if index < ctx.plan.start:
            history.append(load_done(ctx, index, frame))
            continue
        started = time.perf_counter()
        result, job, found = stylise(ctx, index, frame, history)
        if result.stop_reason == "interrupted":
            return "interrupted"  # an unfinished frame is not kept
        if result.stop_reason == "nonfinite" or result.image is None:
            say(f"frame {index + 1}: {result.message}")
            return "nonfinite"
        record, done = finish_frame(ctx, index, result, job, found, started)
        records.append(record)
        write_state(ctx, records)
        history.append(done)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(flicker=f"{record['flicker']:.2f}" if record["flicker"] is not None else "-",
                            s=f"{record['seconds']:.1f}", refresh=False)
    return "completed"


def load(settings, plan):
    """The network and the style images, checked against the first frame's size."""
    if settings.loss.tileable:
        # Its photo's fade and periodic start are transfer.optimize's, which a clip's frames
        # (warm-started, held to the last frame) do not go through.
        raise UsageError("--tileable makes one seamless image; video.py does not take it")
    network = transfer.load_network(settings)
    styles = [images.load_image(path) for path in settings.run.styles]
    first = next(read_frames(plan.source))
    transfer.check(settings, transfer.NetworkAndImages(network, first, None, styles))
    return network, styles


def run(settings, options, plan):
    """Stylise the clip; returns the exit status. Ctrl-C or SIGTERM: the finished frames
    are kept, assembled, and 130 returned."""
    network, styles = load(settings, plan)
    os.makedirs(plan.frames_dir, exist_ok=True)
    if settings.run.overwrite and plan.start == 0 and os.path.exists(os.path.join(plan.frames_dir, STATE_NAME)):
        os.unlink(os.path.join(plan.frames_dir, STATE_NAME))  # an old run's state must not be resumed
    offsets = tuple(sorted({1, *options.long_term}))
    ctx = Context(settings, options, plan, network, styles, offsets, coarse_to_fine.Objectives(kept=1))
    size = images.size_at_width(plan.source.size, settings.run.width) if settings.run.width else plan.source.size
    mode = "independent frames" if options.independent else f"temporal weight {options.temporal_weight:g}"
    say(f"{plan.source.count} frames of {size[1]}x{size[0]} at {plan.fps:g} fps, {mode}, seed {plan.seed}"
        + (f"; resuming after frame {plan.start}" if plan.start else ""))
    bar = frame_bar(plan, settings.run.quiet)
    t0 = time.perf_counter()
    records = list(plan.records)
    try:
        with lifecycle.interrupts_as_keyboard_interrupt():
            stop = stylise_all(ctx, records, bar)
    except KeyboardInterrupt:  # outside an optimisation (which returns "interrupted" itself)
        stop = "interrupted"
    finally:
        if bar is not None:
            bar.close()
        ctx.objectives.close()
    return finish(ctx, records, stop, time.perf_counter() - t0)


# ---------------------------------------------------------------- the end: summary and video


def summarise(ctx, records, stop, seconds):
    """The JSON summary: flicker, losses and time per frame, and the settings."""
    flickers = [r["flicker"] for r in records if r["flicker"] is not None]
    floor = [r["input_flicker"] for r in records if r.get("input_flicker") is not None]
    content_style = [r["terms"]["content"] + r["terms"]["style"] for r in records]
    later = [r["seconds"] for r in records[1:]]
    return {
        "input": ctx.options.input, "output": ctx.options.output, "frames_dir": ctx.plan.frames_dir,
        "frames": len(records), "frames_in_input": ctx.plan.source.count, "stop": stop, "fps": ctx.plan.fps,
        "mode": "independent" if ctx.options.independent else "temporal",
        "flicker": float(np.mean(flickers)) if flickers else None,
        # The same measure on the input frames: what warping alone leaves (interpolation, flow errors).
        "input_flicker": float(np.mean(floor)) if floor else None,
        "content_style_loss": float(np.mean(content_style)) if content_style else None,
        "seconds_first_frame": records[0]["seconds"] if records else None,
        "seconds_per_later_frame": float(np.mean(later)) if later else None,
        "seconds_this_run": round(seconds, 1),
        "per_frame": records, "settings": ctx.plan.fingerprint, "seed": ctx.plan.seed,
    }


def finish(ctx, records, stop, seconds):
    """Write the summary and assemble the video from the finished frames; the exit status.
    A second Ctrl-C or SIGTERM during these last writes is ignored until they are done."""
    with lifecycle.signals_held():
        summary = summarise(ctx, records, stop, seconds)
        images.write_atomically(ctx.plan.summary, lambda f: f.write(json.dumps(summary, indent=1).encode()))
        if ctx.plan.video is not None and records:
            write_video(ctx.plan.video, ctx.plan.frames_dir, len(records), ctx.plan.fps)
    report(ctx, summary)
    return {"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(stop, EXIT_FAILED)


def report(ctx, summary):
    where = ctx.plan.video or ctx.plan.frames_dir
    flicker = "-" if summary["flicker"] is None else f"{summary['flicker']:.3f}"
    floor = "" if summary["input_flicker"] is None else f"; the input's own: {summary['input_flicker']:.3f}"
    later = summary["seconds_per_later_frame"]
    say(f"flicker {flicker} (mean |frame - previous frame warped| over reliable pixels, grey levels{floor}); "
        f"content+style loss {summary['content_style_loss'] or 0:.6g} per frame; "
        f"{summary['seconds_first_frame'] or 0:.1f} s first frame, "
        f"{'-' if later is None else f'{later:.1f}'} s per later frame")
    if summary["stop"] == "interrupted":
        say(f"interrupted: kept {summary['frames']} of {summary['frames_in_input']} frames in {where}; "
            f"run the same command again to continue")
    elif summary["stop"] != "completed":
        say(f"error: the loss became non-finite; kept {summary['frames']} finished frames in {where}")
    else:
        say(f"wrote {where} ({summary['frames']} frames) and {ctx.plan.summary}")
