"""Test helper: a real ``NOTIFY_SOCKET``, an AF_UNIX datagram socket that records what arrives.

Stands in for systemd (PID 1) in the service tests: each datagram is split into its
``KEY=value`` lines and kept with its arrival time (``time.monotonic``).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Notice:
    at: float
    line: str


class NotifyListener:
    """Bind a datagram socket at ``path`` (a short temp path if ``folder`` is too deep)."""

    def __init__(self, folder: Path) -> None:
        path = folder / "notify.sock"
        if len(str(path)) > 100:  # sun_path holds 108 bytes
            path = Path(tempfile.mkdtemp(prefix="lc-")) / "notify.sock"
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._notices: list[Notice] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._halt.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                self._notices += [Notice(now, line) for line in data.decode().split("\n")]

    def notices(self) -> list[Notice]:
        with self._lock:
            return list(self._notices)

    def lines(self) -> list[str]:
        return [n.line for n in self.notices()]

    def times(self, line: str) -> list[float]:
        return [n.at for n in self.notices() if n.line == line]

    def wait(self, condition: Callable[[list[str]], bool], timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self.lines()):
                return True
            time.sleep(0.02)
        return condition(self.lines())

    def close(self) -> None:
        self._halt.set()
        self._thread.join(timeout=2)
        self._sock.close()
