"""The watch source: TIFF files in a folder tree, each analysed once, when complete.

A file is complete when it parses as a whole TIFF (every strip inside the
file, as many pages as its OME-XML declares) and either the writer has closed
it (inotify's close-after-write, seen through watchdog) or it has not changed
for ``settle_s`` (polling, files moved in, the backlog at start-up). A file that
stays unusable for ``settle_s`` is rejected with the reason it failed.

A file inotify has seen written and not yet closed waits for its close even when
it parses: tifffile, for one, writes an OME-TIFF's OME-XML only as it closes the
file, so a stack whose writer pauses before closing reads meanwhile as a finished
one-plane TIFF. Should no close come (one the watcher missed), the file is read
once unchanged for ``open_wait_s``, with a warning.

Ready files leave in acquisition order: by ``t``, and never ahead of an
earlier ``t`` of the same position that is still being written. Two files of the
same position and ``t`` leave oldest first (by their modification time when first
noticed, then path), and one still being written holds back a younger copy: the
first written is the frame and the other the duplicate, however late its writer
closes.

States of one file: seen -> (changing ...) -> ready -> emitted, or -> rejected.
Files already in the journal are ignored, so a restart emits nothing again.

Files of multi-frame datasets (Micro-Manager NDTiff and OME-TIFF stacks, Tomocube TCF;
``source.format``) are handed to :class:`~livecell.stream.dataset_follow.DatasetFollower`,
whose readers are polled on every wake-up and hand out each image once it is complete.
"""

from __future__ import annotations

import fnmatch
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from livecell.config import SourceConfig
from livecell.errors import RejectedFrame
from livecell.events import stable_id
from livecell.frames import Frame, FrameKey, Rejection
from livecell.journal import Journal
from livecell.stream._protocol import Emit
from livecell.stream.dataset_follow import DatasetFollower
from livecell.stream.paths import key_from_path
from livecell.stream.tiff import FileIncomplete, TiffLayout, inspect_tiff, load_frame_pixels

log = structlog.get_logger("livecell.stream.watch")

_INOTIFY_WAKE_S = 0.1
_WARNED_PATHS_MAX = 10_000


@dataclass(slots=True)
class _Pending:
    """What the watcher knows of one file it has not emitted yet."""

    path: Path
    key: FrameKey | None
    size: int
    mtime_ns: int
    changed_at: float
    first_mtime_ns: int = 0  # when first noticed: copies of one t leave oldest first
    close_seen_at: float | None = None
    writing: bool = False  # inotify saw it written and not closed since
    inspected_state: tuple[int, int] | None = None
    layout: TiffLayout | None = None
    problem: RejectedFrame | None = None

    @property
    def state(self) -> tuple[int, int]:
        return (self.size, self.mtime_ns)

    def order(self) -> tuple[int, str, int, str]:
        """Emission order across positions: t, position, then :meth:`place`'s tie-break."""
        t, first_mtime_ns, path = self.place()
        return (t, self.key.position if self.key is not None else "", first_mtime_ns, path)

    def place(self) -> tuple[int, int, str]:
        """Where this file stands in its position's queue: t, then the oldest copy first."""
        return (self.key.t if self.key is not None else -1, self.first_mtime_ns, str(self.path))


