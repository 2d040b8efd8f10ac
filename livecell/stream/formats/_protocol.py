"""What a dataset reader gives the source: complete images and the problems it met.

A reader follows one dataset (an NDTiff folder, a Micro-Manager OME-TIFF stack, a
TCF file). ``poll()`` is called every wake-up of the source; it reads what the
writer has added since the last call and returns what became complete, in the
order it was written, each exactly once per reader. It never returns an image
that is still being written, and it never raises for bad data: a corrupt entry
or an unreadable page becomes a ``DatasetProblem`` and the rest of the dataset
goes on. ``finished`` turns True once the writer has closed the dataset. A poll reads a
bounded batch; ``behind`` says it stopped there with more already written.

``unit`` is the image's stable name for the journal (exactly-once across
restarts): the dataset's path, ``#``, and a name of the image that does not
change when the dataset grows (its entry number or page number, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class DatasetImage:
    """One complete frame of a dataset: an image, or a z/channel stack of one time point."""

    unit: str
    position: str
    t: int
    pixels: np.ndarray  # YX, or stacked per ``axes``
    axes: str  # "YX", "ZYX", "CYX" or "ZCYX"
    completed_at: float  # Unix time the reader first saw it complete
    pixel_size_um: float | None = None
    channels: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DatasetProblem:
    """An image (or index entry, or page) that cannot be used; ``reason`` is a short slug."""

    unit: str
    reason: str
    detail: str
    completed_at: float
    position: str | None = None
    t: int | None = None


DatasetItem = DatasetImage | DatasetProblem


def never_done(unit: str) -> bool:
    """The default ``is_done``: no image of the dataset is in the journal yet."""
    return False


class DatasetReader(Protocol):
    path: Path

    def poll(self) -> list[DatasetItem]: ...

    @property
    def finished(self) -> bool: ...

    @property
    def behind(self) -> bool:
        """True when the last poll stopped at its batch limit (memory stays bounded when a
        whole finished dataset is replayed): more is already written, the next poll reads it."""
        ...

    @property
    def incomplete(self) -> bool:
        """True when images are begun but not complete: a writer still at work, or one that
        stopped mid-image (a crash, an abort). A replay reports it: nothing comes later."""
        ...

    def close(self) -> None: ...
