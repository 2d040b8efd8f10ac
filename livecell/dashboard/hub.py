"""Server-Sent Events fan-out: one bounded queue per connected page.

The dashboard's thread calls :meth:`Hub.broadcast`; each ``/events`` handler
thread waits on its own :class:`Client`. A page that reads too slowly fills its
queue (``max_queued`` messages) and is disconnected: its browser reconnects and
starts again from the history, so a slow page never holds anything up.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["Client", "Hub", "sse_message"]


def sse_message(data: Mapping[str, Any], *, event: str | None = None) -> bytes:
    """One SSE message: ``id`` from ``data["seq"]`` when present, one ``data`` line."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    seq = data.get("seq")
    if isinstance(seq, int):
        lines.append(f"id: {seq}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), allow_nan=False, default=str))
    return ("\n".join(lines) + "\n\n").encode()


class Client:
    """One connected page's queue of encoded messages."""

    def __init__(self, max_queued: int) -> None:
        self._max = max_queued
        self._queue: deque[bytes] = deque()
        self._ready = threading.Condition()
        self.overflowed = False
        self.closed = False

    def push(self, message: bytes) -> None:
        with self._ready:
            if len(self._queue) >= self._max:
                self.overflowed = True
            else:
                self._queue.append(message)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify()

    def take(self, timeout_s: float) -> list[bytes] | None:
        """Queued messages (``[]`` after ``timeout_s`` with none); ``None``: disconnect."""
        with self._ready:
            if not self._queue and not self.closed and not self.overflowed:
                self._ready.wait(timeout_s)
            if self.closed or self.overflowed:
                return None
            taken = list(self._queue)
            self._queue.clear()
            return taken


class Hub:
    def __init__(self, max_queued: int = 2000) -> None:
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._clients: set[Client] = set()
        self.closed = False

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def subscribe(self) -> Client:
        client = Client(self._max_queued)
        with self._lock:
            if self.closed:
                client.close()
            self._clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def broadcast(self, message: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.push(message)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            clients = list(self._clients)
        for client in clients:
            client.close()
