"""What every command's run shares, written once: its messages, its signals, its seed, its
first image, the way its main() ends and the way its process exits.

A transfer (transfer.py) and a video (apps/video.py) both run long optimisations that
SIGTERM must stop as Ctrl-C does (the best image so far is kept), then write files that a
second Ctrl-C must not cut short; both choose a random seed when none is given and start
the first scale from the same image. Every command turns a user mistake into one line
and exit status 2, and an interrupt before any work into one line and status 130.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys

from . import cli, images, objective
from .errors import EXIT_INTERRUPTED, UsageError


def say(text):
    """A message for the user: stderr, so that stdout stays the command's data."""
    print(text, file=sys.stderr)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the block, as Ctrl-C does, so that a job
    killed by a scheduler keeps its best image too; the previous handler comes back after."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM ignored inside the block: the last writes of a run (a moment;
    longer when matplotlib is imported for a plot) must not throw the work away on a
    second Ctrl-C. The previous handlers come back after."""
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def choose_seed(seed):
    """`seed`, or a random one when it is None (logged by the caller, so the run can be redone)."""
    return seed if seed is not None else int.from_bytes(os.urandom(4), "little")


def first_image(scaled, network, initial, noiseblend, seed):
    """The first scale's start: the content at that scale (`scaled`) blended with noise, or
    --initial resized to it (see objective.initial_image)."""
    start = None if initial is None else images.resize(initial, scaled.shape[:2])
    return objective.initial_image(scaled, network, start, noiseblend, seed)


def run_command(prog, fn, interrupted):
    """fn()'s exit status. A UsageError (NetworkError and ImageError too) becomes one line,
    `prog: error: message`, and EXIT_USAGE, never a traceback; a KeyboardInterrupt that
    fn did not handle itself (work interrupted there saves what it has) becomes
    `prog: interrupted...` and EXIT_INTERRUPTED."""
    try:
        return fn()
    except UsageError as exc:
        return cli.fail(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def exit_process(code):
    """End a command's process with exit status `code` at once, without the interpreter's
    teardown. For a command's console entry (console_main) only, never for main() called
    in-process.

    Why: once TensorFlow is imported, Python's own exit (unloading some 2,500 modules and
    TensorFlow's C++ state) took 0.95-1.08 s after the image was written, and this way
    0.24-0.30 s: 3-4% of the plain 128 px command (docs/performance.md#the-exit). Everything a command writes is written
    and closed before its main() returns (images atomically, checkpoints, the log); what a
    reference cycle may still hold open is collected here first, logging is shut down and
    the standard streams are flushed, which is what the teardown would have done for them."""
    gc.collect()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing left to save there
            stream.flush()
    os._exit(0 if code is None else int(code))
