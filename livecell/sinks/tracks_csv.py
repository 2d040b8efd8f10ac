"""The tracks file (nanowell mode): one CSV row per tracked cell per frame (SPEC section 4).

Columns as the simulator's ``tracks.csv``, so users load both the same way and
``livecell evaluate --tracks`` scores it. Rows arrive from the nanowell stage once a
frame's smoothing lag has passed; each batch is flushed, so a reader tailing the
file never sees half a row. A restart appends to the same file (the header is
written only to an empty file). One writer at a time: the file is locked while open, so
a replay cannot interleave its rows with a running daemon's (``replay --tracks``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from livecell.sinks.jsonl import EventLogLocked, lock_for_writing

__all__ = ["TrackRow", "TracksFile"]


@dataclass(frozen=True, slots=True)
class TrackRow:
    position: str
    t: int
    track: int
    well: str
    x: float
    y: float
    area: float
    cell_type: str
    state: str


COLUMNS = tuple(f.name for f in fields(TrackRow))


class TracksFile:
    name = "tracks"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (held open)
        try:
            lock_for_writing(self._file.fileno(), path)
        except EventLogLocked:
            self._file.close()
            raise
        if self._file.tell() == 0:
            self._write([COLUMNS])

    def write(self, rows: Sequence[TrackRow]) -> None:
        if rows:
            self._write(_formatted(r) for r in rows)

    def append_rows_of(self, other: Path) -> None:
        """Append the rows of another tracks file (its header left out), as written."""
        with other.open(encoding="utf-8", newline="") as f:
            next(f, None)
            for line in f:
                self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _write(self, rows: Iterable[Sequence[object]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self._file.write(buffer.getvalue())
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _formatted(row: TrackRow) -> tuple[object, ...]:
    values = astuple(row)
    return (*values[:4], f"{row.x:.3f}", f"{row.y:.3f}", f"{row.area:.0f}", *values[7:])
