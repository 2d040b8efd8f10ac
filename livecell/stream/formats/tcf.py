"""Tomocube TCF (HDF5): follow one ``.TCF`` file and hand out its refractive-index time points.

Layout, as the public TCFile project documents it (``docs/structure_TCF.md`` in
github.com/ehgus/TCFile, and its reader ``TCFile/TCFile_class.py``): root attributes
(FormatVersion, CreateDate, ...); a group ``/Data/3D`` whose attributes are DataCount,
SizeX/Y/Z, ResolutionX/Y/Z (um per pixel), RIMin/RIMax and TimeInterval, holding one dataset
per time point named ``000000``, ``000001``, ... (axes ZYX, with per-time-point attributes
Time, RecordingTime, PositionX/Y/Z/C); ``/Data/2DMIP`` likewise with 2D (YX) maximum
projections. Attributes are stored as one-element arrays.

Stored values to refractive index, as that reader does: floating-point data is RI already
(FormatVersion < 1.3); integer data is RI x 10^4, so RI = value / 1e4 (FormatVersion >= 1.3).
Frames are float32 RI (about 1.33 for medium to 1.40 in dense parts of a cell). The deprecated
"experimental" tiled layout (a time point stored as a group of ``TILE_*`` datasets) is
reported as a problem, not read.

Live following: the instrument's writer is not SWMR, so the file is opened (read-only,
without HDF5 file locking, closed again before ``poll`` returns) only when its size and mtime
are the same as at the previous poll, and what was read is kept only if they are still the
same after it is closed (a read that overlapped a write is thrown away and done again). A time
point is complete when its dataset has the shape the group's SizeX/Y/Z attributes give and all
its storage is written (every chunk allocated; for a contiguous dataset, its full size). An
error while opening or reading means "not ready yet"; it becomes a ``DatasetProblem`` once the
writer has moved on to a later time point, or the file has stayed unchanged for ``stuck_s``
seconds, and a second scan at a later poll agrees (a torn read of a file being written can
look like a broken or missing time point).

Finished: the published layout has no end-of-acquisition marker. ``finished`` is True when
every time point below /Data/3D's DataCount has been handed out (or reported) and the file has
not changed for ``finished_after_s`` seconds; later time points are still read if the file
grows again.
"""

from __future__ import annotations

import importlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from livecell.stream.formats._protocol import DatasetImage, DatasetItem, DatasetProblem, never_done

View = Literal["mip", "volume"]

MAX_IMAGES_PER_POLL = 8  # a replay of a long file is read a bounded batch at a time
_TIME_POINT = re.compile(r"^\d+$")
# What h5py raises for a file or object it cannot read (truncated, locked, mid-write).
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def _import_h5py() -> Any:
    try:
        return importlib.import_module("h5py")
    except ImportError as exc:
        raise ImportError(
            'reading Tomocube TCF files needs h5py: pip install "livecell[tcf]"'
        ) from exc


