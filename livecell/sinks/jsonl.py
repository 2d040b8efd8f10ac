"""The events file: append-only JSON Lines, fsynced before a frame counts as done.

One writer at a time: the file is locked (``flock``) while open, so a replay
cannot interleave its lines with a running daemon's. A torn last line left by
a crash is cut off on open; the events after the journal's offset are read
back (``records_after``) so that the pipeline never writes an ``event_id`` twice
nor analyses again a frame whose events were written.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from livecell.errors import OutputWriteError
from livecell.events import to_json_line


def append_whole(fd: int, chunks: Iterable[bytes], path: Path) -> None:
    """Append ``chunks`` to the file open as ``fd`` (``O_APPEND``), all of them or none: a
    write that fails part-way (a full disk) is cut back to where the append began, so
    the next append does not join a partial line, and raises :class:`OutputWriteError`."""
    start = os.fstat(fd).st_size
    try:
        with _naming(path):
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    except OutputWriteError:
        os.ftruncate(fd, start)
        raise


def sync_naming(fd: int, path: Path) -> None:
    """``fsync``; a failure (a share's full disk shows here) as an OutputWriteError."""
    with _naming(path):
        os.fsync(fd)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError from writing or syncing ``path`` as an :class:`OutputWriteError` naming it."""
    try:
        yield
    except OSError as exc:
        raise OutputWriteError(exc.errno, exc.strerror, str(path)) from exc


class EventLogLocked(Exception):
    """Another livecell process is writing this events file."""


def lock_for_writing(fd: int, path: Path) -> None:
    """Hold ``path`` (open as ``fd``) as its one writer; ``EventLogLocked`` if another
    livecell process does."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise EventLogLocked(f"{path} is being written by another livecell process") from None


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = self._open()
        self.repaired_bytes = self._cut_torn_tail()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            lock_for_writing(fd, self.path)
        except EventLogLocked:
            os.close(fd)
            raise
        return fd

    def reopen_if_deleted(self) -> bool:
        """If the file was deleted or moved away while open (a rotation by renaming), start
        a new one at its path; True if so.

        What was written since its last check is gone with a deleted file, and stays in a
        moved one.
        """
        held = os.fstat(self._fd)
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            at_path = None
        if held.st_nlink > 0 and at_path is not None and _same_file(held, at_path):
            return False
        os.close(self._fd)
        self._fd = self._open()
        return True

    def _cut_torn_tail(self) -> int:
        """Drop a partial last line (a crash mid-write); return how many bytes went."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        chunk = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - chunk)
            data = os.pread(self._fd, end - start, start)
            newline = data.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        return size - keep

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def records_after(self, offset: int) -> Iterator[dict[str, Any]]:
        """The events (with an id) of the lines from byte ``offset`` on (all of them if the
        file shrank)."""
        if offset > self.size():
            offset = 0
        with open(self.path, "rb") as f:
            f.seek(offset)
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("event_id"), str):
                    yield record

    def ids_after(self, offset: int) -> Iterator[str]:
        """Event ids of the lines from byte ``offset`` on (all of them if the file shrank)."""
        return (record["event_id"] for record in self.records_after(offset))

    def append(self, records: list[dict[str, object]]) -> None:
        """Append the records as whole lines (see :meth:`append_lines`)."""
        self.append_lines([to_json_line(r) for r in records])

    def append_lines(self, lines: list[str]) -> None:
        """Append whole lines; on a failed write (a full disk) cut back to where the
        append began, so no partial line is left for the next one to join, and raise."""
        if lines:
            append_whole(self._fd, ["".join(lines).encode()], self.path)

    def sync(self) -> int:
        """Make the appended lines durable; return the offset up to which events are durable."""
        with _naming(self.path):  # a network share may tell of a full disk only here
            os.fdatasync(self._fd)  # the size is data-critical and included; timestamps not
        return self.size()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                sync_naming(self._fd, self.path)
            finally:
                os.close(self._fd)
                self._fd = -1


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
