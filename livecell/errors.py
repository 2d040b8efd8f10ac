"""Typed exceptions that carry what went wrong.

They are raised deep inside and turned into exit codes (``ConfigError``,
``OutputWriteError``) or ``rejected`` events (``RejectedFrame``) at the edges.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration or usage error: exit status 2, no traceback.

    ``key`` names the offending config key or argument, dotted (``source.settle_s``).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class RejectedFrame(Exception):
    """A frame that cannot be used.

    ``reason`` is a short stable token (a metrics label, e.g. ``"truncated"``);
    ``detail`` is the human explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class OutputWriteError(OSError):
    """An output file (the events file, the journal, the tracks file) could not grow: a
    full disk or a file-size limit. It stops the daemon instead of rejecting the frame
    in hand, since every later frame would derive what cannot be kept. An OSError
    naming the file, so the command line reports it as one line."""
