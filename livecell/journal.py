"""The durable journal behind exactly-once: which frames, files and events are done.

SQLite in WAL mode in ``state_dir``. The events file is written and fsynced
first; only then are the frame, its file and its event ids committed here,
with the events file's size at that moment (``events_offset``). After a crash
(``kill -9`` at any point) the events written past that offset are read back
and recorded (``Pipeline`` does this at start), so re-deriving them writes
nothing twice, and any frame not committed is analysed again.

Because the events file is the durable record and the offset is recovered,
the journal is an index that may lag it: ``synchronous=NORMAL``, and the
daemon commits it at most once per ``pipeline.journal_commit_interval_s``
(and whenever it is idle). A commit lost to a crash or a power cut only
means the start-up scan reads a little more of the events file, and frames
seen again re-derive events that are already there, so nothing is written
twice. Measured on the ingest benchmark: a commit per frame cost about 5 %
of ZeroMQ throughput.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from livecell.errors import OutputWriteError
from livecell.frames import FrameKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    acquisition TEXT NOT NULL, position TEXT NOT NULL, t INTEGER NOT NULL,
    source TEXT NOT NULL, path BLOB, done_at REAL NOT NULL,
    PRIMARY KEY (acquisition, position, t)
);
CREATE TABLE IF NOT EXISTS files (path BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class DoneFrame:
    key: FrameKey
    source: str
    path: str | None
    done_at: float


class Journal:
    """Thread-safe: the watch source asks which files are done while the worker commits."""

    def __init__(self, db_path: Path, *, commit_interval_s: float = 0.0) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.path = db_path
        self._commit_interval_s = commit_interval_s
        self._open_since: float | None = None  # monotonic start of the open transaction
        self._lock = threading.Lock()
        try:
            with self._writing():
                self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:  # it cannot be opened (no rights, say)
            raise OSError(None, str(exc), str(db_path)) from exc

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, commit_interval_s: float = 0.0) -> Journal:
        return cls(state_dir / "journal.sqlite3", commit_interval_s=commit_interval_s)

    def close(self) -> None:
        with self._lock:
            try:
                with self._writing():
                    self._commit_open()
            finally:
                self._db.close()

    def forget_all(self, *, while_running: bool = False) -> None:
        """Forget every frame, file and event (the events file they index is gone).

        ``while_running``: the events file went while the daemon ran; the next start is
        told so once (``pop_forgotten_while_running``), since the events file it then
        finds is the new one and no shorter than the journal says.
        """
        with self._lock, self._writing():
            self._commit_open()
            self._db.execute("BEGIN IMMEDIATE")
            for table in ("frames", "files", "events", "meta"):
                self._db.execute(f"DELETE FROM {table}")
            if while_running:
                self._db.execute("INSERT INTO meta VALUES ('forgotten_while_running', 1)")
            self._db.execute("COMMIT")

    def pop_forgotten_while_running(self) -> bool:
        """Whether the journal was emptied while a daemon ran since the last call."""
        with self._lock, self._writing():
            self._commit_open()
            found = self._db.execute(
                "DELETE FROM meta WHERE name='forgotten_while_running'"
            ).rowcount
        return found > 0

    def events_offset(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name='events_offset'").fetchone()
        return int(row[0]) if row else 0

    def has_event(self, event_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM events WHERE event_id=?", (event_id,)).fetchone()
        return row is not None

    def is_frame_done(self, key: FrameKey) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM frames WHERE acquisition=? AND position=? AND t=?",
                (key.acquisition, key.position, key.t),
            ).fetchone()
        return row is not None

    def is_file_done(self, path: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM files WHERE path=?", (os.fsencode(path),)
            ).fetchone()
        return row is not None

    def frame_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM frames").fetchone()[0])

    def record(
        self,
        *,
        frames: Iterable[DoneFrame] = (),
        event_ids: Iterable[str] = (),
        events_offset: int | None = None,
    ) -> None:
        """Record frames done and events durably written, all or nothing.

        The records join the open transaction, which is committed once it is
        ``commit_interval_s`` old (at once with the default 0) or on ``flush``.
        """
        frames = list(frames)
        with self._lock, self._writing():
            if self._open_since is None:
                self._db.execute("BEGIN IMMEDIATE")
                self._open_since = time.monotonic()
            self._db.execute("SAVEPOINT record")
            try:
                self._insert(frames, event_ids, events_offset)
            except BaseException:
                if self._db.in_transaction:  # else a full disk rolled it all back
                    self._db.execute("ROLLBACK TO record")
                    self._db.execute("RELEASE record")
                raise
            self._db.execute("RELEASE record")
            if time.monotonic() - self._open_since >= self._commit_interval_s:
                self._commit_open()

    def flush(self) -> None:
        """Commit the open transaction, if any."""
        with self._lock, self._writing():
            self._commit_open()

    def _commit_open(self) -> None:
        if self._open_since is None:
            return
        try:
            self._db.execute("COMMIT")
        finally:
            if not self._db.in_transaction:  # committed, or rolled back by a failed COMMIT
                self._open_since = None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """SQLite's failures to write (a full disk, a file-size limit, an I/O error) as an
        :class:`OutputWriteError` naming the journal's file. SQLite may have rolled the
        open transaction back: then none is open any more."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self._open_since is not None and not self._db.in_transaction:
                self._open_since = None
            name = getattr(exc, "sqlite_errorname", "")
            if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
                raise OutputWriteError(None, str(exc), str(self.path)) from exc
            raise

    def _insert(
        self, frames: list[DoneFrame], event_ids: Iterable[str], events_offset: int | None
    ) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO frames VALUES (?, ?, ?, ?, ?, ?)",
            [
                (f.key.acquisition, f.key.position, f.key.t, f.source, _fs_bytes(f.path), f.done_at)
                for f in frames
            ],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO files VALUES (?)",
            [(os.fsencode(f.path),) for f in frames if f.path is not None],
        )
        self._db.executemany("INSERT OR IGNORE INTO events VALUES (?)", [(i,) for i in event_ids])
        if events_offset is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('events_offset', ?)", (events_offset,)
            )


def _fs_bytes(path: str | None) -> bytes | None:
    """Paths are stored as the file system's bytes: names need not be valid UTF-8."""
    return None if path is None else os.fsencode(path)
