"""The durable journal behind exactly-once: which frames, files and events are done.

SQLite in WAL mode in ``state_dir``. The events file is written and fsynced
first; only then are the frame, its file and its event ids committed here,
with the events file's size at that moment (``events_offset``). After a crash
(``kill -9`` at any point) the events written past that offset are read back
and recorded (``Pipeline`` does this at start), so re-deriving them writes
nothing twice, and any frame not committed is analysed again.

Because the events file is the durable record and the offset is recovered,
``synchronous=NORMAL`` is enough: a journal commit lost to a power cut only
makes the start-up scan of the events file a little longer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.path = db_path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Journal:
        return cls(state_dir / "journal.sqlite3")

    def close(self) -> None:
        with self._lock:
            self._db.close()

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

    def commit(
        self,
        *,
        frames: Iterable[DoneFrame] = (),
        event_ids: Iterable[str] = (),
        events_offset: int | None = None,
    ) -> None:
        """Record, in one transaction, frames done and events durably written."""
        frames = list(frames)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO frames VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            f.key.acquisition,
                            f.key.position,
                            f.key.t,
                            f.source,
                            _fs_bytes(f.path),
                            f.done_at,
                        )
                        for f in frames
                    ],
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO files VALUES (?)",
                    [(os.fsencode(f.path),) for f in frames if f.path is not None],
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?)", [(i,) for i in event_ids]
                )
                if events_offset is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('events_offset', ?)", (events_offset,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


def _fs_bytes(path: str | None) -> bytes | None:
    """Paths are stored as the file system's bytes: names need not be valid UTF-8."""
    return None if path is None else os.fsencode(path)
