"""The dashboard's memory: what the page can ask for, every part of it bounded.

One :class:`Store`, one lock. The dashboard's own thread writes to it (event
records, frame views); the HTTP handler threads read snapshots from it. Bounds
(:class:`Limits`): the feed keeps the last ``feed_events`` events; each position
its latest frame view only; each track its last ``track_points`` points (at most
``tracks`` tracks per position, the least recently seen forgotten first); each
patch its last ``patch_points`` states; crops and patch mosaics share one
``image_bytes`` budget, the oldest dropped first.

States come from the events (the same ones the events file holds): a track is
``death`` from its ``death`` event's ``onset_t``, ``early_necroptosis`` from that
event's ``onset_t``, ``contact`` while a contact holds, else ``live``; a well
takes its worst track's state (death > early necroptosis > contact > live),
``empty`` without cells.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from livecell.dashboard.views import FrameView, TrackPoint, ViewParts

__all__ = ["FEED_KINDS", "Limits", "Store", "compact"]

FEED_KINDS = frozenset(
    {"death", "early_necroptosis", "cell_type", "contact_start", "contact_end", "rejected"}
)
_SEVERITY = {"death": 3, "early_necroptosis": 2, "contact": 1, "live": 0}


@dataclass(frozen=True, slots=True)
class Limits:
    """How much the dashboard keeps (docs/dashboard.md, "Memory")."""

    feed_events: int = 500
    positions: int = 64
    tracks: int = 2048
    track_points: int = 240
    patch_points: int = 240
    contacts: int = 4096
    latencies: int = 500
    image_bytes: int = 48 * 2**20
    max_side_px: int = 768
    crop_px: int = 48


def compact(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the page gets of an event: all of it but the bulky fields (paths, state grids)."""
    drop = ("states", "path", "header", "crc32") if record.get("kind") != "rejected" else ()
    return {k: v for k, v in record.items() if k not in drop}


class _ByteBudget:
    """Arrays by key, dropped oldest first once their bytes exceed ``budget``."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._items: OrderedDict[Hashable, npt.NDArray[np.uint8]] = OrderedDict()
        self.nbytes = 0

    def put(self, key: Hashable, value: npt.NDArray[np.uint8]) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._items[key] = value
        self.nbytes += value.nbytes
        while self.nbytes > self._budget and self._items:
            _, dropped = self._items.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def get(self, key: Hashable) -> npt.NDArray[np.uint8] | None:
        return self._items.get(key)


@dataclass(eq=False)  # kept and dropped by identity: two contacts may read alike
class _Contact:
    well: str
    tracks: tuple[int, int]
    start_t: int
    end_t: int | None = None  # the first frame apart


@dataclass
class _Position:
    """Everything known about one position."""

    acquisition: str | None
    view: FrameView | None = None
    version: int = 0  # bumped when a state the frame image shows changes
    last_t: int | None = None
    # nanowell
    well_tracks: dict[str, set[int]] = field(default_factory=dict)
    track_well: dict[int, str] = field(default_factory=dict)
    deaths: dict[int, dict[str, Any]] = field(default_factory=dict)
    early: dict[int, dict[str, Any]] = field(default_factory=dict)
    cell_types: dict[int, str] = field(default_factory=dict)
    contacts: deque[_Contact] = field(default_factory=deque)
    contacts_of: dict[int, list[_Contact]] = field(default_factory=dict)  # the same, by track
    points: OrderedDict[int, deque[TrackPoint]] = field(default_factory=OrderedDict)
    # patch mode
    classes: tuple[str, ...] = ()
    grid: tuple[int, int] = (0, 0)
    patch_px: int = 0
    patch_states: list[list[int]] | None = None
    patch_history: dict[tuple[int, int], deque[tuple[int, int, tuple[float, ...] | None]]] = field(
        default_factory=dict
    )
    patch_events: dict[tuple[int, int], dict[str, dict[str, Any]]] = field(default_factory=dict)
    mosaic_ts: deque[int] = field(default_factory=deque)

    def add_contact(self, contact: _Contact, limit: int) -> None:
        """Keep ``contact``, forgetting the oldest beyond ``limit``."""
        self.contacts.append(contact)
        for track in contact.tracks:
            self.contacts_of.setdefault(track, []).append(contact)
        while len(self.contacts) > limit:
            oldest = self.contacts.popleft()
            for track in oldest.tracks:
                kept = self.contacts_of[track]
                kept.remove(oldest)
                if not kept:
                    del self.contacts_of[track]

    def end_contact(self, well: str, pair: tuple[int, int], t: int) -> None:
        for contact in self.contacts_of.get(pair[0], ()):
            if contact.well == well and contact.tracks == pair and contact.end_t is None:
                contact.end_t = t

    def track_state(self, track: int, t: int | None = None) -> str:
        """The track's state at frame ``t`` (now, if ``None``)."""
        death = self.deaths.get(track)
        if death is not None and (t is None or t >= _onset(death)):
            return "death"
        early = self.early.get(track)
        if early is not None and (t is None or t >= _onset(early)):
            return "early_necroptosis"
        for c in self.contacts_of.get(track, ()):
            if t is None and c.end_t is None:
                return "contact"
            if t is not None and c.start_t <= t and (c.end_t is None or t < c.end_t):
                return "contact"
        return "live"

    def well_state(self, well: str) -> str:
        tracks = self.well_tracks.get(well, set())
        if not tracks:
            return "empty"
        return max((self.track_state(track) for track in tracks), key=_SEVERITY.__getitem__)


