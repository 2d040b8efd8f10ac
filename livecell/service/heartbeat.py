"""The pipeline's heartbeat as systemd sees it: ``WATCHDOG=1`` pings and ``STATUS=`` text.

The pipeline calls a ``ServiceHeartbeat`` from its analysis loop on every
iteration, idle or not (``Pipeline(heartbeat=...)``); a ``stage.update`` that never
returns stops the calls, so the pings stop and systemd restarts the service.
``STATUS=`` is sent when its text changes, at most once per ``status_interval_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from livecell.pipeline import PipelineProgress
from livecell.service.sd_notify import SdNotifier


def status_text(progress: PipelineProgress) -> str:
    """``"frames 120, queue 0, lag 0.4 s"``: for ``systemctl status``."""
    return (
        f"frames {progress.frames_done}, queue {progress.queue_depth}, lag {progress.lag_s:.1f} s"
    )


class ServiceHeartbeat:
    def __init__(
        self,
        notifier: SdNotifier,
        *,
        status_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self._status_interval_s = status_interval_s
        self._clock = clock
        self._last_text: str | None = None
        self._last_status: float | None = None

    def __call__(self, progress: PipelineProgress) -> None:
        self._notifier.watchdog()
        text = status_text(progress)
        now = self._clock()
        if text == self._last_text:
            return
        if self._last_status is not None and now - self._last_status < self._status_interval_s:
            return
        self._last_text, self._last_status = text, now
        self._notifier.status(text)
