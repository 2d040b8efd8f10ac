"""Parsed inputs: ground-truth tables (SPEC 5), a tracks file and events (SPEC 4).

Everything here is built from already-read rows (dicts of strings for CSV,
decoded JSON objects for events) by pure functions; ``loaders`` does the
reading. The large tables (tracks, patches) are columnar: one read-only numpy
array per column. The small ones are tuples of frozen rows.

Positions and wells are strings (``"0"`` stays ``"0"``); a well is ``""``
where there are no wells (holotomography).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from livecell.evaluation.errors import InputError

TRACK_COLUMNS: Final = ("position", "t", "track", "well", "x", "y", "area", "cell_type", "state")
DEATH_COLUMNS: Final = ("position", "track", "well", "pathway", "onset_t", "marker_t")
CONTACT_COLUMNS: Final = ("position", "well", "track_a", "track_b", "start_t", "end_t")
WELL_COLUMNS: Final = ("position", "well", "row", "col", "x0", "y0", "x1", "y1")
PATCH_COLUMNS: Final = ("position", "t", "row", "col", "state")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
StrArray = npt.NDArray[np.str_]


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class TrackTable:
    """Rows of ``tracks.csv`` (ground truth or livecell's): one cell at one frame each."""

    position: StrArray
    t: IntArray
    track: IntArray
    well: StrArray
    x: FloatArray
    y: FloatArray
    area: FloatArray
    cell_type: StrArray
    state: StrArray

    def __post_init__(self) -> None:
        _check_lengths(self, TRACK_COLUMNS)

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> TrackTable:
        return TrackTable(**{name: getattr(self, name)[index] for name in TRACK_COLUMNS})


@dataclass(frozen=True, eq=False)
class PatchTable:
    """Rows of ``patches.csv``: the state of one patch of the default grid at one frame."""

    position: StrArray
    t: IntArray
    row: IntArray
    col: IntArray
    state: StrArray

    def __post_init__(self) -> None:
        _check_lengths(self, PATCH_COLUMNS)

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True, slots=True)
class TruthDeath:
    position: str
    track: int
    well: str
    pathway: str
    onset_t: int
    marker_t: int


@dataclass(frozen=True, slots=True)
class TruthContact:
    position: str
    well: str
    track_a: int
    track_b: int
    start_t: int
    end_t: int