def _onset(record: Mapping[str, Any]) -> int:
    onset = record.get("onset_t")
    if isinstance(onset, int):
        return onset
    t = record.get("t")
    return t if isinstance(t, int) else 0


class Store:
    """The dashboard's state; every method is safe from any thread."""

    def __init__(self, limits: Limits, *, mode: str, backend: str) -> None:
        self.limits = limits
        self.mode = mode
        self.backend = backend
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._positions: OrderedDict[str, _Position] = OrderedDict()
        self._feed: deque[dict[str, Any]] = deque(maxlen=limits.feed_events)
        self._latest_frames: dict[str, dict[str, Any]] = {}
        self._latencies: deque[float] = deque(maxlen=limits.latencies)
        self._intervals: deque[float] = deque(maxlen=limits.latencies)
        self._completed: dict[str, float] = {}
        self._images = _ByteBudget(limits.image_bytes)
        self._seq = 0
        self.frames_done = 0
        self.last_frame_at: float | None = None
        self.last_latency_s: float | None = None
        self.dropped_events = 0
        self.dropped_frames = 0

    # ------------------------------------------------------------------ writing

    def add_record(self, record: Mapping[str, Any], *, seeded: bool = False) -> dict[str, Any]:
        """Take one event record; return the message for the page (with its ``seq``)."""
        kind = record.get("kind")
        name = record.get("position")
        message = compact(record)
        with self._lock:
            self._seq += 1
            message["seq"] = self._seq
            if isinstance(name, str):
                self._apply(self._position(name, record.get("acquisition")), record)
            if kind == "frame":
                if isinstance(name, str):
                    self._latest_frames[name] = message
                if not seeded:
                    self._count_frame(record)
            elif kind in FEED_KINDS:
                self._feed.append(message)
        return message

    def add_view(self, parts: ViewParts) -> None:
        """Take one frame's view, its track points, crops and mosaic."""
        view = parts.view
        limits = self.limits
        with self._lock:
            position = self._position(view.position, view.acquisition)
            position.view = view
            position.version += 1
            if view.wells:
                for well in view.wells:
                    position.well_tracks.setdefault(well.well, set()).update(well.tracks)
            for point in parts.points:
                position.track_well[point.track] = point.well
                points = position.points.pop(point.track, None)
                if points is None:
                    points = deque(maxlen=limits.track_points)
                points.append(point)
                position.points[point.track] = points
                while len(position.points) > limits.tracks:
                    gone, _ = position.points.popitem(last=False)
                    position.track_well.pop(gone, None)
            for track, crop in parts.crops:
                self._images.put(("crop", view.position, track, view.t), crop)
            if view.grid is not None:
                grid = view.grid
                position.classes = grid.classes
                position.patch_px = grid.patch_px
                for (row, col), probs in grid.probabilities.items():
                    self._patch_point(position, row, col, view.t, None, probs)
            if parts.mosaic is not None:
                self._images.put(("mosaic", view.position, view.t), parts.mosaic)
                position.mosaic_ts.append(view.t)
                while len(position.mosaic_ts) > limits.patch_points:
                    position.mosaic_ts.popleft()

    def count_dropped(self, *, events: int = 0, frames: int = 0) -> None:
        with self._lock:
            self.dropped_events += events
            self.dropped_frames += frames

    def _position(self, name: str, acquisition: object) -> _Position:
        """The position's state; started afresh when a new acquisition reaches it (the
        next experiment's ``Pos0`` restarts its track ids: the last one's must not mix in)."""
        acquisition = acquisition if isinstance(acquisition, str) else None
        position = self._positions.get(name)
        if position is not None and acquisition not in (None, position.acquisition):
            del self._positions[name]
            position = None
        if position is None:
            position = self._positions[name] = _Position(acquisition)
            while len(self._positions) > self.limits.positions:
                self._positions.popitem(last=False)
        return position

    def _count_frame(self, record: Mapping[str, Any]) -> None:
        self.frames_done += 1
        latency = record.get("latency_s")
        emitted = record.get("emitted_at")
        if isinstance(latency, int | float):
            self._latencies.append(float(latency))
            self.last_latency_s = float(latency)
        if isinstance(emitted, int | float):
            self.last_frame_at = float(emitted)
            if isinstance(latency, int | float):
                completed = float(emitted) - float(latency)
                name = str(record.get("position"))
                before = self._completed.get(name)
                if before is not None and completed > before:
                    self._intervals.append(completed - before)
                self._completed[name] = completed

    def _apply(self, position: _Position, record: Mapping[str, Any]) -> None:
        kind = record.get("kind")
        t = record.get("t")
        if isinstance(t, int) and (position.last_t is None or t > position.last_t):
            position.last_t = t
        well = record.get("well")
        track = record.get("track")
        patch = record.get("patch")
        if kind in ("death", "early_necroptosis", "cell_type") and isinstance(track, int):
            if isinstance(well, str):
                position.track_well.setdefault(track, well)
                position.well_tracks.setdefault(well, set()).add(track)
            if kind == "death":
                position.deaths[track] = dict(record)
            elif kind == "early_necroptosis":
                position.early[track] = dict(record)
            else:
                position.cell_types[track] = str(record.get("cell_type"))
            position.version += 1
        elif kind in ("death", "early_necroptosis") and isinstance(patch, list) and len(patch) == 2:
            position.patch_events.setdefault((int(patch[0]), int(patch[1])), {})[str(kind)] = dict(
                record
            )
            position.version += 1
        elif kind in ("contact_start", "contact_end") and isinstance(well, str):
            self._contact(position, str(kind), well, record.get("tracks"), t)
        elif kind == "patch_states":
            self._patch_states(position, record)

    def _contact(
        self, position: _Position, kind: str, well: str, tracks: object, t: object
    ) -> None:
        if not (isinstance(tracks, list) and len(tracks) == 2 and isinstance(t, int)):
            return
        pair = (int(tracks[0]), int(tracks[1]))
        position.well_tracks.setdefault(well, set()).update(pair)
        if kind == "contact_start":
            position.add_contact(_Contact(well, pair, t), self.limits.contacts)
        else:
            position.end_contact(well, pair, t)
        position.version += 1

    def _patch_states(self, position: _Position, record: Mapping[str, Any]) -> None:
        states, t = record.get("states"), record.get("t")
        classes, size = record.get("classes"), record.get("patch_size")
        if not isinstance(states, list) or not isinstance(t, int):
            return
        position.patch_states = states
        position.grid = (len(states), len(states[0]) if states else 0)
        if isinstance(classes, list):
            position.classes = tuple(str(c) for c in classes)
        if isinstance(size, int):
            position.patch_px = size
        for row, line in enumerate(states):
            for col, state in enumerate(line):
                self._patch_point(position, row, col, t, int(state), None)
        position.version += 1

    def _patch_point(
        self,
        position: _Position,
        row: int,
        col: int,
        t: int,
        state: int | None,
        probs: tuple[float, ...] | None,
    ) -> None:
        """Merge the state (from the event) or probabilities (from the view) of frame ``t``."""
        history = position.patch_history.get((row, col))
        if history is None:
            history = position.patch_history[(row, col)] = deque(maxlen=self.limits.patch_points)
        if history and history[-1][0] == t:
            _, old_state, old_probs = history[-1]
            history[-1] = (t, old_state if state is None else state, probs or old_probs)
        else:
            history.append((t, -1 if state is None else state, probs))

    # ------------------------------------------------------------------ reading

    def history(self) -> list[dict[str, Any]]:
        """What a page that connects gets first: the feed, then each position's last frame."""
        with self._lock:
            return sorted([*self._feed, *self._latest_frames.values()], key=lambda m: m["seq"])

    def state(self) -> dict[str, Any]:
        """``/api/state``: the header, and each position's latest frame and states."""
        with self._lock:
            latencies = np.array(self._latencies) if self._latencies else None
            interval = float(np.median(self._intervals)) if self._intervals else None
            header = {
                "mode": self.mode,
                "backend": self.backend,
                "frames_done": self.frames_done,
                "lag_s": self.last_latency_s,
                "last_frame_age_s": None
                if self.last_frame_at is None
                else max(0.0, time.time() - self.last_frame_at),
                "latency_p50_s": None if latencies is None else float(np.percentile(latencies, 50)),
                "latency_p99_s": None if latencies is None else float(np.percentile(latencies, 99)),
                "interval_s": interval,
                "dropped_events": self.dropped_events,
                "dropped_frames": self.dropped_frames,
            }
            positions = [self._position_state(name, p) for name, p in self._positions.items()]
        return {"header": header, "positions": positions}

    def _position_state(self, name: str, p: _Position) -> dict[str, Any]:
        view = p.view
        out: dict[str, Any] = {
            "position": name,
            "acquisition": p.acquisition,
            "t": view.t if view is not None else p.last_t,
            "image_t": view.t if view is not None else None,
            "version": p.version,
            "shape": list(view.shape) if view is not None else None,
        }
        if p.well_tracks or (view is not None and view.wells):
            boxes = {w.well: w for w in view.wells} if view is not None else {}
            wells = []
            for well in sorted(set(p.well_tracks) | set(boxes)):
                box = boxes.get(well)
                tracks = sorted(box.tracks) if box is not None else []
                wells.append(
                    {
                        "well": well,
                        "state": p.well_state(well),
                        "box": list(box.box_frac) if box is not None else None,
                        "tracks": [
                            {
                                "track": tr,
                                "state": p.track_state(tr),
                                "cell_type": p.cell_types.get(tr),
                            }
                            for tr in tracks
                        ],
                        "deaths": [
                            {"track": tr, "pathway": d.get("pathway"), "onset_t": d.get("onset_t")}
                            for tr, d in sorted(p.deaths.items())
                            if p.track_well.get(tr) == well or d.get("well") == well
                        ],
                    }
                )
            out["wells"] = wells
        if p.patch_states is not None or (view is not None and view.grid is not None):
            rows, cols = p.grid
            h, w = view.shape if view is not None else (0, 0)
            out["patches"] = {
                "classes": list(p.classes),
                "grid": [rows, cols],
                "patch_px": p.patch_px,
                "covered": [rows * p.patch_px / h if h else 0, cols * p.patch_px / w if w else 0],
                "states": p.patch_states,
                "events": [
                    {"patch": [r, c], "kind": kind, "pathway": e.get("pathway")}
                    for (r, c), kinds in sorted(p.patch_events.items())
                    for kind, e in kinds.items()
                ],
            }
        return out

    def frame_snapshot(
        self, name: str
    ) -> tuple[FrameView, dict[str, str], dict[int, str], list[list[int]] | None] | None:
        """The latest view of a position and the states to colour it with."""
        with self._lock:
            p = self._positions.get(name)
            if p is None or p.view is None:
                return None
            view = p.view
            wells = {w.well: p.well_state(w.well) for w in view.wells}
            tracks = {tr: p.track_state(tr) for w in view.wells for tr in w.tracks}
            return view, wells, tracks, p.patch_states

    def crop(self, key: tuple[Any, ...]) -> npt.NDArray[np.uint8] | None:
        with self._lock:
            return self._images.get(key)

    def patch_crop(self, name: str, row: int, col: int, t: int) -> npt.NDArray[np.uint8] | None:
        with self._lock:
            mosaic = self._images.get(("mosaic", name, t))
        if mosaic is None:
            return None
        c = self.limits.crop_px
        tile = mosaic[row * c : (row + 1) * c, col * c : (col + 1) * c]
        return tile if tile.size else None

    def well_timeline(self, name: str, well: str, track: int | None) -> dict[str, Any] | None:
        """``/api/timeline?position=&well=[&track=]``: each track's states, p(death), crops."""
        with self._lock:
            p = self._positions.get(name)
            if p is None:
                return None
            tracks = sorted(p.well_tracks.get(well, set()))
            if track is not None:
                tracks = [tr for tr in tracks if tr == track]
            out_tracks = []
            for tr in tracks:
                points = list(p.points.get(tr, ()))
                death, early = p.deaths.get(tr), p.early.get(tr)
                out_tracks.append(
                    {
                        "track": tr,
                        "state": p.track_state(tr),
                        "cell_type": p.cell_types.get(tr),
                        "death": None
                        if death is None
                        else {k: death.get(k) for k in ("t", "pathway", "onset_t", "confidence")},
                        "early_necroptosis": None
                        if early is None
                        else {k: early.get(k) for k in ("t", "onset_t", "confidence")},
                        "points": [
                            {
                                "t": pt.t,
                                "state": p.track_state(tr, pt.t),
                                "p_death": None if pt.p_death is None else round(pt.p_death, 4),
                                "crop": self._images.get(("crop", name, tr, pt.t)) is not None,
                            }
                            for pt in points
                        ],
                    }
                )
            contacts = [
                {"tracks": list(c.tracks), "start_t": c.start_t, "end_t": c.end_t}
                for c in p.contacts
                if c.well == well and (track is None or track in c.tracks)
            ]
            return {
                "position": name,
                "well": well,
                "state": p.well_state(well),
                "tracks": out_tracks,
                "contacts": contacts,
            }

    def patch_timeline(self, name: str, row: int, col: int) -> dict[str, Any] | None:
        """``/api/timeline?position=&patch=r,c``: the patch's states, probabilities, crops."""
        with self._lock:
            p = self._positions.get(name)
            if p is None:
                return None
            history = list(p.patch_history.get((row, col), ()))
            mosaics = set(p.mosaic_ts)
            return {
                "position": name,
                "patch": [row, col],
                "classes": list(p.classes),
                "events": p.patch_events.get((row, col), {}),
                "points": [
                    {
                        "t": t,
                        "state": p.classes[s] if 0 <= s < len(p.classes) else None,
                        "probabilities": None if probs is None else [round(v, 4) for v in probs],
                        "crop": t in mosaics and self._images.get(("mosaic", name, t)) is not None,
                    }
                    for t, s, probs in history
                ],
            }
