"""An event sink that hands records to the demo's terminal view through a bounded queue.

``publish`` never blocks the analysis worker: when the queue is full the record
is dropped and counted. Frames (and rejected files) are counted in ``publish``
itself, so the demo knows when every frame is done even if the view lags.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]


class QueueSink:
    """``EventSink`` (``livecell/sinks/_protocol.py``) feeding a bounded queue."""

    name = "demo-view"

    def __init__(self, maxsize: int = 10_000) -> None:
        self.records: queue.Queue[Record] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self._frames = 0
        self._dropped = 0
        self.closed = threading.Event()

    @property
    def frames_seen(self) -> int:
        """``frame`` and ``rejected`` events published so far: one per file handled."""
        with self._lock:
            return self._frames

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def publish(self, records: Sequence[Mapping[str, Any]]) -> None:
        frames = sum(1 for r in records if r.get("kind") in ("frame", "rejected"))
        dropped = 0
        for record in records:
            try:
                self.records.put_nowait(record)
            except queue.Full:
                dropped += 1
        with self._lock:
            self._frames += frames
            self._dropped += dropped

    def close(self) -> None:
        self.closed.set()