@dataclass(frozen=True, slots=True)
class TruthWell:
    position: str
    well: str
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A parsed ``ground_truth/`` folder. ``None``: that file is not in the folder."""

    tracks: TrackTable | None
    deaths: tuple[TruthDeath, ...] | None
    contacts: tuple[TruthContact, ...] | None
    wells: tuple[TruthWell, ...] | None
    patches: PatchTable | None


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PatchStatesEvent:
    """A ``patch_states`` event.

    ``states`` is rows x cols class indices into ``classes`` (-1: skipped as
    empty). ``probabilities``, optional, is rows x cols x len(classes): the
    model's score for each class, in ``classes`` order (entries of skipped
    patches are ignored and may be null).
    """

    position: str
    t: int
    classes: tuple[str, ...]
    patch_size: int
    states: IntArray
    probabilities: FloatArray | None = None

    def __post_init__(self) -> None:
        _frozen(self.states)
        if self.probabilities is not None:
            _frozen(self.probabilities)


@dataclass(frozen=True, slots=True)
class DeathEvent:
    """A ``death`` event: ``well`` + ``track`` (nanowell) or ``patch`` (row, col)."""

    position: str
    t: int
    pathway: str
    onset_t: int
    confidence: float
    well: str | None = None
    track: int | None = None
    patch: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """A ``contact_start`` (``start=True``) or ``contact_end`` event."""

    position: str
    t: int
    start: bool
    well: str
    tracks: tuple[int, int]


@dataclass(frozen=True, slots=True)
class CellTypeEvent:
    position: str
    t: int
    well: str
    track: int
    cell_type: str
    confidence: float


@dataclass(frozen=True)
class EventSet:
    """The events the scorer reads, by kind, in file order (duplicates by ``event_id`` dropped)."""

    patch_states: tuple[PatchStatesEvent, ...] = ()
    deaths: tuple[DeathEvent, ...] = ()
    contacts: tuple[ContactEvent, ...] = ()
    cell_types: tuple[CellTypeEvent, ...] = ()
    kinds_seen: Mapping[str, int] = field(default_factory=dict)


# --- building tables from rows ----------------------------------------------------------


def _check_columns(rows_columns: Sequence[str], wanted: Sequence[str], source: str) -> None:
    missing = [c for c in wanted if c not in rows_columns]
    if missing:
        raise InputError(source, f"missing column(s) {', '.join(missing)}")


def _column(
    rows: Sequence[Mapping[str, str]], name: str, kind: type, source: str
) -> npt.NDArray[Any]:
    if kind is str:
        return np.array([row[name] for row in rows], dtype=np.str_)
    values = []
    for line, row in enumerate(rows, start=2):
        try:
            values.append(kind(row[name]))
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise InputError(source, f"line {line}: {name} {row[name]!r} is not {what}") from None
    return np.array(values, dtype=np.int64 if kind is int else np.float64)


def track_table(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, source: str
) -> TrackTable:
    """A ``TrackTable`` from CSV rows (``csv.DictReader``); ``source`` names the file in errors."""
    _check_columns(columns, TRACK_COLUMNS, source)
    return TrackTable(
        position=_column(rows, "position", str, source),
        t=_column(rows, "t", int, source),
        track=_column(rows, "track", int, source),
        well=_column(rows, "well", str, source),
        x=_column(rows, "x", float, source),
        y=_column(rows, "y", float, source),
        area=_column(rows, "area", float, source),
        cell_type=_column(rows, "cell_type", str, source),
        state=_column(rows, "state", str, source),
    )


def patch_table(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, source: str
) -> PatchTable:
    _check_columns(columns, PATCH_COLUMNS, source)
    return PatchTable(
        position=_column(rows, "position", str, source),
        t=_column(rows, "t", int, source),
        row=_column(rows, "row", int, source),
        col=_column(rows, "col", int, source),
        state=_column(rows, "state", str, source),
    )


def _int(value: str, name: str, line: int, source: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(source, f"line {line}: {name} {value!r} is not an integer") from None


def truth_deaths(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, source: str
) -> tuple[TruthDeath, ...]:
    _check_columns(columns, DEATH_COLUMNS, source)
    return tuple(
        TruthDeath(
            position=r["position"],
            track=_int(r["track"], "track", line, source),
            well=r["well"],
            pathway=r["pathway"],
            onset_t=_int(r["onset_t"], "onset_t", line, source),
            marker_t=_int(r["marker_t"], "marker_t", line, source),
        )
        for line, r in enumerate(rows, start=2)
    )


def truth_contacts(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, source: str
) -> tuple[TruthContact, ...]:
    _check_columns(columns, CONTACT_COLUMNS, source)
    return tuple(
        TruthContact(
            position=r["position"],
            well=r["well"],
            track_a=_int(r["track_a"], "track_a", line, source),
            track_b=_int(r["track_b"], "track_b", line, source),
            start_t=_int(r["start_t"], "start_t", line, source),
            end_t=_int(r["end_t"], "end_t", line, source),
        )
        for line, r in enumerate(rows, start=2)
    )


def truth_wells(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, source: str
) -> tuple[TruthWell, ...]:
    _check_columns(columns, WELL_COLUMNS, source)
    return tuple(
        TruthWell(
            position=r["position"],
            well=r["well"],
            **{k: _int(r[k], k, line, source) for k in ("row", "col", "x0", "y0", "x1", "y1")},
        )
        for line, r in enumerate(rows, start=2)
    )


# --- events from decoded JSON objects ---------------------------------------------------


def _field(record: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in record or record[name] is None:
        raise InputError(where, f"{record.get('kind')} event has no {name!r}")
    return record[name]


def _as_int(value: Any, name: str, where: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or int(value) != value
    ):
        raise InputError(where, f"{name} {value!r} is not an integer")
    return int(value)


def _as_float(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(where, f"{name} {value!r} is not a number")
    return float(value)


def _pair(value: Any, name: str, where: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(where, f"{name} {value!r} is not a pair")
    return _as_int(value[0], name, where), _as_int(value[1], name, where)


def _patch_states(record: Mapping[str, Any], position: str, t: int, where: str) -> PatchStatesEvent:
    classes = _field(record, "classes", where)
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise InputError(where, "classes is not a list of names")
    try:
        states = np.array(_field(record, "states", where), dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(where, "states is not a rows x cols grid of integers") from None
    grid = _pair(_field(record, "grid", where), "grid", where)
    if grid == (0, 0) and states.size == 0:  # a frame smaller than one patch: []
        states = states.reshape(0, 0)
    if states.ndim != 2 or states.shape != grid:
        raise InputError(where, f"states has shape {states.shape}, grid says {list(grid)}")
    if states.size and (states.min() < -1 or states.max() >= len(classes)):
        raise InputError(where, f"states has a class index outside -1..{len(classes) - 1}")
    probabilities = None
    if record.get("probabilities") is not None:
        try:
            raw = [
                [
                    [np.nan if p is None else p for p in (cell or [None] * len(classes))]
                    for cell in row
                ]
                for row in record["probabilities"]
            ]
            probabilities = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(where, "probabilities is not a rows x cols x classes array") from None
        if probabilities.shape != (*grid, len(classes)):
            raise InputError(
                where,
                f"probabilities has shape {probabilities.shape}, expected {(*grid, len(classes))}",
            )
    patch_size = _as_int(_field(record, "patch_size", where), "patch_size", where)
    if patch_size <= 0:
        raise InputError(where, f"patch_size {patch_size} is not positive")
    return PatchStatesEvent(
        position=position,
        t=t,
        classes=tuple(classes),
        patch_size=patch_size,
        states=states,
        probabilities=probabilities,
    )


def event_set(records: Iterable[tuple[int, Mapping[str, Any]]], *, source: str) -> EventSet:
    """Typed events from ``(line number, decoded object)`` pairs.

    Kinds the scorer does not read are counted and skipped. An ``event_id``
    seen before is skipped (SPEC 4: each id at most once).
    """
    patch_states: list[PatchStatesEvent] = []
    deaths: list[DeathEvent] = []
    contacts: list[ContactEvent] = []
    cell_types: list[CellTypeEvent] = []
    kinds: dict[str, int] = {}
    seen: set[str] = set()
    for line, record in records:
        where = f"{source} line {line}"
        kind = record.get("kind")
        if not isinstance(kind, str):
            raise InputError(where, "event has no kind")
        event_id = record.get("event_id")
        if isinstance(event_id, str):
            if event_id in seen:
                continue
            seen.add(event_id)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind not in ("patch_states", "death", "contact_start", "contact_end", "cell_type"):
            continue
        position = str(_field(record, "position", where))
        t = _as_int(_field(record, "t", where), "t", where)
        if kind == "patch_states":
            patch_states.append(_patch_states(record, position, t, where))
        elif kind == "death":
            has_track = record.get("track") is not None
            has_patch = record.get("patch") is not None
            if has_track == has_patch:
                raise InputError(where, "death event needs either well + track or patch")
            deaths.append(
                DeathEvent(
                    position=position,
                    t=t,
                    pathway=str(_field(record, "pathway", where)),
                    onset_t=_as_int(_field(record, "onset_t", where), "onset_t", where),
                    confidence=_as_float(record.get("confidence", 1.0), "confidence", where),
                    well=str(_field(record, "well", where)) if has_track else None,
                    track=_as_int(record["track"], "track", where) if has_track else None,
                    patch=_pair(record["patch"], "patch", where) if has_patch else None,
                )
            )
        elif kind in ("contact_start", "contact_end"):
            contacts.append(
                ContactEvent(
                    position=position,
                    t=t,
                    start=kind == "contact_start",
                    well=str(_field(record, "well", where)),
                    tracks=_pair(_field(record, "tracks", where), "tracks", where),
                )
            )
        else:
            cell_types.append(
                CellTypeEvent(
                    position=position,
                    t=t,
                    well=str(_field(record, "well", where)),
                    track=_as_int(_field(record, "track", where), "track", where),
                    cell_type=str(_field(record, "cell_type", where)),
                    confidence=_as_float(record.get("confidence", 1.0), "confidence", where),
                )
            )
    return EventSet(
        patch_states=tuple(patch_states),
        deaths=tuple(deaths),
        contacts=tuple(contacts),
        cell_types=tuple(cell_types),
        kinds_seen=dict(sorted(kinds.items())),
    )


def _check_lengths(table: TrackTable | PatchTable, columns: Sequence[str]) -> None:
    """Every column as long as ``t``, and read-only from now on."""
    n = len(table.t)
    for name in columns:
        column = getattr(table, name)
        if len(column) != n:
            raise ValueError(f"column {name} has {len(column)} rows, not {n}")
        _frozen(column)
