"""errors.py: the exit codes every command shares, and the error types a user can cause
(each reported as one line with EXIT_USAGE, never a traceback)."""

from __future__ import annotations

import signal

import pytest

from neural_style_tf import errors


def test_exit_codes_are_distinct_and_follow_the_shell_conventions():
    codes = (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_INTERRUPTED)
    assert len(set(codes)) == 4
    assert errors.EXIT_OK == 0
    assert errors.EXIT_USAGE == 2  # argparse's status for a usage error
    assert errors.EXIT_INTERRUPTED == 128 + signal.SIGINT  # the shell's status after Ctrl-C


@pytest.mark.parametrize("kind", [errors.NetworkError, errors.ImageError])
def test_network_and_image_errors_are_usage_errors(kind):
    assert issubclass(kind, errors.UsageError) and issubclass(errors.UsageError, Exception)
    # a command catches UsageError alone to report every user mistake in one line
    with pytest.raises(errors.UsageError, match="^weights.mat: bad$"):
        raise kind("weights.mat: bad")
    # and no other kind of failure is mistaken for one
    assert not issubclass(ValueError, errors.UsageError) and not issubclass(OSError, errors.UsageError)


def test_a_network_error_is_not_an_image_error():
    assert not issubclass(errors.NetworkError, errors.ImageError)
    assert not issubclass(errors.ImageError, errors.NetworkError)