class _NotYet(Exception):
    """The time point is not (yet) readable; a problem once the writer has moved on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Broken(_NotYet):
    """The time point can never be read (wrong shape, unsupported layout)."""


def _attr(node: Any, name: str) -> Any:
    """A scalar attribute (TCF stores them as one-element arrays), or None."""
    if node is None or name not in node.attrs:
        return None
    value = np.asarray(node.attrs[name])
    if value.size != 1:
        return None
    item = value.reshape(-1)[0]
    return item.item() if isinstance(item, np.generic) else item


def _expected_shape(group: Any, ndim: int) -> tuple[int, ...] | None:
    sizes = [_attr(group, f"Size{axis}") for axis in ("Z", "Y", "X")[3 - ndim :]]
    if all(isinstance(size, int) for size in sizes):
        return tuple(sizes)
    return None


def _fully_written(dataset: Any, h5d: Any) -> bool:
    """True when every byte of the dataset has storage on disk (no unwritten chunk)."""
    layout = dataset.id.get_create_plist().get_layout()
    if layout == h5d.CHUNKED:
        chunks = math.prod(
            math.ceil(size / chunk)
            for size, chunk in zip(dataset.shape, dataset.chunks, strict=True)
        )
        return bool(dataset.id.get_num_chunks() == chunks)
    if layout == h5d.CONTIGUOUS:
        return bool(dataset.id.get_storage_size() == dataset.size * dataset.dtype.itemsize)
    return True


def _to_ri(raw: np.ndarray) -> np.ndarray:
    """Stored values to float32 RI: floats are RI, integers are RI x 1e4 (TCFile's reader)."""
    if raw.dtype.kind == "f":
        return np.ascontiguousarray(raw, dtype="<f4")
    ri = raw.astype("<f4")
    ri /= np.float32(1e4)
    return ri


@dataclass(frozen=True, slots=True)
class _Scan:
    """What one pass over the open file found; ``poll`` keeps it only if the file held still."""

    items: list[DatasetItem]
    handled: frozenset[int]  # time points returned, reported or skipped (is_done)
    suspects: dict[int, str]  # time point -> problem seen, reported once a second scan agrees
    pending: bool  # a time point must wait: scan again at the next poll
    behind: bool  # stopped at MAX_IMAGES_PER_POLL with more to read
    data_count: int | None
    last_t: int


class TCFReader:
    """Follows one TCF file; ``poll()`` returns each complete time point once, in order."""

    def __init__(
        self,
        path: Path,
        *,
        is_done: Callable[[str], bool] = never_done,
        clock: Callable[[], float] = time.time,
        view: View = "mip",
        position: str | None = None,
        stuck_s: float = 30.0,
        finished_after_s: float = 300.0,
    ) -> None:
        if view not in ("mip", "volume"):
            raise ValueError(f"TCF view must be 'mip' or 'volume', not {view!r}")
        self._h5py = _import_h5py()
        self.path = Path(path)
        self._is_done = is_done
        self._clock = clock
        self._view: View = view
        self._group = "2DMIP" if view == "mip" else "3D"
        self._position = position if position is not None else self.path.stem
        self._stuck_s = stuck_s
        self._finished_after_s = finished_after_s
        self._handled: set[int] = set()  # time points returned, reported or skipped
        self._stat: tuple[int, int] | None = None  # (size, mtime_ns) at the last poll
        self._stat_since = 0.0  # clock() when that (size, mtime) was first seen
        self._scanned: tuple[int, int] | None = None  # stat of the last scan left nothing pending
        self._suspects: dict[int, str] = {}
        self._data_count: int | None = None
        self._last_t = -1
        self._file_reported = False
        self._now = 0.0
        self._closed = False
        self._behind = False

    @property
    def behind(self) -> bool:
        return self._behind

    @property
    def incomplete(self) -> bool:
        """The file as it is now left something unread: a time point not yet whole, or a
        file not readable as HDF5."""
        return self._stat is not None and self._scanned != self._stat

    @property
    def finished(self) -> bool:
        count = self._data_count
        return (
            count is not None
            and count > 0
            and self._scanned is not None
            and self._scanned == self._stat
            and self._last_t < count
            and all(t in self._handled for t in range(count))
            and self._now - self._stat_since >= self._finished_after_s
        )

    def close(self) -> None:
        """Nothing is held open between polls; later polls return nothing."""
        self._closed = True

    def poll(self) -> list[DatasetItem]:
        now = self._now = self._clock()
        self._behind = False
        if self._closed:
            return []
        try:
            st = self.path.stat()
        except OSError:
            return []  # not created yet, or being replaced
        stat = (st.st_size, st.st_mtime_ns)
        if stat != self._stat:
            self._stat, self._stat_since = stat, now
            return []  # still changing: the writer may be in the middle of an update
        if stat == self._scanned:
            return []
        stuck = now - self._stat_since >= self._stuck_s
        try:
            with self._h5py.File(self.path, "r", locking=False) as f:
                scan = self._scan(f, now, stuck)
            after = self.path.stat()
        except _H5_ERRORS as exc:
            if not stuck or self._file_reported:
                return []  # mid-write, most likely: try again at the next poll
            self._file_reported = True
            return [
                DatasetProblem(
                    unit=f"{self.path}#file",
                    reason="unreadable-file",
                    detail=f"{self.path}: unchanged for {now - self._stat_since:.0f} s "
                    f"and still not readable as HDF5: {exc}",
                    completed_at=now,
                    position=self._position,
                )
            ]
        if (after.st_size, after.st_mtime_ns) != stat:
            return []  # the writer wrote while we read: forget this scan, read again when quiet
        self._handled |= scan.handled
        self._suspects = scan.suspects
        self._data_count = scan.data_count
        self._last_t = max(self._last_t, scan.last_t)
        self._behind = scan.behind
        if not scan.pending:
            self._scanned = stat
        return scan.items

    def _scan(self, f: Any, now: float, stuck: bool) -> _Scan:
        """Read the time points not handed out yet; nothing changes until ``poll`` commits."""
        data = f.get("Data")
        volumes = data.get("3D") if data is not None else None
        mips = data.get("2DMIP") if data is not None else None
        count = _attr(volumes if volumes is not None else mips, "DataCount")
        names = {*(volumes.keys() if volumes is not None else ())}
        names |= {*(mips.keys() if mips is not None else ())}
        ts = sorted(int(name) for name in names if _TIME_POINT.match(name))
        items: list[DatasetItem] = []
        handled: set[int] = set()
        suspects: dict[int, str] = {}
        pending = behind = False
        for t in ts:
            if t in self._handled:
                continue
            if len(items) >= MAX_IMAGES_PER_POLL:
                pending = behind = True  # the rest at the next poll: memory stays bounded
                break
            unit = f"{self.path}#{self._group}/{t:06d}"
            if self._is_done(unit):
                handled.add(t)
                continue
            try:
                pixels, group = self._read(volumes, mips, t)
            except _NotYet as exc:
                later = t < ts[-1]
                if not isinstance(exc, _Broken) and not later and not stuck:
                    pending = True  # the last time point, maybe still being written
                    break
                suspects[t] = exc.reason
                if self._suspects.get(t) != exc.reason:
                    pending = True  # a torn read mid-write looks the same: confirm next poll
                    break
                if isinstance(exc, _Broken):
                    why = ""
                elif later:
                    why = " (the writer has moved on)"
                else:
                    why = f" (unchanged for {self._stuck_s:g} s)"
                items.append(
                    DatasetProblem(
                        unit=unit,
                        reason=exc.reason,
                        detail=f"{self.path}: time point {t}: {exc.detail}{why}",
                        completed_at=now,
                        position=self._position,
                        t=t,
                    )
                )
            else:
                size = _attr(group, "ResolutionX")
                items.append(
                    DatasetImage(
                        unit=unit,
                        position=self._position,
                        t=t,
                        pixels=pixels,
                        axes="YX" if self._view == "mip" else "ZYX",
                        completed_at=now,
                        pixel_size_um=float(size) if isinstance(size, int | float) else None,
                    )
                )
            handled.add(t)
        return _Scan(
            items=items,
            handled=frozenset(handled),
            suspects=suspects,
            pending=pending,
            behind=behind,
            data_count=count if isinstance(count, int) else None,
            last_t=ts[-1] if ts else -1,
        )

    def _read(self, volumes: Any, mips: Any, t: int) -> tuple[np.ndarray, Any]:
        """The RI frame of time point ``t`` and the group it came from; raises ``_NotYet``."""
        if self._view == "volume":
            return _to_ri(self._raw(volumes, "3D", t, 3)), volumes
        try:
            return _to_ri(self._raw(mips, "2DMIP", t, 2)), mips
        except _NotYet as mip_error:
            try:
                raw = self._raw(volumes, "3D", t, 3)
            except _NotYet as volume_error:
                detail = f"{mip_error.detail}; {volume_error.detail}"
                if isinstance(mip_error, _Broken) and isinstance(volume_error, _Broken):
                    raise _Broken(mip_error.reason, detail) from None
                mip_absent = isinstance(mip_error, _Broken) or mip_error.reason == "missing-data"
                waiting = volume_error if mip_absent else mip_error
                raise _NotYet(waiting.reason, detail) from None
            return _to_ri(raw.max(axis=0)), volumes

    def _raw(self, group: Any, where: str, t: int, ndim: int) -> np.ndarray:
        """The stored array of ``/Data/<where>/<t>`` once complete; raises ``_NotYet``."""
        name = f"{t:06d}"
        if group is None or name not in group:
            raise _NotYet("missing-data", f"/Data/{where}/{name} does not exist")
        node = group[name]
        if not isinstance(node, self._h5py.Dataset):
            raise _Broken(
                "unsupported-layout",
                f"/Data/{where}/{name} is a group (the deprecated tiled TCF layout), not a dataset",
            )
        expected = _expected_shape(group, ndim)
        if node.ndim != ndim or (expected is not None and node.shape != expected):
            want = expected if expected is not None else f"{ndim} dimensions"
            raise _Broken("bad-shape", f"/Data/{where}/{name} has shape {node.shape}, not {want}")
        if node.dtype.kind not in "fiu" or node.size == 0:
            raise _Broken("bad-data", f"/Data/{where}/{name} holds {node.size} {node.dtype} values")
        if not _fully_written(node, self._h5py.h5d):
            raise _NotYet("incomplete-time-point", f"/Data/{where}/{name} is not fully written")
        try:
            raw: np.ndarray = node[()]
        except _H5_ERRORS as exc:
            raise _NotYet("unreadable-time-point", f"/Data/{where}/{name}: {exc}") from None
        return raw
