"""Run a command with the event JSON on its standard input; exit status 0 is success.

The command is an argv list, run without a shell, in a session of its own; when it
runs past the action's timeout, or the daemon stops while it runs, the whole session
is killed, so a program it started (``sh -c "sleep 30"``) does not outlive it. Its
standard output is discarded; its standard error is read as it comes and only the
last 500 bytes are kept (for the failure message), so a chatty command costs the
daemon neither memory nor disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import IO

from livecell.actions._protocol import ActionFailed

_STDERR_TAIL = 500
_WAIT_SLICE_S = 0.05
_READER_JOIN_S = 0.5


class CommandSender:
    def __init__(self, argv: tuple[str, ...], timeout_s: float, *, stop: threading.Event) -> None:
        self._argv = list(argv)
        self._timeout_s = timeout_s
        self._stop = stop

    def send(self, payload: bytes) -> None:
        try:
            process = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionFailed(f"cannot run {self._argv[0]}: {exc}") from None
        assert process.stdin is not None  # both are pipes
        assert process.stderr is not None
        stderr = _Tail(process.stderr)
        writer = threading.Thread(
            target=_write_and_close, args=(process.stdin, payload), daemon=True
        )
        writer.start()
        try:
            self._wait(process)
        finally:
            stderr.join()
        if process.returncode != 0:
            message = stderr.text()
            raise ActionFailed(f"{self._argv[0]} exited {process.returncode}: {message}")

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        """Wait for the command's exit; kill its session at the timeout or a stop."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                process.wait(min(_WAIT_SLICE_S, max(0.0, deadline - time.monotonic())))
                return
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                _kill_session(process)
                raise ActionFailed(f"{self._argv[0]} was killed: the daemon is stopping")
            if time.monotonic() >= deadline:
                _kill_session(process)
                raise ActionFailed(f"{self._argv[0]} ran past {self._timeout_s} s and was killed")

    def close(self) -> None:
        """Nothing held between runs."""


class _Tail:
    """Drains a pipe on a thread of its own, keeping the last ``_STDERR_TAIL`` bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._kept = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):
                while chunk := os.read(self._pipe.fileno(), 65536):
                    self._kept += chunk
                    del self._kept[:-_STDERR_TAIL]
        finally:
            self._pipe.close()

    def join(self) -> None:
        """Wait briefly for the end of the pipe; a program the command left running in the
        background may hold it open, and is not waited for (the thread closes the pipe
        when that program ends)."""
        self._thread.join(_READER_JOIN_S)

    def text(self) -> str:
        return bytes(self._kept).decode("utf-8", "replace").strip()


def _write_and_close(stdin: IO[bytes], payload: bytes) -> None:
    """Give the command its event; one that exits without reading it is no error here."""
    with contextlib.suppress(OSError):
        stdin.write(payload)
    with contextlib.suppress(OSError):
        stdin.close()


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
