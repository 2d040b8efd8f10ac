"""The simulator protocol.

Lifecycle: constructed from its parameters and a seed (all randomness comes
from that seed) -> ``step()`` once per time point, returning one ``SimFrame``
per position, t = 0, 1, 2, ... -> ``summary()`` at any time, complete once
the last step is taken.
"""

from __future__ import annotations

from typing import Protocol

from livecell.simulation.scene import SimFrame, SimSummary


class Simulator(Protocol):
    kind: str
    positions: tuple[str, ...]

    def step(self) -> list[SimFrame]: ...

    def summary(self) -> SimSummary: ...
