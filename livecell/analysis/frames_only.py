"""``analysis.mode = "none"``: nothing beyond the ``frame`` event the pipeline always emits."""

from __future__ import annotations

from livecell.events import Event
from livecell.frames import Frame


class FramesOnly:
    name = "none"

    def warm_up(self) -> None:
        """No model to warm."""

    def update(self, frame: Frame) -> list[Event]:
        return []

    def finish(self) -> list[Event]:
        """Nothing waits on the end of the run."""
        return []

    def close(self) -> None:
        """Nothing to release."""
