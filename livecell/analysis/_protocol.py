"""The analysis stage protocol.

Lifecycle: built once from the config -> ``update(frame)`` for every accepted
frame, in acquisition order per position, on the single analysis thread ->
``close()`` at shutdown. ``update`` returns the frame's events; it must derive
them only from the frames it was given (no clocks, files or sockets), so that
``replay`` and a live run give the same events with the same ids.
"""

from __future__ import annotations

import time
from typing import Protocol

from livecell.events import Event
from livecell.frames import Frame


class Stage(Protocol):
    name: str

    def warm_up(self) -> None:
        """Run every model once on a small synthetic input, before the first frame.

        Called by ``livecell run`` before it reports ready to systemd, so the first
        real frame does not pay for lazy initialisation. Derives no events, keeps no state.
        """
        ...

    def update(self, frame: Frame) -> list[Event]: ...

    def finish(self) -> list[Event]:
        """The run ends (a replay's source is exhausted, or the daemon stops): the events
        that only the end decides. Called once, after the last ``update``, before ``close``."""
        ...

    def close(self) -> None: ...


class StageMeters(Protocol):
    """Where a stage reports its timings and engine use (``Metrics`` in the daemon).

    Measurements only: they never change what a stage derives.
    """

    def observe_stage(self, stage: str, seconds: float) -> None: ...

    def count_engine_items(self, model: str, backend: str, items: int) -> None: ...


class StageClock:
    """Seconds per sub-stage of one frame, reported to ``livecell_stage_seconds``
    through ``meters``: a measurement only, never part of an event."""

    def __init__(self, meters: StageMeters) -> None:
        self._meters = meters
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._meters.observe_stage(stage, now - self._last)
        self._last = now


def nothing_reported(event_id: str) -> bool:
    """A fresh start: no event was reported before (``build_stage``'s ``reported``)."""
    return False
