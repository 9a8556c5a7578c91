"""The errors a user can cause, and the exit codes of every command.

Each error's message is one line meant for the user; the commands print it and exit
with EXIT_USAGE, never with a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the run itself failed (e.g. the loss became NaN)
EXIT_USAGE = 2  # a user mistake, found before any long work
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT), the best image saved


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


class NetworkError(UsageError):
    """A network file or model that cannot be used."""


class ImageError(UsageError):
    """An image that cannot be read or written."""
