"""lifecycle.py: the signal blocks, the seed, the first image and run_command's endings."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from neural_style_tf import lifecycle
from neural_style_tf.errors import EXIT_INTERRUPTED, EXIT_USAGE, NetworkError, UsageError


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.interrupts_as_keyboard_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode
            time.sleep(1)  # not reached: the interrupt comes first
    assert signal.getsignal(signal.SIGTERM) is before


def test_signals_held_ignores_both_and_gives_them_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with lifecycle.signals_held():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt
    assert {s: signal.getsignal(s) for s in before} == before


def test_signals_held_restores_after_an_error():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError):
        with lifecycle.signals_held():
            raise RuntimeError("write failed")
    assert signal.getsignal(signal.SIGINT) is before


def test_a_given_seed_is_kept_and_a_missing_one_is_drawn():
    assert lifecycle.choose_seed(0) == 0 and lifecycle.choose_seed(1234) == 1234
    drawn = {lifecycle.choose_seed(None) for _ in range(8)}
    assert all(0 <= s < 2**32 for s in drawn) and len(drawn) > 1


def test_the_first_image_resizes_initial_to_the_scale(tiny_network):
    scaled = np.full((8, 12, 3), 100.0, np.float32)
    initial = np.zeros((16, 24, 3), np.float32)
    initial[..., 0] = 200.0
    x0 = lifecycle.first_image(scaled, tiny_network, initial, 0.0, seed=1)
    assert x0.shape[-3:] == (8, 12, 3)
    assert np.allclose(x0.reshape(8, 12, 3)[..., 0], 200.0) and np.allclose(x0.reshape(8, 12, 3)[..., 1], 0.0)
    # No --initial: the content itself (noiseblend 0), the same for any seed.
    a = lifecycle.first_image(scaled, tiny_network, None, 0.0, seed=1)
    assert np.allclose(a.reshape(8, 12, 3), 100.0)


def test_run_command_turns_errors_into_one_line(capsys):
    def bad():
        raise NetworkError("--network x.mat: no such file")

    assert lifecycle.run_command("prog.py", bad, "interrupted") == EXIT_USAGE
    assert capsys.readouterr().err == "prog.py: error: --network x.mat: no such file\n"

    def interrupted():
        raise KeyboardInterrupt

    assert lifecycle.run_command("prog.py", interrupted, "interrupted before any image was made") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "prog.py: interrupted before any image was made\n"
    assert lifecycle.run_command("prog.py", lambda: 7, "unused") == 7
    with pytest.raises(ValueError):  # a bug is not a user mistake: its traceback stays
        lifecycle.run_command("prog.py", lambda: (_ for _ in ()).throw(ValueError("bug")), "x")
    assert issubclass(NetworkError, UsageError)
