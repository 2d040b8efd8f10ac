"""The tracks file (nanowell mode): one CSV row per tracked cell per frame (SPEC section 4).

Columns as the simulator's ``tracks.csv``, so users load both the same way and
``livecell evaluate --tracks`` scores it. Rows arrive from the nanowell stage once a
frame's smoothing lag has passed; each batch is one write of whole rows, fsynced, and a
write that fails part-way (a full disk) is cut back, so the file never keeps half a row (a
reader tailing it may catch a write in progress: take whole lines only). A restart
appends to the same file (the header is written only to an empty file). One writer at
a time: the file is locked while open, so a replay cannot interleave its rows with a
running daemon's (``replay --tracks``).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from livecell.sinks.jsonl import EventLogLocked, append_whole, lock_for_writing, sync_naming

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
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            lock_for_writing(self._fd, path)
        except EventLogLocked:
            os.close(self._fd)
            raise
        if os.fstat(self._fd).st_size == 0:
            self._write([COLUMNS])

    def write(self, rows: Sequence[TrackRow]) -> None:
        """Append ``rows`` and fsync them: they are on disk before the events of the frame
        that released them are committed, so a power cut cannot leave frames the journal
        counts as done without the rows already written for them."""
        if rows:
            self._write(_formatted(r) for r in rows)
            sync_naming(self._fd, self.path)

    def append_rows_of(self, other: Path) -> None:
        """Append the rows of another tracks file (its header left out), as written."""
        with other.open("rb") as f:
            next(f, None)
            append_whole(self._fd, iter(lambda: f.read(1 << 20), b""), self.path)
        sync_naming(self._fd, self.path)

    def _write(self, rows: Iterable[Sequence[object]]) -> None:
        """Whole rows or none (a full disk raises ``OutputWriteError``)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        append_whole(self._fd, [buffer.getvalue().encode()], self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def holds_rows(path: Path) -> bool:
    """Whether the tracks file at ``path`` has a row past its header."""
    try:
        with path.open("rb") as f:
            next(f, None)
            return bool(next(f, b"").strip())
    except (FileNotFoundError, NotADirectoryError):
        return False


def set_aside(path: Path) -> Path | None:
    """Rename a tracks file that holds rows to ``NAME.before-UTCSTAMP`` (its frames are to be
    analysed again: appending would write their rows twice); the new name, or None."""
    if not holds_rows(path):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.before-{stamp}")
    path.rename(aside)
    return aside


def _formatted(row: TrackRow) -> tuple[object, ...]:
    values = astuple(row)
    return (*values[:4], f"{row.x:.3f}", f"{row.y:.3f}", f"{row.area:.0f}", *values[7:])
