"""Tracking accuracy: CLEAR-MOT MOTA and IDF1 (py-motmetrics) per well, per cells per well, overall.

Rules:

- Predicted rows (livecell's tracks file) are matched to ground-truth rows of
  the same ``(position, well, t)`` by centroid distance: a pair can match only
  if the centroids are at most ``max_distance_px`` apart (default 15 px, about
  an effector cell's radius at 0.325 um/px). py-motmetrics does the matching
  (Hungarian on squared distances, keeping last frame's match while it is still
  within the distance, as CLEAR-MOT prescribes) and counts misses, false
  positives and identity switches. A cell the prediction puts in another well
  is a miss in one well and a false positive in the other.
- Every frame of a position that appears in either table is scored, so frames
  the prediction lacks count as misses.
- MOTA = 1 - (misses + false positives + switches) / ground-truth rows;
  IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN). Groups of wells (by cells per well,
  overall) sum the counts and recompute both, as py-motmetrics' ``OVERALL`` does.
  A group without ground-truth rows has no MOTA (``nan``).
- Cells per well: the number of ground-truth tracks in the well at its first
  frame (the loading, as wells are binned in nanowell papers); a well with
  predictions only counts as 0.
- Holotomography has no wells (``well`` is ``""``): each position is one group.

The frame-by-frame matches are also returned as a ``TrackMap``, so the other
scores (deaths, contacts, cell types) can translate an event's predicted track
id into the ground-truth track it was on *at the event's frame*; an identity
switch in the tracks then does not move a correctly placed event.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from livecell.evaluation.defaults import DEFAULT_MAX_DISTANCE_PX
from livecell.evaluation.errors import InputError, require
from livecell.evaluation.stats import ratio
from livecell.evaluation.tables import TrackTable

_COUNTS = (
    "num_frames",
    "num_objects",
    "num_predictions",
    "num_matches",
    "num_misses",
    "num_false_positives",
    "num_switches",
    "idtp",
    "idfp",
    "idfn",
)


@dataclass(frozen=True, slots=True)
class MotScores:
    """CLEAR-MOT and identity counts for one well or a group of wells."""

    wells: int
    num_frames: int
    num_objects: int
    num_predictions: int
    num_matches: int
    num_misses: int
    num_false_positives: int
    num_switches: int
    idtp: int
    idfp: int
    idfn: int
    mota: float
    idf1: float
    mean_distance_px: float  # over matched pairs, switches included


@dataclass(frozen=True, slots=True)
class WellScores:
    position: str
    well: str
    cells: int
    scores: MotScores


@dataclass(frozen=True, slots=True)
class CellsPerWellScores:
    cells: int
    scores: MotScores


@dataclass(frozen=True, slots=True)
class TrackingReport:
    max_distance_px: float
    overall: MotScores
    by_cells: tuple[CellsPerWellScores, ...]
    per_well: tuple[WellScores, ...]


class TrackResolver(Protocol):
    """Translates a predicted track id at a frame into a ground-truth track id."""

    def truth_track(self, position: str, track: int, t: int) -> int | None: ...


@dataclass(frozen=True)
class TrackMap:
    """Frame-by-frame matches of predicted to ground-truth tracks.

    ``truth_track`` answers for the event's frame; where the predicted track was
    not matched at that frame, for the nearest frame where it was (the earlier
    one on a tie); ``None`` where it never was.
    """

    matches: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]]

    def truth_track(self, position: str, track: int, t: int) -> int | None:
        found = self.matches.get((position, track))
        if found is None:
            return None
        frames, truth = found
        i = bisect.bisect_left(frames, t)
        if i < len(frames) and frames[i] == t:
            return truth[i]
        before = i - 1 if i > 0 else None
        after = i if i < len(frames) else None
        if before is None:
            return truth[after] if after is not None else None
        if after is None or t - frames[before] <= frames[after] - t:
            return truth[before]
        return truth[after]


@dataclass(frozen=True)
class SameIds:
    """The resolver when no tracks file is given: predicted ids are taken as ground-truth ids.

    ``known``: the ground-truth ``(position, track)`` pairs (others resolve to ``None``);
    ``None`` accepts every id.
    """

    known: frozenset[tuple[str, int]] | None

    def truth_track(self, position: str, track: int, t: int) -> int | None:
        return track if self.known is None or (position, track) in self.known else None

    @classmethod
    def of(cls, truth: TrackTable) -> SameIds:
        return cls(frozenset(zip(truth.position.tolist(), truth.track.tolist(), strict=True)))


def combine(groups: Sequence[MotScores]) -> MotScores:
    """Sum the counts of ``groups`` and recompute MOTA, IDF1 and mean distance."""
    total = {name: sum(getattr(g, name) for g in groups) for name in _COUNTS}
    distance_sum = sum(g.mean_distance_px * _pairs(g) for g in groups if _pairs(g))
    return _scores(total, wells=sum(g.wells for g in groups), distance_sum=distance_sum)


def _scores(counts: dict[str, int], *, wells: int, distance_sum: float) -> MotScores:
    errors = counts["num_misses"] + counts["num_false_positives"] + counts["num_switches"]
    return MotScores(
        wells=wells,
        **counts,
        mota=1.0 - errors / counts["num_objects"] if counts["num_objects"] else float("nan"),
        idf1=ratio(2 * counts["idtp"], 2 * counts["idtp"] + counts["idfp"] + counts["idfn"]),
        mean_distance_px=ratio(distance_sum, counts["num_matches"] + counts["num_switches"]),
    )


def _pairs(scores: MotScores) -> int:
    """Truth-prediction pairs the mean distance is over: matches and switches (py-motmetrics
    counts a pair whose id switched as a switch, not a match)."""
    return scores.num_matches + scores.num_switches


def _groups(table: TrackTable) -> dict[tuple[str, str], dict[int, list[int]]]:
    """``(position, well) -> t -> row indices``."""
    groups: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (p, w, t) in enumerate(
        zip(table.position.tolist(), table.well.tolist(), table.t.tolist(), strict=True)
    ):
        groups[(p, w)][t].append(i)
    return groups


def _check_unique(table: TrackTable, source: str) -> None:
    seen: set[tuple[str, int, int]] = set()
    for p, t, track in zip(
        table.position.tolist(), table.t.tolist(), table.track.tolist(), strict=True
    ):
        if (p, t, track) in seen:
            raise InputError(source, f"track {track} appears twice at position {p!r}, t={t}")
        seen.add((p, t, track))


def score_tracking(
    truth: TrackTable,
    predicted: TrackTable,
    *,
    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX,
) -> tuple[TrackingReport, TrackMap]:
    """MOTA and IDF1 of ``predicted`` against ``truth``, and the frame-by-frame matches."""
    mm = require("motmetrics")

    if not max_distance_px > 0:
        raise InputError("--max-distance", f"must be positive, not {max_distance_px}")
    _check_unique(truth, "ground truth tracks.csv")
    _check_unique(predicted, "--tracks")
    truth_groups = _groups(truth)
    predicted_groups = _groups(predicted)
    frames_of: dict[str, set[int]] = defaultdict(set)
    for table in (truth, predicted):
        for p, t in zip(table.position.tolist(), table.t.tolist(), strict=True):
            frames_of[p].add(t)

    max_d2 = max_distance_px**2
    keys = sorted(set(truth_groups) | set(predicted_groups))
    accumulators = []
    cells_of: list[int] = []
    empty: dict[int, list[int]] = {}
    for key in keys:
        truth_rows = truth_groups.get(key, empty)
        predicted_rows = predicted_groups.get(key, empty)
        cells_of.append(len(truth_rows[min(truth_rows)]) if truth_rows else 0)
        acc = mm.MOTAccumulator(auto_id=False)
        for t in sorted(frames_of[key[0]]):
            ti = truth_rows.get(t, [])
            pi = predicted_rows.get(t, [])
            distances = mm.distances.norm2squared_matrix(
                np.column_stack([truth.x[ti], truth.y[ti]]),
                np.column_stack([predicted.x[pi], predicted.y[pi]]),
                max_d2=max_d2,
            )
            acc.update(truth.track[ti].tolist(), predicted.track[pi].tolist(), distances, frameid=t)
        accumulators.append(acc)

    per_well: list[WellScores] = []
    matched: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    if not keys:
        return TrackingReport(max_distance_px, combine([]), (), ()), TrackMap({})
    names = [str(i) for i in range(len(keys))]
    summary = mm.metrics.create().compute_many(accumulators, metrics=list(_COUNTS), names=names)
    for name, (position, well), acc, cells in zip(names, keys, accumulators, cells_of, strict=True):
        row = summary.loc[name]
        counts = {name: int(row[name]) for name in _COUNTS}
        distance_sum = 0.0
        events = acc.mot_events
        pairs = events[events["Type"].isin(("MATCH", "SWITCH"))]
        if len(pairs):
            frames = pairs.index.get_level_values("FrameId").to_numpy()
            oids = pairs["OId"].to_numpy()
            hids = pairs["HId"].to_numpy()
            distance_sum = float(np.sqrt(pairs["D"].to_numpy(dtype=np.float64)).sum())
            for t, oid, hid in zip(frames.tolist(), oids.tolist(), hids.tolist(), strict=True):
                matched[(position, int(hid))].append((int(t), int(oid)))
        per_well.append(
            WellScores(position, well, cells, _scores(counts, wells=1, distance_sum=distance_sum))
        )

    by_cells = tuple(
        CellsPerWellScores(n, combine([w.scores for w in per_well if w.cells == n]))
        for n in sorted({w.cells for w in per_well})
    )
    report = TrackingReport(
        max_distance_px=max_distance_px,
        overall=combine([w.scores for w in per_well]),
        by_cells=by_cells,
        per_well=tuple(per_well),
    )
    return report, _track_map(matched)


def _track_map(matched: dict[tuple[str, int], list[tuple[int, int]]]) -> TrackMap:
    out: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for key, pairs in matched.items():
        pairs.sort()
        out[key] = (tuple(t for t, _ in pairs), tuple(o for _, o in pairs))
    return TrackMap(out)
