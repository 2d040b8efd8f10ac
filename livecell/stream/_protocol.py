"""The frame source protocol.

Lifecycle: constructed (nothing opened) -> ``run(emit, stop)`` on the source's
own thread: opens sockets or watches, then calls ``emit`` with each ``Frame``
or ``Rejection`` in acquisition order until ``stop`` is set (or, for a finite
source such as a replay, until it has nothing left) -> returns after closing
everything it opened. ``emit`` blocks while the pipeline's queue is full (that
is the back-pressure) and returns False once the pipeline is stopping; the
source must then return promptly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from livecell.frames import Frame, Rejection

Emit = Callable[[Frame | Rejection], bool]


class FrameSource(Protocol):
    kind: str

    def run(self, emit: Emit, stop: threading.Event) -> None: ...
