"""What the nanowell stage keeps about one track: recent crops and motion, smoothing, fates.

Bounded per track: the last ``window`` crops and motion rows for the sequence
models, the chip positions of the last ``history`` frames (the motility-arrest
rule looks further back than the models), the smoother's window, and the areas of
the frames still held back by the smoothing lag. A track's state is dropped when
the track ends.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from livecell.analysis.fates import CellTypeVote, DeathWatch
from livecell.sinks.tracks_csv import TrackRow
from livecell.tracking.motion import chip_motion_descriptors, motion_descriptors
from livecell.tracking.smoothing import FixedLagSmoother

__all__ = ["TrackState"]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Sample:
    """One frame of a track, as measured (or held over a missed frame)."""

    t: int
    x: float
    y: float
    area: float
    eccentricity: float
    crop: FloatArray  # [C + 1, H, W]: image channels, then the cell's 0/1 mask
    measured: bool


@dataclass(frozen=True, slots=True)
class _ChipPosition:
    """Where the cell was on the chip (the stage's drift taken out) at frame ``t``."""

    t: int
    x_px: float
    y_px: float
    measured: bool


@dataclass
class TrackState:
    position: str
    well: str
    track: int
    smoother: FixedLagSmoother
    window: int
    cell_type: CellTypeVote | None
    death: DeathWatch | None
    history: int = 0  # chip positions kept; at least ``window``
    samples: deque[_Sample] = field(init=False)
    chip: deque[_ChipPosition] = field(init=False)
    motion: deque[FloatArray] = field(init=False)  # MOTION_DESCRIPTORS, in the frame
    chip_motion: deque[FloatArray] = field(init=False)  # CHIP_MOTION_DESCRIPTORS
    _held: deque[tuple[int, float]] = field(init=False)  # (t, area) not yet written

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.window)
        self.motion = deque(maxlen=self.window)
        self.chip_motion = deque(maxlen=self.window)
        self.chip = deque(maxlen=max(self.window, self.history))
        self._held = deque()

    def add(
        self,
        t: int,
        x: float,
        y: float,
        area: float,
        eccentricity: float,
        crop: FloatArray,
        *,
        measured: bool,
        drift_px: tuple[float, float] = (0.0, 0.0),
    ) -> list[TrackRow]:
        """Record frame ``t`` (``x, y`` in the frame; ``drift_px``: the stage's (dx, dy)
        then); return the tracks-file rows whose lag has now passed."""
        if not measured and self.samples:
            last = self.samples[-1]  # a missed frame: the models see the cell as last seen
            area, eccentricity, crop = last.area, last.eccentricity, last.crop
        self.samples.append(_Sample(t, x, y, area, eccentricity, crop, measured))
        self.chip.append(_ChipPosition(t, x - drift_px[0], y - drift_px[1], measured))
        recent = list(self.samples)[-3:]
        areas = np.array([s.area for s in recent])
        eccentricities = np.array([s.eccentricity for s in recent])
        in_frame = motion_descriptors(np.array([(s.y, s.x) for s in recent]), areas, eccentricities)
        recent_chip = [self.chip[i] for i in range(-len(recent), 0)]  # the same frames
        on_chip = chip_motion_descriptors(
            np.array([(c.y_px, c.x_px) for c in recent_chip]), areas, eccentricities
        )
        for rows, stream in ((in_frame, self.motion), (on_chip, self.chip_motion)):
            stream.append(rows[-1])
            if len(self.samples) == 2:  # frame 0 copies frame 1's step, as over a whole track
                stream[0] = rows[0]
        self._held.append((t, area))
        smoothed = self.smoother.update((x, y) if measured else None)
        return [] if smoothed is None else [self._row(smoothed)]

    def finish(self) -> list[TrackRow]:
        """The track ended: the rows still held back by the smoothing lag."""
        return [self._row(xy) for xy in self.smoother.finish()]

    def steps_px(self) -> dict[int, float]:
        """Frame -> how far the cell moved on the chip since the frame before, over the
        kept history, where both frames were measured (not filled over a miss)."""
        return {
            b.t: math.hypot(b.x_px - a.x_px, b.y_px - a.y_px)
            for a, b in itertools.pairwise(self.chip)
            if a.measured and b.measured and b.t == a.t + 1
        }

    def window_arrays(
        self, motion_frame: str = "camera"
    ) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
        """Frame indices, crops and motion (``camera``: in the frame; ``chip``: on the chip)
        of the model window, padded at the front."""
        samples = list(self.samples)
        stream = self.chip_motion if motion_frame == "chip" else self.motion
        pad = self.window - len(samples)
        ts = np.array([samples[0].t] * pad + [s.t for s in samples], dtype=np.int64)
        crops = np.stack([samples[0].crop] * pad + [s.crop for s in samples])
        motion = np.stack([stream[0]] * pad + list(stream))
        return ts, crops, motion.astype(np.float32, copy=False)

    def _row(self, xy: npt.NDArray[np.float64]) -> TrackRow:
        t, area = self._held.popleft()
        best = self.cell_type.best if self.cell_type is not None else None
        return TrackRow(
            position=self.position,
            t=t,
            track=self.track,
            well=self.well,
            x=float(xy[0]),
            y=float(xy[1]),
            area=area,
            cell_type=best.cell_type if best is not None else "",
            state=self.death.state_at(t) if self.death is not None else "",
        )