class WatchSource:
    """Follow ``config.path`` (``follow=True``) or read what is there once (replay)."""

    kind = "watch"

    def __init__(
        self,
        config: SourceConfig,
        journal: Journal,
        *,
        ignore_under: Path | None = None,
        follow: bool = True,
        memmap: bool = True,
        owns: Callable[[FrameKey | None], bool] | None = None,
    ) -> None:
        if config.path is None:
            raise ValueError("the watch source needs source.path")
        self.root = config.path
        self._config = config
        self._journal = journal
        self._ignore_under = ignore_under
        self._follow = follow
        self._memmap = memmap
        self._owns = owns  # replay --workers: this process's share of the positions
        self._regex = re.compile(config.path_regex)
        self._patterns = tuple(p.lower() for p in config.patterns)
        self._notices: queue.Queue[tuple[str, Path, float]] = queue.Queue()
        self._pending: dict[Path, _Pending] = {}
        self._warned_written_again: set[Path] = set()
        self._datasets = DatasetFollower(
            config,
            self.root,
            is_done=journal.is_file_done,
            owns=owns,
            idle_s=config.dataset_idle_s if follow else None,
        )

    def run(self, emit: Emit, stop: threading.Event) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"source.path {self.root} is not a folder")
        observer = None
        if self._follow:
            observer = self._start_observer()
        try:
            self._scan_backlog()
            log.info(
                "watching",
                root=str(self.root),
                backlog=len(self._pending),
                polling=self._config.polling,
                follow=self._follow,
            )
            quiet_rounds = 0  # replay: datasets are done after two polls that find nothing
            while not stop.is_set():
                wait_s = 0.0 if self._datasets.behind() else self._wake_interval_s()
                self._drain_notices(wait_s=wait_s)
                if not self._emit_ready(emit, stop):
                    return
                emitted = self._emit_datasets(emit, stop)
                if emitted is None:
                    return
                quiet_rounds = 0 if emitted else quiet_rounds + 1
                idle = quiet_rounds >= 2 and not self._datasets.behind()
                if not self._follow and not self._pending and idle:
                    for rejection in self._datasets.unfinished():
                        if not emit(rejection):
                            return
                    return
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            self._datasets.close()

    def _emit_datasets(self, emit: Emit, stop: threading.Event) -> int | None:
        """Emit what the dataset readers hand out; how many, or None once stopping."""
        count = 0
        for item in self._datasets.items():
            if stop.is_set() or not emit(item):
                return None
            count += 1
        return count

    def _wake_interval_s(self) -> float:
        if not self._follow:
            return 0.0
        if self._config.polling:
            return self._config.poll_interval_s
        return _INOTIFY_WAKE_S

    def _start_observer(self) -> BaseObserver:
        handler = _NoticeHandler(self._notices)
        observer = (
            PollingObserver(timeout=self._config.poll_interval_s)
            if self._config.polling
            else Observer()
        )
        observer.schedule(handler, str(self.root), recursive=True)
        observer.start()
        return observer

    def _matches(self, path: Path) -> bool:
        name = path.name.lower()
        return any(fnmatch.fnmatchcase(name, p) for p in self._patterns)

    def _scan_backlog(self) -> None:
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                self._notice("seen", Path(folder) / name, time.time())

    def _drain_notices(self, wait_s: float) -> None:
        try:
            notice = self._notices.get(timeout=wait_s) if wait_s > 0 else self._notices.get_nowait()
        except queue.Empty:
            return
        while True:
            self._notice(*notice)
            try:
                notice = self._notices.get_nowait()
            except queue.Empty:
                return

    def _notice(self, what: str, path: Path, at: float) -> None:
        if what == "deleted":
            self._pending.pop(path, None)
            self._datasets.forget(path)
            return
        if self._ignore_under is not None and path.is_relative_to(self._ignore_under):
            return
        if self._datasets.claims(path) or not self._datasets.follows_plain_tiffs:
            return
        if not self._matches(path):
            return
        pending = self._pending.get(path)
        if pending is None:
            if self._journal.is_file_done(str(path)):
                if what == "closed":
                    self._warn_written_again(path)
                return
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return
            except OSError:  # a link loop, a stale share: retried, rejected once settled
                st = None
            key = self._key(path)
            if self._owns is not None and not self._owns(key):
                return
            if st is None:
                pending = _Pending(path, key, -1, -1, at, first_mtime_ns=-1)
            else:
                changed_at = min(at, st.st_mtime) if what == "seen" else at
                mtime = st.st_mtime_ns
                pending = _Pending(path, key, st.st_size, mtime, changed_at, first_mtime_ns=mtime)
            self._pending[path] = pending
        if what == "closed":
            pending.close_seen_at = at
            pending.writing = False
        elif what in ("changed", "written"):
            pending.close_seen_at = None
            pending.writing |= what == "written" and not self._config.polling

    def _warn_written_again(self, path: Path) -> None:
        """A file closed after writing at a path the journal has done: its pixels are not
        analysed (a path is read once); say so, once per path while the set stays small."""
        if path in self._warned_written_again:
            return
        if len(self._warned_written_again) >= _WARNED_PATHS_MAX:
            self._warned_written_again.clear()
        self._warned_written_again.add(path)
        log.warning(
            "a file was written at a path already analysed; it is not analysed again "
            "(give each run its own folder)",
            path=str(path),
        )

    def _key(self, path: Path) -> FrameKey | None:
        try:
            return self._key_or_raise(path)
        except RejectedFrame:
            return None

    def _key_or_raise(self, path: Path) -> FrameKey:
        return key_from_path(
            path, root=self.root, pattern=self._regex, acquisition=self._config.acquisition
        )

    def _emit_ready(self, emit: Emit, stop: threading.Event) -> bool:
        """Emit every ready file in order; False once the pipeline is stopping."""
        now = time.time()
        ready = [p for p in list(self._pending.values()) if self._refresh(p, now)]
        ready_paths = {p.path for p in ready}
        earliest_waiting: dict[tuple[str, str], tuple[int, int, str]] = {}
        for pending in self._pending.values():
            if pending.path not in ready_paths:
                _hold_back(earliest_waiting, pending)
        for pending in sorted(ready, key=_Pending.order):
            if stop.is_set():
                return False
            key = pending.key
            if key is not None and earliest_waiting.get(_stream(key), pending.place()) < (
                pending.place()
            ):
                continue  # an earlier t of its position (or an earlier copy of this t) is waiting
            item = self._item(pending, now)
            if item is None:
                _hold_back(earliest_waiting, pending)
                continue
            del self._pending[pending.path]
            if not emit(item):
                return False
        return True

    def _refresh(self, pending: _Pending, now: float) -> bool:
        """Update from the file system; True when the file is ready (complete, or finally bad)."""
        try:
            st = os.stat(pending.path)
        except FileNotFoundError:
            del self._pending[pending.path]
            return False
        except OSError as exc:  # still unreadable once settled: rejected, never fatal
            if self._follow and now - pending.changed_at < self._config.settle_s:
                return False
            pending.layout = None
            pending.problem = RejectedFrame("read_error", f"cannot read the file's status: {exc}")
            pending.inspected_state = pending.state
            return True
        if (st.st_size, st.st_mtime_ns) != pending.state:
            pending.size, pending.mtime_ns, pending.changed_at = st.st_size, st.st_mtime_ns, now
        settled = not self._follow or now - pending.changed_at >= self._config.settle_s
        if not settled and pending.close_seen_at is None:
            return False
        if pending.inspected_state != pending.state:
            if self._datasets.claims(pending.path):  # e.g. a stack file seen before its index
                del self._pending[pending.path]
                return False
            self._inspect(pending)
        if pending.layout is None:
            return settled
        if pending.writing:
            return self._waited_for_close(pending, now)
        return True

    def _waited_for_close(self, pending: _Pending, now: float) -> bool:
        """A parsable file still open for writing: True once ``open_wait_s`` have passed
        without a change or a close (then it is read, as it stands)."""
        if now - pending.changed_at < max(self._config.open_wait_s, self._config.settle_s):
            return False
        log.warning(
            "reading a file its writer has not closed",
            path=str(pending.path),
            unchanged_s=round(now - pending.changed_at, 1),
            **_key_fields(pending),
        )
        pending.writing = False
        return True

    def _inspect(self, pending: _Pending) -> None:
        pending.inspected_state = pending.state
        pending.layout, pending.problem = None, None
        try:
            pending.layout = inspect_tiff(pending.path, default_axes=self._config.axes)
        except RejectedFrame as problem:
            pending.problem = problem
        except Exception as exc:  # one odd file must never stop the watcher
            log.exception(
                "inspecting a file failed", path=str(pending.path), **_key_fields(pending)
            )
            pending.problem = RejectedFrame("read_error", f"{type(exc).__name__}: {exc}")

    def _item(self, pending: _Pending, now: float) -> Frame | Rejection | None:
        """The frame or rejection a ready file becomes; None if it must wait after all."""
        completed_at = pending.close_seen_at or min(now, pending.mtime_ns / 1e9)
        try:
            key = pending.key or self._key_or_raise(pending.path)
        except RejectedFrame as no_key:
            return self._rejection(pending, no_key, completed_at)
        if pending.layout is None:
            unreadable = pending.problem or RejectedFrame("unreadable", "no usable TIFF")
            return self._rejection(pending, unreadable, completed_at)
        too_large = _too_large(pending.layout, self._config.max_frame_mib)
        if too_large is not None:
            return self._rejection(pending, too_large, completed_at)
        try:
            pixels = load_frame_pixels(pending.layout, memmap=self._memmap)
        except FileIncomplete:
            pending.inspected_state = None
            return None
        except RejectedFrame as unusable:
            return self._rejection(pending, unusable, completed_at)
        except Exception as exc:  # one odd file must never stop the watcher
            log.exception("reading a file failed", path=str(pending.path), **_key_fields(pending))
            failed = RejectedFrame("read_error", f"{type(exc).__name__}: {exc}")
            return self._rejection(pending, failed, completed_at)
        layout = pending.layout
        return Frame(
            key=layout.key(key),
            pixels=pixels,
            axes=layout.axes,
            source="watch",
            completed_at=completed_at,
            path=str(pending.path),
            pixel_size_um=layout.ome.pixel_size_um if layout.ome else None,
            channels=layout.ome.channels if layout.ome else (),
        )

    def _rejection(self, pending: _Pending, problem: RejectedFrame, at: float) -> Rejection:
        return Rejection(
            reason=problem.reason,
            detail=problem.detail,
            completed_at=at,
            fingerprint=stable_id(str(pending.path), pending.size, pending.mtime_ns),
            key=pending.key,
            path=str(pending.path),
        )


