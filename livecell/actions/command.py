"""Run a command with the event JSON on its standard input; exit status 0 is success.

The command is an argv list, run without a shell, in a session of its own; when it
runs past the action's timeout the whole session is killed, so a program it started
(``sh -c "sleep 30"``) does not outlive it. Its standard output is discarded and its
standard error goes to a temporary file of which only the end is read, so a chatty
command costs the daemon no memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from typing import IO

from livecell.actions._protocol import ActionFailed

_STDERR_TAIL = 500


class CommandSender:
    def __init__(self, argv: tuple[str, ...], timeout_s: float) -> None:
        self._argv = list(argv)
        self._timeout_s = timeout_s

    def send(self, payload: bytes) -> None:
        with tempfile.TemporaryFile() as stderr_file:
            try:
                process = subprocess.Popen(
                    self._argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr_file,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ActionFailed(f"cannot run {self._argv[0]}: {exc}") from None
            try:
                process.communicate(payload, timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                _kill_session(process)
                raise ActionFailed(
                    f"{self._argv[0]} ran past {self._timeout_s} s and was killed"
                ) from None
            if process.returncode != 0:
                stderr = _tail(stderr_file).decode("utf-8", "replace").strip()
                raise ActionFailed(f"{self._argv[0]} exited {process.returncode}: {stderr}")

    def close(self) -> None:
        """Nothing held between runs."""


def _tail(file: IO[bytes]) -> bytes:
    """The last ``_STDERR_TAIL`` bytes written to ``file``."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - _STDERR_TAIL))
    return file.read()


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
