"""A minimal sd_notify client: ``READY=1``, ``STATUS=``, ``WATCHDOG=1``, ``STOPPING=1``.

Lifecycle: ``NotifySettings.from_environ`` (at the daemon's edge) -> ``SdNotifier``
(opens one unbound AF_UNIX SOCK_DGRAM socket) -> ``ready()`` once the model is
warm -> ``watchdog()`` / ``status()`` from the analysis loop -> ``stopping()`` ->
``close()``. A notify socket that has gone away is logged once and never stops the
daemon: losing systemd's ear is not a reason to stop analysing frames.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

log = structlog.get_logger("livecell.service")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where to notify and how often the watchdog wants a ping; ``None``: off."""

    socket_path: str | None = None
    watchdog_usec: int | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: int) -> NotifySettings:
        """Parse what systemd sets, as ``sd_notify(3)`` and ``sd_watchdog_enabled(3)`` do.

        The watchdog is on when ``WATCHDOG_USEC`` is a positive integer and
        ``WATCHDOG_PID`` is absent or equals ``pid`` (a child must not ping for us).
        """
        path = environ.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw_usec = environ.get("WATCHDOG_USEC", "")
        raw_pid = environ.get("WATCHDOG_PID", "")
        if raw_usec:
            try:
                usec = int(raw_usec)
            except ValueError:
                log.warning("WATCHDOG_USEC is not an integer; watchdog off", value=raw_usec)
            if usec is not None and usec <= 0:
                usec = None
        if usec is not None and raw_pid and raw_pid != str(pid):
            usec = None  # the watchdog belongs to another process (our parent, say)
        return cls(socket_path=path, watchdog_usec=usec)

    @property
    def watchdog_interval_s(self) -> float | None:
        """Ping at most this often: half the timeout, as systemd recommends."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6


def socket_address(path: str) -> str | bytes:
    """``@name`` is the abstract namespace (a leading NUL byte); anything else a file path."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class SdNotifier:
    """Sends notify datagrams; every method is a no-op without a notify socket."""

    def __init__(
        self, settings: NotifySettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._socket: socket.socket | None = None
        if settings.socket_path is not None:  # opened here, not lazily: a signal handler sends too
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)  # a reader that lags never stalls the analysis
        self._last_ping: float | None = None
        self._stopping_sent = False
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._settings.socket_path is not None

    @property
    def watchdog_enabled(self) -> bool:
        return self.enabled and self._settings.watchdog_interval_s is not None

    def ready(self) -> None:
        """Start-up done: the model is loaded and warm, frames can come."""
        self.notify("READY=1")

    def status(self, text: str) -> None:
        """One line for ``systemctl status`` (newlines would end the field)."""
        self.notify("STATUS=" + " ".join(text.split()))

    def watchdog(self) -> bool:
        """Ping the watchdog unless pinged within the last half timeout; True if sent."""
        interval = self._settings.watchdog_interval_s
        if not self.enabled or interval is None:
            return False
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < interval:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutdown has begun (sent once, however often called)."""
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notify("STOPPING=1")

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; True if it went out."""
        path = self._settings.socket_path
        if path is None or self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode(), socket_address(path))
        except OSError as exc:
            if not self._failed:  # once: a vanished socket would otherwise log every 0.1 s
                self._failed = True
                log.warning("cannot notify systemd", socket=path, error=str(exc))
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
