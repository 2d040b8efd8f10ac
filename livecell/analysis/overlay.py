"""What a stage saw in its latest frame, for viewers (the dashboard): the frame-observer hook.

A stage that implements :class:`OverlaySource` keeps, per position, a read-only
snapshot of the geometry behind its latest frame's events: the wells and where
each tracked cell is (nanowell mode), or the patch grid and the model's
probabilities (patch mode). Building it costs the analysis thread a few small
tuples per frame; it holds references to arrays the stage made for that frame
and never changes afterwards (never mutate them). Viewers get it through a
:class:`FrameObserver` the pipeline calls after ``stage.update(frame)``; an
observer must return at once (store the references, render on its own thread).

Overlays never feed back into events: ``replay`` and a live run with or without
a dashboard derive the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from livecell.frames import Frame, FrameKey

__all__ = [
    "CellMark",
    "FrameObserver",
    "NanowellOverlay",
    "Overlay",
    "OverlaySource",
    "PatchOverlay",
    "WellCells",
    "latest_overlay",
    "overlay_of",
]


@dataclass(frozen=True, slots=True)
class CellMark:
    """One tracked cell in a frame: its track id, centroid (frame pixels) and its labels
    in the well's label image (empty when the tracker held it without a measurement)."""

    track: int
    x: float
    y: float
    labels: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WellCells:
    """One well of a frame: its box (frame pixels, ``x1``/``y1`` exclusive), its label
    image (segmentation of the box, same shape; read-only) and its tracked cells."""

    well: str
    x0: int
    y0: int
    x1: int
    y1: int
    labels: npt.NDArray[np.integer]
    cells: tuple[CellMark, ...]


@dataclass(frozen=True, slots=True)
class NanowellOverlay:
    """Nanowell mode at frame ``t``: the wells, and the death model's window
    probabilities (``death_classes`` order) of the tracks it ran on at ``t``."""

    t: int
    wells: tuple[WellCells, ...]
    death_classes: tuple[str, ...] = ()
    death_probabilities: tuple[tuple[int, tuple[float, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class PatchOverlay:
    """Patch mode at frame ``t``: the grid, which patches were classified (``kept``,
    rows x cols) and their class probabilities (``[n_kept, n_classes]``, row-major)."""

    t: int
    patch_px: int
    rows: int
    cols: int
    classes: tuple[str, ...]
    kept: npt.NDArray[np.bool_]
    probabilities: npt.NDArray[np.float32]


Overlay = NanowellOverlay | PatchOverlay
OverlayT = TypeVar("OverlayT", NanowellOverlay, PatchOverlay)


@runtime_checkable
class OverlaySource(Protocol):
    """A stage that can say what it saw: the overlay of ``key`` if that is the latest
    frame of its position it analysed, else ``None``."""

    def overlay(self, key: FrameKey) -> Overlay | None: ...


class FrameObserver(Protocol):
    """Called on the analysis thread after each analysed frame; must not block."""

    def observe_frame(self, frame: Frame, overlay: Overlay | None) -> None: ...


def overlay_of(stage: object, key: FrameKey) -> Overlay | None:
    """The stage's overlay for ``key``, or ``None`` for a stage without overlays."""
    if isinstance(stage, OverlaySource):
        return stage.overlay(key)
    return None


def latest_overlay(latest: OverlayT | None, key: FrameKey) -> OverlayT | None:
    """A position's latest overlay if it is of ``key``'s frame (viewers ask only for that)."""
    return latest if latest is not None and latest.t == key.t else None
