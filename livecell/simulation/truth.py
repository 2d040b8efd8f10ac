"""Writing the ground truth (SPEC section 5) as a simulation runs.

``GroundTruthWriter.add`` is called with every frame as it is produced, so a
live demo's truth is on disk as the frames appear; ``close`` writes what is
only known at the end (deaths, contacts, wells, the CTC lineage file).

Beside SPEC's files, a nanowell acquisition gets ``stage.csv`` (``position,t,dx_px,dy_px``:
the stage's drift in each frame, chip features at (x, y) at t = 0 are at (x + dx, y + dy)),
so that training can take motion on the chip, as the daemon measures it on the walls.

The Cell Tracking Challenge folders follow the Challenge's layout: one
``man_track{t:03d}.tif`` (uint16 labels) per frame and ``man_track.txt`` with
``L B E P`` lines (label, first frame, last frame, parent label or 0).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import tifffile

from livecell.simulation.scene import SimFrame, SimSummary

TRACK_COLUMNS = ("position", "t", "track", "well", "x", "y", "area", "cell_type", "state")
DEATH_COLUMNS = ("position", "track", "well", "pathway", "onset_t", "marker_t")
CONTACT_COLUMNS = ("position", "well", "track_a", "track_b", "start_t", "end_t")
WELL_COLUMNS = ("position", "well", "row", "col", "x0", "y0", "x1", "y1")
PATCH_COLUMNS = ("position", "t", "row", "col", "state")
STAGE_COLUMNS = ("position", "t", "dx_px", "dy_px")


@dataclass
class _Lineage:
    begin: int
    end: int
    parent: int


class GroundTruthWriter:
    def __init__(self, out: Path, *, with_patches: bool) -> None:
        self.folder = out / "ground_truth"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files: list[IO[str]] = []
        self._tracks = self._table("tracks.csv", TRACK_COLUMNS)
        self._patches = self._table("patches.csv", PATCH_COLUMNS) if with_patches else None
        self._stage: Any = None  # stage.csv, opened at the first frame that has a drift
        self._lineage: dict[str, dict[int, _Lineage]] = {}

    def _table(self, name: str, columns: tuple[str, ...]) -> Any:
        f = open(self.folder / name, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._files.append(f)
        writer = csv.writer(f)
        writer.writerow(columns)
        return writer

    def add(self, frame: SimFrame) -> None:
        for cell in frame.cells:
            self._tracks.writerow(
                (
                    frame.position,
                    frame.t,
                    cell.track,
                    cell.well,
                    f"{cell.x:.3f}",
                    f"{cell.y:.3f}",
                    cell.area,
                    cell.cell_type,
                    cell.state,
                )
            )
        if frame.stage_offset_px is not None:
            if self._stage is None:
                self._stage = self._table("stage.csv", STAGE_COLUMNS)
            dx, dy = frame.stage_offset_px
            self._stage.writerow((frame.position, frame.t, f"{dx:.4f}", f"{dy:.4f}"))
        if self._patches is not None:
            for patch in frame.patches:
                self._patches.writerow((frame.position, frame.t, patch.row, patch.col, patch.state))
        self._add_ctc(frame)
        for f in self._files:
            f.flush()

    def _add_ctc(self, frame: SimFrame) -> None:
        tra = self.folder / frame.position / "TRA"
        tra.mkdir(parents=True, exist_ok=True)
        if int(frame.labels.max(initial=0)) > np.iinfo(np.uint16).max:
            raise ValueError("track ids above 65535 do not fit the CTC's 16-bit label images")
        tifffile.imwrite(tra / f"man_track{frame.t:03d}.tif", frame.labels.astype(np.uint16))
        lineage = self._lineage.setdefault(frame.position, {})
        for cell in frame.cells:
            known = lineage.get(cell.track)
            if known is None:
                lineage[cell.track] = _Lineage(frame.t, frame.t, frame.parents.get(cell.track, 0))
            else:
                known.end = frame.t

    def close(self, summary: SimSummary) -> None:
        for f in self._files:
            f.close()
        self._write(
            "deaths.csv",
            DEATH_COLUMNS,
            [
                (p, d.track, d.well, d.pathway, d.onset_t, d.marker_t)
                for p, deaths in summary.deaths.items()
                for d in deaths
            ],
        )
        self._write(
            "contacts.csv",
            CONTACT_COLUMNS,
            [
                (p, c.well, c.track_a, c.track_b, c.start_t, c.end_t)
                for p, contacts in summary.contacts.items()
                for c in contacts
            ],
        )
        self._write(
            "wells.csv",
            WELL_COLUMNS,
            [
                (p, w.well, w.row, w.col, w.x0, w.y0, w.x1, w.y1)
                for p, wells in summary.wells.items()
                for w in wells
            ],
        )
        for position, lineage in self._lineage.items():
            lines = [
                f"{label} {e.begin} {e.end} {e.parent}\n" for label, e in sorted(lineage.items())
            ]
            (self.folder / position / "TRA" / "man_track.txt").write_text("".join(lines))

    def _write(self, name: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        with open(self.folder / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows)