def _too_large(layout: TiffLayout, max_frame_mib: float) -> RejectedFrame | None:
    """A compressed file whose pixels would decode to more than ``source.max_frame_mib``:
    a few KB of compressed strips can declare gigabytes (a decompression bomb), so the
    declared size is checked before anything is decoded. A file that holds its pixels
    as they are (no larger decoded than on disk) is never refused by this: its size is
    already there, and it is memory-mapped."""
    decoded_bytes = math.prod(layout.shape) * np.dtype(layout.dtype).itemsize
    if decoded_bytes <= max(max_frame_mib * 2**20, layout.size_bytes):
        return None
    return RejectedFrame(
        "shape_too_large",
        f"shape {list(layout.shape)} of {layout.dtype} is {decoded_bytes} bytes, over the "
        f"{max_frame_mib:g} MiB limit (source.max_frame_mib)",
    )


def _stream(key: FrameKey) -> tuple[str, str]:
    return (key.acquisition, key.position)


def _hold_back(earliest: dict[tuple[str, str], tuple[int, int, str]], pending: _Pending) -> None:
    """Record that ``pending`` waits: files after it in its position's queue wait behind it
    (later t; and a later copy of the same t, so the first written is the one analysed)."""
    if pending.key is not None:
        stream = _stream(pending.key)
        earliest[stream] = min(earliest.get(stream, pending.place()), pending.place())


class _NoticeHandler(FileSystemEventHandler):
    """watchdog's thread -> our queue; nothing else happens on watchdog's thread."""

    def __init__(self, notices: queue.Queue[tuple[str, Path, float]]) -> None:
        self._notices = notices

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        now = time.time()
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileMovedEvent):
            self._notices.put(("deleted", src, now))
            self._notices.put(("closed", Path(os.fsdecode(event.dest_path)), now))
        elif isinstance(event, FileClosedEvent):
            self._notices.put(("closed", src, now))
        elif isinstance(event, FileModifiedEvent):
            self._notices.put(("written", src, now))
        elif isinstance(event, FileCreatedEvent):  # also made up for files in a new folder
            self._notices.put(("changed", src, now))
        elif isinstance(event, FileDeletedEvent):
            self._notices.put(("deleted", src, now))


def _key_fields(pending: _Pending) -> dict[str, object]:
    key = pending.key
    if key is None:
        return {}
    return {"acquisition": key.acquisition, "position": key.position, "t": key.t}
