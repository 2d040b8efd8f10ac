"""What a simulator yields: frames with their ground truth, in plain frozen dataclasses.

Coordinates are pixels of the written image (x to the right, y down); ``t`` is
the frame index. Vocabulary is fixed here so files written today read the
same tomorrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

EFFECTOR: Final = "effector"
TARGET: Final = "target"
CELL_TYPES: Final = (EFFECTOR, TARGET)

LIVE: Final = "live"
APOPTOSIS: Final = "apoptosis"
NECROPTOSIS: Final = "necroptosis"
NECROSIS: Final = "necrosis"
CELL_STATES: Final = (LIVE, APOPTOSIS, NECROPTOSIS, NECROSIS)
DEATH_PATHWAYS: Final = (APOPTOSIS, NECROPTOSIS, NECROSIS)

# Holotomography patch states, in the order models report them (SPEC: patches.csv).
PATCH_STATES: Final = ("live_control", "live_treated", "apoptosis", "necroptosis", "necrosis")
EMPTY_PATCH: Final = "empty"
DEFAULT_PATCH_SIZE_PX: Final = 160


def well_id(row: int, col: int) -> str:
    """SPEC 4: ``r{row:03d}c{col:03d}``, counted in the well lattice of its position."""
    return f"r{row:03d}c{col:03d}"


@dataclass(frozen=True, slots=True)
class Well:
    well: str
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True, slots=True)
class CellTruth:
    """One cell at one frame: a row of ``tracks.csv``.

    ``x``, ``y`` and ``area`` are those of the cell's pixels in ``SimFrame.labels``.
    ``well`` is ``""`` where there are no wells (holotomography).
    """

    track: int
    well: str
    x: float
    y: float
    area: int
    cell_type: str
    state: str


@dataclass(frozen=True, slots=True)
class PatchTruth:
    """One patch of the default grid at one frame: a row of ``patches.csv``."""

    row: int
    col: int
    state: str


@dataclass(frozen=True, slots=True)
class Death:
    track: int
    well: str
    pathway: str
    onset_t: int
    marker_t: int


@dataclass(frozen=True, slots=True)
class Contact:
    well: str
    track_a: int
    track_b: int
    start_t: int
    end_t: int


@dataclass(frozen=True, eq=False)
class SimFrame:
    """One position at one time point, as the microscope writes it, with its truth.

    ``labels`` is the ground-truth instance mask (int32, 0 = background, else
    the track id) in the image's YX pixel frame; ``parents`` maps tracks born
    in this frame by mitosis to their parent track; ``stage_offset_px`` is the
    stage's (dx, dy) drift in this frame (None where the simulator has none).
    """

    position: str
    t: int
    image: np.ndarray
    axes: str
    pixel_size_um: float
    labels: np.ndarray
    cells: tuple[CellTruth, ...]
    channels: tuple[str, ...] = ()
    patches: tuple[PatchTruth, ...] = ()
    parents: dict[int, int] = field(default_factory=dict)
    stage_offset_px: tuple[float, float] | None = None


@dataclass(frozen=True)
class SimSummary:
    """What is known once the acquisition ends: per position, its wells, deaths and contacts.

    Deaths whose marker would turn positive after the last frame keep the
    simulated ``marker_t`` (beyond the acquisition); contacts still going on at
    the end have ``end_t`` = the last frame.
    """

    wells: dict[str, tuple[Well, ...]]
    deaths: dict[str, tuple[Death, ...]]
    contacts: dict[str, tuple[Contact, ...]]
