"""The event sink protocol.

Lifecycle: constructed (sockets bound, files opened) -> ``publish`` called from
the analysis worker with each committed batch, in order -> ``close`` once.
``publish`` must not block the worker: a sink that can be slow keeps its own
bounded queue and thread, and drops (counting what it drops) rather than wait.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class EventSink(Protocol):
    name: str

    def publish(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...
